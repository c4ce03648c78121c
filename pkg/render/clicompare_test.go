//go:build clicompare

package render

// The comparison with the kustomize and helm CLIs builds both from the Go
// module proxy (several minutes on a small machine), so it has its own tag:
//
//	go test -tags clicompare -run TestCLICompare -timeout 30m ./pkg/render/

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// CLI versions matching the libraries in go.mod.
const (
	kustomizeModule = "sigs.k8s.io/kustomize/kustomize/v5@v5.8.2" // uses sigs.k8s.io/kustomize/api v0.21.2
	helmModule      = "helm.sh/helm/v3/cmd/helm@v3.22.0"
)

// cli builds a command from the module proxy once into the user cache dir.
func cli(t *testing.T, module, name string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "fleetsync", "cli", filepath.Base(filepath.Dir(module))+"-"+filepath.Base(module))
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", module)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", module, err, out)
	}
	return bin
}

// canonical sorts objects by identity, for a comparison that ignores order.
func canonical(t *testing.T, b []byte, source string) []object {
	t.Helper()
	objs, err := decodeObjects(b, source)
	if err != nil {
		t.Fatal(err)
	}
	key := func(o object) string {
		return str(o, "apiVersion") + "/" + str(o, "kind") + "/" + str(o, "metadata", "namespace") + "/" + str(o, "metadata", "name")
	}
	sort.SliceStable(objs, func(i, j int) bool { return key(objs[i]) < key(objs[j]) })
	return objs
}

func TestCLICompareKustomize(t *testing.T) {
	kustomize := cli(t, kustomizeModule, "kustomize")
	for _, tc := range []struct{ repo, dir string }{
		{"testdata/golden/kustomize/repo", "apps/web/base"},
		{"testdata/golden/kustomize/repo", "apps/web/overlays/gold"},
		{"testdata/golden/storage/repo", "apps/db"},
		{exampleRepo, "apps/mes/overlays/ceph"},
		{exampleRepo, "apps/mes/overlays/nfs"},
		{exampleRepo, "apps/platform/base"},
		{"testdata/deprecated", "legacy"},
		{"testdata/deprecated", "base"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(tc.repo, tc.dir)); err != nil {
				t.Fatal(err) // a moved fixture must not pass silently
			}
			want, err := exec.Command(kustomize, "build", filepath.Join(tc.repo, tc.dir)).Output()
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			snap, err := takeSnapshot(os.DirFS(tc.repo))
			if err != nil {
				t.Fatal(err)
			}
			got, err := kustomizeBuild(snap, tc.dir, newDeps(), false)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(canonical(t, want, "kustomize CLI"), canonical(t, got, "fleetsync")); d != "" {
				t.Errorf("in-process build differs from the kustomize CLI (-cli +fleetsync):\n%s", d)
			}
		})
	}
}

func TestCLICompareHelm(t *testing.T) {
	helm := cli(t, helmModule, "helm")
	for _, tc := range []struct {
		repo, cluster, app string
		depBuild           bool // run helm dependency build on a copy of the repo first
	}{
		{"testdata/golden/helm/repo", "alpha", "shop", false},
		{"testdata/golden/helm/repo", "beta", "shop", false},
		{exampleRepo, "north", "order-service", false},
		{exampleRepo, "east", "order-service", false},
		{"testdata/golden/chartdeps/repo", "one", "web", true},
	} {
		t.Run(tc.cluster+"/"+tc.app, func(t *testing.T) {
			if _, err := os.Stat(tc.repo); err != nil {
				t.Fatal(err) // a moved fixture must not pass silently
			}
			repo := loadRepo(t, tc.repo)
			c, app := repo.Cluster(tc.cluster), repo.App(tc.app)
			snap, err := takeSnapshot(repo.FS)
			if err != nil {
				t.Fatal(err)
			}
			run := &renderRun{r: New(Options{}), repo: repo, snap: snap, match: newMatcher(), flights: map[string]*flight{}}
			spec, err := run.spec(context.Background(), c, app)
			if err != nil {
				t.Fatal(err)
			}
			spec.Patches = nil // compare the chart render, before fleetsync's additions
			objs, err := run.renderSource(context.Background(), spec, newDeps())
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeYAML(objs)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := yaml.Marshal(spec.Values)
			if err != nil {
				t.Fatal(err)
			}
			vf := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(vf, vals, 0o644); err != nil {
				t.Fatal(err)
			}
			helmEnv := append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
			chartDir := filepath.Join(tc.repo, spec.AppDir, app.Spec.Source.Helm.Chart)
			if tc.depBuild {
				// helm writes charts/ into the chart folder: work on a copy.
				tmp := t.TempDir()
				if err := os.CopyFS(tmp, os.DirFS(tc.repo)); err != nil {
					t.Fatal(err)
				}
				chartDir = filepath.Join(tmp, spec.AppDir, app.Spec.Source.Helm.Chart)
				cmd := exec.Command(helm, "dependency", "build", chartDir)
				cmd.Env = helmEnv
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("helm dependency build: %v\n%s", err, out)
				}
			}
			cmd := exec.Command(helm, "template", spec.Release, chartDir, "--namespace", spec.Namespace,
				"--include-crds", "--skip-tests", "--kube-version", spec.Kube.Version, "--values", vf)
			cmd.Env = helmEnv
			want, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			if d := cmp.Diff(canonical(t, want, "helm CLI"), canonical(t, got, "fleetsync")); d != "" {
				t.Errorf("in-process render differs from helm template (-cli +fleetsync):\n%s", d)
			}
		})
	}
}
