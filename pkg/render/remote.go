package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// maxChartSize bounds a downloaded chart archive or index.
const maxChartSize = 64 << 20

// chartStore fetches remote charts and caches the archives on disk by name,
// version and digest.
type chartStore struct {
	dir    string
	client *http.Client
	// declared remembers, by archive digest, whether a local .tgz chart
	// declares dependencies (see declaresDeps).
	declared sync.Map
}

func newChartStore(opts Options) *chartStore {
	s := &chartStore{dir: opts.ChartCacheDir, client: opts.HTTPClient}
	if s.dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			s.dir = filepath.Join(d, "fleetsync", "charts")
		}
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	return s
}

// remoteChart is a fetched chart archive.
type remoteChart struct {
	archive []byte
	digest  string
}

// chartFetches memoizes remote charts for one Render call, so a tag is
// resolved once per call and every cluster sees the same chart.
type chartFetches struct {
	mu sync.Mutex
	m  map[string]*chartFetch
	// deps memoizes the resolution of chart dependencies (chartdeps.go).
	deps depMemo
}

type chartFetch struct {
	once sync.Once
	rc   *remoteChart
	err  error
}

func (f *chartFetches) get(ctx context.Context, s *chartStore, src *v1alpha1.HelmSource) (*remoteChart, error) {
	return f.do(fetchKey(src), func() (*remoteChart, error) { return s.fetch(ctx, src) })
}

// fetchKey identifies a remote chart version in chartFetches.
func fetchKey(src *v1alpha1.HelmSource) string {
	return src.Repo + "\x00" + src.Chart + "\x00" + src.Version + "\x00" + src.SHA256
}

// do runs fetch once per key and Render call.
func (f *chartFetches) do(key string, fetch func() (*remoteChart, error)) (*remoteChart, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*chartFetch{}
	}
	e, ok := f.m[key]
	if !ok {
		e = &chartFetch{}
		f.m[key] = e
	}
	f.mu.Unlock()
	e.once.Do(func() { e.rc, e.err = fetch() })
	return e.rc, e.err
}

func (s *chartStore) fetch(ctx context.Context, src *v1alpha1.HelmSource) (*remoteChart, error) {
	if isChartURL(src.Chart) {
		return s.fetchURL(ctx, src)
	}
	if src.Version == "" {
		return nil, fmt.Errorf("chart %s: a remote chart needs a version", chartName(src))
	}
	if strings.HasPrefix(src.Chart, "oci://") {
		return s.fetchOCI(ctx, src)
	}
	return s.fetchRepo(ctx, src)
}

func chartName(src *v1alpha1.HelmSource) string {
	if src.Repo != "" {
		return redactURL(src.Repo) + " " + src.Chart
	}
	return redactURL(src.Chart)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// cachePath is where an archive with this name, version and digest is kept.
func (s *chartStore) cachePath(name, version, digest string) string {
	if s.dir == "" {
		return ""
	}
	n := unsafeName.ReplaceAllString(name, "_")
	return filepath.Join(s.dir, n+"-"+unsafeName.ReplaceAllString(version, "_")+"-"+strings.TrimPrefix(digest, "sha256:")+".tgz")
}

func (s *chartStore) fromCache(p, digest string) []byte {
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil || sha256Hex(b) != strings.TrimPrefix(digest, "sha256:") {
		return nil
	}
	return b
}

func (s *chartStore) toCache(p string, b []byte) {
	if p == "" {
		return
	}
	// The cache is an optimisation: a failed write only costs a later download.
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".chart-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(tmp.Name())
		return
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		_ = os.Remove(tmp.Name())
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fetchOCI resolves oci://host/path/name:version through the Helm registry
// client, then takes the archive from the disk cache or pulls it.
func (s *chartStore) fetchOCI(ctx context.Context, src *v1alpha1.HelmSource) (*remoteChart, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := chartName(src)
	ref := strings.TrimPrefix(src.Chart, "oci://") + ":" + strings.ReplaceAll(src.Version, "+", "_")
	c, err := registry.NewClient(registry.ClientOptHTTPClient(s.client), registry.ClientOptWriter(io.Discard))
	if err != nil {
		return nil, fmt.Errorf("chart %s: registry client: %w", name, err)
	}
	desc, err := c.Resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("chart %s version %s: not found: %w", name, src.Version, redactErr(err))
	}
	cp := s.cachePath(src.Chart, src.Version, desc.Digest.String())
	// The disk cache is keyed by the manifest digest; the archive inside is
	// verified by the registry client on pull, and by its own hash on reuse.
	if b, err := os.ReadFile(cp + ".sha256"); err == nil {
		if a := s.fromCache(cp, string(b)); a != nil {
			return &remoteChart{archive: a, digest: desc.Digest.String()}, nil
		}
	}
	res, err := c.Pull(ref, registry.PullOptWithChart(true), registry.PullOptIgnoreMissingProv(true))
	if err != nil {
		return nil, fmt.Errorf("chart %s version %s: pull: %w", name, src.Version, redactErr(err))
	}
	if res.Chart == nil || len(res.Chart.Data) == 0 {
		return nil, fmt.Errorf("chart %s version %s: the artifact holds no chart", name, src.Version)
	}
	s.toCache(cp, res.Chart.Data)
	s.toCache(cp+".sha256", []byte(sha256Hex(res.Chart.Data)))
	return &remoteChart{archive: res.Chart.Data, digest: desc.Digest.String()}, nil
}

// fetchRepo finds a chart version in an https repository's index.yaml, then
// takes the archive from the disk cache or downloads and verifies it.
func (s *chartStore) fetchRepo(ctx context.Context, src *v1alpha1.HelmSource) (*remoteChart, error) {
	name := chartName(src)
	base, idx, err := s.repoIndex(ctx, src.Repo)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	return s.fetchFromIndex(ctx, src, base, idx)
}

// repoIndex downloads and parses an https repository's index.yaml, its
// entries sorted newest first.
func (s *chartStore) repoIndex(ctx context.Context, repoURL string) (*url.URL, *repo.IndexFile, error) {
	base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
	if err != nil {
		return nil, nil, fmt.Errorf("repository URL: %w", redactErr(err))
	}
	idxURL := base.ResolveReference(&url.URL{Path: "index.yaml"})
	b, err := s.get(ctx, idxURL)
	if err != nil {
		return nil, nil, fmt.Errorf("index: %w", err)
	}
	var idx repo.IndexFile
	if err := yaml.Unmarshal(b, &idx); err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", redactURL(idxURL.String()), err)
	}
	idx.SortEntries()
	return base, &idx, nil
}

