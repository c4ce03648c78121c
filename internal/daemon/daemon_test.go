package daemon_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/gitserver"
	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/internal/testtree"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/source"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north", "south", "east")) }

var clusters = []string{"north", "south", "east"}

// world is one test's fleet repo (served by a real git server on loopback),
// namespace (on every cluster: it holds the app and the inventories) and
// daemon.
type world struct {
	t       testing.TB
	settled atomic.Int32 // calls of Options.Settled
	ns, app string
	work    string // the repo's work tree
	url     string
	dyn     map[string]dynamic.Interface
	d       *daemon.Daemon
	hook    http.Handler
	secret  []byte

	proxies map[string]*tcpProxy
	apps    int
	drift   string

	mu      sync.Mutex
	applied []string // cluster of each Deployment write, in order
	writes  []timed  // each Deployment write
	gates   []timed  // each app's decision to apply a wave after the first
}

// timed is when something happened to an app (on a cluster).
type timed struct {
	at           time.Time
	cluster, app string
}

// event records the rollout steps that open a later wave.
func (w *world) event(e reconcile.RolloutEvent) {
	trace("event %s %s %s", e.App, e.Phase, e.Message)
	if e.Wave > 0 && strings.Contains(e.Message, ": applying ") {
		w.mu.Lock()
		w.gates = append(w.gates, timed{at: time.Now(), app: e.App})
		w.mu.Unlock()
	}
}

var nsGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
var deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// newWorld starts a daemon on the three clusters; the clusters in proxied
// are reached through a TCP proxy the test can cut (a cluster going down).
func newWorld(t *testing.T, proxied ...string) *world {
	t.Helper()
	return newWorldWith(t, worldOptions{proxied: proxied})
}

// worldOptions shape a world: clusters behind a proxy, more apps, a
// request counter on every cluster connection.
type worldOptions struct {
	proxied []string
	apps    int // apps in the repo (default 1)
	count   *requests
	// drift is the apps' spec.drift, with the daemon's drift check every
	// driftInterval (default: the daemon's).
	drift         string
	driftInterval time.Duration
}

