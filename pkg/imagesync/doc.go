// Package imagesync mirrors the images of rendered manifests into a cluster's
// own registry and pins them by digest.
//
// Collect finds every image reference of pod-bearing objects (Pod, Deployment,
// StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and custom kinds whose pod
// template paths are declared), in containers, initContainers and
// ephemeralContainers. A Syncer resolves each reference to a digest at its
// source (once per reference), copies it to <mirror>/<source repository path>
// with go-containerregistry (whole indexes, every platform; blobs already there
// are skipped; bounded concurrency per registry; retries honouring 429 and
// Retry-After; the copy verified by digest), and Rewrite replaces the references
// with <mirror>/<path>:<tag>@sha256:<digest>.
//
// It does not decide which clusters or apps mirror (pkg/reconcile does), and
// does not log.
package imagesync
