package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/render"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// obj builds a rendered object as pkg/render would (app label, revision annotation).
func obj(rev, apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(map[string]string{"fleetsync.dev/app": "mes"})
	u.SetAnnotations(map[string]string{"fleetsync.dev/revision": rev})
	return u
}

func deployment(rev, name string, replicas int64) *unstructured.Unstructured {
	return obj(rev, "apps/v1", "Deployment", "mes", name, map[string]any{
		"spec": map[string]any{"replicas": replicas, "template": map[string]any{
			"spec": map[string]any{"containers": []any{map[string]any{"name": "mes", "image": "mes:v1"}}},
		}},
	})
}

func configMap(rev, name, value string) *unstructured.Unstructured {
	return obj(rev, "v1", "ConfigMap", "mes", name, map[string]any{"data": map[string]any{"key": value}})
}

func secret(rev string, data, stringData map[string]any) *unstructured.Unstructured {
	fields := map[string]any{}
	if data != nil {
		fields["data"] = data
	}
	if stringData != nil {
		fields["stringData"] = stringData
	}
	return obj(rev, "v1", "Secret", "mes", "mes-credentials", fields)
}

// pair is one (cluster, app) render.
type pair struct {
	cluster, app string
	objs         []*unstructured.Unstructured
	err          error
}

func result(rev string, pairs ...pair) *render.Result {
	r := &render.Result{Revision: rev}
	for _, p := range pairs {
		if n := len(r.Clusters); n == 0 || r.Clusters[n-1].Cluster != p.cluster {
			r.Clusters = append(r.Clusters, render.ClusterResult{Cluster: p.cluster})
		}
		c := &r.Clusters[len(r.Clusters)-1]
		c.Apps = append(c.Apps, render.AppResult{App: p.app, Objects: p.objs, Err: p.err})
	}
	return r
}

// change is a compact view of one object change for table tests.
type change struct {
	Cluster, App string
	Action       Action
	Object       string
}

func changes(p *Plan) []change {
	var out []change
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			for _, o := range a.Objects {
				out = append(out, change{c.Cluster, a.App, o.Action, o.Object.String()})
			}
		}
	}
	return out
}

func TestCompute(t *testing.T) {
	const b, h = "base111", "head222"
	tests := []struct {
		name        string
		base, head  *render.Result
		want        []change
		wantChanges bool
		wantErr     bool
		summary     [3]int // added, changed, deleted
	}{
		{
			name:        "revision-only change is no change",
			base:        result(b, pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1), configMap(b, "cfg", "x")}, nil}),
			head:        result(h, pair{"north", "mes", []*unstructured.Unstructured{deployment(h, "mes", 1), configMap(h, "cfg", "x")}, nil}),
			wantChanges: false,
		},
		{
			name: "added, changed, deleted",
			base: result(b, pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1), configMap(b, "old", "x")}, nil}),
			head: result(h, pair{"north", "mes", []*unstructured.Unstructured{configMap(h, "new", "y"), deployment(h, "mes", 3)}, nil}),
			want: []change{
				{"north", "mes", Add, "ConfigMap/mes/new"},
				{"north", "mes", Change, "Deployment/mes/mes"},
				{"north", "mes", Delete, "ConfigMap/mes/old"},
			},
			wantChanges: true,
			summary:     [3]int{1, 1, 1},
		},
		{
			name: "apiVersion change is a change, not delete and add",
			base: result(b, pair{"north", "mes", []*unstructured.Unstructured{obj(b, "autoscaling/v1", "HorizontalPodAutoscaler", "mes", "mes", nil)}, nil}),
			head: result(h, pair{"north", "mes", []*unstructured.Unstructured{obj(h, "autoscaling/v2", "HorizontalPodAutoscaler", "mes", "mes", nil)}, nil}),
			want: []change{
				{"north", "mes", Change, "HorizontalPodAutoscaler/mes/mes"},
			},
			wantChanges: true,
			summary:     [3]int{0, 1, 0},
		},
		{
			name: "app newly targets a cluster and leaves another",
			base: result(b, pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1)}, nil}),
			head: result(h, pair{"south", "mes", []*unstructured.Unstructured{deployment(h, "mes", 1)}, nil}),
			want: []change{
				{"north", "mes", Delete, "Deployment/mes/mes"},
				{"south", "mes", Add, "Deployment/mes/mes"},
			},
			wantChanges: true,
			summary:     [3]int{1, 0, 1},
		},
		{
			name:        "head render error",
			base:        result(b, pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1)}, nil}),
			head:        result(h, pair{"north", "mes", nil, errors.New("kustomize build apps/mes/base: boom")}),
			wantChanges: false,
			wantErr:     true,
		},
		{
			name:        "base render error fixed by head",
			base:        result(b, pair{"north", "mes", nil, errors.New("boom")}),
			head:        result(h, pair{"north", "mes", []*unstructured.Unstructured{deployment(h, "mes", 1)}, nil}),
			wantChanges: true,
		},
		{
			name:        "same error on both sides is no change but an error",
			base:        result(b, pair{"north", "mes", nil, errors.New("boom")}),
			head:        result(h, pair{"north", "mes", nil, errors.New("boom")}),
			wantChanges: false,
			wantErr:     true,
		},
		{
			name:        "head failed to load",
			base:        result(b, pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1)}, nil}),
			head:        nil,
			wantChanges: false,
			wantErr:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(context.Background(), tt.base, tt.head)
			if tt.head == nil {
				p.AddError("head", errors.New("clusters/x.yaml:3: spec.foo: unknown field"))
			}
			if diff := cmp.Diff(tt.want, changes(p)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			if got := p.HasChanges(); got != tt.wantChanges {
				t.Errorf("HasChanges() = %v, want %v", got, tt.wantChanges)
			}
			if got := p.Err() != nil; got != tt.wantErr {
				t.Errorf("Err() = %v, want error %v", p.Err(), tt.wantErr)
			}
			s := p.Summary
			if got := [3]int{s.Added, s.Changed, s.Deleted}; got != tt.summary {
				t.Errorf("summary +~- = %v, want %v", got, tt.summary)
			}
			if len(s.Deletions) != s.Deleted {
				t.Errorf("%d deletions listed, %d counted", len(s.Deletions), s.Deleted)
			}
		})
	}
}

