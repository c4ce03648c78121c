package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// runRenderCmd runs `fleetsync render ARGS` and returns stdout, stderr and the exit status.
func runRenderCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return execute(t, newRenderCmd(), append([]string{"--offline"}, args...)...)
}

var renderExample = filepath.Join("..", "..", "examples", "fleet-repo")

// TestRenderCommandOut writes OUT/<cluster>/<app>.yaml, equal to the render golden files.
func TestRenderCommandOut(t *testing.T) {
	out := t.TempDir()
	_, stderr, code := runRenderCmd(t, "--repo", renderExample, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := filepath.Join("..", "..", "pkg", "render", "testdata", "example-fleet", "want")
	files, err := filepath.Glob(filepath.Join(want, "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", want, err)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(want, f)
		got, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		w, _ := os.ReadFile(f)
		if !bytes.Equal(got, w) {
			t.Errorf("%s differs from the render golden file", rel)
		}
	}
}

// TestRenderCommandStream writes one stream with a "# cluster/app" comment per pair.
func TestRenderCommandStream(t *testing.T) {
	stdout, stderr, code := runRenderCmd(t, "--repo", renderExample, "--cluster", "north", "--cluster", "south", "--app", "mes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := strings.Count(stdout, "\n# "); !strings.HasPrefix(stdout, "# north/mes\n") || got != 1 || !strings.Contains(stdout, "---\n# south/mes\n") {
		t.Errorf("want pairs north/mes then south/mes, got:\n%.400s", stdout)
	}
	stdout, _, code = runRenderCmd(t, "--repo", renderExample, "--cluster", "east", "--app", "platform", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"cluster": "east"`) || !strings.Contains(stdout, `"app": "platform"`) {
		t.Errorf("json: exit %d, output %.300s", code, stdout)
	}
}

// TestRenderCommandFailure: a failing pair writes nothing, the others are
// written, errors go to stderr and the exit status is 1.
func TestRenderCommandFailure(t *testing.T) {
	repo := t.TempDir()
	if err := os.CopyFS(repo, os.DirFS(renderExample)); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(repo, "apps", "platform", "base")
	pvc := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: odd}\nspec:\n  storageClassName: unknown-class\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n"
	if err := os.WriteFile(filepath.Join(base, "odd-pvc.yaml"), []byte(pvc), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(base, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k = []byte(strings.Replace(string(k), "resources:\n", "resources:\n  - odd-pvc.yaml\n", 1))
	if err := os.WriteFile(filepath.Join(base, "kustomization.yaml"), k, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, stderr, code := runRenderCmd(t, "--repo", repo, "--out", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, c := range []string{"north", "south", "east"} {
		if !strings.Contains(stderr, c+`/platform: PersistentVolumeClaim/platform/odd: spec.storageClassName: storage class "unknown-class" is not mapped`) {
			t.Errorf("stderr does not report %s/platform:\n%s", c, stderr)
		}
		if _, err := os.Stat(filepath.Join(out, c, "platform.yaml")); err == nil {
			t.Errorf("%s/platform.yaml written for a failed pair", c)
		}
		if _, err := os.Stat(filepath.Join(out, c, "mes.yaml")); err != nil {
			t.Errorf("%s/mes.yaml not written: %v", c, err)
		}
	}
}

// TestRenderStreamJSON: the JSON stream, written from each pair's encoded
// objects, is what printData writes for the same pairs.
func TestRenderStreamJSON(t *testing.T) {
	repo, err := fleet.Load(context.Background(), os.DirFS(renderExample))
	if err != nil {
		t.Fatal(err)
	}
	res := render.New(render.Options{}).Render(context.Background(), repo, render.Selection{})
	pairs := []renderedPair{}
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				continue
			}
			p := renderedPair{Cluster: c.Cluster, App: a.App, Objects: []map[string]any{}}
			for _, o := range a.Objects {
				p.Objects = append(p.Objects, o.Object)
			}
			pairs = append(pairs, p)
		}
	}
	if len(pairs) == 0 {
		t.Fatal("nothing rendered")
	}
	var want, got bytes.Buffer
	if err := printData(&want, "json", pairs); err != nil {
		t.Fatal(err)
	}
	if err := writeRenderStream(&got, "json", res); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("JSON stream differs from printData:\n--- got:\n%.600s\n--- want:\n%.600s", got.String(), want.String())
	}
	got.Reset()
	if err := writeRenderStream(&got, "json", &render.Result{}); err != nil || got.String() != "[]\n" {
		t.Errorf("empty JSON stream = %q, %v; want []", got.String(), err)
	}
}
