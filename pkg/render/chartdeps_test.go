package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// The file:// cases (alias, condition, import-values, Chart.lock, errors) are
// the golden case testdata/golden/chartdeps, compared with helm dependency
// build + helm template in clicompare_test.go.

// archiveOf packages chart files (Chart.yaml, templates/...) into a .tgz.
func archiveOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var bf []*loader.BufferedFile
	for n, s := range files {
		bf = append(bf, &loader.BufferedFile{Name: n, Data: []byte(s)})
	}
	ch, err := loader.LoadFiles(bf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cmTemplate names a ConfigMap after the release and chart, with the
// chart's version.
const cmTemplate = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  version: {{ .Chart.Version | quote }}\n"

// depChart is a chart's files: Chart.yaml with the dependencies given as
// YAML list items, and one ConfigMap.
func depChart(name, version, deps string) map[string]string {
	cy := fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version)
	if deps != "" {
		cy += "dependencies:\n" + deps
	}
	return map[string]string{"Chart.yaml": cy, "templates/cm.yaml": cmTemplate}
}

// lockFor is the Chart.lock helm writes for Chart.yaml with the locked
// dependencies (name, repository, version).
func lockFor(t *testing.T, chartYAML string, locked ...*chart.Dependency) string {
	t.Helper()
	var md chart.Metadata
	if err := yaml.Unmarshal([]byte(chartYAML), &md); err != nil {
		t.Fatal(err)
	}
	sum, err := hashDeps([2][]*chart.Dependency{md.Dependencies, locked})
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(&chart.Lock{Digest: sum, Dependencies: locked})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// depsFleet writes a fleet repo with cluster edge and the given files; apps
// maps an app name to its chart path (relative to apps/<app>/) or oci:// chart
// and version.
func depsFleet(t *testing.T, files map[string]string, apps map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	all := map[string]string{"clusters/edge.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: edge\nspec: {}\n"}
	for p, s := range files {
		all[p] = s
	}
	for app, src := range apps {
		all["apps/"+app+"/app.yaml"] = "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: " + app +
			"\nspec:\n  namespace: " + app + "\n  source:\n    helm:\n" + src + "  targets:\n    clusterSelector: {}\n"
	}
	writeTree(t, dir, all)
	return dir
}

// chartRepo is an https chart repository on 127.0.0.1 whose charts can be
// replaced while it runs; it counts index and archive downloads.
type chartRepo struct {
	srv              *httptest.Server
	mu               sync.Mutex
	archives         map[string][]byte // file name -> archive
	index, downloads atomic.Int64
	t                *testing.T
	url              string // the repository URL
}

func newChartRepo(t *testing.T) *chartRepo {
	cr := &chartRepo{archives: map[string][]byte{}, t: t}
	cr.srv = httptest.NewTLSServer(http.HandlerFunc(cr.serve))
	t.Cleanup(cr.srv.Close)
	cr.url = cr.srv.URL + "/charts"
	return cr
}

func (cr *chartRepo) put(files map[string]string) {
	a := archiveOf(cr.t, files)
	md := packageMeta(cr.t, a)
	cr.mu.Lock()
	cr.archives[md.Name+"-"+md.Version+".tgz"] = a
	cr.mu.Unlock()
}

func (cr *chartRepo) serve(w http.ResponseWriter, r *http.Request) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	switch {
	case r.URL.Path == "/charts/index.yaml":
		cr.index.Add(1)
		idx := repo.NewIndexFile()
		for n, a := range cr.archives {
			sum := sha256.Sum256(a)
			if err := idx.MustAdd(packageMeta(cr.t, a), n, "", hex.EncodeToString(sum[:])); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		b, _ := yaml.Marshal(idx)
		_, _ = w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/charts/"):
		a, ok := cr.archives[strings.TrimPrefix(r.URL.Path, "/charts/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		cr.downloads.Add(1)
		_, _ = w.Write(a)
	default:
		http.NotFound(w, r)
	}
}

// TestChartDepsRepo resolves dependencies from an https chart repository:
// Chart.lock versions exactly, else the highest version satisfying the
// constraint; a fetched chart's own dependencies too; an alias; archives
// fetched once per Render and cached on disk; a changed archive re-renders.
func TestChartDepsRepo(t *testing.T) {
	cr := newChartRepo(t)
	cr.put(depChart("redis", "17.2.0", ""))
	// 17.3.1 depends on lib, not vendored: resolved from the same repository.
	cr.put(depChart("redis", "17.3.1", "  - name: lib\n    version: 1.x\n    repository: "+cr.url+"\n"))
	cr.put(depChart("lib", "1.0.0", ""))

	lockedYAML := "apiVersion: v2\nname: locked\nversion: 0.1.0\ndependencies:\n  - name: redis\n    version: 17.x\n    repository: " + cr.url + "\n    alias: cache\n"
	files := map[string]string{
		"apps/locked/chart/Chart.yaml":        lockedYAML,
		"apps/locked/chart/Chart.lock":        lockFor(t, lockedYAML, &chart.Dependency{Name: "redis", Repository: cr.url, Version: "17.2.0"}),
		"apps/locked/chart/templates/cm.yaml": cmTemplate,
	}
	for _, app := range []string{"latest", "latest2"} {
		for n, s := range depChart(app, "0.1.0", "  - name: redis\n    version: ^17.0.0\n    repository: "+cr.url+"/\n") {
			files["apps/"+app+"/chart/"+n] = s
		}
	}
	apps := map[string]string{"locked": "      chart: chart\n", "latest": "      chart: chart\n", "latest2": "      chart: chart\n"}
	dir := depsFleet(t, files, apps)
	opts := Options{HTTPClient: cr.srv.Client(), ChartCacheDir: t.TempDir()}
	r := New(opts)
	res := r.Render(context.Background(), loadRepo(t, dir), Selection{})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	version := func(p *AppResult, name string) string {
		return str(findObject(t, p, "ConfigMap", name), "data", "version")
	}
	locked := res.Get("edge", "locked")
	if v := version(locked, "locked-cache"); v != "17.2.0" {
		t.Errorf("locked: redis (alias cache) at %s, want 17.2.0 from Chart.lock", v)
	}
	latest := res.Get("edge", "latest")
	if v := version(latest, "latest-redis"); v != "17.3.1" {
		t.Errorf("latest: redis at %s, want the highest 17.3.1", v)
	}
	if v := version(latest, "latest-lib"); v != "1.0.0" {
		t.Errorf("latest: redis's own dependency lib at %s, want 1.0.0", v)
	}
	// Three archives (redis 17.2.0, 17.3.1, lib), though two apps use 17.3.1;
	// the index once.
	if n, i := cr.downloads.Load(), cr.index.Load(); n != 3 || i != 1 {
		t.Errorf("downloads %d, index fetches %d; want 3 and 1 in one Render", n, i)
	}

	// Unchanged: a later Render fetches the index but no archive, and serves
	// the renders from the cache.
	res = r.Render(context.Background(), loadRepo(t, dir), Selection{})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if n := cr.downloads.Load(); n != 3 {
		t.Errorf("second Render downloaded %d archives, want 0", n-3)
	}
	if res.Stats.Cached != 3 || res.Stats.Rendered != 0 {
		t.Errorf("second Render: %+v, want the 3 renders from the cache", res.Stats)
	}
	// A new Renderer with the same cache dir downloads nothing either.
	if err := New(opts).Render(context.Background(), loadRepo(t, dir), Selection{}).Err(); err != nil || cr.downloads.Load() != 3 {
		t.Errorf("new Renderer: err %v, downloads %d, want 3 (disk cache)", err, cr.downloads.Load())
	}

	// A changed dependency (lib republished with other content) re-renders.
	changed := depChart("lib", "1.0.0", "")
	changed["templates/extra.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\n"
	cr.put(changed)
	res = r.Render(context.Background(), loadRepo(t, dir), Selection{})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	findObject(t, res.Get("edge", "latest"), "ConfigMap", "latest-extra")
	if res.Stats.Rendered != 2 || res.Stats.Cached != 1 {
		t.Errorf("after a dependency changed: %+v, want latest and latest2 rendered, locked from the cache", res.Stats)
	}
}

// TestChartDepsRepoErrors: what cannot be resolved fails the pair with an
// error naming the chart and the dependency; nothing is rendered.
func TestChartDepsRepoErrors(t *testing.T) {
	cr := newChartRepo(t)
	cr.put(depChart("redis", "17.2.0", ""))
	cr.put(depChart("redis", "17.3.1", ""))
	host := strings.TrimPrefix(cr.srv.URL, "https://")
	lockedYAML := "apiVersion: v2\nname: lockgone\nversion: 0.1.0\ndependencies:\n  - name: redis\n    version: 17.x\n    repository: " + cr.url + "\n"
	cases := map[string]struct{ deps, want string }{
		"toonew": {"  - name: redis\n    version: 18.x\n    repository: " + cr.url + "\n",
			`edge/toonew: chart apps/toonew/chart: dependency redis 18.x from ` + cr.url + `: no version satisfies "18.x" (the repository has 17.2.0, 17.3.1)`},
		"nochart": {"  - name: postgres\n    version: 1.x\n    repository: " + cr.url + "\n",
			`edge/nochart: chart apps/nochart/chart: dependency postgres 1.x from ` + cr.url + `: not in the repository's index`},
		"creds": {"  - name: redis\n    version: 17.x\n    repository: https://bob:s3cret@" + host + "/charts\n",
			`edge/creds: chart apps/creds/chart: dependency redis 17.x from ` + cr.url + `: the repository URL must not hold credentials (credentials never live in the fleet repo)`},
		"named": {"  - name: redis\n    version: 17.x\n    repository: \"@bitnami\"\n",
			`edge/named: chart apps/named/chart: dependency redis 17.x from @bitnami: repository "@bitnami" is a name from a local helm configuration, which fleetsync does not read: give the repository's URL (https:// or oci://)`},
		"plainhttp": {"  - name: redis\n    version: 17.x\n    repository: http://charts.example.com\n",
			`edge/plainhttp: chart apps/plainhttp/chart: dependency redis 17.x from http://charts.example.com: plain http is allowed only for localhost; use https`},
		"norepo": {"  - name: redis\n    version: 17.x\n",
			`edge/norepo: chart apps/norepo/chart: dependency redis: not in charts/, and no repository to fetch it from`},
		"lockgone": {"", `edge/lockgone: chart apps/lockgone/chart: dependency redis 17.x from ` + cr.url + `: the locked version 17.0.0 (Chart.lock) is not in the repository (it has 17.2.0, 17.3.1)`},
	}
	files := map[string]string{}
	apps := map[string]string{}
	for app, tc := range cases {
		for n, s := range depChart(app, "0.1.0", tc.deps) {
			files["apps/"+app+"/chart/"+n] = s
		}
		apps[app] = "      chart: chart\n"
	}
	files["apps/lockgone/chart/Chart.yaml"] = lockedYAML
	files["apps/lockgone/chart/Chart.lock"] = lockFor(t, lockedYAML, &chart.Dependency{Name: "redis", Repository: cr.url, Version: "17.0.0"})
	res := New(Options{HTTPClient: cr.srv.Client(), ChartCacheDir: t.TempDir()}).Render(context.Background(), loadRepo(t, depsFleet(t, files, apps)), Selection{})
	for app, tc := range cases {
		p := res.Get("edge", app)
		if p == nil || p.Err == nil {
			t.Errorf("%s: rendered %+v, want an error", app, p)
			continue
		}
		if got := p.Err.Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", app, got, tc.want)
		}
		if strings.Contains(p.Err.Error(), "s3cret") || len(p.Objects) != 0 {
			t.Errorf("%s: the error shows the password or objects were rendered", app)
		}
	}
}

// TestChartDepsOCI resolves oci:// dependencies from a real OCI registry
// (ggcr's in-process registry behind httptest TLS): an exact version, a range
// through the registry's tag list, and the unvendored dependency of a remote
// chart.
func TestChartDepsOCI(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	rc, err := helmregistry.NewClient(helmregistry.ClientOptHTTPClient(srv.Client()), helmregistry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	push := func(files map[string]string) {
		t.Helper()
		a := archiveOf(t, files)
		md := packageMeta(t, a)
		if _, err := rc.Push(a, host+"/charts/"+md.Name+":"+md.Version); err != nil {
			t.Fatalf("push %s: %v", md.Name, err)
		}
	}
	for _, v := range []string{"0.1.0", "0.1.5", "0.2.0"} {
		push(depChart("ocidep", v, ""))
	}
	repoURL := "oci://" + host + "/charts"
	push(depChart("top", "1.0.0", "  - name: ocidep\n    version: 0.2.0\n    repository: "+repoURL+"\n"))

	files := map[string]string{}
	for app, c := range map[string]string{"ranged": "~0.1.0", "exact": "0.2.0", "none": "^1.0.0"} {
		for n, s := range depChart(app, "0.1.0", "  - name: ocidep\n    version: "+c+"\n    repository: "+repoURL+"\n") {
			files["apps/"+app+"/chart/"+n] = s
		}
	}
	apps := map[string]string{
		"ranged": "      chart: chart\n", "exact": "      chart: chart\n", "none": "      chart: chart\n",
		"remote": "      chart: " + repoURL + "/top\n      version: 1.0.0\n",
	}
	res := New(Options{HTTPClient: srv.Client(), ChartCacheDir: t.TempDir()}).Render(context.Background(), loadRepo(t, depsFleet(t, files, apps)), Selection{})
	for app, want := range map[string]string{"ranged": "0.1.5", "exact": "0.2.0", "remote": "0.2.0"} {
		p := res.Get("edge", app)
		if p == nil || p.Err != nil {
			t.Fatalf("%s: %+v", app, p)
		}
		if v := str(findObject(t, p, "ConfigMap", app+"-ocidep"), "data", "version"); v != want {
			t.Errorf("%s: ocidep at %s, want %s", app, v, want)
		}
	}
	findObject(t, res.Get("edge", "remote"), "ConfigMap", "remote-top")
	want := `edge/none: chart apps/none/chart: dependency ocidep ^1.0.0 from ` + repoURL + `: no version satisfies "^1.0.0" (the registry has 0.1.0, 0.1.5, 0.2.0)`
	if p := res.Get("edge", "none"); p.Err == nil || p.Err.Error() != want {
		t.Errorf("none:\n got %v\nwant %s", p.Err, want)
	}
}

// TestChartDepsFileNested: a file:// dependency's own unvendored file://
// dependencies are resolved relative to its folder; a cycle is an error; the
// render is cached and re-rendered when the nested chart changes.
func TestChartDepsFileNested(t *testing.T) {
	files := map[string]string{}
	add := func(dir string, c map[string]string) {
		for n, s := range c {
			files[dir+"/"+n] = s
		}
	}
	add("apps/nested/chart", depChart("nested", "0.1.0", "  - name: a\n    version: 1.x\n    repository: file://../../../libs/a\n"))
	add("libs/a", depChart("a", "1.0.0", "  - name: b\n    repository: file://../b\n"))
	add("libs/b", depChart("b", "2.0.0", ""))
	add("apps/cycle/chart", depChart("cycle", "0.1.0", "  - name: c\n    repository: file://../../../libs/c\n"))
	add("libs/c", depChart("c", "1.0.0", "  - name: c\n    repository: file://../c\n"))
	add("apps/wrongname/chart", depChart("wrongname", "0.1.0", "  - name: bee\n    repository: file://../../../libs/b\n"))
	dir := depsFleet(t, files, map[string]string{"nested": "      chart: chart\n", "cycle": "      chart: chart\n", "wrongname": "      chart: chart\n"})
	r := New(Options{})
	res := r.Render(context.Background(), loadRepo(t, dir), Selection{})
	p := res.Get("edge", "nested")
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	findObject(t, p, "ConfigMap", "nested-a")
	if v := str(findObject(t, p, "ConfigMap", "nested-b"), "data", "version"); v != "2.0.0" {
		t.Errorf("b at %s, want 2.0.0", v)
	}
	for app, want := range map[string]string{
		"cycle":     "edge/cycle: chart apps/cycle/chart: dependency c (file://../../../libs/c): " + strings.Repeat("dependency c (file://../c): ", 9) + "dependencies nested more than 10 deep (a file:// cycle?)",
		"wrongname": `edge/wrongname: chart apps/wrongname/chart: dependency bee (file://../../../libs/b): libs/b holds chart "b", not "bee"`,
	} {
		if p := res.Get("edge", app); p.Err == nil || p.Err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", app, p.Err, want)
		}
	}
	// Unchanged: from the cache. A changed nested chart: re-rendered.
	if res := r.Render(context.Background(), loadRepo(t, dir), Selection{}); res.Stats.Cached != 1 || res.Stats.Rendered != 0 {
		t.Errorf("unchanged: %+v, want nested from the cache", res.Stats)
	}
	if err := os.WriteFile(dir+"/libs/b/templates/more.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = r.Render(context.Background(), loadRepo(t, dir), Selection{})
	findObject(t, res.Get("edge", "nested"), "ConfigMap", "more")
	if res.Stats.Rendered != 1 {
		t.Errorf("after libs/b changed: %+v, want nested rendered", res.Stats)
	}
}
