package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/internal/keyedsem"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// Options configure a Reconciler.
type Options struct {
	// MaxParallelClusters bounds the clusters worked on at once (default 16).
	MaxParallelClusters int
	// PollInterval is how often a rollout looks at its clusters while it waits
	// for health or a soak (default 1s).
	PollInterval time.Duration
	// AppConcurrency bounds the apps applied at once on one cluster (default 16).
	AppConcurrency int
	// Images switches image mirroring on (nil: references are applied as
	// written).
	Images *ImageOptions
}

// Reconciler drives the stages for a fleet. It keeps the render cache and the
// cluster connections between calls (the daemon reuses one); safe for
// concurrent use.
type Reconciler struct {
	pool     *Pool
	renderer *render.Renderer
	opts     Options

	slots *keyedsem.Sem // per cluster: apply slots (AppConcurrency)
	obs   *observer     // shared reads of each cluster's inventories and health
}

// New returns a Reconciler over a connection pool and a renderer.
func New(pool *Pool, renderer *render.Renderer, opts Options) *Reconciler {
	if opts.MaxParallelClusters <= 0 {
		opts.MaxParallelClusters = 16
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.AppConcurrency <= 0 {
		opts.AppConcurrency = 16
	}
	return &Reconciler{pool: pool, renderer: renderer, opts: opts, slots: keyedsem.New(opts.AppConcurrency), obs: newObserver(opts.PollInterval / 2)}
}

// Idle tells the Reconciler that no rollout is running: it drops the
// cluster observations it shares between rollouts (the next rollout reads
// the clusters afresh, as it would after PollInterval/2 anyway).
func (r *Reconciler) Idle() { r.obs.forget() }

// Pool returns the Reconciler's cluster connections.
func (r *Reconciler) Pool() *Pool { return r.pool }

// Desired is what a fleet repo wants on the clusters in scope.
type Desired struct {
	Repo *fleet.Repo
	// Clusters in scope: the selection, or every cluster of the repo.
	Clusters []string
	// Rendered has a pair for each app that targets a cluster in scope.
	Rendered *render.Result
	// Unreachable holds the clusters that did not answer while rendering, with
	// their error (rendered offline, with their spec's Kubernetes version).
	Unreachable map[string]error
	// Revisions loads the repo at other commits, for rollbacks (nil: the repo
	// has no history, e.g. a plain directory, and nothing can be rolled back).
	Revisions RevisionLoader

	revMu    sync.Mutex
	revCache map[string]*fleet.Repo

	syncer *imagesync.Syncer      // nil without mirroring
	images map[string]*pairImages // cluster/app -> its image pins
}

// incomplete reports whether any pair of the cluster failed to render.
func (d *Desired) incomplete(cluster string) bool {
	for _, cr := range d.Rendered.Clusters {
		if cr.Cluster != cluster {
			continue
		}
		for _, ar := range cr.Apps {
			if ar.Err != nil {
				return true
			}
		}
	}
	return false
}

// apps returns the rendered pairs of a cluster.
func (d *Desired) apps(cluster string) []render.AppResult {
	for _, cr := range d.Rendered.Clusters {
		if cr.Cluster == cluster {
			return cr.Apps
		}
	}
	return nil
}

// Desired renders the repo for the selected clusters (all when none are
// named), each with the Kubernetes version and API versions it serves when
// reachable (Helm's .Capabilities). Unknown
// cluster names are an error; nothing else is.
func (r *Reconciler) Desired(ctx context.Context, repo *fleet.Repo, clusters []string) (*Desired, error) {
	return r.desired(ctx, repo, clusters, nil)
}

// DesiredOnline is Desired for every cluster of the repo, connecting only to
// the clusters in online (an agent with a hub renders the others offline, for
// the digests its rollouts compare with what their agents published).
func (r *Reconciler) DesiredOnline(ctx context.Context, repo *fleet.Repo, online []string) (*Desired, error) {
	return r.desired(ctx, repo, nil, online)
}

func (r *Reconciler) desired(ctx context.Context, repo *fleet.Repo, clusters, online []string) (*Desired, error) {
	var errs []error
	for _, n := range clusters {
		if repo.Cluster(n) == nil {
			errs = append(errs, fmt.Errorf("--cluster %s: no such cluster in the fleet repo", n))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	d := &Desired{Repo: repo, Clusters: clusters, Unreachable: map[string]error{}}
	if len(d.Clusters) == 0 {
		for _, c := range repo.Clusters {
			d.Clusters = append(d.Clusters, c.Metadata.Name)
		}
	}
	versions := map[string]string{}
	apis := map[string][]string{}
	scopes := map[string]map[string]bool{}
	var mu sync.Mutex
	connect := d.Clusters
	if online != nil {
		connect = online
	}
	r.forEachCluster(ctx, connect, func(ctx context.Context, name string) {
		m, err := r.pool.Get(ctx, name)
		var served *cluster.Discovered
		if err == nil {
			served, err = m.Cluster().Discover(ctx)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			d.Unreachable[name] = err
			return
		}
		if v := r.pool.Version(name); v != "" {
			versions[name] = v
		}
		apis[name] = served.APIVersions
		scopes[name] = served.ClusterScoped
	})
	d.Rendered = r.renderer.Render(ctx, repo, render.Selection{Clusters: clusters, KubeVersions: versions, APIVersions: apis, Scopes: scopes})
	r.pinImages(ctx, d)
	return d, nil
}

// forEachCluster runs fn for every cluster, at most MaxParallelClusters at once,
// and returns when all are done. It is the only fan-out over clusters.
func (r *Reconciler) forEachCluster(ctx context.Context, names []string, fn func(ctx context.Context, name string)) {
	sem := make(chan struct{}, r.opts.MaxParallelClusters)
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(ctx, n)
		}()
	}
	wg.Wait()
}

func sortPairs[T any](s []T, key func(T) (string, string)) {
	sort.SliceStable(s, func(i, j int) bool {
		ci, ai := key(s[i])
		cj, aj := key(s[j])
		if ci != cj {
			return ci < cj
		}
		return ai < aj
	})
}
