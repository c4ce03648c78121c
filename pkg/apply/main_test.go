package apply_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north")) }

// counter counts the API requests going through a client-go transport.
type counter struct {
	rt      http.RoundTripper
	total   atomic.Int64
	writes  atomic.Int64 // POST/PUT/PATCH/DELETE that are not dry runs
	dryRuns atomic.Int64
	mu      sync.Mutex
	log     []string
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.total.Add(1)
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		if req.URL.Query().Get("dryRun") != "" {
			c.dryRuns.Add(1)
		} else {
			c.writes.Add(1)
			c.mu.Lock()
			c.log = append(c.log, req.Method+" "+req.URL.Path)
			c.mu.Unlock()
		}
	}
	return c.rt.RoundTrip(req)
}

func (c *counter) reset() {
	c.total.Store(0)
	c.writes.Store(0)
	c.dryRuns.Store(0)
	c.mu.Lock()
	c.log = nil
	c.mu.Unlock()
}

func (c *counter) writeLog() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

// env is one test's cluster connection, namespace and counting Manager.
type env struct {
	ns  string
	m   *apply.Manager
	cnt *counter
	dyn dynamic.Interface // an uncounted client for checks and out-of-band edits
	cfg *rest.Config
}

func newEnv(t testing.TB) *env { return newEnvQPS(t, 0, 0) }

func newEnvQPS(t testing.TB, qps float32, burst int) *env {
	t.Helper()
	f := testfleet.Get(t)
	ns := f.Namespace(t, "north")
	cfg := f.RESTConfig(t, "north")
	cnt := &counter{}
	counted := rest.CopyConfig(cfg)
	if qps != 0 {
		counted.QPS, counted.Burst = qps, burst
	}
	counted.Wrap(func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt })
	c, err := cluster.New("north", counted, cluster.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := apply.DefaultOptions()
	opts.InventoryNamespace = ns // each test keeps its inventories in its own namespace
	opts.PollInterval = 250 * time.Millisecond
	return &env{ns: ns, m: apply.NewManager(c, opts), cnt: cnt, dyn: dyn, cfg: cfg}
}

// objs decodes a YAML stream after formatting it with the namespace as %[1]s.
func objs(t testing.TB, ns, stream string) []*unstructured.Unstructured {
	return testfleet.Objects(t, ns, stream)
}

func ctxT(t testing.TB) context.Context { return testfleet.Context(t) }

func mustApply(t testing.TB, e *env, req apply.Request) *apply.ChangeSet {
	t.Helper()
	cs, err := e.m.Apply(ctxT(t), req)
	if err != nil {
		t.Fatalf("apply %s: %v", req.App, err)
	}
	return cs
}

func wantAction(t testing.TB, cs *apply.ChangeSet, kind, ns, name string, want apply.Action) apply.Change {
	t.Helper()
	c, ok := cs.Get(kind, ns, name)
	if !ok {
		t.Fatalf("no change for %s/%s/%s in %+v", kind, ns, name, cs.Changes)
	}
	if c.Action != want {
		t.Fatalf("%s/%s/%s: action %s (err %v), want %s", kind, ns, name, c.Action, c.Err, want)
	}
	return c
}
