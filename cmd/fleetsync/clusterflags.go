package main

import (
	"context"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// clusterFlags say where cluster credentials are found (see DESIGN.md) and how
// hard fleetsync may talk to the API servers.
type clusterFlags struct {
	kubeconfigDir string
	kubeconfig    string
	namespace     string
	inCluster     bool
	qps           float32
	burst         int
	concurrency   int
	maxParallel   int
	takeOver      []string
	imageMirror   bool
	images        imageFlags
	// wrap wraps each cluster's transport (the daemon's request metrics).
	wrap func(cluster string) func(http.RoundTripper) http.RoundTripper
}

// BindFlags adds the cluster connection flags.
func (f *clusterFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfigDir, "kubeconfig-dir", "", "directory holding <cluster>.kubeconfig files (looked at first)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig whose context named after each cluster is used (default $KUBECONFIG, ~/.kube/config); its current context is the management cluster holding fleetsync-cluster-<name> Secrets")
	fs.StringVar(&f.namespace, "namespace", cluster.DefaultNamespace, "namespace of the fleetsync-cluster-<name> kubeconfig Secrets on the management cluster")
	fs.BoolVar(&f.inCluster, "in-cluster", false, "agent mode: the cluster is the one fleetsync runs in (in-cluster config, or --kubeconfig's current context)")
	fs.Float32Var(&f.qps, "kube-qps", cluster.DefaultQPS, "requests per second to each API server")
	fs.IntVar(&f.burst, "kube-burst", cluster.DefaultBurst, "request burst to each API server")
	fs.IntVar(&f.concurrency, "apply-concurrency", apply.DefaultOptions().Concurrency, "objects of one stage applied at once per cluster (within --kube-qps)")
	fs.IntVar(&f.maxParallel, "max-parallel-clusters", 16, "clusters worked on at once")
	fs.BoolVar(&f.imageMirror, "image-mirror", true, "mirror the images of apps with imageMirror: true into each cluster's spec.registry and pin them by digest (false: apply references as written)")
	f.images.BindFlags(fs)
	fs.StringSliceVar(&f.takeOver, "take-over-field-managers", apply.DefaultTakeOver,
		"field managers of imperative changes (kubectl edit, patch, scale, ...) whose fields fleetsync takes over, so that apply undoes them; empty for none")
}

func (f *clusterFlags) connectOptions() cluster.ConnectOptions {
	return cluster.ConnectOptions{
		KubeconfigDir: f.kubeconfigDir,
		Kubeconfig:    f.kubeconfig,
		Namespace:     f.namespace,
		InCluster:     f.inCluster,
		QPS:           f.qps,
		Burst:         f.burst,
		Wrap:          f.wrap,
	}
}

// reconciler returns the reconcile layer over these flags' cluster connections.
func (f *clusterFlags) reconciler() (*reconcile.Reconciler, error) {
	return f.reconcilerWith(reconcile.PoolOptions{})
}

// reconcilerWith is reconciler with the Pool's retry options (the daemon
// tries once per cycle: its heartbeats retry with backoff).
func (f *clusterFlags) reconcilerWith(po reconcile.PoolOptions) (*reconcile.Reconciler, error) {
	mo := apply.DefaultOptions()
	mo.Concurrency = f.concurrency
	mo.TakeOver = f.takeOver
	pool := reconcile.NewPool(reconcile.DialWith(f.connectOptions(), mo), po)
	opts := reconcile.Options{MaxParallelClusters: f.maxParallel}
	if f.imageMirror {
		io, err := f.images.options()
		if err != nil {
			return nil, err
		}
		opts.Images = io
	}
	return reconcile.New(pool, render.New(render.Options{}), opts), nil
}

// clusterRun is what the verbs that talk to clusters share: the reconcile
// layer over the connection flags and the desired state of --repo for the
// selected clusters (with the repo's history for rollbacks when it has one).
// Call the returned close when done.
func clusterRun(ctx context.Context, src *sourceFlags, conn *clusterFlags, repoArg string, clusters []string) (*reconcile.Reconciler, *reconcile.Desired, func(), error) {
	repo, revisions, closeRepo, err := src.loadWithHistory(ctx, repoArg)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := conn.reconciler()
	if err == nil {
		var d *reconcile.Desired
		if d, err = rec.Desired(ctx, repo, clusters); err == nil {
			d.Revisions = revisions
			return rec, d, closeRepo, nil
		}
	}
	closeRepo()
	return nil, nil, nil, err
}
