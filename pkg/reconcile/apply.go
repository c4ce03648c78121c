package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/fleetsync/fleetsync/pkg/apply"
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
	// Rollouts has each app's rollout as it ended (not in a dry run).
	Rollouts []AppRollout `json:"rollouts,omitempty"`
	// Mirror has the image copies made before applying (with mirroring on).
	Mirror *MirrorResult `json:"mirror,omitempty"`
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

// Apply is a one-shot reconcile of the desired state. Each app is rolled out
// on its own (pkg/rollout decides, from what the clusters say): waves one after
// the other, each passing only when its clusters are healthy on this revision
// (soak, maxFailures, deadline), automatic rollback and the anti-flap hold;
// apps do not wait for each other except through dependsOn on the same
// cluster. It returns when every app's rollout is done, halted or rolled back.
// A pair whose render failed is neither applied nor pruned, and nothing is
// pruned or removed on its cluster. Apps that left a cluster in scope are then
// uninstalled (see planRemoval). With DryRun, every pair is compared through a
// server-side dry run instead, cluster by cluster, without waves.
func (r *Reconciler) Apply(ctx context.Context, d *Desired, o RequestOptions) *Result {
	res := &Result{Revision: d.Rendered.Revision, DryRun: o.DryRun}
	var mu sync.Mutex
	o.Progress, o.Events, o.Mirrored = serialized(&mu, o.Progress), serialized(&mu, o.Events), serialized(&mu, o.Mirrored)
	connErr := map[string]error{}
	if o.DryRun {
		res.Pairs = r.dryRun(ctx, d, o, connErr)
	} else {
		if d.syncer != nil {
			res.Mirror = r.mirror(ctx, d, o.Mirrored, o)
		}
		res.Pairs, res.Rollouts = r.rollouts(ctx, d, o)
		for _, p := range res.Pairs {
			var ce *ClusterError
			if errors.As(p.Err, &ce) {
				connErr[p.Cluster] = ce
			}
		}
	}
	if o.Only == nil {
		res.Pairs = append(res.Pairs, r.removeApps(ctx, d, connErr, o)...)
	}
	for i := range res.Pairs {
		if err := res.Pairs[i].Err; err != nil {
			res.Pairs[i].Error = err.Error()
			res.Pairs[i].ErrorKind = apply.KindOf(err)
		}
	}
	sortPairs(res.Pairs, func(p PairOutcome) (string, string) { return p.Cluster, p.App })
	return res
}

// RemoveDeparted uninstalls, on each cluster in scope, the apps this fleet
// applied there that are no longer desired there (what Apply does after the
// rollouts; see planRemoval for the guards). For callers that roll apps out
// one by one with RequestOptions.Only.
func (r *Reconciler) RemoveDeparted(ctx context.Context, d *Desired, o RequestOptions) []PairOutcome {
	out := r.removeApps(ctx, d, map[string]error{}, o)
	for i := range out {
		if err := out[i].Err; err != nil {
			out[i].Error = err.Error()
			out[i].ErrorKind = apply.KindOf(err)
		}
	}
	return out
}

// dryRun compares every pair with its cluster through server-side dry-run
// apply: clusters in parallel, apps in dependsOn order.
func (r *Reconciler) dryRun(ctx context.Context, d *Desired, o RequestOptions, connErr map[string]error) []PairOutcome {
	var mu sync.Mutex
	var out []PairOutcome
	names := make([]string, 0, len(d.Rendered.Clusters))
	for _, cr := range d.Rendered.Clusters {
		names = append(names, cr.Cluster)
	}
	r.forEachCluster(ctx, names, func(ctx context.Context, name string) {
		m, err := r.pool.Get(ctx, name)
		var local []PairOutcome
		var reqs []apply.AppRequest
		apps := d.apps(name)
		for i, ar := range apps {
			if !o.accepts(ar.App) {
				continue
			}
			p := PairOutcome{Cluster: name, App: ar.App, Wave: waveOf(d.Repo, ar.App, name)}
			switch {
			case ar.Err != nil:
				p.Err = fmt.Errorf("not applied (and nothing pruned on this cluster): %w", ar.Err)
			case err != nil:
				p.Err = fmt.Errorf("%s/%s: not applied: %w", name, ar.App, err)
			default:
				reqs = append(reqs, d.request(name, &apps[i], o))
				continue
			}
			local = append(local, p)
		}
		if err == nil && len(reqs) > 0 {
			for _, res := range m.ApplyApps(ctx, reqs, nil) {
				local = append(local, PairOutcome{Cluster: name, App: res.App, Wave: waveOf(d.Repo, res.App, name), ChangeSet: res.ChangeSet, Err: res.Err})
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			connErr[name] = err
		}
		out = append(out, local...)
	})
	return out
}

// serialized makes f (when set) run one call at a time under mu.
func serialized[T any](mu *sync.Mutex, f func(T)) func(T) {
	if f == nil {
		return nil
	}
	return func(v T) {
		mu.Lock()
		defer mu.Unlock()
		f(v)
	}
}