func TestComputeDiffIgnoresRevision(t *testing.T) {
	base := result("b", pair{"north", "mes", []*unstructured.Unstructured{deployment("b", "mes", 1)}, nil})
	head := result("h", pair{"north", "mes", []*unstructured.Unstructured{deployment("h", "mes", 5)}, nil})
	p := Compute(context.Background(), base, head)
	d := p.Clusters[0].Apps[0].Objects[0].Diff
	for _, want := range []string{"--- a/deployment/mes/mes\n", "+++ b/deployment/mes/mes\n", "-  replicas: 1\n", "+  replicas: 5\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "revision") {
		t.Errorf("diff shows the revision annotation:\n%s", d)
	}
	// The input objects are not modified.
	if got := head.Clusters[0].Apps[0].Objects[0].GetAnnotations()["fleetsync.dev/revision"]; got != "h" {
		t.Errorf("Compute changed its input: revision annotation = %q", got)
	}
}

func TestSecretMasking(t *testing.T) {
	const (
		oldPassword = "b2xkLXBhc3N3b3Jk" // values that must never be printed
		newPassword = "bmV3LXBhc3N3b3Jk"
		sameUser    = "YWRtaW4tdXNlcg=="
		newToken    = "plain-token-value"
		goneKey     = "Z29uZS12YWx1ZQ=="
	)
	base := result("b", pair{"north", "mes", []*unstructured.Unstructured{
		secret("b", map[string]any{"password": oldPassword, "user": sameUser, "gone": goneKey}, nil),
		secret("b", map[string]any{"deleted": oldPassword}, nil).DeepCopy(),
	}, nil})
	base.Clusters[0].Apps[0].Objects[1].SetName("old-secret")
	head := result("h", pair{"north", "mes", []*unstructured.Unstructured{
		secret("h", map[string]any{"password": newPassword, "user": sameUser}, map[string]any{"token": newToken}),
		obj("h", "v1", "Secret", "mes", "new-secret", map[string]any{"stringData": map[string]any{"token": newToken}}),
	}, nil})
	p := Compute(context.Background(), base, head)

	var md, js bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if err := JSON(&js, p); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{md.String(), js.String()} {
		for _, v := range []string{oldPassword, newPassword, sameUser, newToken, goneKey} {
			if strings.Contains(out, v) {
				t.Fatalf("secret value %q printed:\n%s", v, out)
			}
		}
	}
	got := map[string][]string{}
	for _, o := range p.Clusters[0].Apps[0].Objects {
		got[string(o.Action)+" "+o.Object.Name] = o.SecretKeys
	}
	want := map[string][]string{
		"change mes-credentials": {"data.gone", "data.password", "stringData.token"},
		"add new-secret":         {"stringData.token"},
		"delete old-secret":      {"data.deleted"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secret keys (-want +got):\n%s", diff)
	}
	d := p.Clusters[0].Apps[0].Objects[0].Diff
	for _, line := range []string{"-  password: '***'\n", "+  password: '*** (changed)'\n", "   user: '***'\n", "-  gone: '***'\n", "+  token: '***'\n"} {
		if !strings.Contains(d, line) {
			t.Errorf("masked diff lacks %q:\n%s", line, d)
		}
	}
}

func TestSecretOnlyRevisionChange(t *testing.T) {
	data := map[string]any{"password": "c2VjcmV0"}
	base := result("b", pair{"north", "mes", []*unstructured.Unstructured{secret("b", data, nil)}, nil})
	head := result("h", pair{"north", "mes", []*unstructured.Unstructured{secret("h", map[string]any{"password": "c2VjcmV0"}, nil)}, nil})
	if p := Compute(context.Background(), base, head); p.HasChanges() {
		t.Errorf("unchanged Secret planned as a change: %+v", p.Clusters)
	}
}

// groupedFleet has the same change on north and south and another on east.
func groupedFleet() (*render.Result, *render.Result) {
	const b, h = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	base := result(b,
		pair{"east", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1), configMap(b, "old", "x")}, nil},
		pair{"east", "web", []*unstructured.Unstructured{deployment(b, "web", 1)}, nil},
		pair{"north", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1)}, nil},
		pair{"north", "web", []*unstructured.Unstructured{deployment(b, "web", 1)}, nil},
		pair{"south", "mes", []*unstructured.Unstructured{deployment(b, "mes", 1)}, nil},
	)
	head := result(h,
		pair{"east", "mes", []*unstructured.Unstructured{deployment(h, "mes", 2)}, nil},
		pair{"east", "web", []*unstructured.Unstructured{deployment(h, "web", 1)}, nil},
		pair{"north", "mes", []*unstructured.Unstructured{deployment(h, "mes", 3)}, nil},
		pair{"north", "web", nil, errors.New(`helm template apps/web/chart: template: web/templates/deployment.yaml:7:3: executing "web/templates/deployment.yaml" at <.Values.missing.key>: nil pointer`)},
		pair{"south", "mes", []*unstructured.Unstructured{deployment(h, "mes", 3)}, nil},
	)
	return base, head
}

