package apply

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// FleetOptions configure Fleet.
type FleetOptions struct {
	// DryRun asks the servers what would change; nothing is written and nothing waited for.
	DryRun bool
	// AllowMassPrune allows an app to lose more than half of its objects.
	AllowMassPrune bool
	// Timeout is the health timeout of apps whose rollout (or the fleet) sets none
	// (default 5m).
	Timeout time.Duration
	// TimeoutOverrides makes Timeout the health timeout of every app, whatever the
	// repo says (an explicit --timeout).
	TimeoutOverrides bool
	// Progress receives every object's change as soon as it is known, one call at a time.
	Progress func(Change)
	// Clusters in scope of this run, for removing apps that left them; default: the
	// rendered clusters (a cluster that no app targets any more renders nothing, so
	// name it here to have its leftover apps removed).
	Clusters []string
}

// PairOutcome is the result of one (cluster, app) pair.
type PairOutcome struct {
	Cluster string `json:"cluster"`
	App     string `json:"app"`
	// Wave is the pair's rollout wave (0 when the app has no waves); Phase is the
	// step it ran in (waves and dependsOn combined).
	Wave      int        `json:"wave"`
	Phase     int        `json:"phase"`
	ChangeSet *ChangeSet `json:"changeSet,omitempty"`
	Healthy   bool       `json:"healthy"`
	// Removed is set for an app that has an inventory on the cluster but is no
	// longer desired there (see Manager.Uninstall).
	Removed bool   `json:"removed,omitempty"`
	Err     error  `json:"-"`
	Error   string `json:"error,omitempty"`
}

// FleetResult is the outcome of Fleet, sorted by cluster then app.
type FleetResult struct {
	Revision string        `json:"revision"`
	DryRun   bool          `json:"dryRun,omitempty"`
	Pairs    []PairOutcome `json:"pairs"`
}

// OK reports whether every pair applied without error (and, unless DryRun, is healthy).
func (r *FleetResult) OK() bool {
	for _, p := range r.Pairs {
		if p.Err != nil || (!r.DryRun && !p.Healthy) {
			return false
		}
	}
	return true
}

// Connector returns the Manager of a cluster.
type Connector func(ctx context.Context, cluster string) (*Manager, error)

type pair struct {
	cluster, app string
	res          *render.AppResult
	wave, phase  int
	out          *PairOutcome
}

// Fleet is a one-shot reconcile of a rendered fleet: clusters in parallel,
// each cluster's apps in dependsOn order, rollout waves honoured: the pairs of an
// app's wave N+1 start only when every pair of its waves up to N is healthy (a
// cluster no wave selects comes after the last wave). A pair whose render failed is
// neither applied nor pruned; one failing cluster does not stop the others.
func Fleet(ctx context.Context, repo *fleet.Repo, rendered *render.Result, connect Connector, opts FleetOptions) *FleetResult {
	res := &FleetResult{Revision: rendered.Revision, DryRun: opts.DryRun}
	var pairs []*pair
	for ci := range rendered.Clusters {
		cr := &rendered.Clusters[ci]
		for ai := range cr.Apps {
			ar := &cr.Apps[ai]
			p := &pair{cluster: cr.Cluster, app: ar.App, res: ar, out: &PairOutcome{Cluster: cr.Cluster, App: ar.App}}
			p.wave = waveOf(repo, ar.App, cr.Cluster)
			pairs = append(pairs, p)
		}
	}
	maxPhase := assignPhases(repo, pairs)
	// A cluster where any pair failed to render prunes nothing at all: an object
	// moving from one app to another that failed would otherwise be deleted.
	renderFailed := map[string]bool{}
	for _, p := range pairs {
		if p.res.Err != nil {
			renderFailed[p.cluster] = true
		}
	}

	managers := map[string]*Manager{}
	connErr := map[string]error{}
	healthy := map[string]map[string]bool{} // cluster -> app -> healthy (or dry-run ok)
	for _, p := range pairs {
		healthy[p.cluster] = map[string]bool{}
	}
	var mu sync.Mutex
	progress := func(c Change) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		opts.Progress(c)
	}
	for phase := 0; phase <= maxPhase; phase++ {
		byCluster := map[string][]*pair{}
		for _, p := range pairs {
			if p.phase == phase {
				byCluster[p.cluster] = append(byCluster[p.cluster], p)
			}
		}
		// Wave gating is decided before the phase starts, from finished pairs.
		for _, ps := range byCluster {
			for _, p := range ps {
				if err := waveBlocked(pairs, p, opts.DryRun); err != nil {
					p.out.Err = err
				}
			}
		}
		var wg sync.WaitGroup
		for name, ps := range byCluster {
			if _, ok := managers[name]; !ok && connErr[name] == nil {
				m, err := connect(ctx, name)
				if err != nil {
					connErr[name] = err
				} else {
					managers[name] = m
				}
			}
			prior, m, ce := healthy[name], managers[name], connErr[name]
			wg.Add(1)
			go func() {
				defer wg.Done()
				applyClusterPhase(ctx, repo, m, ce, ps, prior, opts, progress, renderFailed[name])
			}()
		}
		wg.Wait()
		for _, ps := range byCluster {
			for _, p := range ps {
				healthy[p.cluster][p.app] = p.out.Err == nil && (p.out.Healthy || opts.DryRun)
			}
		}
	}
	for _, p := range pairs {
		p.out.Wave, p.out.Phase = p.wave, p.phase
		if p.out.Err != nil {
			p.out.Error = p.out.Err.Error()
		}
		res.Pairs = append(res.Pairs, *p.out)
	}
	res.Pairs = append(res.Pairs, removeOrphans(ctx, repo, rendered, pairs, renderFailed, connect, opts)...)
	sort.SliceStable(res.Pairs, func(i, j int) bool {
		if res.Pairs[i].Cluster != res.Pairs[j].Cluster {
			return res.Pairs[i].Cluster < res.Pairs[j].Cluster
		}
		return res.Pairs[i].App < res.Pairs[j].App
	})
	return res
}

