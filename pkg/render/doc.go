// Package render turns one fleet repo snapshot into the exact Kubernetes
// objects each (cluster, app) pair should run.
//
// Kustomize sources are built in-process with krusty on an in-memory copy of
// the repo, so nothing outside the repo is readable (symlinks that leave the
// repo are refused, remote bases are refused unless allowed). Helm charts are
// rendered client-only with the cluster's Kubernetes version. Customizations,
// post-render patches, storage class mapping, ScalePolicy objects and the
// fleetsync label/annotation are applied per cluster, and the output is
// ordered and byte-identical for identical input.
//
// A Renderer caches renders by content: identical inputs are rendered once
// and reused across clusters, and a later Render of another commit re-renders
// only the pairs whose inputs (files read, values, patches, versions) changed.
//
// The package does not talk to clusters, does not mirror images and does not
// log; errors are returned per pair in the Result.
package render
