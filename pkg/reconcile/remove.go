package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

// MassRemovalError says apps were not removed from a cluster because more
// than half of the fleet's apps there would have gone at once: the signature of
// a truncated or wrong repo, not of a deliberate removal.
type MassRemovalError struct {
	Cluster string
	// Apps would have been removed, of Installed apps of this fleet on the cluster.
	Apps      []string
	Installed int
}

func (e *MassRemovalError) Error() string {
	return fmt.Sprintf("cluster %s: removal refused: %d of the fleet's %d apps on this cluster left the repo at once (more than half: %s); use --allow-mass-prune if that is intended",
		e.Cluster, len(e.Apps), e.Installed, strings.Join(e.Apps, ", "))
}

// Is makes the refusal a permanent error (a person decides).
func (e *MassRemovalError) Is(target error) bool { return target == apply.ErrPermanent }

// removal is what removing the apps that left a cluster would do.
type removal struct {
	// apps are this fleet's inventories on the cluster whose app is no longer
	// desired there, by app name.
	apps []*apply.Inventory
	// refused is set when the removal is refused as a whole.
	refused error
}

// planRemoval finds the apps this fleet applied to the cluster that are no
// longer desired there. Nothing is removed where any pair of the cluster
// failed to render (an app may only look gone), and nothing when more than half
// of the fleet's apps on the cluster would go at once, unless allowMass. Apply
// and Diff both decide with it.
func planRemoval(ctx context.Context, d *Desired, m *apply.Manager, clusterName string, allowMass bool) (*removal, error) {
	if d.incomplete(clusterName) {
		return &removal{}, nil
	}
	desired := map[string]bool{}
	for _, ar := range d.apps(clusterName) {
		desired[ar.App] = true
	}
	invs, err := m.AllInventories(ctx)
	if err != nil {
		return nil, err
	}
	rm := &removal{}
	installed := 0
	for _, inv := range invs {
		app := inv.App
		if !owns(d.Repo, inv) {
			continue // applied by another fleet: never ours to remove
		}
		installed++
		if !desired[app] {
			rm.apps = append(rm.apps, inv)
		}
	}
	if 2*len(rm.apps) > installed && !allowMass {
		names := make([]string, 0, len(rm.apps))
		for _, inv := range rm.apps {
			names = append(names, inv.App)
		}
		sort.Strings(names)
		rm.refused = &MassRemovalError{Cluster: clusterName, Apps: names, Installed: installed}
	}
	return rm, nil
}

// removeApps uninstalls, on each cluster in scope, the apps this fleet applied
// there that are no longer desired there (see planRemoval).
func (r *Reconciler) removeApps(ctx context.Context, d *Desired, connErr map[string]error, o RequestOptions) []PairOutcome {
	var out []PairOutcome
	results := make(map[string][]PairOutcome, len(d.Clusters))
	var names []string
	for _, n := range d.Clusters {
		if connErr[n] == nil && o.local(n) {
			names = append(names, n) // a cluster whose pairs failed to connect reported it already
		}
	}
	var mu sync.Mutex
	r.forEachCluster(ctx, names, func(ctx context.Context, name string) {
		res := r.removeFromCluster(ctx, d, name, o)
		mu.Lock()
		results[name] = res
		mu.Unlock()
	})
	for _, n := range names {
		out = append(out, results[n]...)
	}
	return out
}

func (r *Reconciler) removeFromCluster(ctx context.Context, d *Desired, name string, o RequestOptions) []PairOutcome {
	m, err := r.pool.Get(ctx, name)
	if err != nil {
		if len(d.apps(name)) > 0 {
			return nil // reported by the cluster's pairs
		}
		return []PairOutcome{{Cluster: name, Removed: true, Err: fmt.Errorf("apps that left this cluster not checked: %w", err)}}
	}
	rm, err := planRemoval(ctx, d, m, name, o.AllowMassPrune)
	if err != nil {
		return []PairOutcome{{Cluster: name, Removed: true, Err: err}}
	}
	var out []PairOutcome
	for _, inv := range rm.apps {
		if rm.refused != nil {
			out = append(out, PairOutcome{Cluster: name, App: inv.App, Removed: true, Err: rm.refused})
			continue
		}
		cs, err := m.Uninstall(ctx, inv.App, o.DryRun)
		r.obs.wrote(name, inv.App)
		p := PairOutcome{Cluster: name, App: inv.App, ChangeSet: cs, Removed: true, Healthy: err == nil}
		if err != nil {
			p.Err = fmt.Errorf("app no longer desired on this cluster: %w", err) // err names cluster and app
		}
		if o.Progress != nil && cs != nil {
			for _, c := range cs.Changes {
				o.Progress(c)
			}
		}
		out = append(out, p)
	}
	return out
}