func TestMarkdownGroupsIdenticalChanges(t *testing.T) {
	base, head := groupedFleet()
	p := Compute(context.Background(), base, head)
	var md bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"### `mes` on north, south\n\nSame change on north, south.",
		"### `mes` on east\n",
		"`ConfigMap/mes/old` of app `mes` on **east**",
		"| Clusters affected | 3: east, north, south |",
		"head `north/web`:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "+  replicas: 3"); n != 1 {
		t.Errorf("the shared change is shown %d times, want once:\n%s", n, out)
	}
	if strings.Index(out, "| Clusters affected") > strings.Index(out, "<details") {
		t.Errorf("summary table is not first:\n%s", out)
	}
}

// TestGolden checks the whole Markdown and JSON output; run with -update to
// rewrite testdata/grouped.md and testdata/grouped.json.
func TestGolden(t *testing.T) {
	base, head := groupedFleet()
	p := Compute(context.Background(), base, head)
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"grouped.md", func(b *bytes.Buffer) error { return Markdown(b, p) }},
		{"grouped.json", func(b *bytes.Buffer) error { return JSON(b, p) }},
	} {
		var buf bytes.Buffer
		if err := tc.write(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if diff := cmp.Diff(string(want), buf.String()); diff != "" {
			t.Errorf("%s differs (-want +got); run go test -update if intended:\n%s", path, diff)
		}
	}
}

func TestJSONShape(t *testing.T) {
	p := Compute(context.Background(), result("b"), result("h"))
	var buf bytes.Buffer
	if err := JSON(&buf, p); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// Empty lists are [] (not null), so consumers need no nil checks.
	for _, k := range []string{"errors", "clusters"} {
		if v, ok := got[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, got[k])
		}
	}
	if got["apiVersion"] != APIVersion || got["kind"] != Kind {
		t.Errorf("apiVersion/kind = %v/%v", got["apiVersion"], got["kind"])
	}
	var md bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "**No changes.**") {
		t.Errorf("empty plan markdown:\n%s", md.String())
	}
}

func TestComputeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	base, head := groupedFleet()
	p := Compute(ctx, base, head)
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "context canceled") {
		t.Errorf("Err() = %v, want the cancellation", p.Err())
	}
}

func TestMarkdownCutsLongPlans(t *testing.T) {
	var base, head []pair
	for i := range 300 {
		cluster := fmt.Sprintf("c%03d", i)
		// A different change per cluster, so that nothing is grouped.
		base = append(base, pair{cluster, "mes", []*unstructured.Unstructured{configMap("b", "cfg", "x")}, nil})
		head = append(head, pair{cluster, "mes", []*unstructured.Unstructured{configMap("h", "cfg", cluster)}, nil})
	}
	p := Compute(context.Background(), result("b", base...), result("h", head...))
	var md bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if md.Len() > 65536 {
		t.Errorf("markdown is %d bytes, more than a pull-request comment takes", md.Len())
	}
	if !strings.Contains(md.String(), "more app changes are not shown here") || !strings.Contains(md.String(), "| … | 150 more |") {
		t.Errorf("long plan not cut:\n%s", md.String())
	}
	if p.Summary.Changed != 300 {
		t.Errorf("%d changes, want 300", p.Summary.Changed)
	}
}
