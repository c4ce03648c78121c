package fleet_test

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// schemaFor names the schema of a fleet file by where it is; "" for files that
// are not fleet objects (kustomize bases, charts, values files).
func schemaFor(file string) string {
	dir, base := path.Split(file)
	switch {
	case file == "fleet.yaml":
		return "fleet.json"
	case dir == "clusters/" && strings.HasSuffix(base, ".yaml"):
		return "cluster.json"
	case dir == "policies/" && strings.HasSuffix(base, ".yaml"):
		return "scalepolicy.json"
	case base == "app.yaml" && strings.Count(file, "/") == 2 && strings.HasPrefix(file, "apps/"):
		return "app.json"
	}
	return ""
}

func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	dir := filepath.Join("..", "..", "schemas")
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"app.json", "cluster.json", "fleet.json", "scalepolicy.json"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		_ = f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		url := "file:///schemas/" + name
		if err := c.AddResource(url, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out[name], err = c.Compile(url); err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
	}
	return out
}

// validateWithSchemas validates every fleet object file under root against its
// schema and returns the failures by file.
func validateWithSchemas(t *testing.T, schemas map[string]*jsonschema.Schema, root string) (checked int, failures map[string]string) {
	t.Helper()
	failures = map[string]string{}
	eachFleetFile(t, root, func(p string, data []byte) {
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			failures[p] = err.Error()
			return
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			failures[p] = err.Error()
			return
		}
		checked++
		if err := schemas[schemaFor(p)].Validate(inst); err != nil {
			failures[p] = err.Error()
		}
	})
	return checked, failures
}

// eachFleetFile calls fn with the slash-separated path and the content of
// every fleet object file (see schemaFor) under root.
func eachFleetFile(t *testing.T, root string, fn func(p string, data []byte)) {
	t.Helper()
	fsys := os.DirFS(root)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || schemaFor(p) == "" {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fn(p, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSchemasAcceptValidRepos validates the example fleet and the valid
// testdata repo with the generated JSON Schemas in schemas/.
func TestSchemasAcceptValidRepos(t *testing.T) {
	schemas := compileSchemas(t)
	for _, root := range []string{filepath.Join("..", "..", "examples", "fleet-repo"), filepath.Join("testdata", "valid")} {
		checked, failures := validateWithSchemas(t, schemas, root)
		if checked < 4 {
			t.Errorf("%s: only %d fleet files checked", root, checked)
		}
		for file, msg := range failures {
			t.Errorf("%s/%s: %s", root, file, msg)
		}
	}
}

// TestSchemasRejectInvalid checks that the schemas catch the structural
// mistakes an editor should flag (strict fields, types, enums, bounds).
func TestSchemasRejectInvalid(t *testing.T) {
	schemas := compileSchemas(t)
	for _, c := range []string{"unknown-field", "wrong-type", "label-not-string", "drift-mode", "trigger", "scale-bounds", "source-both", "source-none", "unknown-apiversion", "invalid-selector"} {
		t.Run(c, func(t *testing.T) {
			_, failures := validateWithSchemas(t, schemas, filepath.Join("testdata", "invalid", c))
			if len(failures) == 0 {
				t.Errorf("the schemas accept every file of testdata/invalid/%s", c)
			}
		})
	}
}

// TestExampleSchemaHeaders checks that every object file of the example fleet
// names its schema for editors, by a path that leads to the right file.
func TestExampleSchemaHeaders(t *testing.T) {
	root := filepath.Join("..", "..", "examples", "fleet-repo")
	checked := 0
	eachFleetFile(t, root, func(p string, data []byte) {
		first, _, _ := strings.Cut(string(data), "\n")
		ref, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=")
		if !ok {
			t.Errorf("%s: first line %q is not a yaml-language-server schema comment", p, first)
			return
		}
		checked++
		target := filepath.Join(root, filepath.FromSlash(path.Dir(p)), filepath.FromSlash(ref))
		want := filepath.Join("..", "..", "schemas", schemaFor(p))
		if filepath.Clean(target) != filepath.Clean(want) {
			t.Errorf("%s: schema %s leads to %s, want %s", p, ref, target, want)
		}
	})
	if checked == 0 {
		t.Error("no example files checked")
	}
}
