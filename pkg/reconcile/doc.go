// Package reconcile composes the pipeline's stages for a fleet: it renders the
// clusters in scope (with each reachable cluster's Kubernetes version), builds
// every (cluster, app) pair's apply request through one constructor (Request),
// and drives apply, dry-run, diff, drift correction and the removal of apps that
// left a cluster, clusters in parallel. The CLI verbs and the daemon call it, so
// they cannot disagree.
//
// It does not talk to git (pkg/source does; Open is a convenience over it), does
// not decide cross-cluster rollouts on its own state (waves are judged from this
// run's outcomes; pkg/rollout takes that over), and keeps no state between calls
// except live cluster connections (Pool): everything else is in the clusters.
package reconcile
