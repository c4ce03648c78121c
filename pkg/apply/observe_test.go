package apply_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

// TestObserveAllAgreesWithObserve: one ObserveAll gives, for every app on the
// cluster, what Observe gives for it alone (inventory, each object's health,
// a deleted object NotFound), in a few requests whatever the number of apps;
// an inventory a person broke is nil there (Observe names its error).
func TestObserveAllAgreesWithObserve(t *testing.T) {
	e := newEnv(t)
	const apps = 6
	for i := range apps {
		stream := strings.ReplaceAll(webApp, "name: web", fmt.Sprintf("name: web%d", i))
		app := fmt.Sprintf("app%d", i)
		mustApply(t, e, apply.Request{App: app, Revision: "r1", Objects: objs(t, e.ns, stream), InputsDigest: "in"})
		if _, err := e.m.WaitHealthy(ctxT(t), app, objs(t, e.ns, stream), time.Minute); err != nil {
			t.Fatal(err) // health settled, so both reads below see the same
		}
	}
	// A person deletes one app's Service and breaks another app's inventory.
	if err := e.dyn.Resource(svcGVR).Namespace(e.ns).Delete(ctxT(t), "web1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), apply.InventoryName("app2"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := cm.Object["data"].(map[string]any)
	data["objects"] = "[{not json"
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Update(ctxT(t), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	e.cnt.reset()
	all, err := e.m.ObserveAll(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// the inventories, then one list per kind (ConfigMap, Deployment, Service)
	if n := e.cnt.total.Load(); n != 4 {
		t.Errorf("ObserveAll made %d requests for %d apps, want 4", n, apps)
	}
	if len(all) != apps {
		t.Fatalf("ObserveAll: %d apps, want %d", len(all), apps)
	}
	if obs, ok := all["app2"]; !ok || obs != nil {
		t.Errorf("app2 (broken inventory): %+v, want a nil entry", obs)
	}
	if _, err := e.m.Observe(ctxT(t), "app2"); err == nil || !strings.Contains(err.Error(), "objects") {
		t.Errorf("Observe(app2) = %v, want the decode error", err)
	}
	for i := range apps {
		app := fmt.Sprintf("app%d", i)
		if app == "app2" {
			continue
		}
		one, err := e.m.Observe(ctxT(t), app)
		if err != nil {
			t.Fatal(err)
		}
		got := all[app]
		if got == nil || !reflect.DeepEqual(got.Objects, one.Objects) || got.Healthy != one.Healthy || got.Failed != one.Failed || got.Inventory.Digest != one.Inventory.Digest {
			t.Errorf("%s: ObserveAll %+v, Observe %+v", app, got, one)
		}
	}
	if obs := all["app1"]; obs.Healthy || !hasStatus(obs.Objects, "Service", "NotFound") {
		t.Errorf("app1 after its Service was deleted: %+v", obs.Objects)
	}
}

var svcGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}

func hasStatus(sts []apply.ObjectStatus, kind, status string) bool {
	for _, s := range sts {
		if s.Object.Kind == kind && s.Status == status {
			return true
		}
	}
	return false
}

// TestApplyChangedObjectWritesAtOnce: an object that changed in git since the
// last successful apply (its digest differs from the inventory's) is written
// without a dry run first; an unchanged one still costs no request.
func TestApplyChangedObjectWritesAtOnce(t *testing.T) {
	e := newEnv(t)
	req := apply.Request{App: "web", Revision: "r1", Objects: objs(t, e.ns, webApp), InputsDigest: "in1"}
	mustApply(t, e, req)
	e.cnt.reset()
	req = apply.Request{App: "web", Revision: "r2", Objects: objs(t, e.ns, strings.Replace(webApp, "color: blue", "color: green", 1)), InputsDigest: "in2"}
	cs := mustApply(t, e, req)
	wantAction(t, cs, "ConfigMap", e.ns, "web-config", apply.Configured)
	wantAction(t, cs, "Deployment", e.ns, "web", apply.Unchanged)
	if d, w := e.cnt.dryRuns.Load(), e.cnt.writes.Load(); d != 0 || w != 2 {
		t.Fatalf("changed ConfigMap: %d dry runs and %d writes, want 0 and 2 (the object, the inventory):\n%s", d, w, e.cnt.writeLog())
	}
}

// TestCommitKeepsUnchangedObjects: a commit that changes one object of an app
// writes that object only. The others keep the fleetsync.dev/revision of the
// commit that last changed them (no write, no dry run), and diff finds
// nothing to do afterwards; with the change undone by hand, diff and apply
// see it again.
func TestCommitKeepsUnchangedObjects(t *testing.T) {
	e := newEnv(t)
	stamped := func(stream, rev string) []*unstructured.Unstructured {
		out := objs(t, e.ns, stream)
		for _, o := range out {
			ann := o.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann["fleetsync.dev/revision"] = rev
			o.SetAnnotations(ann)
		}
		return out
	}
	mustApply(t, e, apply.Request{App: "web", Revision: "r1", Objects: stamped(webApp, "r1"), InputsDigest: "in1"})
	e.cnt.reset()
	changed := strings.Replace(webApp, "color: blue", "color: green", 1)
	cs := mustApply(t, e, apply.Request{App: "web", Revision: "r2", Objects: stamped(changed, "r2"), InputsDigest: "in2"})
	wantAction(t, cs, "ConfigMap", e.ns, "web-config", apply.Configured)
	wantAction(t, cs, "Deployment", e.ns, "web", apply.Unchanged)
	if d, w := e.cnt.dryRuns.Load(), e.cnt.writes.Load(); d != 0 || w != 2 {
		t.Fatalf("one object changed by the commit: %d dry runs and %d writes, want 0 and 2 (the object, the inventory):\n%s", d, w, e.cnt.writeLog())
	}
	rev := func(gvr schema.GroupVersionResource, name string) string {
		u, err := e.dyn.Resource(gvr).Namespace(e.ns).Get(ctxT(t), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u.GetAnnotations()["fleetsync.dev/revision"]
	}
	deploy := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cm := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	if got := rev(deploy, "web"); got != "r1" {
		t.Errorf("unchanged Deployment: revision %q, want r1 (the commit that last changed it)", got)
	}
	if got := rev(cm, "web-config"); got != "r2" {
		t.Errorf("changed ConfigMap: revision %q, want r2", got)
	}
	for _, p := range e.m.Preview(ctxT(t), apply.Request{App: "web", Revision: "r2", Objects: stamped(changed, "r2")}) {
		if p.Err != nil || !p.InSync {
			t.Errorf("diff after the apply: %s in sync %v (%v), want in sync", p.Object, p.InSync, p.Err)
		}
	}
	// A person's edit of the unchanged object is still drift, and the next
	// commit's apply corrects it.
	if _, err := e.dyn.Resource(deploy).Namespace(e.ns).Patch(ctxT(t), "web", types.MergePatchType,
		[]byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range e.m.Preview(ctxT(t), apply.Request{App: "web", Revision: "r3", Objects: stamped(changed, "r3")}) {
		if p.Object.Kind == "Deployment" && p.InSync {
			t.Errorf("diff after kubectl edit: the Deployment is in sync, want drift")
		}
	}
	cs = mustApply(t, e, apply.Request{App: "web", Revision: "r3", Objects: stamped(changed, "r3"), InputsDigest: "in2"})
	wantAction(t, cs, "Deployment", e.ns, "web", apply.Configured)
	if got := rev(deploy, "web"); got != "r3" {
		t.Errorf("corrected Deployment: revision %q, want r3", got)
	}
}
