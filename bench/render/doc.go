// Package renderbench measures pkg/render on a generated fleet against the
// process-per-render baseline (issue 4, "Performance"; issue 12, point 9:
// the fleetsync command as a process).
//
// [Generate] writes a fleet repo of N clusters x M apps: half Kustomize apps
// with one overlay per storage kind, half local Helm charts with values per
// region. The benchmarks (bench_test.go) render it with fleetsync and, in the
// same run, with one `kustomize build` or `helm template` process per
// (cluster, app) pair, using CLIs that [BuildTools] builds from the Go module
// proxy at pinned versions into os.UserCacheDir()/fleetsync/bench/bin. They
// report ratios and peak RSS; nothing passes or fails on timing.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/render/
//
// The package is benchmark tooling only; no product code imports it.
package renderbench
