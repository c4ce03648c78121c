package main

import (
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
	}
}

// reconciler returns the reconcile layer over these flags' cluster connections.
func (f *clusterFlags) reconciler() *reconcile.Reconciler {
	mo := apply.DefaultOptions()
	mo.Concurrency = f.concurrency
	mo.TakeOver = f.takeOver
	pool := reconcile.NewPool(reconcile.DialWith(f.connectOptions(), mo), reconcile.PoolOptions{})
	return reconcile.New(pool, render.New(render.Options{}), reconcile.Options{MaxParallelClusters: f.maxParallel})
}
