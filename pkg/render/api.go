package render

// The signatures in this file are the contract pkg/plan, pkg/apply,
// cmd/fleetsync and the daemon code against (see docs/ARCHITECTURE.md).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// DefaultKubeVersion is the Kubernetes version Helm renders with when a
// cluster's version is known from nowhere else.
const DefaultKubeVersion = "v1.37.2"

// LocalRevision is the fleetsync.dev/revision of objects rendered from a
// plain directory (a repo without a commit).
const LocalRevision = "local"

// Options configure a Renderer. The zero value is usable.
type Options struct {
	// AllowRemoteBases lets kustomizations name remote resources (URLs);
	// refused otherwise.
	AllowRemoteBases bool
	// DefaultKubeVersion is the .Capabilities version when a cluster's is
	// known neither from KubeVersions, nor from its spec.kubernetesVersion,
	// nor from fleet.yaml; default DefaultKubeVersion.
	DefaultKubeVersion string
	// KubeVersions maps a cluster name to its known version (e.g. from a
	// heartbeat); it overrides Cluster.spec.kubernetesVersion.
	KubeVersions map[string]string
	// APIVersions maps a cluster name to the API group/versions (and
	// group/version/Kind entries) for .Capabilities.APIVersions, added to Helm's defaults.
	APIVersions map[string][]string
	// ChartCacheDir caches remote chart archives by name, version and digest;
	// default os.UserCacheDir()/fleetsync/charts.
	ChartCacheDir string
	// Concurrency bounds the Helm renders and per-cluster steps running at
	// once; default GOMAXPROCS. Kustomize builds run one at a time in the
	// process (krusty has global state), besides those.
	Concurrency int
	// HTTPClient fetches remote charts from OCI registries and https chart
	// repositories; nil means a client trusting the system roots. Tests pass
	// an httptest TLS server's Client() to trust its certificate.
	HTTPClient *http.Client
	// RenderTimeout bounds one Helm chart's template run (a template that
	// loops forever); default DefaultRenderTimeout. Past it the pair fails
	// with an error naming the chart; the abandoned run cannot be stopped
	// (Go templates take no context) and ends with the process.
	RenderTimeout time.Duration
}

// DefaultRenderTimeout is Options.RenderTimeout's default.
const DefaultRenderTimeout = time.Minute

// Renderer renders fleet repos. It is safe for concurrent use and holds the
// content-addressed render cache: a later Render re-renders only the pairs
// whose inputs changed.
type Renderer struct {
	opts     Options
	cache    *renderCache
	finished *finishCache
	keys     *keyMemo
	charts   *chartStore

	lastMu sync.Mutex
	last   *snapshot // the snapshot of the last Render, to reuse from
}

// Preload starts preparing, in the background, the process-wide state
// renders need (Kustomize's built-in OpenAPI schema, some 50 ms of CPU), so
// that a command can overlap it with loading the repo. New calls it too.
func Preload() { go krustyInit() }

// New returns a Renderer.
func New(opts Options) *Renderer {
	Preload()
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	if opts.DefaultKubeVersion == "" {
		opts.DefaultKubeVersion = DefaultKubeVersion
	}
	if opts.RenderTimeout <= 0 {
		opts.RenderTimeout = DefaultRenderTimeout
	}
	return &Renderer{opts: opts, cache: newRenderCache(), finished: newFinishCache(), keys: newKeyMemo(), charts: newChartStore(opts)}
}

// Selection limits a render to some clusters and apps; empty means all.
type Selection struct {
	Clusters, Apps []string
	// KubeVersions are this call's live cluster versions (e.g. just
	// discovered); they win over Options.KubeVersions and the repo's.
	KubeVersions map[string]string
	// APIVersions are this call's live API versions per cluster (discovered);
	// when a cluster has them, they replace its spec.apiVersions.
	APIVersions map[string][]string
	// Scopes are the live scopes per cluster ("group/Kind" -> cluster-scoped),
	// from discovery; they win over the CRDs of the render and the built-in table.
	Scopes map[string]map[string]bool
}

// Result is the rendered fleet.
type Result struct {
	Revision string
	Clusters []ClusterResult // sorted by cluster name
	// Stats counts the work done.
	Stats Stats
}

// Stats counts the source renders of one Render call.
type Stats struct {
	// Pairs is the number of (cluster, app) pairs.
	Pairs int
	// Rendered counts Kustomize builds and Helm renders actually run.
	Rendered int
	// Reused counts pairs served by a render of the same call with identical inputs.
	Reused int
	// Cached counts renders served by the Renderer's cache from an earlier call.
	Cached int
	// FilesRead and FilesReused count the repo's files read for this call
	// and those taken unread from the previous call's copy of the repo
	// (under an unchanged git object id).
	FilesRead, FilesReused int
}

