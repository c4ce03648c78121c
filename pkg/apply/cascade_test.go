package apply_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

var nsGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// A Namespace that leaves an app's desired set is not pruned while objects in it
// are still wanted, by the same app or by another one: deleting it would take
// them all along (render gives a shared Namespace to one app, and that can move).
func TestPruneKeepsNamespaceStillInUse(t *testing.T) {
	e := newEnv(t)
	shared := e.ns + "-shared"
	t.Cleanup(func() { _ = e.dyn.Resource(nsGVR).Delete(context.Background(), shared, metav1.DeleteOptions{}) })
	const nsDoc = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %[1]s\n---\n"
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: %[1]s\ndata: {k: v}\n---\n"
	}
	mustApply(t, e, apply.Request{App: "a", Objects: objs(t, shared, nsDoc+cm("a1")+cm("a2")), Prune: true})
	mustApply(t, e, apply.Request{App: "b", Objects: objs(t, shared, cm("b1")), Prune: true})

	// The Namespace moves out of a's set; a still has a1 in it.
	cs := mustApply(t, e, apply.Request{App: "a", Objects: objs(t, shared, cm("a1")+cm("a2")), Prune: true})
	c := wantAction(t, cs, "Namespace", "", shared, apply.Skipped)
	t.Logf("reason: %s", c.Reason)
	// a leaves entirely; b's ConfigMap still lives there.
	cs = mustApply(t, e, apply.Request{App: "a", Prune: true, AllowMassPrune: true})
	wantAction(t, cs, "ConfigMap", shared, "a1", apply.Pruned)
	if _, err := e.dyn.Resource(nsGVR).Get(ctxT(t), shared, metav1.GetOptions{}); err != nil {
		t.Fatalf("Namespace %s was deleted although app b has objects in it: %v", shared, err)
	}
	if _, err := e.dyn.Resource(cmGVR).Namespace(shared).Get(ctxT(t), "b1", metav1.GetOptions{}); err != nil {
		t.Fatalf("app b's ConfigMap is gone: %v", err)
	}
}
