package render

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestBadInputErrors checks that each bad input names the cluster, the app
// and the file, template or object at fault, and that good pairs still render.
func TestBadInputErrors(t *testing.T) {
	res := New(Options{}).Render(context.Background(), looseRepo(t, "testdata/golden/bad/repo"), Selection{})
	want := map[string][]string{
		"remote-base":       {"apps/remote-base/base/kustomization.yaml", `remote resource "https://github.com/example/fleet//base?ref=v1" refused`, "--allow-remote-bases"},
		"remote-base-short": {"apps/remote-base-short/base/kustomization.yaml", "github.com/example/fleet/base", "refused"},
		"outside-path":      {"kustomize path", "../../../outside", "leaves the repo"},
		"outside-resource":  {"apps/outside-resource/base", "leaves the repo"},
		"outside-file":      {"apps/outside-file/base", "not in or below"},
		"helm-error":        {"apps/helm-error/chart", "helm-error/templates/cm.yaml:6:8", "value x is required"},
		"missing-values":    {"values file apps/missing-values/values-missing.yaml", "not found"},
		"chart-missing":     {"chart apps/chart-missing/no-such-chart", "not found"},
		"unmapped-storage":  {"PersistentVolumeClaim/storage/data", `storage class "gold" is not mapped`},
		"dup-a":             {"ConfigMap/common/shared", "also rendered by app dup-b"},
		"dup-b":             {"ConfigMap/common/shared", "also rendered by app dup-a"},
		"invalid-object":    {"invalid-object/templates/cm.yaml", "missing metadata.name"},
		"no-kind":           {"no-kind/templates/cm.yaml", "missing kind"},
		"bad-patch":         {"spec.customizations[1].patches[0]: patch: replace operation does not apply", "/spec/missing/field"},
	}
	for app, parts := range want {
		p := res.Get("only", app)
		if p == nil {
			t.Errorf("%s: no result", app)
			continue
		}
		if p.Err == nil {
			t.Errorf("%s: rendered, want an error", app)
			continue
		}
		if p.Objects != nil {
			t.Errorf("%s: failed pair has objects", app)
		}
		msg := p.Err.Error()
		for _, s := range append([]string{"only/" + app + ": "}, parts...) {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: error %q does not contain %q", app, msg, s)
			}
		}
	}
	if g := res.Get("only", "good"); g == nil || g.Err != nil || len(g.Objects) != 1 {
		t.Errorf("good app: want 1 object (its Namespace comes from ns-maker) and no error, got %+v", g)
	}
	if err := res.Err(); err == nil || strings.Count(err.Error(), "\n")+1 != len(want) {
		t.Errorf("Result.Err: want %d joined errors, got %v", len(want), err)
	}
}

