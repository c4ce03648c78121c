//go:build clicompare

package render

// The comparison with the kustomize and helm CLIs builds both from the Go
// module proxy (several minutes on a small machine), so it has its own tag:
//
//	go test -tags clicompare -run TestCLICompare -timeout 30m ./pkg/render/

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/pkg/fleet"
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
		{"testdata/openapi", "custom"},
		{"testdata/openapi", "plain"},
		{"testdata/scalars", "base"},
		{"testdata/scalars", "overlay"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(tc.repo, tc.dir)); err != nil {
				t.Fatal(err) // a moved fixture must not pass silently
			}
			want, err := exec.Command(kustomize, "build", filepath.Join(tc.repo, tc.dir)).Output()
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			snap, err := takeSnapshot(os.DirFS(tc.repo), nil)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := kustomizeBuild(snap, tc.dir, newDeps(), false)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeYAML(objs)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(canonical(t, want, "kustomize CLI"), canonical(t, got, "fleetsync")); d != "" {
				t.Errorf("in-process build differs from the kustomize CLI (-cli +fleetsync):\n%s", d)
			}
		})
	}
}

// compatRepo holds the real-world patterns of issue 12 (strict schema, a
// chart's own cluster value, .Capabilities gates, plain manifests).
const compatRepo = "testdata/golden/compat/repo"

// A folder of plain manifests renders as `kustomize build` of the same folder
// with a kustomization listing its files (what fleetsync stands for).
func TestCLIComparePlainFolder(t *testing.T) {
	kustomize := cli(t, kustomizeModule, "kustomize")
	src := filepath.Join(compatRepo, "apps/plain/manifests")
	dir := t.TempDir()
	var resources []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !fleet.IsManifestFile(p) {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		resources = append(resources, filepath.ToSlash(rel))
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil || len(resources) < 3 {
		t.Fatalf("copy %s: %v (%d files)", src, err, len(resources))
	}
	k, err := yaml.Marshal(map[string]any{"resources": resources})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), k, 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := exec.Command(kustomize, "build", dir).Output()
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	snap, err := takeSnapshot(os.DirFS(compatRepo), nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := readManifests(snap, "apps/plain/manifests", true, newDeps())
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeYAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(canonical(t, want, "kustomize CLI"), canonical(t, got, "fleetsync")); d != "" {
		t.Errorf("plain folder differs from kustomize build (-cli +fleetsync):\n%s", d)
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
		// a strict values.schema.json, a chart with its own "cluster" value,
		// a template gated on .Capabilities.APIVersions (alpha has the API)
		{compatRepo, "alpha", "strict", false},
		{compatRepo, "beta", "strict", false},
		{compatRepo, "alpha", "owncluster", false},
		{compatRepo, "alpha", "caps", false},
		{compatRepo, "beta", "caps", false},
	} {
		t.Run(tc.cluster+"/"+tc.app, func(t *testing.T) {
			if _, err := os.Stat(tc.repo); err != nil {
				t.Fatal(err) // a moved fixture must not pass silently
			}
			repo := loadRepo(t, tc.repo)
			c, app := repo.Cluster(tc.cluster), repo.App(tc.app)
			snap, err := takeSnapshot(repo.FS, nil)
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
			args := []string{"template", spec.Release, chartDir, "--namespace", spec.Namespace,
				"--include-crds", "--skip-tests", "--kube-version", spec.Kube.Version, "--values", vf}
			for _, v := range spec.Kube.APIVersions {
				args = append(args, "--api-versions", v)
			}
			cmd := exec.Command(helm, args...)
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

// A chart given by the https URL of its archive renders as `helm template`
// of the same URL.
func TestCLICompareChartURL(t *testing.T) {
	helm := cli(t, helmModule, "helm")
	archive := packageChart(t, "urlchart", "2.0.0")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(archive) }))
	defer srv.Close()
	sum := sha256.Sum256(archive)
	url := srv.URL + "/charts/urlchart-2.0.0.tgz"
	repo := loadRepo(t, remoteFleet(t, "      chart: "+url+"\n      sha256: "+hex.EncodeToString(sum[:])+"\n"))
	p := New(Options{HTTPClient: srv.Client(), ChartCacheDir: t.TempDir()}).Render(context.Background(), repo, Selection{}).Get("edge", "remote")
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	var got []object
	for _, u := range p.Objects {
		if u.GetKind() != "Namespace" {
			o := runtime.DeepCopyJSON(u.Object)
			md := o["metadata"].(map[string]any)
			delete(md, "namespace")
			delete(md, "labels")
			delete(md, "annotations")
			got = append(got, o)
		}
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm, "template", "remote", url, "--ca-file", ca, "--namespace", "remote", "--set", "message=from-app", "--set", "zone=edge-1")
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %s: %v", url, err)
	}
	gotYAML, err := encodeYAML(got)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(canonical(t, want, "helm CLI"), canonical(t, gotYAML, "fleetsync")); d != "" {
		t.Errorf("chart URL render differs from helm template (-cli +fleetsync):\n%s", d)
	}
}
