// Package fleet builds and runs the local fleet: real etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok and distribution registry
// processes on 127.0.0.1, one control plane per cluster.
//
// Build compiles the binaries from the Go module proxy into
// os.UserCacheDir()/fleetsync/localfleet/<version key>/bin, through wrapper
// modules generated there (k8s.io/kubernetes never enters the product's
// go.mod). Up starts a fleet in a directory and writes its kubeconfigs,
// registries.json, env.sh, pid files and logs; Down stops it by pid.
//
// It does not run workloads: kwok fakes nodes and pod status only. It does
// not log; progress goes to the writer the caller gives.
package fleet
