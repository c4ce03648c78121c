package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// apiDir is the folder of the Go types, relative to the module root.
const apiDir = "api/v1alpha1"

// Patterns shared by the loader's rules and the schemas.
const (
	dnsLabelPattern = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
)

type schemaFile struct {
	name string
	data []byte
}

// generate returns one schema file per kind, sorted by file name.
func generate(root string) ([]schemaFile, error) {
	kinds := []struct {
		file, kind string
		v          any
	}{
		{"app.json", v1alpha1.KindApp, &v1alpha1.App{}},
		{"cluster.json", v1alpha1.KindCluster, &v1alpha1.Cluster{}},
		{"fleet.json", v1alpha1.KindFleet, &v1alpha1.Fleet{}},
		{"scalepolicy.json", v1alpha1.KindScalePolicy, &v1alpha1.ScalePolicy{}},
	}
	r, err := reflector(root)
	if err != nil {
		return nil, err
	}
	var files []schemaFile
	for _, k := range kinds {
		s := r.Reflect(k.v)
		s.Title = fmt.Sprintf("fleetsync %s (%s)", k.kind, v1alpha1.GroupVersion)
		setProp(s, "apiVersion", func(p *jsonschema.Schema) { p.Const = v1alpha1.GroupVersion })
		setProp(s, "kind", func(p *jsonschema.Schema) { p.Const = k.kind })
		refine(s.Definitions)
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", k.file, err)
		}
		files = append(files, schemaFile{name: k.file, data: append(b, '\n')})
	}
	return files, nil
}

// reflector makes a Reflector that reads descriptions from the Go comments.
func reflector(root string) (*jsonschema.Reflector, error) {
	r := &jsonschema.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		Mapper:         mapType,
		LookupComment:  k8sComment,
	}
	base := strings.TrimSuffix(reflect.TypeFor[v1alpha1.App]().PkgPath(), "/"+apiDir)
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working folder: %w", err)
	}
	// AddGoComments keys comments by the folder path relative to the working folder.
	if err := os.Chdir(root); err != nil {
		return nil, fmt.Errorf("chdir to the module root: %w", err)
	}
	defer func() { _ = os.Chdir(wd) }()
	if err := r.AddGoComments(base, apiDir); err != nil {
		return nil, fmt.Errorf("read the comments of %s: %w", apiDir, err)
	}
	return r, nil
}

// mapType gives the schema of types whose JSON form is not their Go shape.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[v1alpha1.Duration]():
		return &jsonschema.Schema{Type: "string", Pattern: durationPattern, Examples: []any{"90s", "5m", "1h30m"}}
	case reflect.TypeFor[v1alpha1.DriftMode]():
		return &jsonschema.Schema{Type: "string", Enum: []any{string(v1alpha1.DriftReport), string(v1alpha1.DriftCorrect)}}
	case reflect.TypeFor[v1alpha1.IntOrPercent]():
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: json.Number("1")},
			{Type: "string", Pattern: "^([1-9][0-9]?|100)%$"},
		}, Examples: []any{2, "25%"}}
	case reflect.TypeFor[v1alpha1.Values]():
		return &jsonschema.Schema{Type: "object"}
	}
	return nil
}

// k8sComment describes the Kubernetes label selector types, whose source is not in this module.
func k8sComment(t reflect.Type, field string) string {
	if t.PkgPath() != reflect.TypeFor[metav1.LabelSelector]().PkgPath() {
		return ""
	}
	return map[string]string{
		"LabelSelector":                     "A standard Kubernetes label selector. {} selects everything.",
		"LabelSelector.MatchLabels":         "Labels that must all be present with these values.",
		"LabelSelector.MatchExpressions":    "Requirements that must all hold.",
		"LabelSelectorRequirement":          "A label requirement: key, operator and values.",
		"LabelSelectorRequirement.Key":      "The label key.",
		"LabelSelectorRequirement.Operator": "In, NotIn, Exists or DoesNotExist.",
		"LabelSelectorRequirement.Values":   "Values for In and NotIn; empty for Exists and DoesNotExist.",
	}[strings.TrimSuffix(t.Name()+"."+field, ".")]
}

// refine adds the constraints the Go types cannot express, by definition and property.
func refine(defs jsonschema.Definitions) {
	minimum := func(n string) func(*jsonschema.Schema) {
		return func(p *jsonschema.Schema) { p.Minimum = json.Number(n) }
	}
	rules := []struct {
		def, prop string
		set       func(*jsonschema.Schema)
	}{
		{"ObjectMeta", "name", func(p *jsonschema.Schema) { p.Pattern = dnsLabelPattern; p.MaxLength = ptr(uint64(63)) }},
		{"Trigger", "metric", func(p *jsonschema.Schema) { p.Enum = []any{"cpu", "memory"} }},
		{"Trigger", "threshold", func(p *jsonschema.Schema) { p.Minimum = "1"; p.Maximum = "100" }},
		{"ScaleWorkload", "kind", func(p *jsonschema.Schema) { p.Enum = []any{"Deployment", "StatefulSet"} }},
		{"ScaleWorkload", "minReplicas", minimum("1")},
		{"ScaleWorkload", "maxReplicas", minimum("1")},
		{"NodePoolScale", "minNodes", minimum("0")},
		{"NodePoolScale", "maxNodes", minimum("1")},
		{"NodePool", "name", func(p *jsonschema.Schema) { p.Pattern = dnsLabelPattern }},
		{"NodePoolScale", "name", func(p *jsonschema.Schema) { p.Pattern = dnsLabelPattern }},
		{"Patch", "patch", func(p *jsonschema.Schema) { p.MinLength = ptr(uint64(1)) }},
		{"KustomizeSource", "path", func(p *jsonschema.Schema) { p.MinLength = ptr(uint64(1)) }},
		{"RegistrySpec", "mirror", func(p *jsonschema.Schema) { p.MinLength = ptr(uint64(1)) }},
		{"LabelSelectorRequirement", "operator", func(p *jsonschema.Schema) {
			p.Enum = []any{"In", "NotIn", "Exists", "DoesNotExist"}
		}},
	}
	for _, r := range rules {
		if d, ok := defs[r.def]; ok {
			setProp(d, r.prop, r.set)
		}
	}
	if src, ok := defs["AppSource"]; ok {
		src.OneOf = []*jsonschema.Schema{{Required: []string{"kustomize"}}, {Required: []string{"helm"}}}
	}
}

// setProp changes one property of an object schema, when it has it.
func setProp(s *jsonschema.Schema, name string, set func(*jsonschema.Schema)) {
	if s.Properties == nil {
		return
	}
	if p, ok := s.Properties.Get(name); ok {
		set(p)
	}
}

func ptr[T any](v T) *T { return &v }
