package fleet

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// TestDecodeInto covers the type checks of the strict decoder, one YAML
// snippet of an App each, with the problems it must give.
func TestDecodeInto(t *testing.T) {
	const head = "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: a}\n"
	tests := []struct {
		name string
		spec string // the rest of the file, from line 4
		want []string
	}{
		{"valid with aliases", "spec:\n  source: {kustomize: {path: &p base}}\n  targets: {clusterSelector: {}}\n  customizations:\n    - {clusterSelector: {}, kustomize: {path: *p}}\n", nil},
		{"bool as string", "spec:\n  prune: \"yes\"\n", []string{`5: spec.prune: must be a boolean, found the string "yes"`}},
		{"yes is a string in YAML 1.2", "spec:\n  prune: yes\n", []string{`5: spec.prune: must be a boolean, found the string "yes"`}},
		{"number for a string", "spec:\n  rollout: {waves: []}\n  dependsOn: [1]\n", []string{`6: spec.dependsOn[0]: must be a string, found the number 1 (quote the value)`}},
		{"list for object", "spec: [a]\n", []string{`4: spec: must be an object, found a list`}},
		{"object for list", "spec:\n  dependsOn: {a: b}\n", []string{`5: spec.dependsOn: must be a list, found an object`}},
		{"null is absent", "spec:\n  rollout: null\n  dependsOn: ~\n", nil},
		{"non-scalar key", "spec:\n  ? [a]\n  : b\n", []string{`5: spec: a key must be a plain value, found a list`}},
		{"custom tag in values", "spec:\n  source:\n    helm:\n      values: {a: !secret x}\n", []string{`7: spec.source.helm.values.a: unsupported YAML tag !secret`}},
		{"infinity in values", "spec:\n  source:\n    helm:\n      values: {a: .inf}\n", []string{`7: spec.source.helm.values.a: ".inf" cannot be represented in JSON`}},
		{"free-form values", "spec:\n  source:\n    helm:\n      values: {a: [1, 2.5, true, null, {b: 2021-01-01}], 3: x}\n", nil},
		{"bad duration type", "spec:\n  rollout: {healthTimeout: 5}\n", []string{`5: spec.rollout.healthTimeout: must be a duration string such as "5m", found the number 5`}},
		{"selector operator must be a string", "spec:\n  targets:\n    clusterSelector:\n      matchExpressions: [{key: a, operator: [In]}]\n", []string{`7: spec.targets.clusterSelector.matchExpressions[0].operator: must be a string, found a list`}},
		{"unknown field in a selector", "spec:\n  targets:\n    clusterSelector: {matchLabel: {a: b}}\n", []string{`6: spec.targets.clusterSelector.matchLabel: unknown field (known here: matchExpressions, matchLabels)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, probs := parseDocument("apps/a/app.yaml", []byte(head+tt.spec))
			if len(probs) > 0 {
				t.Fatalf("parse: %v", Problems(probs))
			}
			var app v1alpha1.App
			var got []string
			for _, p := range doc.decodeInto(&app) {
				got = append(got, strings.TrimPrefix(p.String(), "apps/a/app.yaml:"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeIntoBudget(t *testing.T) {
	// Nine levels of nine aliases: 9^9 nodes if expanded.
	var b strings.Builder
	b.WriteString("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: a}\nspec:\n  source:\n    helm:\n      values:\n")
	b.WriteString("        l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("        l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	doc, probs := parseDocument("apps/a/app.yaml", []byte(b.String()))
	if len(probs) > 0 {
		t.Fatalf("parse: %v", Problems(probs))
	}
	var app v1alpha1.App
	got := Problems(doc.decodeInto(&app)).Error()
	if !strings.Contains(got, "expands to more than 200000 YAML nodes") {
		t.Errorf("problems = %s", got)
	}
}

func TestDecodeIntoIntRange(t *testing.T) {
	doc, probs := parseDocument("policies/p.yaml", []byte("apiVersion: fleetsync.dev/v1alpha1\nkind: ScalePolicy\nmetadata: {name: p}\nspec:\n  trigger: {threshold: 3000000000}\n  nodePool: {minNodes: 1.5}\n"))
	if len(probs) > 0 {
		t.Fatalf("parse: %v", Problems(probs))
	}
	var p v1alpha1.ScalePolicy
	want := Problems{
		{File: "policies/p.yaml", Line: 5, Field: "spec.trigger.threshold", Message: "3000000000 is out of range"},
		{File: "policies/p.yaml", Line: 6, Field: "spec.nodePool.minNodes", Message: "must be an integer, found the number 1.5"},
	}
	if diff := cmp.Diff(want, Problems(doc.decodeInto(&p))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// FuzzDecodeFile feeds single files to the parser and the strict decoder of
// every kind: no input may panic, and a file decoded without problems must
// decode to an object that encodes to JSON.
func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: a}\nspec: {source: {kustomize: {path: base}}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("spec:\n  values: {a: !!binary aGVsbG8=, b: 0x1F, c: -.inf, d: 2001-12-14t21:59:43.10-05:00}\n"))
	f.Add([]byte("metadata:\n  labels: {a: 1, b: true, c: null}\nspec: {nodePools: [{name: p, machineDeployment: {}}], trigger: {threshold: 99999999999}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, probs := parseDocument("x.yaml", data)
		if doc == nil {
			if len(probs) == 0 {
				t.Fatal("no document and no problem")
			}
			return
		}
		for _, obj := range []any{&v1alpha1.App{}, &v1alpha1.Cluster{}, &v1alpha1.ScalePolicy{}, &v1alpha1.Fleet{}} {
			if probs := doc.decodeInto(obj); len(probs) == 0 {
				if _, err := json.Marshal(obj); err != nil {
					t.Fatalf("decoded %T does not encode: %v", obj, err)
				}
			}
		}
	})
}