// TestSymlinks: links inside the repo are followed, links that leave it are refused.
func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, link, target string
		wantErr            string
	}{
		{"inside", "svc-link.yaml", "service.yaml", ""},
		{"absolute", "svc-link.yaml", filepath.Join(outside, "secret.yaml"), "absolute target leaves the repo"},
		{"relative", "svc-link.yaml", "../../../../../" + filepath.Base(outside) + "/secret.yaml", "leaves the repo"},
		{"dir", "linked", outside, "leaves the repo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "repo")
			copyDir(t, "testdata/golden/kustomize/repo", dir)
			base := filepath.Join(dir, "apps/web/base")
			target := tc.target
			if tc.name == "relative" {
				// parent/repo/apps/web/base -> parent/<outside copy>
				if err := os.MkdirAll(filepath.Join(parent, "out"), 0o755); err != nil {
					t.Fatal(err)
				}
				copyDir(t, outside, filepath.Join(parent, "out"))
				target = "../../../../out/secret.yaml"
			}
			if err := os.Symlink(target, filepath.Join(base, tc.link)); err != nil {
				t.Fatal(err)
			}
			res := tc.link
			if tc.name == "dir" {
				res = "linked/secret.yaml"
			}
			k := filepath.Join(base, "kustomization.yaml")
			b, _ := os.ReadFile(k)
			b = []byte(strings.Replace(string(b), "resources:\n", "resources:\n  - "+res+"\n", 1))
			if tc.name == "inside" {
				b = []byte(strings.Replace(string(b), "  - service.yaml\n", "", 1))
			}
			if err := os.WriteFile(k, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out := New(Options{}).Render(context.Background(), loadRepo(t, dir), Selection{Clusters: []string{"beta"}})
			p := out.Get("beta", "web")
			if tc.wantErr == "" {
				if p.Err != nil {
					t.Fatalf("inside link: %v", p.Err)
				}
				if !hasObject(objectsOf(p), "/Service", "web", "web") {
					t.Fatalf("inside link: Service not rendered")
				}
				return
			}
			if p.Err == nil || !strings.Contains(p.Err.Error(), tc.wantErr) || !strings.Contains(p.Err.Error(), "symlink") {
				t.Fatalf("want error containing symlink and %q, got %v", tc.wantErr, p.Err)
			}
			if strings.Contains(p.Err.Error(), "stolen") {
				t.Fatalf("error shows outside content: %v", p.Err)
			}
		})
	}
}

func objectsOf(p *AppResult) []object {
	var l []object
	for _, u := range p.Objects {
		l = append(l, u.Object)
	}
	return l
}

// TestRemoteBases: an http resource is refused by default and fetched when allowed.
func TestRemoteBases(t *testing.T) {
	var from atomic.Value
	from.Store("server")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote}\ndata: {from: %s}\n", from.Load())
	}))
	defer srv.Close()
	dir := t.TempDir()
	copyDir(t, "testdata/golden/kustomize/repo", dir)
	k := filepath.Join(dir, "apps/web/base/kustomization.yaml")
	b, _ := os.ReadFile(k)
	b = []byte(strings.Replace(string(b), "resources:\n", "resources:\n  - "+srv.URL+"/cm.yaml\n", 1))
	if err := os.WriteFile(k, b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := loadRepo(t, dir)
	sel := Selection{Clusters: []string{"beta"}}
	refused := New(Options{}).Render(context.Background(), repo, sel).Get("beta", "web")
	if refused.Err == nil || !strings.Contains(refused.Err.Error(), "refused") {
		t.Fatalf("remote base without the option: want refused, got %v", refused.Err)
	}
	r := New(Options{AllowRemoteBases: true})
	allowed := r.Render(context.Background(), repo, sel).Get("beta", "web")
	if allowed.Err != nil {
		t.Fatalf("remote base allowed: %v", allowed.Err)
	}
	if !hasObject(objectsOf(allowed), "/ConfigMap", "web", "remote") {
		t.Fatalf("remote ConfigMap not rendered")
	}
	// A render that read a remote resource is not cached across calls: the
	// remote content may change while the repo does not.
	from.Store("changed")
	again := r.Render(context.Background(), repo, sel)
	if again.Stats.Cached != 0 || !strings.Contains(outputs(t, again)["beta/web.yaml"], "from: changed") {
		t.Errorf("remote content change not picked up: stats %+v", again.Stats)
	}
}

// TestSelection: filters, and names that are not in the repo.
func TestSelection(t *testing.T) {
	repo := loadRepo(t, "testdata/golden/scale/repo")
	res := New(Options{}).Render(context.Background(), repo, Selection{Clusters: []string{"promo", "nowhere"}, Apps: []string{"api", "ghost"}})
	var got []string
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			s := c.Cluster + "/" + a.App
			if a.Err != nil {
				s += " error"
			}
			got = append(got, s)
		}
	}
	want := []string{"nowhere/api error", "nowhere/ghost error", "promo/api", "promo/ghost error"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("pairs (-want +got):\n%s", d)
	}
	if !strings.Contains(res.Get("nowhere", "api").Err.Error(), `cluster "nowhere" is not in the fleet repo`) {
		t.Errorf("unexpected error %v", res.Get("nowhere", "api").Err)
	}
}

