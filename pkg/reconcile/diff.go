package reconcile

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/drift"
)

// DiffOptions configure Diff.
type DiffOptions struct {
	RequestOptions
	// Correct re-applies the pairs that drifted whose app says drift: correct
	// (the daemon's drift check); the CLI's diff only reports.
	Correct bool
	// OnTarget compares only the pairs whose inventory holds this render
	// (the daemon): a pair a rollout keeps on another revision (held, rolled
	// back, a later wave waiting for its gate) is not drift, and correcting
	// it would bypass the rollout. Such pairs get OffTarget and no report.
	OnTarget bool
}

// DiffPair is one pair's drift.
type DiffPair struct {
	Cluster string        `json:"cluster"`
	App     string        `json:"app"`
	Report  *drift.Report `json:"report,omitempty"`
	// Removed is set for an app that left the cluster (its objects are extra).
	Removed bool `json:"removed,omitempty"`
	// Note says why extra objects would not be pruned by an apply.
	Note string `json:"note,omitempty"`
	// OffTarget: not compared, the cluster is on another revision of the app
	// by a rollout's decision (DiffOptions.OnTarget).
	OffTarget bool `json:"offTarget,omitempty"`
	// Corrected is the re-apply of a drifted pair under drift: correct.
	Corrected *apply.ChangeSet `json:"corrected,omitempty"`
	Err       error            `json:"-"`
	Error     string           `json:"error,omitempty"`
	ErrorKind apply.ErrorKind  `json:"errorKind,omitempty"`
}

// DiffResult is the drift of every pair in scope, sorted by cluster then app.
type DiffResult struct {
	Revision string     `json:"revision"`
	Pairs    []DiffPair `json:"pairs"`
}

// Drifted reports whether any pair drifted.
func (r *DiffResult) Drifted() bool {
	for _, p := range r.Pairs {
		if p.Report != nil && p.Report.Drifted() {
			return true
		}
	}
	return false
}

// Failed reports whether any pair could not be compared.
func (r *DiffResult) Failed() bool {
	for _, p := range r.Pairs {
		if p.Err != nil {
			return true
		}
	}
	return false
}

// Diff compares every pair in scope with its cluster through server-side
// dry-run, with the very requests Apply would send, and reports the apps Apply
// would remove (their objects extra). Clusters in parallel.
func (r *Reconciler) Diff(ctx context.Context, d *Desired, o DiffOptions) *DiffResult {
	o.DryRun = !o.Correct
	res := &DiffResult{Revision: d.Rendered.Revision}
	var mu sync.Mutex
	var names []string
	for _, n := range d.Clusters {
		if o.local(n) {
			names = append(names, n)
		}
	}
	r.forEachCluster(ctx, names, func(ctx context.Context, name string) {
		local := r.diffCluster(ctx, d, name, o)
		mu.Lock()
		res.Pairs = append(res.Pairs, local...)
		mu.Unlock()
	})
	for i := range res.Pairs {
		if err := res.Pairs[i].Err; err != nil {
			res.Pairs[i].Error = err.Error()
			res.Pairs[i].ErrorKind = apply.KindOf(err)
		}
	}
	sortPairs(res.Pairs, func(p DiffPair) (string, string) { return p.Cluster, p.App })
	return res
}

func (r *Reconciler) diffCluster(ctx context.Context, d *Desired, name string, o DiffOptions) []DiffPair {
	apps := d.apps(name)
	m, connErr := r.pool.Get(ctx, name)
	incomplete := d.incomplete(name)
	var out []DiffPair
	for i := range apps {
		ar := &apps[i]
		if !o.accepts(ar.App) {
			continue
		}
		p := DiffPair{Cluster: name, App: ar.App}
		switch {
		case ar.Err != nil:
			p.Err = fmt.Errorf("%s/%s: render: %w", name, ar.App, ar.Err)
		case connErr != nil:
			p.Err = connErr
		default:
			req := d.request(name, ar, o.RequestOptions).Request
			if o.OnTarget {
				inv, err := m.Inventory(ctx, ar.App)
				if err != nil {
					p.Err = err
					break
				}
				if inv == nil || inv.Digest != apply.Digest(req.Objects) {
					p.OffTarget = true
					break
				}
			}
			mode := v1alpha1.DriftReport
			if app := d.Repo.App(ar.App); o.Correct && app != nil {
				mode = app.Spec.Drift
			}
			p.Report, p.Corrected, p.Err = drift.Reconcile(ctx, m, req, mode)
			if p.Corrected != nil {
				r.obs.wrote(name, ar.App)
			}
			if incomplete && p.Report != nil && p.Report.Count(drift.Extra) > 0 {
				p.Note = "extra objects are not pruned while a render fails on this cluster"
			}
		}
		out = append(out, p)
	}
	if o.Only != nil {
		return out // removal is judged on the whole desired set
	}
	if connErr != nil {
		if len(apps) == 0 {
			out = append(out, DiffPair{Cluster: name, Removed: true, Err: connErr})
		}
		return out
	}
	rm, err := planRemoval(ctx, d, m, name, o.AllowMassPrune)
	if err != nil {
		return append(out, DiffPair{Cluster: name, Removed: true, Err: err})
	}
	for _, inv := range rm.apps {
		req := apply.UninstallRequest(inv)
		p := DiffPair{Cluster: name, App: inv.App, Removed: true}
		if rm.refused != nil {
			req.Prune = false
			p.Note = rm.refused.Error()
		} else if !inv.Prune {
			p.Note = "the app does not prune: its objects stay on the cluster, no longer managed"
		}
		req.DryRun = true
		p.Report, p.Err = drift.Detect(ctx, m, req)
		out = append(out, p)
	}
	return out
}
