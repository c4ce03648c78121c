package reconcile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

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
	e := &WaveError{Cluster: p.cluster, App: p.app, Wave: -1}
	for _, q := range pairs {
		if q.app != p.app || q.wave >= p.wave {
			continue
		}
		if q.out.Err != nil || (!dryRun && !q.out.Healthy) {
			e.Unhealthy = append(e.Unhealthy, q.cluster)
			e.Wave = max(e.Wave, q.wave)
			if q.out.Err != nil {
				e.causes = append(e.causes, q.out.Err)
			}
		}
	}
	if len(e.Unhealthy) == 0 {
		return nil
	}
	sort.Strings(e.Unhealthy)
	return e
}

// WaveError says a pair was not applied because an earlier wave of its app is
// not healthy; its kind is its causes' (a cancelled earlier wave is cancelled).
type WaveError struct {
	Cluster, App string
	// Wave (from 0) is the last earlier wave that is not healthy, on Unhealthy.
	Wave      int
	Unhealthy []string
	causes    []error
}

func (e *WaveError) Error() string {
	return fmt.Sprintf("%s/%s: not applied: rollout stopped, wave %d is not healthy on %s", e.Cluster, e.App, e.Wave+1, strings.Join(e.Unhealthy, ", "))
}

// Unwrap returns the earlier pairs' errors.
func (e *WaveError) Unwrap() []error { return e.causes }
