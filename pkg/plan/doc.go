// Package plan compares the rendered fleet of two commits and describes what a
// change to the fleet repo would do to each cluster: per cluster and app, the
// objects added, changed and deleted, with unified diffs of their rendered YAML.
//
// [Compute] is pure: it takes two [render.Result] values (base and head) and
// returns a [Plan]. The fleetsync.dev/revision annotation is ignored, so a commit
// that changes nothing else plans no change. Secret data and stringData values
// never appear in a plan: they are shown as "***", and a changed, added or
// removed key is named in SecretKeys and marked "*** (changed)" in the diff.
// Render errors of either side are carried into the plan, per cluster and app.
//
// [Markdown] writes a plan for a pull-request comment (summary table first,
// identical changes on several clusters shown once, long diffs collapsed) and
// [JSON] writes the stable machine-readable form documented in docs/plan.md.
//
// The package does not read git, load or render fleets, or talk to clusters;
// cmd/fleetsync's plan verb does the reading and rendering.
package plan