// ClusterResult holds one cluster's apps.
type ClusterResult struct {
	Cluster string
	Apps    []AppResult // sorted by app name
}

// AppResult is one (cluster, app) pair. Err != nil => Objects == nil. Objects are in
// DESIGN order (CRDs, Namespaces, other cluster-scoped, namespaced; stable inside),
// each labelled fleetsync.dev/app and annotated fleetsync.dev/revision.
//
// Objects are read-only: a later Render of the same Renderer may return the
// same objects for an unchanged pair (that is what makes re-rendering cheap).
// DeepCopy an object before changing it.
type AppResult struct {
	App     string
	Objects []*unstructured.Unstructured
	// Err starts with "cluster/app: " and names the file, template or object at fault.
	Err error
	// Warnings are what Kustomize, Helm and fleetsync found doubtful in the
	// pair (deprecated fields, values Helm skips, kinds of unknown scope,
	// an empty render); they never reach stderr raw.
	Warnings []string
	// InputsDigest identifies everything the pair was rendered from (the
	// render key: chart or folder, values, .Capabilities, patches, the
	// cluster's facts; the digests of the files read) but not the revision:
	// equal digests mean equal inputs, so output that differs anyway is
	// random (randAlphaNum). Empty when it could not be worked out.
	InputsDigest string
}

// Render renders every selected (cluster, app) pair where the app targets the
// cluster. It never fails as a whole: errors are per pair. A selected cluster
// or app that is not in the repo gives an error pair.
func (r *Renderer) Render(ctx context.Context, repo *fleet.Repo, sel Selection) *Result {
	rev := repo.Revision
	if rev == "" {
		rev = LocalRevision
	}
	res := &Result{Revision: rev}
	m := newMatcher()
	jobs, bad := selectPairs(repo, sel, m)
	r.lastMu.Lock()
	prev := r.last
	r.lastMu.Unlock()
	snap, err := takeSnapshot(repo.FS, prev)
	if err == nil {
		r.lastMu.Lock()
		r.last = snap
		r.lastMu.Unlock()
	}
	if err != nil {
		for _, j := range jobs {
			j.err = fmt.Errorf("%s/%s: read repo: %w", j.cluster.Metadata.Name, j.app.Metadata.Name, err)
		}
		snap = &snapshot{}
	}
	run := &renderRun{r: r, repo: repo, snap: snap, revision: rev, match: m, flights: map[string]*flight{}, kubeVersions: sel.KubeVersions, apiVersions: sel.APIVersions, scopes: sel.Scopes}
	res.Clusters = mergeBad(run.renderAll(ctx, jobs), bad)
	res.Stats = run.stats(len(jobs))
	return res
}

// FieldError is a render error caused by one field of the App, e.g.
// "spec.customizations[1].patches[0]": validate reports it at that field's line.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Err joins every pair's error (each starts with "cluster/app: "); nil when
// every pair rendered.
func (r *Result) Err() error {
	var errs []error
	for _, c := range r.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				errs = append(errs, a.Err)
			}
		}
	}
	return errors.Join(errs...)
}

// Get returns a pair, or nil when it was not rendered.
func (r *Result) Get(cluster, app string) *AppResult {
	for i := range r.Clusters {
		if r.Clusters[i].Cluster != cluster {
			continue
		}
		for j := range r.Clusters[i].Apps {
			if r.Clusters[i].Apps[j].App == app {
				return &r.Clusters[i].Apps[j]
			}
		}
	}
	return nil
}

// Encode writes a deterministic YAML stream separated by "---\n": keys are
// sorted, so the same objects always give the same bytes.
func Encode(w io.Writer, objs []*unstructured.Unstructured) error {
	b, err := YAML(objs)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Differing names the objects (Kind/namespace/name) whose content differs
// between two renders of the same pair, and those only one of them has.
func Differing(a, b []*unstructured.Unstructured) []string {
	id := func(u *unstructured.Unstructured) string {
		if u.GetNamespace() == "" {
			return u.GetKind() + "/" + u.GetName()
		}
		return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
	}
	byID := make(map[string]*unstructured.Unstructured, len(b))
	for _, u := range b {
		byID[id(u)] = u
	}
	var out []string
	for _, u := range a {
		v, ok := byID[id(u)]
		delete(byID, id(u))
		if !ok || !equality.Semantic.DeepEqual(u.Object, v.Object) {
			out = append(out, id(u))
		}
	}
	for k := range byID {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