// TestCacheRerendersOnlyChangedApp: identical inputs render once across
// clusters; a second Render of a changed repo re-renders only the app whose
// files (including a base it references) changed.
func TestCacheRerendersOnlyChangedApp(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/golden/kustomize/repo", dir)
	copyDir(t, "testdata/golden/helm/repo/apps/shop", filepath.Join(dir, "apps/shop"))
	copyDir(t, "testdata/golden/scale/repo/apps/api", filepath.Join(dir, "apps/api"))
	copyFile(t, "testdata/golden/helm/repo/fleet.yaml", filepath.Join(dir, "fleet.yaml"))
	// gamma is a second gold cluster: same inputs as alpha for every app
	b, _ := os.ReadFile(filepath.Join(dir, "clusters/alpha.yaml"))
	if err := os.WriteFile(filepath.Join(dir, "clusters/gamma.yaml"), []byte(strings.ReplaceAll(string(b), "name: alpha", "name: gamma")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	ctx := context.Background()
	first := r.Render(ctx, loadRepo(t, dir), Selection{})
	if err := first.Err(); err != nil {
		t.Fatal(err)
	}
	// 3 clusters x 3 apps; web: gold overlay+patches (alpha, gamma) and base (beta) = 2 renders;
	// api: 1 render; shop: 1 render (no cluster values differ) -> 4 renders, 5 reused.
	if want := (Stats{Pairs: 9, Rendered: 4, Reused: 5}); counts(first.Stats) != want {
		t.Errorf("first render stats = %+v, want %+v", first.Stats, want)
	}
	same := r.Render(ctx, loadRepo(t, dir), Selection{})
	if want := (Stats{Pairs: 9, Cached: 4, Reused: 5}); counts(same.Stats) != want {
		t.Errorf("unchanged re-render stats = %+v, want %+v", same.Stats, want)
	}
	if d := cmp.Diff(outputs(t, first), outputs(t, same)); d != "" {
		t.Errorf("cached output differs:\n%s", d)
	}
	// Change the base that the gold overlay reaches through ../../base.
	dep := filepath.Join(dir, "apps/web/base/deployment.yaml")
	b, _ = os.ReadFile(dep)
	if err := os.WriteFile(dep, []byte(strings.Replace(string(b), "nginx:1.27", "nginx:1.29", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := r.Render(ctx, loadRepo(t, dir), Selection{})
	if want := (Stats{Pairs: 9, Rendered: 2, Cached: 2, Reused: 5}); counts(changed.Stats) != want {
		t.Errorf("after changing apps/web/base stats = %+v, want %+v", changed.Stats, want)
	}
	if !strings.Contains(outputs(t, changed)["beta/web.yaml"], "nginx:1.29") {
		t.Errorf("beta/web not re-rendered with the new image")
	}
	// Unchanged pairs come back as the very same (read-only) objects.
	if a, b := same.Get("alpha", "api").Objects, changed.Get("alpha", "api").Objects; len(a) == 0 || a[0] != b[0] {
		t.Errorf("alpha/api: unchanged pair was finished again")
	}
	if a, b := same.Get("beta", "web").Objects, changed.Get("beta", "web").Objects; a[0] == b[0] {
		t.Errorf("beta/web: changed pair returned the old objects")
	}
	// An unrelated file in the repo changes nothing.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unrelated := r.Render(ctx, loadRepo(t, dir), Selection{})
	if want := (Stats{Pairs: 9, Cached: 4, Reused: 5}); counts(unrelated.Stats) != want {
		t.Errorf("after an unrelated change stats = %+v, want %+v", unrelated.Stats, want)
	}
}

// TestConcurrentRender renders many clusters in parallel, with two Render
// calls at once on one Renderer, and compares with a serial render. Run
// with -race.
func TestConcurrentRender(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/golden/kustomize/repo", dir)
	copyDir(t, "testdata/golden/helm/repo/apps/shop", filepath.Join(dir, "apps/shop"))
	copyDir(t, "testdata/golden/storage/repo/apps/db", filepath.Join(dir, "apps/db"))
	copyFile(t, "testdata/golden/helm/repo/fleet.yaml", filepath.Join(dir, "fleet.yaml"))
	for i := 0; i < 24; i++ {
		tier := []string{"gold", "silver"}[i%2]
		c := fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: c%02d\n  labels: {env: prod, tier: %s, region: r%d}\nspec:\n  kubernetesVersion: v1.3%d.0\n  values: {zone: z%d}\n  storage: {default: std%d, classes: {fast: ssd%d, shared: cephfs}}\n", i, tier, i%3, 5+i%3, i, i%4, i%2)
		if err := os.WriteFile(filepath.Join(dir, "clusters", fmt.Sprintf("c%02d.yaml", i)), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := loadRepo(t, dir)
	ctx := context.Background()
	serial := outputs(t, New(Options{Concurrency: 1}).Render(ctx, repo, Selection{}))
	r := New(Options{Concurrency: 8})
	var wg sync.WaitGroup
	results := make([]map[string]string, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = outputs(t, r.Render(ctx, repo, Selection{}))
		}()
	}
	wg.Wait()
	for i, got := range results {
		if d := cmp.Diff(serial, got); d != "" {
			t.Errorf("parallel render %d differs from serial (-serial +parallel):\n%s", i, d)
		}
	}
	if n := len(serial); n != 26*3 {
		t.Errorf("got %d pairs, want %d", n, 26*3)
	}
	for k, v := range serial {
		if strings.HasSuffix(k, ".err") {
			t.Errorf("%s: %s", k, v)
		}
	}
}

// TestCapabilitiesOptions: versions known from a live cluster override the
// fleet repo's, and extra API versions reach .Capabilities.APIVersions.
func TestCapabilitiesOptions(t *testing.T) {
	repo := loadRepo(t, "testdata/golden/helm/repo")
	r := New(Options{
		KubeVersions: map[string]string{"alpha": "v1.38.1"},
		APIVersions:  map[string][]string{"alpha": {"monitoring.coreos.com/v1"}},
	})
	res := r.Render(context.Background(), repo, Selection{})
	for cluster, want := range map[string][2]string{
		"alpha": {"v1.38.1", "true"},  // from the options
		"beta":  {"v1.37.2", "false"}, // DefaultKubeVersion, Helm's default API versions
	} {
		p := res.Get(cluster, "shop")
		if p == nil || p.Err != nil {
			t.Fatalf("%s: %+v", cluster, p)
		}
		cm := findObject(t, p, "ConfigMap", "shop-release-values")
		if got := [2]string{str(cm, "data", "kubeVersion"), str(cm, "data", "monitoring")}; got != want {
			t.Errorf("%s: kubeVersion, monitoring = %v, want %v", cluster, got, want)
		}
	}
}

// TestRenderCancelled: a cancelled context fails every pair, naming it.
func TestRenderCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := New(Options{Concurrency: 1}).Render(ctx, loadRepo(t, "testdata/golden/scale/repo"), Selection{})
	n := 0
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			n++
			if a.Err == nil || !strings.Contains(a.Err.Error(), c.Cluster+"/"+a.App+": ") || !strings.Contains(a.Err.Error(), "context canceled") {
				t.Errorf("%s/%s: want a context canceled error, got %v", c.Cluster, a.App, a.Err)
			}
		}
	}
	if n != 4 {
		t.Errorf("got %d pairs, want 4", n)
	}
}

// TestWarmRenderMatchesFresh edits what a pair's render key and finishing
// depend on (values file, cluster values and labels, fleet.yaml, app spec,
// revision) one at a time: a Renderer that rendered every earlier state
// must give what a fresh Renderer gives.
func TestWarmRenderMatchesFresh(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/golden/helm/repo", dir)
	copyDir(t, "testdata/golden/kustomize/repo/apps/web", filepath.Join(dir, "apps/web"))
	edit := func(rel, old, new string) func(t *testing.T) {
		return func(t *testing.T) {
			p := filepath.Join(dir, rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s has no %q", rel, old)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"unchanged", func(*testing.T) {}},
		{"values file", edit("apps/shop/values-common.yaml", "b: file", "b: edited")},
		{"cluster values", edit("clusters/beta.yaml", "zone: south-1", "zone: south-2")},
		{"cluster labels", edit("clusters/beta.yaml", `region: "south"`, `region: "north"`)},
		{"kubernetes version", edit("clusters/alpha.yaml", "v1.36.4", "v1.35.1")},
		{"fleet.yaml", edit("fleet.yaml", "owner: fleet-team", "owner: platform-team")},
		{"app values", edit("apps/shop/app.yaml", "c: values", "c: changed")},
		{"app namespace", edit("apps/shop/app.yaml", "namespace: shop", "namespace: shop2")},
	}
	r := New(Options{})
	ctx := context.Background()
	for i, st := range steps {
		st.do(t)
		for _, rev := range []string{fmt.Sprintf("%040x", i+1), fmt.Sprintf("%040x", i+1), fmt.Sprintf("%040x", i+100)} {
			repo := loadRepo(t, dir)
			repo.Revision = rev
			want := outputs(t, New(Options{}).Render(ctx, repo, Selection{}))
			got := outputs(t, r.Render(ctx, repo, Selection{}))
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("after %s, revision %s: warm render differs from a fresh one (-fresh +warm):\n%s", st.name, rev, d)
			}
		}
	}
}

// A cluster's spec.apiVersions and a kubernetesVersion written without "v"
// reach .Capabilities offline; a call's live API versions replace them.
func TestCapabilitiesFromClusterSpec(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/golden/helm/repo", dir)
	beta := filepath.Join(dir, "clusters", "beta.yaml")
	b, err := os.ReadFile(beta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(beta, append(b, "  kubernetesVersion: 1.36.4\n  apiVersions: [monitoring.coreos.com/v1]\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := loadRepo(t, dir)
	for _, tc := range []struct {
		sel  Selection
		want [2]string
	}{
		{Selection{}, [2]string{"v1.36.4", "true"}},
		{Selection{APIVersions: map[string][]string{"beta": {"apps/v1"}}}, [2]string{"v1.36.4", "false"}},
	} {
		p := New(Options{}).Render(context.Background(), repo, tc.sel).Get("beta", "shop")
		if p == nil || p.Err != nil {
			t.Fatalf("beta: %+v", p)
		}
		cm := findObject(t, p, "ConfigMap", "shop-release-values")
		if got := [2]string{str(cm, "data", "kubeVersion"), str(cm, "data", "monitoring")}; got != tc.want {
			t.Errorf("%+v: kubeVersion, monitoring = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

// TestPlainFolderSubstituteOverlay covers a folder of plain manifests
// (recursive on request), the opt-in ${cluster.*} substitution of a
// Kustomize app, and a Kustomize overlay built over a Helm chart's output.
func TestPlainFolderSubstituteOverlay(t *testing.T) {
	dir := t.TempDir()
	cm := func(name, data string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n" + data
	}
	writeTree(t, dir, map[string]string{
		"clusters/north.yaml":                  "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: north\n  labels: {region: eu}\nspec:\n  values: {replicas: 4}\n",
		"apps/plain/app.yaml":                  "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: plain\nspec:\n  namespace: plain\n  source:\n    kustomize: {path: manifests}\n  targets:\n    clusterSelector: {}\n",
		"apps/plain/manifests/a.yaml":          cm("a", "  region: ${cluster.labels.region}\n"),
		"apps/plain/manifests/b.json":          `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`,
		"apps/plain/manifests/README.md":       "not a manifest",
		"apps/plain/manifests/sub/c.yaml":      cm("c", "  x: y\n"),
		"apps/deep/app.yaml":                   "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: deep\nspec:\n  namespace: deep\n  source:\n    kustomize: {path: m, recurse: true, substitute: true}\n  targets:\n    clusterSelector: {}\n",
		"apps/deep/m/top.yaml":                 cm("top", "  region: ${cluster.labels.region}\n  literal: $${cluster.name}\n"),
		"apps/deep/m/sub/d.yaml":               "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: ${cluster.values.replicas}\n",
		"apps/deep/m/sub/off.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: subst-off\n  annotations: {fleetsync.dev/substitute: disabled}\ndata:\n  v: ${cluster.name}\n",
		"apps/over/app.yaml":                   "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: over\nspec:\n  namespace: over\n  source:\n    helm: {chart: ./chart}\n  targets:\n    clusterSelector: {}\n  customizations:\n    - clusterSelector: {}\n      kustomize: {path: overlay}\n",
		"apps/over/chart/Chart.yaml":           "apiVersion: v2\nname: over\nversion: 0.1.0\n",
		"apps/over/chart/templates/cm.yaml":    cm("{{ .Release.Name }}-cm", "  from: chart\n"),
		"apps/over/overlay/kustomization.yaml": "commonLabels: {overlaid: \"yes\"}\nresources: [extra.yaml]\npatches:\n  - target: {kind: ConfigMap, name: over-cm}\n    patch: |-\n      - op: add\n        path: /data/patched\n        value: by-overlay\n",
		"apps/over/overlay/extra.yaml":         cm("extra", "  from: overlay\n"),
	})
	res := New(Options{}).Render(context.Background(), loadRepo(t, dir), Selection{})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	names := func(p *AppResult) []string {
		var out []string
		for _, o := range p.Objects {
			if o.GetKind() != "Namespace" {
				out = append(out, o.GetKind()+"/"+o.GetName())
			}
		}
		return out
	}
	plain := res.Get("north", "plain")
	if d := cmp.Diff([]string{"ConfigMap/a", "ConfigMap/b"}, names(plain)); d != "" {
		t.Errorf("plain folder without recurse (-want +got):\n%s", d)
	}
	if got := str(findObject(t, plain, "ConfigMap", "a"), "data", "region"); got != "${cluster.labels.region}" {
		t.Errorf("without substitute the reference stays: got %q", got)
	}
	deep := res.Get("north", "deep")
	if d := cmp.Diff([]string{"ConfigMap/subst-off", "ConfigMap/top", "Deployment/d"}, names(deep)); d != "" {
		t.Errorf("recursive folder (-want +got):\n%s", d)
	}
	top := findObject(t, deep, "ConfigMap", "top")
	if str(top, "data", "region") != "eu" || str(top, "data", "literal") != "${cluster.name}" {
		t.Errorf("substituted ConfigMap: %v", top["data"])
	}
	if r, _, _ := unstructured.NestedInt64(findObject(t, deep, "Deployment", "d"), "spec", "replicas"); r != 4 {
		t.Errorf("replicas = %d, want 4 as a number", r)
	}
	if v := str(findObject(t, deep, "ConfigMap", "subst-off"), "data", "v"); v != "${cluster.name}" {
		t.Errorf("substitute: disabled object changed: %q", v)
	}
	over := res.Get("north", "over")
	if d := cmp.Diff([]string{"ConfigMap/extra", "ConfigMap/over-cm"}, names(over)); d != "" {
		t.Errorf("overlay over chart (-want +got):\n%s", d)
	}
	ocm := findObject(t, over, "ConfigMap", "over-cm")
	if str(ocm, "data", "patched") != "by-overlay" || str(ocm, "metadata", "labels", "overlaid") != "yes" {
		t.Errorf("overlay not applied to the chart output: %v", ocm)
	}
}

// TestKustomizeDeprecationsCaptured builds a kustomization using every
// deprecated field: the warnings are the render's, nothing reaches stderr,
// and the output is what the fields mean (make clicompare checks it against
// the kustomize CLI).
func TestKustomizeDeprecationsCaptured(t *testing.T) {
	snap, err := takeSnapshot(os.DirFS("testdata/deprecated"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	d := newDeps()
	objs, berr := kustomizeBuild(snap, "legacy", d, false)
	os.Stderr = stderr
	_ = w.Close()
	raw, _ := io.ReadAll(r)
	if berr != nil {
		t.Fatal(berr)
	}
	if len(raw) > 0 {
		t.Errorf("krusty wrote to stderr: %s", raw)
	}
	for _, field := range []string{"bases", "commonLabels", "imageTags", "patchesStrategicMerge", "patchesJson6902"} {
		if !slices.ContainsFunc(d.warnings, func(w string) bool {
			return strings.HasPrefix(w, "legacy/kustomization.yaml: '"+field+"' is deprecated")
		}) {
			t.Errorf("no warning for %s in %q", field, d.warnings)
		}
	}
	if len(objs) != 1 {
		t.Fatalf("objects %v", objs)
	}
	o := objs[0]
	for _, c := range []struct{ got, want string }{
		{str(o, "metadata", "labels", "tier"), "frontend"},
		{str(o, "spec", "selector", "matchLabels", "tier"), "frontend"},
		{str(o, "metadata", "annotations", "json6902"), "yes"},
		{str(o, "spec", "template", "metadata", "annotations", "inline"), "strategic"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q in %v", c.got, c.want, o)
		}
	}
	if r, _, _ := unstructured.NestedInt64(o, "spec", "replicas"); r != 3 {
		t.Errorf("replicas %d, want 3 from the file patch", r)
	}
}

// The inputs digest is the same for the same inputs in separate Renderers
// (separate processes), whatever a chart's random output, and moves when an
// input changes; the revision is not an input.
func TestInputsDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(tier string) {
		writeTree(t, dir, map[string]string{
			"clusters/north.yaml":            "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north}\n",
			"apps/db/app.yaml":               "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: db}\nspec:\n  namespace: db\n  source: {helm: {chart: ./chart, values: {tier: " + tier + "}}}\n  targets: {clusterSelector: {}}\n",
			"apps/db/chart/Chart.yaml":       "apiVersion: v2\nname: db\nversion: 0.1.0\n",
			"apps/db/chart/templates/s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: {{ randAlphaNum 12 | quote }}, tier: {{ .Values.tier | quote }}}\n",
		})
	}
	pair := func() *AppResult {
		p := New(Options{}).Render(context.Background(), loadRepo(t, dir), Selection{}).Get("north", "db")
		if p.Err != nil || p.InputsDigest == "" {
			t.Fatalf("render: %v, digest %q", p.Err, p.InputsDigest)
		}
		return p
	}
	write("a")
	a1, a2 := pair(), pair()
	if a1.InputsDigest != a2.InputsDigest {
		t.Errorf("same inputs, different digests %s %s", a1.InputsDigest, a2.InputsDigest)
	}
	if d := Differing(a1.Objects, a2.Objects); len(d) != 1 || d[0] != "Secret/db/pw" {
		t.Errorf("Differing = %v, want the random Secret", d)
	}
	write("b")
	if b := pair(); b.InputsDigest == a1.InputsDigest {
		t.Error("a changed value kept the inputs digest")
	}
}

// counts is s without the file counts (a repo on disk is read whole each
// time; TestSnapshotReusesUnchangedObjects checks reading git trees).
func counts(s Stats) Stats {
	s.FilesRead, s.FilesReused = 0, 0
	return s
}
