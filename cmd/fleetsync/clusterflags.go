package main

import (
	"context"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
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
}

// BindFlags adds the cluster connection flags.
func (f *clusterFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfigDir, "kubeconfig-dir", "", "directory holding <cluster>.kubeconfig files (looked at first)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig whose context named after each cluster is used (default $KUBECONFIG, ~/.kube/config); its current context is the management cluster holding fleetsync-cluster-<name> Secrets")
	fs.StringVar(&f.namespace, "namespace", cluster.DefaultNamespace, "namespace of the fleetsync-cluster-<name> kubeconfig Secrets on the management cluster")
	fs.BoolVar(&f.inCluster, "in-cluster", false, "agent mode: the cluster is the one fleetsync runs in (in-cluster config, or --kubeconfig's current context)")
	fs.Float32Var(&f.qps, "kube-qps", cluster.DefaultQPS, "requests per second to each API server")
	fs.IntVar(&f.burst, "kube-burst", cluster.DefaultBurst, "request burst to each API server")
	fs.IntVar(&f.concurrency, "apply-concurrency", apply.DefaultOptions().Concurrency, "objects applied at once per cluster")
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

// manager connects to a cluster and returns its apply Manager.
func (f *clusterFlags) manager(ctx context.Context, name string) (*apply.Manager, error) {
	c, err := cluster.Connect(ctx, name, f.connectOptions())
	if err != nil {
		return nil, err
	}
	opts := apply.DefaultOptions()
	opts.Concurrency = f.concurrency
	return apply.NewManager(c, opts), nil
}

// managerSet connects to each cluster once (connections to different clusters
// proceed in parallel) and remembers the outcome.
type managerSet struct {
	flags *clusterFlags
	mu    sync.Mutex
	conns map[string]*managerConn
}

// managerConn is one cluster's connection, made once.
type managerConn struct {
	once sync.Once
	m    *apply.Manager
	err  error
}

func newManagerSet(f *clusterFlags) *managerSet {
	return &managerSet{flags: f, conns: map[string]*managerConn{}}
}

// get returns the cluster's Manager (an apply.Connector).
func (s *managerSet) get(ctx context.Context, name string) (*apply.Manager, error) {
	s.mu.Lock()
	c, ok := s.conns[name]
	if !ok {
		c = &managerConn{}
		s.conns[name] = c
	}
	s.mu.Unlock()
	c.once.Do(func() { c.m, c.err = s.flags.manager(ctx, name) })
	return c.m, c.err
}

// kubeVersions asks the reachable clusters their version, in parallel, so that
// Helm renders with the right .Capabilities; unreachable ones are left out (they
// fail later, with their error, when applied).
func (s *managerSet) kubeVersions(ctx context.Context, names []string) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := s.get(ctx, n)
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			v, err := m.Cluster().ServerVersion(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			out[n] = v
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
