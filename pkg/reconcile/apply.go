package reconcile

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// PairOutcome is the result of one (cluster, app) pair.
type PairOutcome struct {
	Cluster string `json:"cluster"`
	App     string `json:"app"`
	// Wave is the pair's rollout wave (0 when the app has no waves); Phase is the
	// step it ran in (waves and dependsOn combined).
	Wave      int              `json:"wave"`
	Phase     int              `json:"phase"`
	ChangeSet *apply.ChangeSet `json:"changeSet,omitempty"`
	Healthy   bool             `json:"healthy"`
	// Removed is set for an app that has an inventory on the cluster but is no
	// longer desired there (see apply.Manager.Uninstall).
	Removed bool   `json:"removed,omitempty"`
	Err     error  `json:"-"`
	Error   string `json:"error,omitempty"`
	// ErrorKind says what a scheduler should do (apply.ErrorKind).
	ErrorKind apply.ErrorKind `json:"errorKind,omitempty"`
}

// Result is the outcome of Apply, sorted by cluster then app.
type Result struct {
	Revision string        `json:"revision"`
	DryRun   bool          `json:"dryRun,omitempty"`
	Pairs    []PairOutcome `json:"pairs"`
}

// OK reports whether every pair applied without error (and, unless DryRun, is healthy).
func (r *Result) OK() bool {
	for _, p := range r.Pairs {
		if p.Err != nil || (!r.DryRun && !p.Healthy) {
			return false
		}
	}
	return true
}

// pair is one (cluster, app) pair on its way through Apply.
type pair struct {
	cluster, app string
	res          *render.AppResult
	wave, phase  int
	out          *PairOutcome
}

// Apply is a one-shot reconcile of the desired state: clusters in parallel
// (bounded), each cluster's apps in dependsOn order (independent apps
// concurrently), rollout waves honoured: the pairs of an app's wave N+1 start
// only when every pair of its waves up to N is healthy (a cluster no wave
// selects comes after the last wave). A pair whose render failed is neither
// applied nor pruned, and nothing is pruned or removed on its cluster; one
// failing cluster does not stop the others. Apps that left a cluster in scope
// are uninstalled (see removeApps).
func (r *Reconciler) Apply(ctx context.Context, d *Desired, o RequestOptions) *Result {
	res := &Result{Revision: d.Rendered.Revision, DryRun: o.DryRun}
	var pairs []*pair
	for ci := range d.Rendered.Clusters {
		cr := &d.Rendered.Clusters[ci]
		for ai := range cr.Apps {
			ar := &cr.Apps[ai]
			p := &pair{cluster: cr.Cluster, app: ar.App, res: ar, out: &PairOutcome{Cluster: cr.Cluster, App: ar.App}}
			p.wave = waveOf(d.Repo, ar.App, cr.Cluster)
			pairs = append(pairs, p)
		}
	}
	maxPhase := assignPhases(d.Repo, pairs)
	var mu sync.Mutex
	if o.Progress != nil {
		progress := o.Progress
		o.Progress = func(c apply.Change) {
			mu.Lock()
			defer mu.Unlock()
			progress(c)
		}
	}
	connErr := map[string]error{} // this run's failed connections (the Pool remembers none)
	healthy := map[string]map[string]bool{}
	for _, p := range pairs {
		healthy[p.cluster] = map[string]bool{}
	}
	for phase := 0; phase <= maxPhase; phase++ {
		byCluster := map[string][]*pair{}
		var names []string
		for _, p := range pairs {
			if p.phase == phase {
				if byCluster[p.cluster] == nil {
					names = append(names, p.cluster)
				}
				byCluster[p.cluster] = append(byCluster[p.cluster], p)
			}
		}
		// Wave gating is decided before the phase starts, from finished pairs.
		for _, ps := range byCluster {
			for _, p := range ps {
				if err := waveBlocked(pairs, p, o.DryRun); err != nil {
					p.out.Err = err
				}
			}
		}
		r.forEachCluster(ctx, names, func(ctx context.Context, name string) {
			mu.Lock()
			ce := connErr[name]
			prior := healthy[name]
			mu.Unlock()
			var m *apply.Manager
			if ce == nil {
				m, ce = r.pool.Get(ctx, name)
				if ce != nil {
					mu.Lock()
					connErr[name] = ce
					mu.Unlock()
				}
			}
			r.applyClusterPhase(ctx, d, m, ce, byCluster[name], prior, o)
		})
		for _, ps := range byCluster {
			for _, p := range ps {
				healthy[p.cluster][p.app] = p.out.Err == nil && (p.out.Healthy || o.DryRun)
			}
		}
	}
	for _, p := range pairs {
		p.out.Wave, p.out.Phase = p.wave, p.phase
		res.Pairs = append(res.Pairs, *p.out)
	}
	res.Pairs = append(res.Pairs, r.removeApps(ctx, d, connErr, o)...)
	for i := range res.Pairs {
		if err := res.Pairs[i].Err; err != nil {
			res.Pairs[i].Error = err.Error()
			res.Pairs[i].ErrorKind = apply.KindOf(err)
		}
	}
	sortPairs(res.Pairs, func(p PairOutcome) (string, string) { return p.Cluster, p.App })
	return res
}

// applyClusterPhase applies one cluster's pairs of one phase (prior is only
// read here; the caller updates it between phases).
func (r *Reconciler) applyClusterPhase(ctx context.Context, d *Desired, m *apply.Manager, connErr error, ps []*pair, prior map[string]bool, o RequestOptions) {
	incomplete := d.incomplete(ps[0].cluster)
	var reqs []apply.AppRequest
	byApp := map[string]*pair{}
	for _, p := range ps {
		switch {
		case p.out.Err != nil:
			continue // blocked by its rollout
		case p.res.Err != nil:
			p.out.Err = fmt.Errorf("not applied (and nothing pruned on this cluster): render failed: %w", p.res.Err)
			continue
		case connErr != nil:
			p.out.Err = fmt.Errorf("%s/%s: not applied: %w", p.cluster, p.app, connErr)
			continue
		}
		reqs = append(reqs, Request(d.Repo, p.res, incomplete, o))
		byApp[p.app] = p
	}
	local := map[string]bool{}
	for k, v := range prior {
		local[k] = v
	}
	for _, p := range ps { // pairs of this phase that did not run count as unhealthy
		if p.out.Err != nil {
			local[p.app] = false
		}
	}
	if m == nil || len(reqs) == 0 {
		return
	}
	for _, out := range m.ApplyApps(ctx, reqs, local) {
		p := byApp[out.App]
		p.out.ChangeSet, p.out.Healthy, p.out.Err = out.ChangeSet, out.Healthy, out.Err
	}
}
