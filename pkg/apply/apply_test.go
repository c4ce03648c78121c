package apply_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

const webApp = `apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: %[1]s}
data: {color: blue}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/web:v1
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: %[1]s}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

func TestApplyCreateUpdateNoop(t *testing.T) {
	e := newEnv(t)
	desired := objs(t, e.ns, webApp)
	req := apply.Request{App: "web", Revision: "r1", Objects: desired}

	cs := mustApply(t, e, req)
	for _, k := range []string{"ConfigMap/web-config", "Deployment/web", "Service/web"} {
		kind, name, _ := strings.Cut(k, "/")
		wantAction(t, cs, kind, e.ns, name, apply.Created)
	}
	inv, err := e.m.Inventory(ctxT(t), "web")
	if err != nil || inv == nil {
		t.Fatalf("inventory: %v %v", inv, err)
	}
	if len(inv.Objects) != 3 || inv.Revision != "r1" || !strings.HasPrefix(inv.Digest, "sha256:") {
		t.Fatalf("inventory = %+v", inv)
	}
	live, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "web-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live.GetLabels()["fleetsync.dev/app"] != "web" {
		t.Fatalf("labels = %v", live.GetLabels())
	}

	// No-op: the same objects again make no write request, not even a dry run.
	e.cnt.reset()
	cs = mustApply(t, e, req)
	if n := cs.Count(apply.Unchanged); n != 3 {
		t.Fatalf("unchanged = %d, want 3: %+v", n, cs.Changes)
	}
	if w, d := e.cnt.writes.Load(), e.cnt.dryRuns.Load(); w != 0 || d != 0 {
		t.Fatalf("no-op apply made %d writes and %d dry runs:\n%s", w, d, e.cnt.writeLog())
	}

	// Update one object: only it is written.
	desired = objs(t, e.ns, strings.Replace(webApp, "color: blue", "color: green", 1))
	e.cnt.reset()
	cs = mustApply(t, e, apply.Request{App: "web", Revision: "r1", Objects: desired})
	wantAction(t, cs, "ConfigMap", e.ns, "web-config", apply.Configured)
	wantAction(t, cs, "Deployment", e.ns, "web", apply.Unchanged)
	wantAction(t, cs, "Service", e.ns, "web", apply.Unchanged)
	live, err = e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "web-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructuredString(live.Object, "data", "color"); got != "green" {
		t.Fatalf("color = %q", got)
	}
	// One apply of the ConfigMap, one inventory write (the digest changed).
	if w := e.cnt.writes.Load(); w != 2 {
		t.Fatalf("update made %d writes, want 2:\n%s", w, e.cnt.writeLog())
	}
}

func TestApplyNoopWithServerDefaults(t *testing.T) {
	// A Deployment written with a value the server canonicalises (cpu: 1000m becomes
	// "1") cannot be proven unchanged from managedFields; the dry-run comparison
	// still finds it unchanged and nothing is written.
	e := newEnv(t)
	stream := strings.Replace(webApp, "cpu: 100m", "cpu: 1000m", 1)
	req := apply.Request{App: "web", Objects: objs(t, e.ns, stream)}
	mustApply(t, e, req)
	e.cnt.reset()
	cs := mustApply(t, e, req)
	if n := cs.Count(apply.Unchanged); n != 3 {
		t.Fatalf("unchanged = %d: %+v", n, cs.Changes)
	}
	if w := e.cnt.writes.Load(); w != 0 {
		t.Fatalf("%d writes:\n%s", w, e.cnt.writeLog())
	}
	if d := e.cnt.dryRuns.Load(); d != 1 {
		t.Fatalf("%d dry runs, want 1 (the Deployment, not provably unchanged from managedFields)", d)
	}
}

func TestApplyDryRunWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.cnt.reset()
	cs := mustApply(t, e, apply.Request{App: "web", Objects: objs(t, e.ns, webApp), DryRun: true})
	c := wantAction(t, cs, "Deployment", e.ns, "web", apply.Created)
	if !c.DryRun {
		t.Fatal("change not marked dry run")
	}
	if w := e.cnt.writes.Load(); w != 0 {
		t.Fatalf("dry run wrote:\n%s", e.cnt.writeLog())
	}
	if inv, err := e.m.Inventory(ctxT(t), "web"); err != nil || inv != nil {
		t.Fatalf("dry run left an inventory: %v %v", inv, err)
	}
}

func TestApplyOneInvalidObject(t *testing.T) {
	e := newEnv(t)
	stream := webApp + `---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: %[1]s}