func newWorldWith(t testing.TB, o worldOptions) *world {
	t.Helper()
	gittest.SkipWithoutGit(t)
	f := testfleet.Get(t)
	w := &world{t: t, dyn: map[string]dynamic.Interface{}, secret: []byte("s3cret"), apps: max(o.apps, 1), drift: o.drift}
	w.ns = f.Namespace(t, "north")
	w.app = "web-" + w.ns[len(w.ns)-5:]
	for _, c := range clusters {
		w.dyn[c] = dynamic.NewForConfigOrDie(f.RESTConfig(t, c))
		if c != "north" {
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": w.ns}}}
			if _, err := w.dyn[c].Resource(nsGVR).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.dyn[c].Resource(nsGVR).Delete(context.Background(), w.ns, metav1.DeleteOptions{}) })
		}
	}
	root := t.TempDir()
	w.work = filepath.Join(root, "fleet")
	gittest.Init(t, w.work)
	w.write("v1", false)
	gittest.CommitAll(t, w.work, "v1")
	h, err := gitserver.HTTPHandler(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	w.url = srv.URL + "/fleet/.git"

	w.proxies = map[string]*tcpProxy{}
	for _, c := range o.proxied {
		w.proxies[c] = newTCPProxy(t, f.RESTConfig(t, c).Host)
	}
	dial := func(ctx context.Context, name string) (*apply.Manager, error) {
		cfg := f.RESTConfig(t, name)
		if p := w.proxies[name]; p != nil {
			cfg.Host = "https://" + p.addr
		}
		if o.count != nil {
			cfg.Wrap(o.count.wrap(name))
		}
		c, err := cluster.New(name, cfg, cluster.ConnectOptions{})
		if err != nil {
			return nil, err
		}
		opts := apply.DefaultOptions()
		opts.InventoryNamespace = w.ns
		opts.PollInterval = 200 * time.Millisecond
		return apply.NewManager(c, opts), nil
	}
	rec := reconcile.New(reconcile.NewPool(dial, reconcile.PoolOptions{Attempts: 1}), render.New(render.Options{}), reconcile.Options{PollInterval: 200 * time.Millisecond})
	src, err := source.Open(context.Background(), w.url, source.Options{Ref: "main", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	w.d = daemon.New(daemon.Options{
		Source: src, Ref: "main", Reconciler: rec,
		Interval: time.Hour, HeartbeatInterval: time.Second, Debounce: 50 * time.Millisecond, DriftInterval: o.driftInterval,
		Request: reconcile.RequestOptions{Events: w.event, Progress: func(c apply.Change) {
			trace("change %s %s %s %s", c.Cluster, c.App, c.Object.Name, c.Action)
			if c.Object.Kind == "Deployment" && (c.Action == apply.Created || c.Action == apply.Configured) {
				w.mu.Lock()
				w.applied = append(w.applied, c.Cluster)
				w.writes = append(w.writes, timed{at: time.Now(), cluster: c.Cluster, app: c.App})
				w.mu.Unlock()
			}
		}},
		Metrics: daemon.NewMetrics(),
		Logger:  traceLogger(),
		Settled: func() { w.settled.Add(1) },
	})
	w.hook = w.d.GitHubWebhook(w.secret)
	// Once Run has returned (the cleanup below runs first), nothing it
	// started may still run: heartbeats, rollouts, fetches. Idle keep-alive
	// connections of the clusters' transports outlive it by design.
	leakOpts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		// the test's own proxies, closed after this check
		goleak.IgnoreAnyFunction("github.com/fleetsync/fleetsync/internal/daemon_test.(*tcpProxy).serve.func1"),
		goleak.IgnoreAnyFunction("github.com/fleetsync/fleetsync/internal/daemon_test.(*tcpProxy).serve.func1.1"),
		goleak.IgnoreAnyFunction("github.com/fleetsync/fleetsync/internal/daemon_test.(*tcpProxy).serve.func1.2"),
	}
	t.Cleanup(func() {
		if err := goleak.Find(leakOpts...); err != nil {
			t.Errorf("goroutines left running after Run returned: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return 30s after its context was cancelled")
		}
	})
	return w
}

// write writes the fleet repo: three clusters, one app rolled out to north
// first; tag is the image tag, bad makes its pods never ready.
func (w *world) write(tag string, bad bool) {
	w.t.Helper()
	podAnn := ""
	if bad {
		podAnn = "\n      annotations: {localfleet.fleetsync.dev/never-ready: \"true\"}"
	}
	files := map[string]string{
		"fleet.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: " + w.ns + "}\n",
		"apps/" + w.app + "/app.yaml": fmt.Sprintf(`apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: %s}
spec:
  namespace: %s
  source: {kustomize: {path: manifests}}
  targets: {clusterSelector: {}}
  rollout:
    healthTimeout: 8s
    autoRollback: true
    waves:
      - clusterSelector: {matchLabels: {region: north}}
      - clusterSelector: {}
%s`, w.app, w.ns, driftLine(w.drift)),
		"apps/" + w.app + "/manifests/deploy.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}%s
    spec:
      containers: [{name: web, image: "example.invalid/web:%s"}]
`, podAnn, tag),
	}
	for i := 1; i < w.apps; i++ {
		name := fmt.Sprintf("%s-%02d", w.app, i)
		files["apps/"+name+"/app.yaml"] = strings.Replace(files["apps/"+w.app+"/app.yaml"], "name: "+w.app+"}", "name: "+name+"}", 1)
		files["apps/"+name+"/manifests/deploy.yaml"] = strings.Replace(files["apps/"+w.app+"/manifests/deploy.yaml"], "name: web}", "name: web-"+fmt.Sprint(i)+"}", 1)
	}
	for _, c := range clusters {
		files["clusters/"+c+".yaml"] = "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: " + c + ", labels: {region: " + c + "}}\n"
	}
	testtree.Write(w.t, w.work, files)
}

// webhook posts a GitHub push event signed with secret.
func (w *world) webhook(secret []byte) int {
	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	req := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("X-GitHub-Event", "push")
	rec := httptest.NewRecorder()
	w.hook.ServeHTTP(rec, req)
	return rec.Code
}

// image returns the image of the Deployment on a cluster ("" when absent).
func (w *world) image(c string) string {
	u, err := w.dyn[c].Resource(deployGVR).Namespace(w.ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		return ""
	}
	img, _ := cs[0].(map[string]any)["image"].(string)
	return img
}

// eventually polls cond every 100ms until it holds, failing after limit.
func (w *world) eventually(limit time.Duration, what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			s := w.d.Status()
			w.t.Fatalf("%s: not after %s; status: source %+v clusters %+v rollouts %+v", what, limit, s.Source, s.Clusters, s.Rollouts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *world) app0(c string) daemon.AppStatus {
	s := w.d.Status()
	if cs := s.Cluster(c); cs != nil {
		for _, a := range cs.Apps {
			if a.Name == w.app {
				return a
			}
		}
	}
	return daemon.AppStatus{}
}

// The daemon applies the repo, rolls a commit out north first on a good
// webhook (a bad signature changes nothing), keeps the last good revision
// when a commit is invalid, and rolls a bad release back at north without
// south and east ever getting it.
func TestDaemonRollsOutCommits(t *testing.T) {
	w := newWorld(t)
	v1 := gittest.Run(t, w.work, "rev-parse", "HEAD")
	w.eventually(60*time.Second, "v1 everywhere", func() bool {
		for _, c := range clusters {
			if a := w.app0(c); w.image(c) != "example.invalid/web:v1" || a.Sync != daemon.SyncSynced || a.Health != daemon.HealthHealthy || a.Revision != v1 {
				return false
			}
		}
		return true
	})
	if s := w.d.Status(); s.Source.Revision != v1 || !w.d.Ready() {
		t.Fatalf("status source %+v, ready %v", s.Source, w.d.Ready())
	}
	// The rollouts have ended: the daemon said so (run gives memory back then).
	w.eventually(10*time.Second, "Settled called", func() bool { return w.settled.Load() > 0 })
	st := w.d.Status()
	for _, c := range clusters {
		if cs := st.Cluster(c); cs == nil || !cs.Up || cs.Nodes != 3 || cs.NodesReady != 3 || !strings.HasPrefix(cs.Version, "v1.") {
			t.Fatalf("heartbeat of %s: %+v", c, cs)
		}
	}

	// v2: a bad signature is refused and fetches nothing; a good one rolls
	// v2 out, north first.
	w.write("v2", false)
	v2 := gittest.CommitAll(t, w.work, "v2")
	w.mu.Lock()
	w.applied = nil
	w.mu.Unlock()
	if code := w.webhook([]byte("wrong")); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	time.Sleep(500 * time.Millisecond)
	if s := w.d.Status(); s.Source.Fetched != v1 {
		t.Fatalf("a bad signature fetched: %+v", s.Source)
	}
	start := time.Now()
	if code := w.webhook(w.secret); code != http.StatusAccepted {
		t.Fatalf("good signature: %d, want 202", code)
	}
	w.eventually(60*time.Second, "v2 everywhere", func() bool {
		for _, c := range clusters {
			if w.image(c) != "example.invalid/web:v2" || w.app0(c).Revision != v2 {
				return false
			}
		}
		return true
	})
	t.Logf("webhook -> v2 applied and healthy on 3 clusters: %s", time.Since(start).Round(time.Millisecond))
	w.mu.Lock()
	order := slices.Clone(w.applied)
	w.mu.Unlock()
	if len(order) != 3 || order[0] != "north" {
		t.Fatalf("Deployment writes in order %v, want north first, then south and east", order)
	}

	// An invalid commit: nothing applied, the last good revision in force.
	if err := os.WriteFile(filepath.Join(w.work, "apps", w.app, "app.yaml"), []byte("kind: App\nspec: [not valid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := gittest.CommitAll(t, w.work, "broken")
	w.d.Trigger()
	w.eventually(30*time.Second, "the invalid commit reported", func() bool {
		s := w.d.Status()
		return s.Source.Fetched == broken && s.Source.Revision == v2 && strings.Contains(s.Source.Error, "revision "+broken[:7])
	})

	// A bad release (never-ready pods): halted at north and rolled back
	// there; south and east keep v2.
	w.write("v3", true)
	gittest.CommitAll(t, w.work, "bad v3")
	w.d.Trigger()
	w.eventually(90*time.Second, "v3 rolled back at north", func() bool {
		return w.image("north") == "example.invalid/web:v2" && w.app0("north").Sync == daemon.SyncRolledBack
	})
	for _, c := range []string{"south", "east"} {
		if img := w.image(c); img != "example.invalid/web:v2" {
			t.Fatalf("%s got %s, want v2: a failed canary must never reach later waves", c, img)
		}
	}
	if s := w.d.Status(); len(s.Rollouts) != 1 || !strings.Contains(string(s.Rollouts[0].Phase), "RolledBack") {
		t.Fatalf("rollouts %+v, want the app rolled back", s.Rollouts)
	}
}

// tcpProxy forwards a loopback port to an API server; down closes the
// listener and every connection, up listens on the same port again.
type tcpProxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, target: u.Host}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(b, c); _ = b.Close() }()
			go func() { _, _ = io.Copy(c, b); _ = c.Close() }()
		}
	}()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// A cluster that goes down is marked down, never delays the others, and
// catches up when it is back.
func TestDaemonClusterDown(t *testing.T) {
	w := newWorld(t, "east")
	w.eventually(60*time.Second, "v1 everywhere", func() bool {
		for _, c := range clusters {
			if w.image(c) != "example.invalid/web:v1" {
				return false
			}
		}
		return true
	})
	w.proxies["east"].down()
	w.eventually(15*time.Second, "east marked down", func() bool {
		st := w.d.Status()
		cs := st.Cluster("east")
		return cs != nil && !cs.Up && cs.Error != ""
	})
	w.write("v2", false)
	v2 := gittest.CommitAll(t, w.work, "v2")
	start := time.Now()
	w.d.Trigger()
	w.eventually(60*time.Second, "v2 on north and south while east is down", func() bool {
		return w.image("north") == "example.invalid/web:v2" && w.image("south") == "example.invalid/web:v2" && w.app0("south").Revision == v2
	})
	t.Logf("v2 on north and south with east down: %s", time.Since(start).Round(time.Millisecond))
	w.proxies["east"].up()
	w.eventually(60*time.Second, "east back and caught up", func() bool {
		st := w.d.Status()
		cs := st.Cluster("east")
		return cs != nil && cs.Up && w.image("east") == "example.invalid/web:v2"
	})
}

// FLEETSYNC_DAEMON_TRACE=1 writes the daemon's log, every object change and
// rollout step, and every API request (bench) to stderr with times: where a
// figure of BenchmarkDaemon comes from.
var tracing = os.Getenv("FLEETSYNC_DAEMON_TRACE") != ""

func trace(format string, args ...any) {
	if tracing {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
	}
}

func traceLogger() *slog.Logger {
	if !tracing {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// A cycle never waits for a rollout: while app A soaks on north for an hour,
// a commit to app B rolls B out on every cluster, and a newer commit to A
// supersedes A's rollout in flight (cancelled, never rolled back) without
// south or east ever getting the superseded revision.
func TestDaemonRolloutsInFlight(t *testing.T) {
	w := newWorldWith(t, worldOptions{apps: 2})
	appA, appB := w.app, w.app+"-01"
	w.eventually(60*time.Second, "v1 everywhere", func() bool { return w.synced(6, "") })
	soak := func() {
		p := filepath.Join(w.work, "apps", appA, "app.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(b), "matchLabels: {region: north}}", "matchLabels: {region: north}}\n        soakTime: 1h", 1)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image := func(c, name string) string {
		u, err := w.dyn[c].Resource(deployGVR).Namespace(w.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		img, _ := cs[0].(map[string]any)["image"].(string)
		return img
	}
	// A's v2 (and B's, which has no soak) goes out; A then soaks on north.
	w.write("v2", false)
	soak()
	gittest.CommitAll(t, w.work, "v2 with a soak for A")
	w.webhook(w.secret)
	w.eventually(60*time.Second, "B's v2 everywhere, A's v2 soaking on north", func() bool {
		s := w.d.Status()
		return image("north", "web") == "example.invalid/web:v2" && image("east", "web-1") == "example.invalid/web:v2" &&
			image("south", "web-1") == "example.invalid/web:v2" && slices.Contains(s.InFlight, appA)
	})
	if image("south", "web") != "example.invalid/web:v1" || image("east", "web") != "example.invalid/web:v1" {
		t.Fatal("A's v2 left north during its soak")
	}
	// B changes again: it goes out although A's rollout is still in flight.
	p := filepath.Join(w.work, "apps", appB, "manifests", "deploy.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "web:v2", "web:v2b", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.CommitAll(t, w.work, "B v2b")
	w.webhook(w.secret)
	w.eventually(60*time.Second, "B's v2b everywhere while A soaks", func() bool {
		return image("south", "web-1") == "example.invalid/web:v2b" && image("east", "web-1") == "example.invalid/web:v2b" &&
			slices.Contains(w.d.Status().InFlight, appA)
	})
	// A's v3 supersedes its v2 in flight: north gets v3 (no rollback to v1
	// on the way), and south and east never get v2.
	w.write("v3", false)
	soak()
	p2 := filepath.Join(w.work, "apps", appB, "manifests", "deploy.yaml")
	if err := os.WriteFile(p2, []byte(strings.Replace(string(b), "web:v2", "web:v2b", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.CommitAll(t, w.work, "A v3")
	w.mu.Lock()
	w.writes = nil
	w.mu.Unlock()
	w.webhook(w.secret)
	w.eventually(60*time.Second, "A's v3 on north", func() bool { return image("north", "web") == "example.invalid/web:v3" })
	if image("south", "web") != "example.invalid/web:v1" || image("east", "web") != "example.invalid/web:v1" {
		t.Fatal("south or east got A's superseded v2")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wr := range w.writes {
		if wr.app == appA && wr.cluster != "north" {
			t.Fatalf("A written on %s during its soak on north", wr.cluster)
		}
	}
}

func driftLine(mode string) string {
	if mode == "" {
		return ""
	}
	return "  drift: " + mode + "\n"
}

// TestDaemonCorrectsDrift: with drift: correct, a person's kubectl scale of
// a managed Deployment is put back by the daemon's drift check (not only by
// the next commit), and the drift is counted while it lasts.
func TestDaemonCorrectsDrift(t *testing.T) {
	w := newWorldWith(t, worldOptions{drift: "correct", driftInterval: time.Second})
	w.eventually(60*time.Second, "v1 everywhere", func() bool {
		for _, c := range clusters {
			if w.image(c) != "example.invalid/web:v1" {
				return false
			}
		}
		return true
	})
	replicas := func() int64 {
		u, err := w.dyn["south"].Resource(deployGVR).Namespace(w.ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return -1
		}
		n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		return n
	}
	// kubectl scale: an update of the scale subresource by another manager.
	if _, err := w.dyn["south"].Resource(deployGVR).Namespace(w.ns).Patch(context.Background(), "web", types.MergePatchType,
		[]byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{FieldManager: "kubectl-scale"}, "scale"); err != nil {
		t.Fatal(err)
	}
	if n := replicas(); n != 3 {
		t.Fatalf("replicas after the scale: %d", n)
	}
	w.eventually(30*time.Second, "the scale undone by the drift check", func() bool { return replicas() == 1 })
}