// applyClusterPhase applies one cluster's pairs of one phase (the prior map is
// only read here; the caller updates it between phases).
func applyClusterPhase(ctx context.Context, repo *fleet.Repo, m *Manager, connErr error, ps []*pair, prior map[string]bool, opts FleetOptions, progress func(Change), incomplete bool) {
	var reqs []AppRequest
	byApp := map[string]*pair{}
	for _, p := range ps {
		if p.out.Err != nil {
			continue // blocked by its rollout
		}
		if connErr != nil {
			p.out.Err = fmt.Errorf("%s/%s: not applied: %w", p.cluster, p.app, connErr)
			continue
		}
		if p.res.Err != nil {
			p.out.Err = fmt.Errorf("not applied (and nothing pruned): render failed: %w", p.res.Err)
			continue
		}
		app := repo.App(p.app)
		req := AppRequest{Request: Request{
			App:            p.app,
			Fleet:          fleetName(repo),
			Revision:       revisionOf(repo),
			Objects:        p.res.Objects,
			DryRun:         opts.DryRun,
			AllowMassPrune: opts.AllowMassPrune,
			Incomplete:     incomplete,
			Timeout:        opts.Timeout,
			Progress:       progress,
		}}
		if app != nil {
			req.Namespace = app.Spec.Namespace
			req.Prune = app.Spec.Prune
			req.DependsOn = app.Spec.DependsOn
			if t := healthTimeout(repo, app); t > 0 && !opts.TimeoutOverrides {
				req.Timeout = t
			}
		}
		reqs = append(reqs, req)
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
	for _, o := range m.ApplyApps(ctx, reqs, local) {
		p := byApp[o.App]
		p.out.ChangeSet, p.out.Healthy, p.out.Err = o.ChangeSet, o.Healthy, o.Err
	}
}

func revisionOf(repo *fleet.Repo) string {
	if repo.Revision == "" {
		return "local"
	}
	return repo.Revision
}

func healthTimeout(repo *fleet.Repo, app *v1alpha1.App) time.Duration {
	if app.Spec.Rollout != nil && app.Spec.Rollout.HealthTimeout != nil {
		return app.Spec.Rollout.HealthTimeout.Duration
	}
	if repo.Fleet != nil && repo.Fleet.Spec.HealthTimeout != nil {
		return repo.Fleet.Spec.HealthTimeout.Duration
	}
	return 0
}

// waveOf is the index of the first wave of the app's rollout that selects the
// cluster; len(waves) when none does; 0 without waves.
func waveOf(repo *fleet.Repo, appName, clusterName string) int {
	app, c := repo.App(appName), repo.Cluster(clusterName)
	if app == nil || c == nil || app.Spec.Rollout == nil || len(app.Spec.Rollout.Waves) == 0 {
		return 0
	}
	for i, w := range app.Spec.Rollout.Waves {
		if fleet.Matches(w.ClusterSelector, c) {
			return i
		}
	}
	return len(app.Spec.Rollout.Waves)
}

// assignPhases gives each pair the smallest phase that is not before its
// dependencies' phase on the same cluster and is after the phases of its app's
// earlier waves. It returns the largest phase.
func assignPhases(repo *fleet.Repo, pairs []*pair) int {
	idx := map[string]*pair{}
	for _, p := range pairs {
		idx[p.cluster+"/"+p.app] = p
	}
	maxPhase := 0
	for range len(pairs) + 1 { // a fixpoint; each pass can only raise phases
		changed := false
		for _, p := range pairs {
			ph := p.phase
			if app := repo.App(p.app); app != nil {
				for _, d := range app.Spec.DependsOn {
					if dp, ok := idx[p.cluster+"/"+d]; ok && dp.phase > ph {
						ph = dp.phase
					}
				}
			}
			for _, q := range pairs {
				if q.app == p.app && q.wave < p.wave && q.phase+1 > ph {
					ph = q.phase + 1
				}
			}
			if ph != p.phase {
				p.phase, changed = ph, true
			}
			maxPhase = max(maxPhase, p.phase)
		}
		if !changed {
			break
		}
	}
	return maxPhase
}

// waveBlocked returns an error when a pair of the same app in an earlier wave is
// not healthy (or failed, in a dry run).
func waveBlocked(pairs []*pair, p *pair, dryRun bool) error {
	var bad []string
	wave := -1
	for _, q := range pairs {
		if q.app != p.app || q.wave >= p.wave {
			continue
		}
		if q.out.Err != nil || (!dryRun && !q.out.Healthy) {
			bad = append(bad, q.cluster)
			wave = max(wave, q.wave)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("%s/%s: not applied: rollout stopped, wave %d is not healthy on %s", p.cluster, p.app, wave+1, strings.Join(bad, ", "))
}

// removeOrphans uninstalls, on each cluster in scope (FleetOptions.Clusters, by
// default the rendered ones), the apps that have an
// inventory there but are no longer desired there, clusters in parallel.
func removeOrphans(ctx context.Context, repo *fleet.Repo, rendered *render.Result, pairs []*pair, renderFailed map[string]bool, connect Connector, opts FleetOptions) []PairOutcome {
	if fleetName(repo) == "" {
		return nil // without a fleet name, another repo's apps cannot be told from ours
	}
	desired := map[string]bool{}
	for _, p := range pairs {
		desired[p.cluster+"/"+p.app] = true
	}
	var mu sync.Mutex
	var out []PairOutcome
	var wg sync.WaitGroup
	scope := opts.Clusters
	if len(scope) == 0 {
		for _, cr := range rendered.Clusters {
			scope = append(scope, cr.Cluster)
		}
	}
	for _, name := range scope {
		if renderFailed[name] {
			continue // never uninstall anything where rendering failed
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := connect(ctx, name)
			if err != nil {
				return // already reported by the cluster's pairs
			}
			apps, err := m.Inventories(ctx)
			if err != nil {
				mu.Lock()
				out = append(out, PairOutcome{Cluster: name, Removed: true, Err: err, Error: err.Error()})
				mu.Unlock()
				return
			}
			for _, app := range apps {
				if desired[name+"/"+app] {
					continue
				}
				if inv, err := m.Inventory(ctx, app); err != nil || inv == nil || inv.Fleet != fleetName(repo) {
					continue // applied by another fleet (or unreadable): not ours to remove
				}
				cs, err := m.Uninstall(ctx, app, opts.AllowMassPrune, opts.DryRun)
				o := PairOutcome{Cluster: name, App: app, ChangeSet: cs, Removed: true, Healthy: err == nil, Err: err}
				if err != nil {
					// err already names the cluster and the app.
					o.Err = fmt.Errorf("app no longer desired on this cluster: %w", err)
					o.Error = o.Err.Error()
				}
				if opts.Progress != nil && cs != nil {
					for _, c := range cs.Changes {
						mu.Lock()
						opts.Progress(c)
						mu.Unlock()
					}
				}
				mu.Lock()
				out = append(out, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// fleetName is the fleet's name from fleet.yaml ("" without one).
func fleetName(repo *fleet.Repo) string {
	if repo.Fleet == nil {
		return ""
	}
	return repo.Fleet.Metadata.Name
}
