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
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// packageChart builds a small chart archive named name at version.
func packageChart(t *testing.T, name, version string) []byte {
	t.Helper()
	return archiveOf(t, map[string]string{
		"Chart.yaml":        fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", name, version),
		"values.yaml":       "message: from-chart\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}-{{ .Chart.Version }}\ndata:\n  message: {{ .Values.message | quote }}\n  zone: {{ .Values.zone | quote }}\n",
	})
}

// remoteFleet writes a fleet repo with one cluster and one app using the
// given helm source lines.
func remoteFleet(t *testing.T, helmSource string) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"clusters/edge.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: edge\n  labels: {env: edge}\nspec:\n  values: {zone: edge-1}\n",
		"apps/remote/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: remote\nspec:\n  namespace: remote\n  source:\n    helm:\n" +
			helmSource + "      values: {message: from-app, zone: \"${cluster.values.zone}\"}\n  targets:\n    clusterSelector: {}\n",
	})
	return dir
}

// countingHandler counts requests whose path matches.
type countingHandler struct {
	h     http.Handler
	match func(*http.Request) bool
	n     atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.match(r) {
		c.n.Add(1)
	}
	c.h.ServeHTTP(w, r)
}

// TestRemoteOCIChart pulls a chart from a real OCI registry on 127.0.0.1
// (ggcr's in-process registry behind httptest TLS), then serves it from the
// disk cache.
func TestRemoteOCIChart(t *testing.T) {
	blobs := &countingHandler{
		h: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		match: func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
		},
	}
	srv := httptest.NewTLSServer(blobs)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	rc, err := helmregistry.NewClient(helmregistry.ClientOptHTTPClient(srv.Client()), helmregistry.ClientOptWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Push(packageChart(t, "ocichart", "0.1.0"), host+"/charts/ocichart:0.1.0"); err != nil {
		t.Fatalf("push: %v", err)
	}
	cache := t.TempDir()
	opts := Options{HTTPClient: srv.Client(), ChartCacheDir: cache}
	dir := remoteFleet(t, "      chart: oci://"+host+"/charts/ocichart\n      version: 0.1.0\n")
	res := New(opts).Render(context.Background(), loadRepo(t, dir), Selection{})
	p := res.Get("edge", "remote")
	if p == nil || p.Err != nil {
		t.Fatalf("render: %+v", p)
	}
	cm := findObject(t, p, "ConfigMap", "ocichart-0.1.0")
	if got := str(cm, "data", "message") + "," + str(cm, "data", "zone"); got != "from-app,edge-1" {
		t.Errorf("values: got %s, want from-app,edge-1", got)
	}
	pulled := blobs.n.Load()
	if pulled == 0 {
		t.Fatal("no blob was downloaded")
	}
	// A new Renderer (another process) with the same cache dir downloads no blob.
	res = New(opts).Render(context.Background(), loadRepo(t, dir), Selection{})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if n := blobs.n.Load(); n != pulled {
		t.Errorf("second render downloaded %d more blobs, want 0 (disk cache)", n-pulled)
	}
	// A version the registry does not have.
	dir = remoteFleet(t, "      chart: oci://"+host+"/charts/ocichart\n      version: 9.9.9\n")
	p = New(opts).Render(context.Background(), loadRepo(t, dir), Selection{}).Get("edge", "remote")
	if p.Err == nil || !strings.Contains(p.Err.Error(), "version 9.9.9: not found") || !strings.HasPrefix(p.Err.Error(), "edge/remote: chart oci://") {
		t.Errorf("missing version: got %v", p.Err)
	}
}

