package render

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// Options configure a Renderer. The zero value is usable; DefaultOptions
// documents the defaults.
type Options struct {
	// Concurrency bounds the renders running at once; 0 means GOMAXPROCS.
	Concurrency int
	// AllowRemoteBases lets kustomizations name remote (URL) resources.
	AllowRemoteBases bool
	// KubeVersion is the Kubernetes version Helm renders with (.Capabilities)
	// for clusters whose version is known neither from Clusters, nor from the
	// Cluster's spec.kubernetesVersion, nor from fleet.yaml. Empty means Helm's
	// built-in default.
	KubeVersion string
	// Clusters holds facts discovered from live clusters (by the daemon's
	// heartbeat); they take precedence over the fleet repo's.
	Clusters map[string]ClusterInfo
	// ChartCacheDir caches remote charts on disk by name, version and digest;
	// empty means os.UserCacheDir()/fleetsync/charts.
	ChartCacheDir string
	// HTTPClient fetches remote charts (OCI registries and https chart
	// repositories); nil means a client with the system's trusted roots.
	// Tests pass an httptest server's Client() to trust its certificate.
	HTTPClient *http.Client
}

// ClusterInfo is what is known about a live cluster.
type ClusterInfo struct {
	// KubeVersion such as "v1.37.2".
	KubeVersion string
	// APIVersions the cluster serves ("apps/v1", "monitoring.coreos.com/v1/ServiceMonitor").
	APIVersions []string
}

// DefaultOptions returns the defaults: Concurrency GOMAXPROCS, remote bases
// refused, Helm's default Kubernetes version, the user cache dir for charts.
func DefaultOptions() Options {
	return Options{Concurrency: runtime.GOMAXPROCS(0)}
}

// Selection restricts a Render to some clusters and apps; empty lists mean all.
type Selection struct {
	Clusters []string
	Apps     []string
}

// Result is the outcome of a Render.
type Result struct {
	// Revision is the repo's commit ("" for a plain directory).
	Revision string
	// Pairs holds one entry per selected (cluster, app) where the app targets
	// the cluster, sorted by cluster then app.
	Pairs []Pair
	// Stats counts what was done.
	Stats Stats
}

// Stats counts the renders of one Render call.
type Stats struct {
	// Pairs is the number of (cluster, app) pairs.
	Pairs int
	// Rendered is the number of Kustomize builds and Helm renders actually run.
	Rendered int
	// Reused is the number of pairs served by a render of the same call with identical inputs.
	Reused int
	// Cached is the number of pairs served by the Renderer's cache from an earlier call.
	Cached int
}

// Pair is the rendered objects of one app on one cluster, or why it failed.
type Pair struct {
	Cluster string
	App     string
	// Objects in apply order (CRDs, Namespaces, other cluster-scoped, namespaced).
	Objects []*unstructured.Unstructured
	// Err is non-nil when the pair failed; Objects is then nil.
	Err error
}

// Failed returns the failed pairs' errors, in pair order.
func (r *Result) Failed() []error {
	var errs []error
	for _, p := range r.Pairs {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

// Renderer renders fleet repos. It is safe for concurrent use and keeps a
// content-addressed cache of renders across calls.
type Renderer struct {
	opts  Options
	cache *renderCache
	// charts memoizes remote charts fetched by this Renderer.
	charts *chartStore
}

// New returns a Renderer.
func New(opts Options) *Renderer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	return &Renderer{opts: opts, cache: newRenderCache(), charts: newChartStore(opts)}
}

// Render renders every selected (cluster, app) pair of repo. Per-pair
// failures are in the Result; the error is for an unusable selection, an
// unreadable repo or a cancelled ctx.
func (r *Renderer) Render(ctx context.Context, repo *fleet.Repo, sel Selection) (*Result, error) {
	clusters, apps, err := selectPairs(repo, sel)
	if err != nil {
		return nil, err
	}
	snap, err := takeSnapshot(repo.FS)
	if err != nil {
		return nil, fmt.Errorf("read repo: %w", err)
	}
	run := &renderRun{r: r, repo: repo, snap: snap, flights: map[string]*flight{}}
	var jobs []*pairJob
	for _, c := range clusters {
		for _, a := range apps {
			if fleet.Matches(a.Spec.Targets.ClusterSelector, c) {
				jobs = append(jobs, &pairJob{cluster: c, app: a})
			}
		}
	}
	sem := make(chan struct{}, r.opts.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				j.err = ctx.Err()
				return
			}
			defer func() { <-sem }()
			j.objs, j.err = run.renderPair(ctx, j.cluster, j.app)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{Revision: repo.Revision}
	res.Pairs = run.finishAll(jobs)
	res.Stats = run.stats(len(jobs))
	sort.SliceStable(res.Pairs, func(i, j int) bool {
		if res.Pairs[i].Cluster != res.Pairs[j].Cluster {
			return res.Pairs[i].Cluster < res.Pairs[j].Cluster
		}
		return res.Pairs[i].App < res.Pairs[j].App
	})
	return res, nil
}
