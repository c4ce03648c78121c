package render

import (
	"strings"
	"sync"
	"testing"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// TestKrustyParallel runs every kustomization of the test repos side by
// side, several times over, as renders do, and checks that each build gives
// what it gives alone. Under -race (make test runs pkg/render with it) it
// also checks that the builds share no unguarded state. testdata/openapi
// has a kustomization with a schema of its own (`openapi: path:`), which must
// apply to its own build only: the same kustomization without it replaces
// the list its patch merges into.
func TestKrustyParallel(t *testing.T) {
	type build struct {
		snap *snapshot
		dir  string
		want string
	}
	var builds []*build
	snaps, dirs := testKustomizations(t)
	for i, snap := range snaps {
		for _, dir := range dirs[i] {
			builds = append(builds, &build{snap: snap, dir: dir})
		}
	}
	run := func(b *build) string {
		objs, err := kustomizeBuild(b.snap, b.dir, newDeps(), false)
		if err != nil {
			return "error: " + err.Error()
		}
		out, err := encodeYAML(objs)
		if err != nil {
			return "error: " + err.Error()
		}
		return string(out)
	}
	patches := []v1alpha1.Patch{{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  b: \"2\"\n"}}
	const objs = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n"
	patch := func() string {
		out, err := applyPatches([]byte(objs), patches)
		if err != nil {
			return "error: " + err.Error()
		}
		return string(out)
	}
	// One at a time, the schema-setting build last: what every build gives
	// with the built-in schema only.
	var custom, plain *build
	for _, b := range builds {
		switch {
		case b.snap.setsOpenAPI() && b.dir == "custom":
			custom = b
		case b.snap.setsOpenAPI() && b.dir == "plain":
			plain = b
		}
		if b != custom {
			b.want = run(b)
		}
	}
	if custom == nil || plain == nil {
		t.Fatal("testdata/openapi not found")
	}
	custom.want = run(custom)
	wantPatch := patch()
	if !strings.Contains(custom.want, "name: axle") || !strings.Contains(custom.want, "size: 5") {
		t.Errorf("the kustomization's own schema did not merge the list:\n%s", custom.want)
	}
	if !strings.Contains(plain.want, "size: 5") || strings.Contains(plain.want, "axle") {
		t.Errorf("without the schema, the list should be replaced:\n%s", plain.want)
	}
	if again := run(plain); again != plain.want {
		t.Errorf("after a build with its own schema, another build differs:\n%s\nwant:\n%s", again, plain.want)
	}
	if len(builds) < 20 {
		t.Fatalf("only %d kustomizations found", len(builds))
	}

	var wg sync.WaitGroup
	for range 4 {
		for _, b := range builds {
			wg.Go(func() {
				if got := run(b); got != b.want {
					t.Errorf("%s built side by side with others:\n%s\nalone:\n%s", b.dir, got, b.want)
				}
			})
		}
		wg.Go(func() {
			if got := patch(); got != wantPatch {
				t.Errorf("patch side by side with builds:\n%s\nalone:\n%s", got, wantPatch)
			}
		})
	}
	wg.Wait()
}
