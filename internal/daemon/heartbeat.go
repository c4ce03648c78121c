package daemon

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// heartbeats runs one heartbeat goroutine per cluster: every
// HeartbeatInterval it reads the cluster's version and node readiness. A
// cluster that does not answer is marked down, its connection is dropped, and
// it is tried again with backoff (doubling from 1s up to the interval); it
// never delays another cluster.
type heartbeats struct {
	d      *Daemon
	mu     sync.Mutex
	cancel map[string]context.CancelFunc
	state  map[string]bool // cluster -> up; absent: not known yet (taken as up)
}

func newHeartbeats(d *Daemon) *heartbeats {
	return &heartbeats{d: d, cancel: map[string]context.CancelFunc{}, state: map[string]bool{}}
}

// ensure starts the heartbeats of new clusters and stops those of clusters
// that left the repo.
func (h *heartbeats) ensure(ctx context.Context, names []string, wg *sync.WaitGroup) {
	h.mu.Lock()
	want := map[string]bool{}
	var firsts []chan struct{}
	for _, n := range names {
		want[n] = true
		if _, ok := h.cancel[n]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		h.cancel[n] = cancel
		first := make(chan struct{})
		firsts = append(firsts, first)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.loop(cctx, n, first)
		}()
	}
	for n, cancel := range h.cancel {
		if !want[n] {
			cancel()
			delete(h.cancel, n)
			delete(h.state, n)
		}
	}
	h.mu.Unlock()
	// The first beats (run side by side) decide which clusters are in the
	// first cycle; a cluster slower than 15s is taken as up.
	deadline := time.After(15 * time.Second)
	for _, first := range firsts {
		select {
		case <-first:
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (h *heartbeats) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n, cancel := range h.cancel {
		cancel()
		delete(h.cancel, n)
	}
}

// up reports whether the cluster's last heartbeat succeeded.
func (h *heartbeats) up(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	up, known := h.state[name]
	return up || !known
}

func (h *heartbeats) loop(ctx context.Context, name string, first chan struct{}) {
	interval := h.d.opts.HeartbeatInterval
	backoff := time.Second
	for {
		err := h.beat(ctx, name)
		if first != nil {
			close(first)
			first = nil
		}
		wait := interval
		if err != nil {
			wait = min(backoff, interval)
			backoff = min(2*backoff, interval)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

var nodesGVR = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

// beat reads one cluster's version and nodes and records them.
func (h *heartbeats) beat(ctx context.Context, name string) error {
	d := h.d
	pool := d.opts.Reconciler.Pool()
	var version string
	var ready, total int
	m, err := pool.Get(ctx, name)
	if err == nil {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		version, err = m.Cluster().ServerVersion(bctx)
		if err == nil {
			ready, total, err = countNodes(bctx, m.Cluster().Dynamic.Resource(nodesGVR))
		}
		cancel()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		pool.Forget(name) // dial and probe again next time
	}
	h.mu.Lock()
	was, known := h.state[name]
	h.state[name] = err == nil
	h.mu.Unlock()
	d.mu.Lock()
	cs := d.clusterStatus(name)
	cs.Up = err == nil
	if err == nil {
		cs.Version, cs.NodesReady, cs.Nodes, cs.LastSeen, cs.Error = version, ready, total, time.Now().UTC(), ""
	} else {
		cs.Error = err.Error()
		if noCredentials(err) {
			cs.Error = "no credentials for this cluster"
		}
	}
	d.mu.Unlock()
	d.opts.Metrics.observeHeartbeat(name, err == nil, ready)
	switch {
	case err != nil && (was || !known):
		d.opts.Logger.Warn("cluster down", "cluster", name, "error", err)
	case err == nil && known && !was:
		d.opts.Logger.Info("cluster back", "cluster", name, "version", version)
		d.Trigger() // catch up now
	}
	return err
}

// countNodes counts the cluster's nodes and the Ready ones.
func countNodes(ctx context.Context, ri dynamic.ResourceInterface) (ready, total int, err error) {
	l, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, 0, err
	}
	for _, item := range l.Items {
		var n corev1.Node
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &n); err != nil {
			continue
		}
		total++
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready, total, nil
}