// TestRemoteRepoChart fetches a chart from an https chart repository on
// 127.0.0.1 (index.yaml + .tgz), verifies its digest and caches it on disk.
func TestRemoteRepoChart(t *testing.T) {
	archive := packageChart(t, "repochart", "1.2.3")
	sum := sha256.Sum256(archive)
	idx := repo.NewIndexFile()
	if err := idx.MustAdd(packageMeta(t, archive), "charts/repochart-1.2.3.tgz", "", hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	idxYAML, err := yaml.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	var tamper atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/repo/index.yaml", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(idxYAML) })
	mux.HandleFunc("/repo/charts/repochart-1.2.3.tgz", func(w http.ResponseWriter, r *http.Request) {
		if tamper.Load() {
			_, _ = w.Write(append([]byte("x"), archive...))
			return
		}
		_, _ = w.Write(archive)
	})
	downloads := &countingHandler{h: mux, match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".tgz") }}
	srv := httptest.NewTLSServer(downloads)
	defer srv.Close()

	cache := t.TempDir()
	opts := Options{HTTPClient: srv.Client(), ChartCacheDir: cache}
	src := func(name, version string) string {
		return "      chart: " + name + "\n      repo: " + srv.URL + "/repo\n      version: " + version + "\n"
	}
	render := func(o Options, helmSource string) *AppResult {
		return New(o).Render(context.Background(), loadRepo(t, remoteFleet(t, helmSource)), Selection{}).Get("edge", "remote")
	}
	p := render(opts, src("repochart", "1.2.3"))
	if p.Err != nil {
		t.Fatalf("render: %v", p.Err)
	}
	findObject(t, p, "ConfigMap", "repochart-1.2.3")
	if downloads.n.Load() != 1 {
		t.Fatalf("downloads = %d, want 1", downloads.n.Load())
	}
	if p := render(opts, src("repochart", "1.2.3")); p.Err != nil || downloads.n.Load() != 1 {
		t.Errorf("second render: err %v, downloads %d, want served from the disk cache", p.Err, downloads.n.Load())
	}
	for _, tc := range []struct{ name, version, want string }{
		{"repochart", "4.5.6", "version 4.5.6: not found in the repository"},
		{"nochart", "1.0.0", "nochart: not found in the repository"},
	} {
		if p := render(opts, src(tc.name, tc.version)); p.Err == nil || !strings.Contains(p.Err.Error(), tc.want) {
			t.Errorf("%s %s: want error containing %q, got %v", tc.name, tc.version, tc.want, p.Err)
		}
	}
	// A download that does not match the index digest is refused.
	tamper.Store(true)
	if p := render(Options{HTTPClient: srv.Client(), ChartCacheDir: t.TempDir()}, src("repochart", "1.2.3")); p.Err == nil || !strings.Contains(p.Err.Error(), "digest mismatch") {
		t.Errorf("tampered archive: want digest mismatch, got %v", p.Err)
	}
	// Without the test server's CA, TLS verification fails.
	if p := render(Options{ChartCacheDir: t.TempDir()}, src("repochart", "1.2.3")); p.Err == nil || !strings.Contains(p.Err.Error(), "certificate") {
		t.Errorf("untrusted server: want a certificate error, got %v", p.Err)
	}
}

func packageMeta(t *testing.T, archive []byte) *chart.Metadata {
	t.Helper()
	ch, err := loader.LoadArchive(strings.NewReader(string(archive)))
	if err != nil {
		t.Fatal(err)
	}
	return ch.Metadata
}

func findObject(t *testing.T, p *AppResult, kind, name string) object {
	t.Helper()
	for _, u := range p.Objects {
		if u.GetKind() == kind && u.GetName() == name {
			return u.Object
		}
	}
	t.Fatalf("%s/%s not rendered", kind, name)
	return nil
}

// TestChartURL fetches a chart archive by its https URL, checks the sha256
// the app gives, and caches it on disk.
func TestChartURL(t *testing.T) {
	archive := packageChart(t, "urlchart", "2.0.0")
	sum := sha256.Sum256(archive)
	mux := http.NewServeMux()
	mux.HandleFunc("/dl/urlchart-2.0.0.tgz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(archive) })
	downloads := &countingHandler{h: mux, match: func(r *http.Request) bool { return true }}
	srv := httptest.NewTLSServer(downloads)
	defer srv.Close()
	opts := Options{HTTPClient: srv.Client(), ChartCacheDir: t.TempDir()}
	src := func(sha string) string {
		return "      chart: " + srv.URL + "/dl/urlchart-2.0.0.tgz\n      sha256: " + sha + "\n"
	}
	render := func(o Options, helmSource string) *AppResult {
		return New(o).Render(context.Background(), loadRepo(t, remoteFleet(t, helmSource)), Selection{}).Get("edge", "remote")
	}
	p := render(opts, src(hex.EncodeToString(sum[:])))
	if p.Err != nil {
		t.Fatalf("render: %v", p.Err)
	}
	if cm := findObject(t, p, "ConfigMap", "urlchart-2.0.0"); str(cm, "data", "zone") != "edge-1" {
		t.Errorf("zone = %q, want the cluster's edge-1 through ${cluster.values.zone}", str(cm, "data", "zone"))
	}
	if p := render(opts, src(hex.EncodeToString(sum[:]))); p.Err != nil || downloads.n.Load() != 1 {
		t.Errorf("second render: err %v, downloads %d, want 1 (disk cache)", p.Err, downloads.n.Load())
	}
	wrong := strings.Repeat("ab", 32)
	p = render(Options{HTTPClient: srv.Client(), ChartCacheDir: t.TempDir()}, src(wrong))
	if p.Err == nil || !strings.Contains(p.Err.Error(), "sha256 mismatch: the app says "+wrong) {
		t.Errorf("wrong sha256: got %v", p.Err)
	}
}
