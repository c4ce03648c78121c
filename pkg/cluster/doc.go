// Package cluster connects fleetsync to member clusters.
//
// Connect finds a cluster's credentials by the rules of the design, in order: a
// kubeconfig file DIR/<cluster>.kubeconfig (--kubeconfig-dir); a context named after
// the cluster in --kubeconfig or $KUBECONFIG; a Secret fleetsync-cluster-<name>
// (key "kubeconfig") in the daemon's namespace of the management cluster (the
// current context, or the in-cluster config). An agent (InCluster) uses the
// in-cluster config, or --kubeconfig's current context when one is given.
//
// A *Cluster carries the rest.Config, a dynamic client, and a cached discovery
// RESTMapper that can be reset after CRDs are established. The package does not
// apply, watch or log anything.
package cluster
