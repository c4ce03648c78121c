//go:build e2e

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/gitserver"
	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
)

// The fault suite (`make e2e`): one fleetsync daemon process over four real
// clusters (west with an etcd of its own), a git server on loopback, and
// faults injected one after the other. Each scenario asserts that no object
// was deleted (or, where the fault must not change anything, changed), that
// the fault shows in the status API and the metrics while it lasts, and that
// a commit made once it ended is applied everywhere (recovery). It prints a
// table: scenario, objects before/after, wrongly deleted, recovered, time to
// recover.

var faultClusters = []string{"north", "south", "east", "west"}

// restartableGit serves the fleet repo on one loopback address that can go
// down and come back.
type restartableGit struct {
	t    *testing.T
	addr string
	h    http.Handler
	mu   sync.Mutex
	srv  *http.Server
}

func newRestartableGit(t *testing.T, dir string) *restartableGit {
	h, err := gitserver.HTTPHandler(context.Background(), filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	g := &restartableGit{t: t, addr: freeAddr(t), h: h}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *restartableGit) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ln net.Listener
	var err error
	for range 50 { // the port was just closed
		if ln, err = net.Listen("tcp", g.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.srv = &http.Server{Handler: g.h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
}

func (g *restartableGit) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		_ = g.srv.Close()
		g.srv = nil
	}
}

// faultRepo writes the suite's fleet: four clusters and two apps (a
// Deployment and a ConfigMap each) on all of them.
type faultRepo struct {
	*rolloutRepo
	apps []string
}

func (r *faultRepo) writeApp(t *testing.T, name, version string) {
	t.Helper()
	r.write(t, "apps/"+name+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  namespace: %s\n  source: {kustomize: {path: base}}\n  prune: true\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n", name, name))
	r.write(t, "apps/"+name+"/base/kustomization.yaml", "resources: [deployment.yaml, config.yaml]\n")
	r.write(t, "apps/"+name+"/base/deployment.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "example.invalid/web:1"}]}
`)
	r.write(t, "apps/"+name+"/base/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {version: \""+version+"\"}\n")
}

// all writes every file of the fleet at version v.
func (r *faultRepo) all(t *testing.T, v string) {
	t.Helper()
	r.write(t, "fleet.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: fault-"+r.suffix+"}\n")
	for _, c := range faultClusters {
		r.write(t, "clusters/"+c+".yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\n  labels: {region: %s, env: prod}\n", c, c))
	}
	for _, a := range r.apps {
		r.writeApp(t, a, v)
	}
}

type objKey struct{ cluster, kind, namespace, name string }

func (k objKey) String() string { return k.cluster + "/" + k.kind + "/" + k.namespace + "/" + k.name }

type objState struct{ uid, content string }

// faultRow is one line of the table.
type faultRow struct {
	scenario        string
	before, after   int
	wronglyDeleted  []string
	wronglyChanged  []string
	visible         string
	recovered       bool
	recoverDuration time.Duration
}

type faultSuite struct {
	t       *testing.T
	f       *testfleet.Fleet
	repo    *faultRepo
	git     *restartableGit
	addr    string
	args    []string
	daemon  *exec.Cmd
	secret  string
	clients map[string]kubernetes.Interface
	version int
	rows    []faultRow
	// clusters are the suite's (faultClusters when nil); commit makes the
	// recovery commit (commitAll when nil).
	clusters []string
	commit   func(msg string) string
}

func (s *faultSuite) clusterNames() []string {
	if s.clusters != nil {
		return s.clusters
	}
	return faultClusters
}

// snapshot lists the apps' objects (their Namespaces, and the Deployments
// and ConfigMaps in them) on every cluster that answers: uid and content.
// Clusters that do not answer (a fault) are in down.
func (s *faultSuite) snapshot() (out map[objKey]objState, down map[string]bool) {
	s.t.Helper()
	out, down = map[objKey]objState{}, map[string]bool{}
	for _, c := range s.clusterNames() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.snapshotCluster(ctx, c, out)
		cancel()
		if err != nil {
			down[c] = true
		}
	}
	return out, down
}

func (s *faultSuite) snapshotCluster(ctx context.Context, c string, out map[objKey]objState) error {
	cs := s.clients[c]
	for _, app := range s.repo.apps {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, app, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return err
		}
		out[objKey{c, "Namespace", "", app}] = objState{uid: string(ns.UID)}
		ds, err := cs.AppsV1().Deployments(app).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, d := range ds.Items {
			b, _ := json.Marshal(d.Spec.Template)
			out[objKey{c, "Deployment", app, d.Name}] = objState{uid: string(d.UID), content: string(b)}
		}
		cms, err := cs.CoreV1().ConfigMaps(app).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, cm := range cms.Items {
			if cm.Name == "kube-root-ca.crt" {
				continue
			}
			b, _ := json.Marshal(cm.Data)
			out[objKey{c, "ConfigMap", app, cm.Name}] = objState{uid: string(cm.UID), content: string(b)}
		}
	}
	return nil
}

// deleted lists what was in before and is gone (or was replaced) in after;
// changed what is in both with other content. Clusters that did not answer
// for after are left out.
func deleted(before, after map[objKey]objState, down map[string]bool) (gone, changed []string) {
	for k, b := range before {
		if down[k.cluster] {
			continue
		}
		a, ok := after[k]
		switch {
		case !ok || a.uid != b.uid:
			gone = append(gone, k.String())
		case a.content != b.content:
			changed = append(changed, k.String())
		}
	}
	sort.Strings(gone)
	sort.Strings(changed)
	return gone, changed
}

func (s *faultSuite) status() (*daemon.Status, string) {
	st, err := getStatus(s.addr)
	if err != nil {
		return nil, ""
	}
	resp, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		return st, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return st, string(b)
}

func (s *faultSuite) startDaemon() {
	s.daemon = startDaemon(s.t, s.args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the daemon does not answer /healthz")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// converged reports whether every app is Synced and Healthy at rev on
// every cluster, with no source error.
func converged(st *daemon.Status, rev string, apps, clusters []string) bool {
	if st == nil || st.Source.Revision != rev || st.Source.Error != "" {
		return false
	}
	for _, c := range clusters {
		cs := st.Cluster(c)
		if cs == nil || !cs.Up {
			return false
		}
		for _, a := range apps {
			as := appOn(st, c, a)
			if as.Revision != rev || as.Sync != daemon.SyncSynced || as.Health != daemon.HealthHealthy {
				return false
			}
		}
	}
	return true
}

// commitAll writes the whole fleet at the next version and commits it.
func (s *faultSuite) commitAll(msg string) string {
	s.version++
	s.repo.all(s.t, fmt.Sprint(s.version))
	return s.repo.commit(s.t, msg)
}

func (s *faultSuite) waitConverged(rev string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if st, _ := s.status(); converged(st, rev, s.repo.apps, s.clusterNames()) {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// scenario is one fault: inject starts it; visible says, from the status
// API and the metrics, whether it shows ("" when it does not yet), nil when
// it cannot be seen from outside (it is repaired at once); end ends it (nil
// when it ends by itself). mayChange: objects may legitimately change while
// it lasts (a commit is part of the fault).
type scenario struct {
	name      string
	inject    func()
	visible   func(st *daemon.Status, metrics string) string
	end       func()
	mayChange bool
	// check names the objects the scenario added that are gone after it.
	check func(after map[objKey]objState) []string
}

func (s *faultSuite) run(sc scenario) {
	t := s.t
	t.Logf("fault: %s", sc.name)
	before, _ := s.snapshot()
	row := faultRow{scenario: sc.name, before: len(before)}
	sc.inject()
	row.visible = "n/a"
	if sc.visible != nil {
		row.visible = ""
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			st, m := s.status()
			if st != nil {
				if v := sc.visible(st, m); v != "" {
					row.visible = v
					break
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		if row.visible == "" {
			t.Errorf("%s: the fault never showed in the status API or the metrics", sc.name)
			row.visible = "NO"
		}
	}
	during, down := s.snapshot()
	gone, changed := deleted(before, during, down)
	row.wronglyDeleted = gone
	if !sc.mayChange {
		row.wronglyChanged = changed
	}
	if sc.end != nil {
		sc.end()
	}
	start := time.Now()
	commit := s.commit
	if commit == nil {
		commit = s.commitAll
	}
	rev := commit("after " + sc.name)
	row.recovered = s.waitConverged(rev, 120*time.Second)
	row.recoverDuration = time.Since(start)
	after, down := s.snapshot()
	row.after = len(after)
	if len(down) > 0 {
		t.Errorf("%s: clusters %v do not answer after the fault ended", sc.name, down)
	}
	gone, _ = deleted(before, after, down)
	row.wronglyDeleted = append(row.wronglyDeleted, gone...)
	if sc.check != nil {
		row.wronglyDeleted = append(row.wronglyDeleted, sc.check(after)...)
	}
	if len(row.wronglyDeleted) > 0 {
		t.Errorf("%s: wrongly deleted or replaced: %v", sc.name, row.wronglyDeleted)
	}
	if len(row.wronglyChanged) > 0 {
		t.Errorf("%s: changed while the fault lasted: %v", sc.name, row.wronglyChanged)
	}
	if !row.recovered {
		st, _ := s.status()
		t.Errorf("%s: not recovered 120s after the fault ended (status %+v)", sc.name, st)
	}
	s.rows = append(s.rows, row)
}

func (s *faultSuite) printTable() {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tOBJECTS BEFORE\tAFTER\tWRONGLY DELETED\tWRONGLY CHANGED\tSHOWN AS\tRECOVERED\tTIME TO RECOVER")
	for _, r := range s.rows {
		rec := "no"
		if r.recovered {
			rec = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%.1fs\n", r.scenario, r.before, r.after, len(r.wronglyDeleted), len(r.wronglyChanged), r.visible, rec, r.recoverDuration.Seconds())
	}
	_ = tw.Flush()
	fmt.Printf("\nFAULT TABLE\n%s\n", b.String())
	if out := os.Getenv("FLEETSYNC_FAULT_TABLE"); out != "" {
		if fh, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			_, _ = fh.Write(b.Bytes())
			_ = fh.Close()
		}
	}
}

func (s *faultSuite) stopProcess(name string) { s.f.StopProcess(s.t, name) }

// startAPIServer starts a cluster's kube-apiserver again and waits until it
// answers.
func (s *faultSuite) startProcess(name, cluster string) {
	s.f.StartProcess(s.t, name)
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := s.clients[cluster].CoreV1().Nodes().List(context.Background(), metav1.ListOptions{Limit: 1})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %s does not answer after a restart: %v", cluster, name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *faultSuite) inventoryCM(cluster, app string) (map[string]string, error) {
	return inventoryData(s.clients[cluster], app)
}

// inventoryData reads the data of an app's inventory ConfigMap as stored.
func inventoryData(cs kubernetes.Interface, app string) (map[string]string, error) {
	cm, err := cs.CoreV1().ConfigMaps("fleetsync-system").Get(context.Background(), apply.InventoryName(app), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func (s *faultSuite) editInventory(cluster, app string, edit func(data map[string]string)) {
	s.t.Helper()
	cms := s.clients[cluster].CoreV1().ConfigMaps("fleetsync-system")
	cm, err := cms.Get(context.Background(), apply.InventoryName(app), metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	edit(cm.Data)
	if _, err := cms.Update(context.Background(), cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		s.t.Fatal(err)
	}
}

// waitInventoryRevision waits until some cluster's inventory of app names rev.
func (s *faultSuite) waitInventoryRevision(app, rev string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range faultClusters {
			if d, err := s.inventoryCM(c, app); err == nil && d["revision"] == rev {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricAtLeast(metrics, series string, n float64) bool {
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			_, _ = fmt.Sscanf(strings.TrimPrefix(line, series+" "), "%g", &v)
			return v >= n
		}
	}
	return false
}

func TestFaultSuite(t *testing.T) {
	gittest.SkipWithoutGit(t)
	f := testfleet.Get(t)
	lf, err := fleet.Load(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if lf.OwnEtcd["west"] == "" {
		t.Fatal("the fault suite needs west with an etcd of its own: start the fleet with --own-etcd west (make e2e does)")
	}
	r := &faultRepo{rolloutRepo: newRolloutRepo(t)}
	r.apps = []string{"web-" + r.suffix, "api-" + r.suffix}
	s := &faultSuite{t: t, f: f, repo: r, clients: map[string]kubernetes.Interface{}, secret: "fault-suite-secret"}
	for _, c := range faultClusters {
		s.clients[c] = kubernetes.NewForConfigOrDie(f.RESTConfig(t, c))
	}
	s.version = 1
	r.all(t, "1")
	v1 := r.commit(t, "v1")
	s.git = newRestartableGit(t, r.dir)
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(s.secret), 0o600); err != nil {
		t.Fatal(err)
	}
	s.addr = freeAddr(t)
	s.args = []string{"--repo", "http://" + s.git.addr + "/" + filepath.Base(r.dir) + "/.git", "--branch", "main",
		"--kubeconfig-dir", f.Dir, "--kubeconfig", filepath.Join(r.dir, ".absent-kubeconfig"),
		"--listen", s.addr, "--interval", "1s", "--heartbeat-interval", "1s", "--log-format", "json",
		"--git-cache-dir", t.TempDir(), "--github-webhook-secret-file", secretFile}
	s.startDaemon()
	if !s.waitConverged(v1, 120*time.Second) {
		st, _ := s.status()
		t.Fatalf("v1 not applied everywhere: %+v", st)
	}
	defer s.printTable()
	web, api := r.apps[0], r.apps[1]

	s.run(scenario{
		name:   "git server down",
		inject: s.git.stop,
		visible: func(st *daemon.Status, m string) string {
			if st.Source.Error != "" && metricAtLeast(m, `fleetsync_errors_total{stage="fetch"}`, 1) {
				return "source.error, errors_total{fetch}"
			}
			return ""
		},
		end: func() { time.Sleep(3 * time.Second); s.git.start() },
	})

	s.run(scenario{
		name: "commit fails validation",
		inject: func() {
			r.write(t, "apps/"+web+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  namespace: %s\n  sourc: {kustomize: {path: base}}\n", web, web))
			r.commit(t, "invalid app")
		},
		visible: func(st *daemon.Status, m string) string {
			if st.Source.Error != "" && st.Source.Fetched != st.Source.Revision && strings.Contains(st.Source.Error, "app.yaml") {
				return "source.error (file:line), fetched != revision"
			}
			return ""
		},
	})

	s.run(scenario{
		name: "git returns an empty tree",
		inject: func() {
			gittest.Run(t, r.dir, "rm", "-rq", ".")
			r.commit(t, "empty tree")
		},
		visible: func(st *daemon.Status, m string) string {
			if st.Source.Error != "" && st.Source.Fetched != st.Source.Revision {
				return "source.error, fetched != revision"
			}
			return ""
		},
	})

	s.run(scenario{
		name: "one app's render fails",
		inject: func() {
			s.version++
			r.all(t, fmt.Sprint(s.version))
			r.write(t, "apps/"+web+"/base/kustomization.yaml", "resources: [deployment.yaml, config.yaml, missing.yaml]\n")
			rev := r.commit(t, "web broken, api changed")
			_ = rev
		},
		visible: func(st *daemon.Status, m string) string {
			for _, c := range faultClusters {
				if appOn(st, c, web).Error == "" || appOn(st, c, api).Revision != st.Source.Revision || appOn(st, c, api).Sync != daemon.SyncSynced {
					return ""
				}
			}
			return "apps[web].error on every cluster, api applied"
		},
		mayChange: true, // api's ConfigMap
	})

	s.run(scenario{
		name: "repo suddenly without apps",
		inject: func() {
			gittest.Run(t, r.dir, "rm", "-rq", "apps")
			r.commit(t, "every app removed")
		},
		visible: func(st *daemon.Status, m string) string {
			for _, c := range faultClusters {
				if cs := st.Cluster(c); cs == nil || !strings.Contains(cs.Removal, "removal refused") {
					return ""
				}
			}
			if !metricAtLeast(m, `fleetsync_errors_total{stage="remove"}`, 1) {
				return ""
			}
			return "clusters[].removal (refused), errors_total{remove}"
		},
	})

	s.run(scenario{
		name: "git history force-pushed",
		inject: func() {
			gittest.Run(t, r.dir, "reset", "-q", "--hard", v1)
			s.version++
			r.all(t, fmt.Sprint(s.version))
			r.commit(t, "rewritten history")
		},
		visible: func(st *daemon.Status, m string) string {
			head := gittest.Run(t, r.dir, "rev-parse", "HEAD")
			if converged(st, head, r.apps, faultClusters) {
				return "source.revision follows the new head"
			}
			return ""
		},
		mayChange: true,
	})

	s.run(scenario{
		name: "API server stopped mid-apply",
		inject: func() {
			rev := s.commitAll("change during the outage")
			s.waitInventoryRevision(web, rev)
			s.stopProcess("north-kube-apiserver")
		},
		visible: func(st *daemon.Status, m string) string {
			if cs := st.Cluster("north"); cs != nil && !cs.Up && metricAtLeast(m, `fleetsync_cluster_up{cluster="north"}`, 0) && !metricAtLeast(m, `fleetsync_cluster_up{cluster="north"}`, 1) {
				return "clusters[north].up=false, cluster_up=0"
			}
			return ""
		},
		end:       func() { time.Sleep(3 * time.Second); s.startProcess("north-kube-apiserver", "north") },
		mayChange: true,
	})

	s.run(scenario{
		name:   "cluster unreachable for 5 heartbeats",
		inject: func() { s.stopProcess("south-kube-apiserver") },
		visible: func(st *daemon.Status, m string) string {
			if cs := st.Cluster("south"); cs != nil && !cs.Up && cs.Error != "" {
				return "clusters[south].up=false with the error"
			}
			return ""
		},
		end: func() { time.Sleep(5 * time.Second); s.startProcess("south-kube-apiserver", "south") },
	})

	s.run(scenario{
		name:   "one cluster's etcd restarted",
		inject: func() { s.stopProcess("etcd-west") },
		visible: func(st *daemon.Status, m string) string {
			if cs := st.Cluster("west"); cs != nil && !cs.Up {
				return "clusters[west].up=false"
			}
			return ""
		},
		end: func() { time.Sleep(2 * time.Second); s.startProcess("etcd-west", "west") },
	})

	s.run(scenario{
		name: "daemon SIGKILLed mid-rollout",
		inject: func() {
			rev := s.commitAll("change, then the daemon dies")
			s.waitInventoryRevision(web, rev)
			_ = s.daemon.Process.Kill()
			_ = s.daemon.Wait()
		},
		end: s.startDaemon, // while it is down, there is no status to show

		mayChange: true,
	})

	s.run(scenario{
		name: "inventory ConfigMap deleted by a person",
		inject: func() {
			if err := s.clients["east"].CoreV1().ConfigMaps("fleetsync-system").Delete(context.Background(), apply.InventoryName(web), metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
	})

	s.run(scenario{
		name: "inventory edited to corrupt JSON",
		inject: func() {
			s.editInventory("east", api, func(d map[string]string) { d["objects"] = "[{not json" })
			s.commitAll("a change east cannot apply") // the apply reads the inventory
		},
		visible: func(st *daemon.Status, m string) string {
			if strings.Contains(appOn(st, "east", api).Error, "inventory") {
				return "apps[east/api].error names the inventory"
			}
			return ""
		},
		// A person repairs it by deleting it (docs/apply.md).
		end: func() {
			if err := s.clients["east"].CoreV1().ConfigMaps("fleetsync-system").Delete(context.Background(), apply.InventoryName(api), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		},
		mayChange: true,
	})

	s.run(scenario{
		name: "inventory lists a foreign object",
		inject: func() {
			cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "foreign", "namespace": web, "labels": map[string]any{"fleetsync.dev/app": web}},
				"data":     map[string]any{"owner": "a person"}}
			b, _ := json.Marshal(cm)
			if err := s.clients["south"].CoreV1().RESTClient().Post().AbsPath("/api/v1/namespaces/"+web+"/configmaps").
				Param("fieldManager", "kubectl-create").Body(b).Do(context.Background()).Error(); err != nil {
				t.Fatal(err)
			}
			s.editInventory("south", web, func(d map[string]string) {
				d["objects"] = strings.Replace(d["objects"], "[", fmt.Sprintf(`[{"version":"v1","kind":"ConfigMap","namespace":%q,"name":"foreign"},`, web), 1)
			})
		},
		check: func(after map[objKey]objState) []string {
			if _, ok := after[objKey{"south", "ConfigMap", web, "foreign"}]; !ok {
				return []string{"south/ConfigMap/" + web + "/foreign (not applied by fleetsync)"}
			}
			return nil
		},
	})

	s.run(scenario{
		name: "webhook with a bad signature",
		inject: func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/hooks/github", strings.NewReader(`{"ref":"refs/heads/main"}`))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", "sha256=0000000000000000000000000000000000000000000000000000000000000000")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("bad signature: %d, want 401", resp.StatusCode)
			}
		},
		visible: func(st *daemon.Status, m string) string {
			if metricAtLeast(m, `fleetsync_webhook_requests_total{provider="github",result="unauthorized"}`, 1) {
				return "401, webhook_requests_total{unauthorized}"
			}
			return ""
		},
	})
}

// TestBoundedLargeApp: an app of 10,000 objects applies with `fleetsync
// apply`, its inventory is stored gzipped well under the ConfigMap limit,
// a second apply changes nothing, and a commit that drops 100 of them prunes
// exactly those.
func TestBoundedLargeApp(t *testing.T) {
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	app := "large-" + r.suffix
	const n = 10_000
	objects := func(count int) {
		var b strings.Builder
		for i := range count {
			fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%05d}\ndata: {i: \"%d\"}\n", i, i)
		}
		r.write(t, "apps/"+app+"/base/objects.yaml", b.String())
	}
	r.write(t, "apps/"+app+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  namespace: %s\n  source: {kustomize: {path: base}}\n  prune: true\n  targets: {clusterSelector: {matchLabels: {region: north}}}\n", app, app))
	// A folder of plain manifests: no kustomization (kustomize's own build
	// of 10,000 resources takes minutes, docs/security.md).
	objects(n)
	r.commit(t, "10,000 objects")
	start := time.Now()
	out, errOut, code := runApplyOrDiff(t, "apply", r.args(f, "apply", "--timeout", "5m")[1:]...)
	if code != 0 {
		t.Fatalf("apply of %d objects: exit %d\n%s\n%s", n, code, tail(out, 20), errOut)
	}
	t.Logf("apply of %d objects: %s", n, time.Since(start).Round(time.Millisecond))
	cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "north"))
	cms, err := cs.CoreV1().ConfigMaps(app).List(context.Background(), metav1.ListOptions{LabelSelector: "fleetsync.dev/app=" + app})
	if err != nil || len(cms.Items) != n {
		t.Fatalf("%d labelled ConfigMaps on north (%v), want %d", len(cms.Items), err, n)
	}
	data, err := inventoryData(cs, app)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for k, v := range data {
		size += len(k) + len(v)
	}
	t.Logf("inventory of %d objects: %d bytes", n, size)
	if size > 1<<20 || data["objects.gz"] == "" {
		t.Errorf("inventory of %d objects: %d bytes (objects.gz set: %v), want gzipped under 1 MiB", n, size, data["objects.gz"] != "")
	}
	start = time.Now()
	out, _, code = runApplyOrDiff(t, "apply", r.args(f, "apply", "--timeout", "5m")[1:]...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("unchanged=%d", n)) && !strings.Contains(out, "unchanged") {
		t.Errorf("second apply: exit %d\n%s", code, tail(out, 10))
	}
	t.Logf("no-op apply of %d objects: %s", n, time.Since(start).Round(time.Millisecond))
	objects(n - 100)
	r.commit(t, "100 fewer")
	out, errOut, code = runApplyOrDiff(t, "apply", r.args(f, "apply", "--timeout", "5m")[1:]...)
	if code != 0 {
		t.Fatalf("apply dropping 100: exit %d\n%s\n%s", code, tail(out, 20), errOut)
	}
	cms, err = cs.CoreV1().ConfigMaps(app).List(context.Background(), metav1.ListOptions{LabelSelector: "fleetsync.dev/app=" + app})
	if err != nil || len(cms.Items) != n-100 {
		t.Fatalf("%d ConfigMaps after dropping 100 (%v), want %d", len(cms.Items), err, n-100)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestFaultRegistry: the source registry of a mirrored app answers 500, then
// 429, while a commit with a new image arrives: nothing is applied with an
// unpinned or missing image, nothing is deleted, the error shows in the
// status API, and once the registry answers again the commit goes out with
// the image mirrored and pinned. It adds its rows to the fault table.
func TestFaultRegistry(t *testing.T) {
	gittest.SkipWithoutGit(t)
	f := testfleet.Get(t)
	var fault atomic.Int32 // 0 pass, else the status answered
	target, _ := url.Parse("http://" + f.Registries.Source)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code := int(fault.Load()); code != 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}`, code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	registry := strings.TrimPrefix(proxy.URL, "http://")
	r := newRolloutRepo(t)
	image := func(tag string) string {
		ref := fmt.Sprintf("%s/fault/img-%s:%s", f.Registries.Source, r.suffix, tag)
		pushRandom(t, ref)
		return fmt.Sprintf("%s/fault/img-%s:%s", registry, r.suffix, tag)
	}
	for _, c := range []string{"north", "south"} {
		r.write(t, "clusters/"+c+".yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\n  labels: {region: %s, env: prod}\nspec:\n  registry: {mirror: %q, insecure: true}\n", c, c, f.Registries.Mirrors[c]+"/m"))
	}
	r.write(t, "clusters/east.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: east\n  labels: {region: east}\n")
	spec := "  targets: {clusterSelector: {matchLabels: {env: prod}}}\n  imageMirror: true\n"
	version := 1
	app := r.appWithImage(t, "img", spec, "", image("v1"))
	v1 := r.commit(t, "v1")
	repoURL := serveRepo(t, r.dir)
	s := &faultSuite{t: t, f: f, repo: &faultRepo{rolloutRepo: r, apps: []string{app}}, clients: map[string]kubernetes.Interface{},
		clusters: []string{"north", "south"}}
	for _, c := range s.clusters {
		s.clients[c] = kubernetes.NewForConfigOrDie(f.RESTConfig(t, c))
	}
	s.commit = func(msg string) string {
		version++
		r.appWithImage(t, "img", spec, fmt.Sprintf("version: \"%d\"", version), image(fmt.Sprintf("v%d", version)))
		return r.commit(t, msg)
	}
	s.addr = freeAddr(t)
	s.args = []string{"--repo", repoURL, "--branch", "main",
		"--kubeconfig-dir", f.Dir, "--kubeconfig", filepath.Join(r.dir, ".absent-kubeconfig"),
		"--listen", s.addr, "--interval", "1s", "--heartbeat-interval", "1s", "--log-format", "json", "--git-cache-dir", t.TempDir(),
		"--insecure-registry", registry}
	s.startDaemon()
	if !s.waitConverged(v1, 120*time.Second) {
		st, _ := s.status()
		t.Fatalf("v1 not applied: %+v", st)
	}
	defer s.printTable()
	pinned := func(c string) string {
		d, err := s.clients[c].AppsV1().Deployments(app).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	for _, c := range s.clusters {
		if img := pinned(c); !strings.HasPrefix(img, f.Registries.Mirrors[c]+"/m/") || !strings.Contains(img, "@sha256:") {
			t.Fatalf("%s runs %q, want the image mirrored and pinned", c, img)
		}
	}
	for _, code := range []int32{http.StatusInternalServerError, http.StatusTooManyRequests} {
		s.run(scenario{
			name: fmt.Sprintf("registry answering %d", code),
			inject: func() {
				fault.Store(code)
				s.commit(fmt.Sprintf("a new image while the registry answers %d", code)) // pushed to the source itself
			},
			visible: func(st *daemon.Status, m string) string {
				for _, c := range s.clusters {
					if a := appOn(st, c, app); a.Error == "" {
						return ""
					}
				}
				return "apps[].error (mirror) on each cluster"
			},
			end: func() { time.Sleep(2 * time.Second); fault.Store(0) },
		})
	}
	for _, c := range s.clusters {
		if img := pinned(c); !strings.HasPrefix(img, f.Registries.Mirrors[c]+"/m/") || !strings.Contains(img, "@sha256:") {
			t.Errorf("%s runs %q after the faults, want the image mirrored and pinned", c, img)
		}
	}
}