// fetchFromIndex takes the chart version of the repository at base from the
// disk cache, or downloads it and checks its digest against the index.
func (s *chartStore) fetchFromIndex(ctx context.Context, src *v1alpha1.HelmSource, base *url.URL, idx *repo.IndexFile) (*remoteChart, error) {
	name := chartName(src)
	cv, err := idx.Get(src.Chart, src.Version)
	if err != nil {
		if errors.Is(err, repo.ErrNoChartName) {
			return nil, fmt.Errorf("chart %s: not found in the repository", name)
		}
		return nil, fmt.Errorf("chart %s version %s: not found in the repository: %w", name, src.Version, err)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart %s version %s: the index gives no URL", name, cv.Version)
	}
	cp := s.cachePath(base.Host+"/"+base.Path+"/"+src.Chart, cv.Version, cv.Digest)
	if cv.Digest != "" {
		if a := s.fromCache(cp, cv.Digest); a != nil {
			// the same digest as after a download (index digests lack the prefix)
			return &remoteChart{archive: a, digest: "sha256:" + strings.TrimPrefix(cv.Digest, "sha256:")}, nil
		}
	}
	u, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s version %s: URL: %w", name, cv.Version, redactErr(err))
	}
	a, err := s.get(ctx, base.ResolveReference(u))
	if err != nil {
		return nil, fmt.Errorf("chart %s version %s: %w", name, cv.Version, err)
	}
	got := sha256Hex(a)
	if cv.Digest != "" && got != strings.TrimPrefix(cv.Digest, "sha256:") {
		return nil, fmt.Errorf("chart %s version %s: digest mismatch: index says %s, download is %s", name, cv.Version, cv.Digest, got)
	}
	if cv.Digest != "" {
		s.toCache(cp, a)
	}
	return &remoteChart{archive: a, digest: "sha256:" + got}, nil
}

// isChartURL reports whether a chart is named by the URL of its archive.
func isChartURL(chart string) bool {
	return strings.HasPrefix(chart, "https://") || strings.HasPrefix(chart, "http://")
}

// fetchURL downloads a chart archive from its URL (or takes it from the disk
// cache) and checks it against the required sha256.
func (s *chartStore) fetchURL(ctx context.Context, src *v1alpha1.HelmSource) (*remoteChart, error) {
	name := chartName(src)
	want := strings.ToLower(strings.TrimPrefix(src.SHA256, "sha256:"))
	if want == "" {
		return nil, fmt.Errorf("chart %s: a chart URL needs sha256 (the archive's SHA-256)", name)
	}
	u, err := url.Parse(src.Chart)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, redactErr(err))
	}
	cp := s.cachePath(u.Host+u.Path, "url", want)
	if a := s.fromCache(cp, want); a != nil {
		return &remoteChart{archive: a, digest: "sha256:" + want}, nil
	}
	a, err := s.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	if got := sha256Hex(a); got != want {
		return nil, fmt.Errorf("chart %s: sha256 mismatch: the app says %s, the download is %s", name, want, got)
	}
	s.toCache(cp, a)
	return &remoteChart{archive: a, digest: "sha256:" + want}, nil
}

func (s *chartStore) get(ctx context.Context, u *url.URL) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, redactErr(err)
	}
	if pw, ok := u.User.Password(); ok {
		req.SetBasicAuth(u.User.Username(), pw)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, redactErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", redactURL(u.String()), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxChartSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redactURL(u.String()), redactErr(err))
	}
	if len(b) > maxChartSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", redactURL(u.String()), maxChartSize)
	}
	return b, nil
}

func (rc *remoteChart) load() (*chart.Chart, error) {
	return loader.LoadArchive(bytes.NewReader(rc.archive))
}

// redactURL removes userinfo from a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

var userinfo = regexp.MustCompile(`://[^/@\s]+@`)

// redactErr strips userinfo from URLs in an error message.
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := userinfo.ReplaceAllString(err.Error(), "://")
	if msg == err.Error() {
		return err
	}
	return &rootErr{msg: msg, err: err}
}
