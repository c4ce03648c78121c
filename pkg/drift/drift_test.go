package drift_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/drift"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north")) }

type env struct {
	ns  string
	m   *apply.Manager
	dyn dynamic.Interface
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := testfleet.Get(t)
	ns := f.Namespace(t, "north")
	cfg := f.RESTConfig(t, "north")
	c, err := cluster.New("north", cfg, cluster.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := apply.DefaultOptions()
	opts.InventoryNamespace = ns
	return &env{ns: ns, m: apply.NewManager(c, opts), dyn: dyn}
}

func ctxT(t *testing.T) context.Context { return testfleet.Context(t) }

func objs(t *testing.T, ns, stream string) []*unstructured.Unstructured {
	return testfleet.Objects(t, ns, stream)
}

// intrude applies a patch as another field manager, forcing conflicts.
func (e *env) intrude(t *testing.T, gvr schema.GroupVersionResource, stream string) {
	t.Helper()
	u := objs(t, e.ns, stream)[0]
	_, err := e.dyn.Resource(gvr).Namespace(e.ns).Apply(ctxT(t), u.GetName(), u, metav1.ApplyOptions{FieldManager: "intruder", Force: true})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

const app = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: %[1]s}
data: {mode: fast, level: "3"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: registry.example/api:v1}]
`

func TestInSyncThenDriftByAnotherManager(t *testing.T) {
	e := newEnv(t)
	req := apply.Request{App: "d", Objects: objs(t, e.ns, app)}
	if _, err := e.m.Apply(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	rep, err := drift.Detect(ctxT(t), e.m, req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifted() {
		t.Fatalf("drift right after apply: %+v", rep.Objects)
	}

	// Another manager takes over a fleetsync-owned field.
	e.intrude(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: %[1]s}\ndata: {mode: slow}\n")
	rep, err = drift.Detect(ctxT(t), e.m, req)
	if err != nil {
		t.Fatal(err)
	}
	od, _ := rep.Get("ConfigMap", e.ns, "settings")
	if od.State != drift.Drifted {
		t.Fatalf("state %s, want drifted", od.State)
	}
	t.Logf("diff:\n%s", od.Diff)
	if !strings.Contains(od.Diff, "-  mode: slow") || !strings.Contains(od.Diff, "+  mode: fast") {
		t.Fatalf("diff does not show the field:\n%s", od.Diff)
	}
	for _, noise := range []string{"managedFields", "resourceVersion", "uid:", "creationTimestamp"} {
		if strings.Contains(od.Diff, noise) {
			t.Errorf("diff shows server field %s:\n%s", noise, od.Diff)
		}
	}
	if d, _ := rep.Get("Deployment", e.ns, "api"); d.State != drift.InSync {
		t.Fatalf("Deployment %s (server defaults must not count as drift): %s", d.State, d.Diff)
	}

	// report only reports; correct re-applies.
	if _, cs, err := drift.Reconcile(ctxT(t), e.m, req, v1alpha1.DriftReport); err != nil || cs != nil {
		t.Fatalf("report mode applied: %v %v", cs, err)
	}
	_, cs, err := drift.Reconcile(ctxT(t), e.m, req, v1alpha1.DriftCorrect)
	if err != nil || cs == nil || cs.Count(apply.Configured) != 1 {
		t.Fatalf("correct: %+v %v", cs, err)
	}
	rep, err = drift.Detect(ctxT(t), e.m, req)
	if err != nil || rep.Drifted() {
		t.Fatalf("still drifted after correct: %+v %v", rep, err)
	}
}

func TestMissingAndExtra(t *testing.T) {
	e := newEnv(t)
	req := apply.Request{App: "d", Objects: objs(t, e.ns, app)}
	if _, err := e.m.Apply(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	if err := e.dyn.Resource(cmGVR).Namespace(e.ns).Delete(ctxT(t), "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := drift.Detect(ctxT(t), e.m, req)
	if err != nil {
		t.Fatal(err)
	}
	if od, _ := rep.Get("ConfigMap", e.ns, "settings"); od.State != drift.Missing {
		t.Fatalf("deleted out of band: %s", od.State)
	}
	// The Deployment leaves the desired set but is still on the cluster.
	req.Objects = req.Objects[:1]
	rep, err = drift.Detect(ctxT(t), e.m, req)
	if err != nil {
		t.Fatal(err)
	}
	if od, _ := rep.Get("Deployment", e.ns, "api"); od.State != drift.Extra {
		t.Fatalf("no longer desired: %s", od.State)
	}
}

func TestSecretValuesNeverInDiff(t *testing.T) {
	e := newEnv(t)
	const oldValue, newValue, intruded = "hunter2-old-password", "s3cr3t-new-password", "intruder-set-this-value"
	secret := `apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: %[1]s}
type: Opaque
stringData: {password: VALUE, user: admin-user-name}
`
	mk := func(v string) []*unstructured.Unstructured {
		return objs(t, e.ns, strings.Replace(secret, "VALUE", v, 1))
	}
	if _, err := e.m.Apply(ctxT(t), apply.Request{App: "s", Objects: mk(oldValue)}); err != nil {
		t.Fatal(err)
	}
	rep, err := drift.Detect(ctxT(t), e.m, apply.Request{App: "s", Objects: mk(newValue)})
	if err != nil {
		t.Fatal(err)
	}
	e.intrude(t, secretGVR, "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: %[1]s}\nstringData: {user: "+intruded+"}\n")
	rep2, err := drift.Detect(ctxT(t), e.m, apply.Request{App: "s", Objects: mk(newValue)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*drift.Report{rep, rep2} {
		od, _ := r.Get("Secret", e.ns, "creds")
		if od.State != drift.Drifted {
			t.Fatalf("changed Secret state %s", od.State)
		}
		t.Logf("masked diff:\n%s", od.Diff)
		if !strings.Contains(od.Diff, drift.MaskChanged) {
			t.Fatalf("diff does not say the value changed:\n%s", od.Diff)
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{oldValue, newValue, intruded, "admin-user-name"} {
			for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
				if strings.Contains(od.Diff, form) || strings.Contains(string(js), form) {
					t.Fatalf("secret value %q in drift output:\n%s", form, od.Diff)
				}
			}
		}
	}
}

// Hooks (helm.sh/hook) are never drift: not compared, not extra, even when
// the hook object is gone or differs on the cluster.
func TestHooksAreNotDrift(t *testing.T) {
	e := newEnv(t)
	stream := `apiVersion: v1
kind: ConfigMap
metadata: {name: app, namespace: %[1]s}
data: {v: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: setup
  namespace: %[1]s
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-delete-policy: hook-succeeded}
data: {v: "1"}
`
	req := apply.Request{App: "hooked", Objects: objs(t, e.ns, stream), Prune: true}
	if _, err := e.m.Apply(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	rep, err := drift.Detect(ctxT(t), e.m, req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifted() || len(rep.Objects) != 1 || rep.Objects[0].Object.Name != "app" {
		t.Fatalf("report %+v", rep.Objects)
	}
}
