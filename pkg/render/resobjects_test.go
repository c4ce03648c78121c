package render

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"
)

// testKustomizations returns every kustomization folder of the test repos
// (testdata/scalars holds the scalars whose type depends on the reader).
func testKustomizations(t *testing.T) (snaps []*snapshot, dirs [][]string) {
	t.Helper()
	repos := []string{exampleRepo, "testdata/deprecated", "testdata/openapi", "testdata/scalars"}
	golden, err := fs.Glob(os.DirFS("testdata/golden"), "*/repo")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range golden {
		repos = append(repos, path.Join("testdata/golden", g))
	}
	for _, repo := range repos {
		snap, err := takeSnapshot(os.DirFS(repo), nil)
		if err != nil {
			t.Fatal(err)
		}
		var l []string
		for p := range snap.files {
			if isKustomizationFile(p) {
				l = append(l, path.Dir(p))
			}
		}
		sort.Strings(l)
		snaps, dirs = append(snaps, snap), append(dirs, l)
	}
	return snaps, dirs
}

// TestResMapObjects: for every kustomization of the test repos, the objects
// read straight from krusty's result are those decodeObjects reads from its
// YAML, types included, and the straight way is taken for all resources
// but testdata/scalars' leftover.yaml.
func TestResMapObjects(t *testing.T) {
	snaps, dirs := testKustomizations(t)
	straight, resources := 0, 0
	for i, snap := range snaps {
		for _, dir := range dirs[i] {
			m, err := krustyBuild(snap, dir, newDeps(), false)
			if err != nil {
				continue // an error case of the golden tests
			}
			out, yerr := m.AsYaml()
			var want []object
			if yerr == nil {
				want, yerr = decodeObjects(out, "build")
			}
			for _, res := range m.Resources() {
				resources++
				if _, ok := nodeValue(res.YNode(), false); ok {
					straight++
				} else if !strings.HasSuffix(res.GetName(), "leftover") {
					t.Errorf("%s: resource %s left to the YAML way", dir, res.CurId())
				}
			}
			got, ok := resMapObjects(m, "build")
			if !ok {
				if yerr == nil {
					t.Errorf("%s: the straight way failed where the YAML way gives %d objects", dir, len(want))
				}
				continue
			}
			if yerr != nil {
				t.Errorf("%s: the straight way gives objects where the YAML way fails: %v", dir, yerr)
				continue
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("%s: objects differ from the YAML's (-yaml +straight):\n%s", dir, cmp.Diff(want, got))
			}
		}
	}
	t.Logf("%d of %d resources read straight", straight, resources)
	if straight == resources {
		t.Error("testdata/scalars should leave a resource to the YAML way")
	}
	if resources < 50 {
		t.Fatalf("only %d resources built", resources)
	}
}

// TestNodeValueScalars checks scalars of testdata/scalars one at a time:
// where nodeValue gives a value, it is the YAML way's.
func TestNodeValueScalars(t *testing.T) {
	taken := 0
	var walk func(n *kyaml.RNode, where string)
	walk = func(n *kyaml.RNode, where string) {
		y := n.YNode()
		switch y.Kind {
		case kyaml.MappingNode:
			_ = n.VisitFields(func(f *kyaml.MapNode) error {
				walk(f.Value, where+"."+f.Key.YNode().Value)
				return nil
			})
			return
		case kyaml.SequenceNode:
			for i, c := range y.Content {
				walk(kyaml.NewRNode(c), where+"["+string(rune('0'+i%10))+"]")
			}
		}
		doc := kyaml.NewRNode(&kyaml.Node{Kind: kyaml.MappingNode, Content: []*kyaml.Node{kyaml.NewStringRNode("v").YNode(), y}})
		want, werr := yamlWayValue(doc)
		got, ok := nodeValue(doc.YNode(), false)
		if !ok {
			return
		}
		taken++
		if werr != nil {
			t.Errorf("%s: straight value %#v where the YAML way fails: %v", where, got, werr)
			return
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: %q read as %#v, the YAML way reads %#v", where, y.Value, got, want)
		}
	}
	for _, f := range []string{"testdata/scalars/base/values.yaml", "testdata/scalars/base/leftover.yaml", "testdata/scalars/unencodable.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rn, err := kyaml.Parse(string(b))
		if err != nil {
			t.Fatal(err)
		}
		walk(rn.Field("spec").Value, f+": spec")
	}
	if taken < 100 {
		t.Errorf("only %d values read straight", taken)
	}
}

// yamlWayValue is what AsYaml and decodeObjects make of a node: yaml.v3 to
// JSON (kyaml), JSON to YAML and back (go-yaml v2), JSON to values.
func yamlWayValue(rn *kyaml.RNode) (any, error) {
	j, err := rn.MarshalJSON()
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, err
	}
	j, err = yaml.YAMLToJSON(y)
	if err != nil {
		return nil, err
	}
	var v any
	if err := utiljson.Unmarshal(bytes.TrimSpace(j), &v); err != nil {
		return nil, err
	}
	return v, nil
}

// FuzzNodeValue: whatever YAML kyaml reads, a value nodeValue gives is the
// one the YAML way gives.
func FuzzNodeValue(f *testing.F) {
	if b, err := os.ReadFile("testdata/scalars/base/values.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add("a: yes\nb: [1.0, 0x10, \"x\"]\nc: {d: ~}\n")
	f.Add("k: |\n  text\n   more\n")
	f.Add("k: \"a\\tb\\nc \"\n")
	f.Fuzz(func(t *testing.T, data string) {
		rn, err := kyaml.Parse(data)
		if err != nil || rn.YNode().Kind != kyaml.MappingNode {
			return
		}
		got, ok := nodeValue(rn.YNode(), false)
		if !ok {
			return
		}
		want, err := yamlWayValue(rn)
		if err != nil {
			t.Fatalf("straight value %#v where the YAML way fails: %v", got, err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("straight value differs from the YAML way's (-yaml +straight):\n%s", cmp.Diff(want, got))
		}
	})
}
