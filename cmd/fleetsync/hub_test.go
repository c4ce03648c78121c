package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// Three agents (north, south, east), each `fleetsync run --cluster C
// --hub-kubeconfig H` as a process of its own with its own cluster's
// credentials only, and a hub cluster: a commit goes out north first (south
// and east wait for north's state on the hub), and a release whose pods
// never become ready stops at north, is rolled back there by north's agent,
// and is never applied by the other agents; the hub's objects show it.
func TestAgentsWithHub(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	app := r.app(t, "hub", canarySpec, "")
	r.commit(t, "v1")
	url := serveRepo(t, r.dir)

	hubCfg := f.RESTConfig(t, "hub")
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": hub.Namespace}}}
	if _, err := dynamic.NewForConfigOrDie(hubCfg).Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).
		Apply(context.Background(), hub.Namespace, ns, metav1.ApplyOptions{FieldManager: "test", Force: true}); err != nil {
		t.Fatal(err)
	}
	// States left on the hub by earlier tests (TestDeployHubRBAC publishes
	// north's) are not this fleet's agents'.
	for _, c := range []string{"north", "south", "east"} {
		err := kubernetes.NewForConfigOrDie(hubCfg).CoreV1().ConfigMaps(hub.Namespace).Delete(context.Background(), hub.ObjectName(c), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"north", "south", "east"} {
		own := t.TempDir() // the agent's credentials: its own cluster's only
		b, err := os.ReadFile(f.Kubeconfig(c))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(own, c+".kubeconfig"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		startDaemon(t, "--cluster", c, "--kubeconfig-dir", own, "--kubeconfig", filepath.Join(own, "absent"), "--hub-kubeconfig", f.Kubeconfig("hub"),
			"--repo", url, "--branch", "main", "--listen", freeAddr(t), "--interval", "1s", "--heartbeat-interval", "1s",
			"--log-format", "json", "--git-cache-dir", t.TempDir())
	}
	// version of the app's Deployment on a cluster: its pod template's
	// "version" annotation ("" for v1, "-" when absent).
	clients := map[string]kubernetes.Interface{}
	for _, c := range []string{"north", "south", "east"} {
		clients[c] = kubernetes.NewForConfigOrDie(f.RESTConfig(t, c))
	}
	version := func(c string) string {
		d, err := clients[c].AppsV1().Deployments(app).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return "-"
		}
		return d.Spec.Template.Annotations["version"]
	}
	// seen records when each cluster first showed each version.
	var mu sync.Mutex
	seen := map[string]map[string]time.Time{}
	watch := func(until func(now map[string]string) bool, limit time.Duration, what string) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			now := map[string]string{}
			for c := range clients {
				v := version(c)
				now[c] = v
				mu.Lock()
				if seen[v] == nil {
					seen[v] = map[string]time.Time{}
				}
				if _, ok := seen[v][c]; !ok {
					seen[v][c] = time.Now()
				}
				mu.Unlock()
			}
			if until(now) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %s (versions %v)", what, limit, now)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	everywhere := func(v string) func(map[string]string) bool {
		return func(now map[string]string) bool { return now["north"] == v && now["south"] == v && now["east"] == v }
	}
	watch(everywhere(""), 90*time.Second, "v1 everywhere")

	r.app(t, "hub", canarySpec, `version: "2"`)
	v2 := r.commit(t, "v2")
	watch(everywhere("2"), 90*time.Second, "v2 everywhere")
	mu.Lock()
	for _, c := range []string{"south", "east"} {
		if !seen["2"]["north"].Before(seen["2"][c]) {
			t.Errorf("v2 reached %s at %s, not after north (%s): the canary wave was not waited for", c, seen["2"][c].Format(time.StampMilli), seen["2"]["north"].Format(time.StampMilli))
		}
	}
	mu.Unlock()

	// A release that never becomes ready: north's agent applies it, it fails
	// after the health timeout, and north's agent rolls it back; south's and
	// east's never apply it.
	r.app(t, "hub", canarySpec, `version: "3", localfleet.fleetsync.dev/never-ready: "true"`)
	v3 := r.commit(t, "v3 never ready")
	watch(func(now map[string]string) bool { return now["north"] == "3" }, 60*time.Second, "v3 on north")
	watch(func(now map[string]string) bool { return now["north"] == "2" }, 90*time.Second, "north rolled back to v2")
	quiet := time.Now().Add(3 * time.Second) // the other agents have time to act on it
	watch(func(map[string]string) bool { return time.Now().After(quiet) }, 10*time.Second, "3 s after the rollback")
	if _, ok := seen["3"]["south"]; ok {
		t.Error("south applied the release that failed at north")
	}
	if _, ok := seen["3"]["east"]; ok {
		t.Error("east applied the release that failed at north")
	}
	h, err := hub.New(hubCfg)
	if err != nil {
		t.Fatal(err)
	}
	agents, _, err := h.Agents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, hd := range agents["north"].Apps[app].Holds {
		held = held || hd.Revision == v3
	}
	if !held || len(agents) < 3 {
		t.Fatalf("the hub's view: north's %s holds %+v (want %s held), %d agents", app, agents["north"].Apps[app].Holds, v3[:7], len(agents))
	}

	// The hub view: `fleetsync serve` (a process, read-only on the hub) and
	// `fleetsync status --hub-kubeconfig` show the release rolled back at
	// north, and south and east on v2.
	addr := freeAddr(t)
	startVerb(t, "serve", "--hub-kubeconfig", f.Kubeconfig("hub"), "--listen", addr, "--poll", "1s", "--log-format", "json")
	var st *daemon.Status
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		st, err = getStatus(addr)
		if err == nil && st.Mode == "hub" && appOn(st, "north", app).Sync == daemon.SyncRolledBack &&
			appOn(st, "south", app).Revision == v2 && appOn(st, "east", app).Revision == v2 && appOn(st, "north", app).Revision == v2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub view does not show the rollback at north: %v %+v", err, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var phase rollout.Phase
	states := map[string]rollout.State{}
	for _, r := range st.Rollouts {
		if r.App == app {
			phase = r.Phase
			for _, c := range r.Clusters {
				states[c.Cluster] = c.State
			}
		}
	}
	if phase != rollout.PhaseRolledBack || st.Source.Revision != v3 || len(st.Clusters) != 3 {
		t.Errorf("the hub view: %s's rollout %q, revision %s, %d clusters; want RolledBack at %s on 3", app, phase, st.Source.Revision, len(st.Clusters), v3)
	}
	if states["north"] != rollout.StateRolledBack || states["south"] != rollout.StateHeld || states["east"] != rollout.StateHeld {
		t.Errorf("the hub view's rollout states: %v; want north RolledBack, south and east Held", states)
	}
	for _, c := range []string{"south", "east"} {
		if s := appOn(st, c, app).Sync; s != daemon.SyncOutOfSync {
			t.Errorf("the hub view: %s on %s is %s, want OutOfSync (held on v2)", app, c, s)
		}
	}
	out, code := runCLI(t, "status", "--hub-kubeconfig", f.Kubeconfig("hub"))
	if code != 0 || !strings.Contains(out, "Hub view of") || !strings.Contains(out, "RolledBack") {
		t.Errorf("status --hub-kubeconfig (exit %d):\n%s", code, out)
	}
}
