package apply_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: SELECTOR}}
  template:
    metadata: {labels: {app: SELECTOR}}
    spec:
      containers: [{name: api, image: registry.example/api:v1}]
`

func TestImmutableFieldErrorAndRecreate(t *testing.T) {
	e := newEnv(t)
	v1 := strings.ReplaceAll(deployment, "SELECTOR", "api")
	mustApply(t, e, apply.Request{App: "imm", Objects: objs(t, e.ns, v1)})
	before, err := e.dyn.Resource(deployGVR).Namespace(e.ns).Get(ctxT(t), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	v2 := strings.ReplaceAll(deployment, "SELECTOR", "api-v2")
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "imm", Objects: objs(t, e.ns, v2)})
	var ie *apply.ImmutableError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an ImmutableError", err)
	}
	c := wantAction(t, cs, "Deployment", e.ns, "api", apply.Failed)
	for _, want := range []string{"spec.selector", "Deployment/" + e.ns + "/api", "north/imm", "fleetsync.dev/recreate"} {
		if !strings.Contains(c.Err.Error(), want) {
			t.Errorf("error %q does not name %q", c.Err, want)
		}
	}

	// Opt in on the object: delete and recreate.
	v2opt := strings.Replace(v2, "metadata: {name: api, namespace: %[1]s}",
		"metadata: {name: api, namespace: %[1]s, annotations: {fleetsync.dev/recreate: enabled}}", 1)
	cs = mustApply(t, e, apply.Request{App: "imm", Objects: objs(t, e.ns, v2opt)})
	wantAction(t, cs, "Deployment", e.ns, "api", apply.Recreated)
	after, err := e.dyn.Resource(deployGVR).Namespace(e.ns).Get(ctxT(t), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetUID() == before.GetUID() {
		t.Fatal("not recreated: same uid")
	}
	sel, _, _ := unstructured.NestedString(after.Object, "spec", "selector", "matchLabels", "app")
	if sel != "api-v2" {
		t.Fatalf("selector = %q", sel)
	}

	// Opt in on the request (Force).
	v3 := strings.ReplaceAll(deployment, "SELECTOR", "api-v3")
	cs = mustApply(t, e, apply.Request{App: "imm", Objects: objs(t, e.ns, v3), Force: true})
	wantAction(t, cs, "Deployment", e.ns, "api", apply.Recreated)
}

func TestCRDAndCustomResourceInOneApp(t *testing.T) {
	e := newEnv(t)
	group := e.ns + ".test.fleetsync.dev" // cluster-scoped: unique per test
	stream := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
---
apiVersion: GROUP/v1
kind: Widget
metadata: {name: w1, namespace: %[1]s}
spec: {size: 3}
`
	stream = strings.ReplaceAll(stream, "GROUP", group)
	desired := objs(t, e.ns, stream)
	// Custom resource first in the input: the Manager stages the CRD before it.
	desired[0], desired[1] = desired[1], desired[0]
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	t.Cleanup(func() {
		_ = e.dyn.Resource(crdGVR).Delete(context.Background(), "widgets."+group, metav1.DeleteOptions{})
	})
	var order []string
	cs := mustApply(t, e, apply.Request{App: "crd", Objects: desired, Prune: true,
		Progress: func(c apply.Change) { order = append(order, c.Object.Kind) }})
	wantAction(t, cs, "CustomResourceDefinition", "", "widgets."+group, apply.Created)
	wantAction(t, cs, "Widget", e.ns, "w1", apply.Created)
	if strings.Join(order, ",") != "CustomResourceDefinition,Widget" {
		t.Fatalf("apply order %v", order)
	}
	w, err := e.dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(e.ns).Get(ctxT(t), "w1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 3 {
		t.Fatalf("size = %d", size)
	}
	// Again: nothing to write.
	e.cnt.reset()
	cs = mustApply(t, e, apply.Request{App: "crd", Objects: desired, Prune: true})
	if cs.Count(apply.Unchanged) != 2 || e.cnt.writes.Load() != 0 {
		t.Fatalf("second apply: %+v, %d writes:\n%s", cs.Changes, e.cnt.writes.Load(), e.cnt.writeLog())
	}
	// Prune both: the custom resource goes before its definition.
	order = nil
	mustApply(t, e, apply.Request{App: "crd", Prune: true, AllowMassPrune: true,
		Progress: func(c apply.Change) { order = append(order, c.Object.Kind+":"+string(c.Action)) }})
	if strings.Join(order, ",") != "Widget:pruned,CustomResourceDefinition:pruned" {
		t.Fatalf("prune order %v", order)
	}
}

func TestWaitDeploymentAvailable(t *testing.T) {
	e := newEnv(t)
	stream := strings.ReplaceAll(deployment, "SELECTOR", "api")
	cs := mustApply(t, e, apply.Request{App: "w", Revision: "r1", Objects: objs(t, e.ns, stream), Wait: true, Timeout: 2 * time.Minute})
	if !cs.Healthy {
		t.Fatal("not healthy")
	}
	d, err := e.dyn.Resource(deployGVR).Namespace(e.ns).Get(ctxT(t), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if avail, _, _ := unstructured.NestedInt64(d.Object, "status", "availableReplicas"); avail != 2 {
		t.Fatalf("availableReplicas = %d after a healthy wait", avail)
	}
	inv, err := e.m.Inventory(ctxT(t), "w")
	if err != nil || len(inv.History) != 1 || inv.History[0].Revision != "r1" {
		t.Fatalf("healthy history = %+v, %v", inv, err)
	}
}

func TestWaitTimesOutOnNeverReady(t *testing.T) {
	e := newEnv(t)
	stream := strings.Replace(strings.ReplaceAll(deployment, "SELECTOR", "api"),
		"metadata: {labels: {app: api}}",
		"metadata: {labels: {app: api}, annotations: {localfleet.fleetsync.dev/never-ready: \"true\"}}", 1)
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "nr", Revision: "r1", Objects: objs(t, e.ns, stream), Wait: true, Timeout: 5 * time.Second})
	if err == nil || cs.Healthy {
		t.Fatal("a never-ready Deployment was healthy")
	}
	if !strings.Contains(err.Error(), "Deployment/"+e.ns+"/api") || !strings.Contains(err.Error(), "north/nr") {
		t.Fatalf("error does not name the object: %v", err)
	}
	inv, err := e.m.Inventory(ctxT(t), "nr")
	if err != nil || len(inv.History) != 0 {
		t.Fatalf("unhealthy revision recorded as healthy: %+v %v", inv, err)
	}
}
