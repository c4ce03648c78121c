package apply_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
