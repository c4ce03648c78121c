package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSchemasUpToDate fails when schemas/ differs from what the Go types
// generate (run `make generate`).
func TestSchemasUpToDate(t *testing.T) {
	root, files := generateSchemas(t)
	if len(files) != 4 {
		t.Fatalf("generated %d schemas, want 4", len(files))
	}
	again, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		if string(again[i].data) != string(f.data) {
			t.Errorf("%s: two runs differ: the output is not deterministic", f.name)
		}
		checkedIn, err := os.ReadFile(filepath.Join(root, "schemas", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(checkedIn), string(f.data)); diff != "" {
			t.Errorf("schemas/%s is stale; run make generate (-checked in +generated):\n%s", f.name, diff)
		}
	}
}

// TestSchemaShape checks the parts of a schema that do not come from plain
// reflection: kind constants, enums, descriptions from comments, strictness.
func TestSchemaShape(t *testing.T) {
	_, files := generateSchemas(t)
	var app map[string]any
	for _, f := range files {
		if f.name == "app.json" {
			if err := json.Unmarshal(f.data, &app); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	checks := []struct {
		keys []string
		want any
	}{
		{[]string{"properties", "kind", "const"}, "App"},
		{[]string{"properties", "apiVersion", "const"}, "fleetsync.dev/v1alpha1"},
		{[]string{"additionalProperties"}, false},
		{[]string{"$defs", "AppSpec", "additionalProperties"}, false},
		{[]string{"$defs", "AppSpec", "properties", "drift", "enum"}, []any{"report", "correct"}},
		{[]string{"$defs", "AppSpec", "properties", "dependsOn", "description"}, "DependsOn names apps that must be healthy on the same cluster first."},
		{[]string{"$defs", "Rollout", "properties", "healthTimeout", "type"}, "string"},
		{[]string{"$defs", "KustomizeSource", "required"}, []any{"path"}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, get(app, c.keys...)); diff != "" {
			t.Errorf("app.json %v (-want +got):\n%s", c.keys, diff)
		}
	}
}

// generateSchemas generates the schemas from the module's Go types and
// returns the module root with them.
func generateSchemas(t *testing.T) (string, []schemaFile) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, files
}
