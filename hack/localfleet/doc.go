// Command localfleet builds (once, cached under the user cache dir) and runs
// a fleet of real Kubernetes control planes on 127.0.0.1 for tests and the
// demo: one shared etcd, per cluster kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (3 fake Ready nodes), and plain-HTTP registries (a
// seeded source and one mirror per cluster).
//
//	go run ./hack/localfleet up --dir DIR --clusters north,south,east
//	go run ./hack/localfleet status --dir DIR
//	go run ./hack/localfleet down --dir DIR
//
// It does not run kubelets or containers: kwok only fakes node and pod
// status. It is test tooling, not part of the fleetsync product; see
// docs/localfleet.md.
package main