spec:
  ports: [{port: 70000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after-broken, namespace: %[1]s}
data: {a: b}
`
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "mixed", Objects: objs(t, e.ns, stream)})
	if err == nil {
		t.Fatal("no error for an invalid object")
	}
	c := wantAction(t, cs, "Service", e.ns, "broken", apply.Failed)
	for _, want := range []string{"north/mixed", "Service/" + e.ns + "/broken", "70000"} {
		if !strings.Contains(c.Err.Error(), want) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", c.Err, want)
		}
	}
	var oe *apply.ObjectError
	if !errors.As(err, &oe) || oe.Cluster != "north" || oe.App != "mixed" {
		t.Errorf("error is not an ObjectError naming cluster and app: %#v", err)
	}
	wantAction(t, cs, "ConfigMap", e.ns, "after-broken", apply.Created)
	wantAction(t, cs, "Deployment", e.ns, "web", apply.Created)
	wantAction(t, cs, "Service", e.ns, "web", apply.Created)
}

func TestApplySSAPolicies(t *testing.T) {
	e := newEnv(t)
	stream := `apiVersion: v1
kind: ConfigMap
metadata:
  name: seed
  namespace: %[1]s
  annotations: {fleetsync.dev/ssa: IfNotPresent}
data: {v: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ignored
  namespace: %[1]s
  annotations: {fleetsync.dev/ssa: Ignore}
data: {v: "1"}
`
	cs := mustApply(t, e, apply.Request{App: "pol", Objects: objs(t, e.ns, stream)})
	wantAction(t, cs, "ConfigMap", e.ns, "seed", apply.Created)
	wantAction(t, cs, "ConfigMap", e.ns, "ignored", apply.Skipped)
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "ignored", metav1.GetOptions{}); err == nil {
		t.Fatal("Ignore object was created")
	}
	cs = mustApply(t, e, apply.Request{App: "pol", Objects: objs(t, e.ns, strings.Replace(stream, `v: "1"`, `v: "2"`, 1))})
	wantAction(t, cs, "ConfigMap", e.ns, "seed", apply.Skipped)
	live, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "seed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructuredString(live.Object, "data", "v"); v != "1" {
		t.Fatalf("IfNotPresent object was updated: v=%q", v)
	}
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	cur := any(obj)
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func TestApplyDryRunIntoNewNamespace(t *testing.T) {
	e := newEnv(t)
	stream := `apiVersion: v1
kind: Namespace
metadata: {name: %[1]s-new}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: inside, namespace: %[1]s-new}
data: {a: b}
`
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "dry", Objects: objs(t, e.ns, stream), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantAction(t, cs, "Namespace", "", e.ns+"-new", apply.Created)
	c := wantAction(t, cs, "ConfigMap", e.ns+"-new", "inside", apply.Created)
	if !c.DryRun || !strings.Contains(c.Reason, "namespace does not exist yet") {
		t.Fatalf("change %+v", c)
	}
	if e.cnt.writes.Load() != 0 {
		t.Fatalf("dry run wrote:\n%s", e.cnt.writeLog())
	}
}

func TestHealthyHistoryIsBounded(t *testing.T) {
	e := newEnv(t)
	if err := e.m.RecordHealthy(ctxT(t), "h", "r0", "d"); err == nil {
		t.Fatal("recorded a healthy revision without an inventory")
	}
	mustApply(t, e, apply.Request{App: "h", Revision: "r1", Objects: configMaps(t, e.ns, 1)})
	for _, rev := range []string{"r1", "r2", "r3", "r2"} {
		if err := e.m.RecordHealthy(ctxT(t), "h", rev, "d"); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := e.m.Inventory(ctxT(t), "h")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, h := range inv.History {
		revs = append(revs, h.Revision)
	}
	if strings.Join(revs, ",") != "r2,r3,r1" {
		t.Fatalf("history %v, want newest first without duplicates", revs)
	}
	if last, ok := inv.LastHealthy("r2"); !ok || last.Revision != "r3" {
		t.Fatalf("LastHealthy = %+v", last)
	}
	small := apply.NewManager(e.m.Cluster(), apply.Options{InventoryNamespace: e.ns, HistoryLimit: 2})
	if err := small.RecordHealthy(ctxT(t), "h", "r4", "d"); err != nil {
		t.Fatal(err)
	}
	inv, err = small.Inventory(ctxT(t), "h")
	if err != nil || len(inv.History) != 2 || inv.History[0].Revision != "r4" || inv.History[1].Revision != "r2" {
		t.Fatalf("history with limit 2: %+v %v", inv.History, err)
	}
}

// The inventory keeps when the current digest was first applied (a rollout's
// deadline starts there) and the held revisions, across applies.
func TestInventoryAppliedAtAndHolds(t *testing.T) {
	e := newEnv(t)
	v1 := objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: %[1]s}\ndata: {v: \"1\"}\n")
	v2 := objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: %[1]s}\ndata: {v: \"2\"}\n")
	mustApply(t, e, apply.Request{App: "a", Revision: "r1", Objects: v1})
	inv1, err := e.m.Inventory(ctxT(t), "a")
	if err != nil || inv1.AppliedAt.IsZero() {
		t.Fatalf("inventory after the first apply: %+v %v", inv1, err)
	}
	hold := apply.Hold{Revision: "r0", Digest: "sha256:bad", Reason: "wave 1 failed", Time: time.Now().UTC().Truncate(time.Second)}
	if err := e.m.RecordHold(ctxT(t), "a", hold); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RecordHold(ctxT(t), "a", hold); err != nil { // once per digest
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	mustApply(t, e, apply.Request{App: "a", Revision: "r1b", Objects: v1}) // same output, another commit
	inv, err := e.m.Inventory(ctxT(t), "a")
	if err != nil || !inv.AppliedAt.Equal(inv1.AppliedAt) || len(inv.Holds) != 1 || inv.Holds[0] != hold {
		t.Fatalf("same digest re-applied: %+v %v", inv, err)
	}
	// A corrected drift is a new apply: its health deadline starts again.
	if _, err := e.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(e.ns).Patch(ctxT(t), "a",
		types.MergePatchType, []byte(`{"data":{"v":"by hand"}}`), metav1.PatchOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, e, apply.Request{App: "a", Revision: "r1b", Objects: v1})
	if inv, err = e.m.Inventory(ctxT(t), "a"); err != nil || !inv.AppliedAt.After(inv1.AppliedAt) {
		t.Fatalf("after correcting a drift: appliedAt %v, first %v (%v)", inv.AppliedAt, inv1.AppliedAt, err)
	}
	mustApply(t, e, apply.Request{App: "a", Revision: "r2", Objects: v2})
	inv, err = e.m.Inventory(ctxT(t), "a")
	if err != nil || inv.AppliedAt.Before(inv1.AppliedAt) || len(inv.Holds) != 1 || inv.Digest == inv1.Digest {
		t.Fatalf("a new digest: %+v %v", inv, err)
	}
	obs, err := e.m.Observe(ctxT(t), "a")
	if err != nil || !obs.Healthy || obs.Failed || obs.Inventory.Revision != "r2" || len(obs.Objects) != 1 {
		t.Fatalf("Observe: %+v %v", obs, err)
	}
	if obs, err := e.m.Observe(ctxT(t), "never-applied"); err != nil || obs.Inventory != nil {
		t.Fatalf("Observe of an app with no inventory: %+v %v", obs, err)
	}
}
