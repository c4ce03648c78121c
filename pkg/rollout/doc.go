// Package rollout decides an app's cross-cluster rollout: given the strategy
// (waves with maxConcurrent, maxFailures, soakTime; a health deadline;
// autoRollback), the target revision and what is observed on each cluster
// (applied revision and digest, health and since when, reachability, the
// revisions held after a failure), Decide returns what to do now: apply the
// target on some clusters, roll some back to their last healthy revision, wait,
// or nothing more (done, halted, rolled back), with the reason.
//
// It is a pure function: no clock (Now is an input), no I/O, no state of its own.
// Everything it needs is observed in the clusters (inventories and live health),
// so a rerun, a restart or another replica decides exactly the same from the
// same facts. pkg/reconcile observes the facts and carries the decisions out.
package rollout
