package reconcile

import (
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
