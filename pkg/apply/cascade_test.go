package apply_test

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
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

// apply.Fleet prunes nothing on a cluster where any pair failed to render: an
// object moving to the app that failed would otherwise be lost.
func TestFleetNoPruneOnClusterWithRenderFailure(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "a", Fleet: "f", Objects: configMaps(t, e.ns, 2), Prune: true})
	repo := &fleet.Repo{
		Fleet: &v1alpha1.Fleet{Metadata: v1alpha1.ObjectMeta{Name: "f"}},
		Apps: []*v1alpha1.App{
			{Metadata: v1alpha1.ObjectMeta{Name: "a"}, Spec: v1alpha1.AppSpec{Prune: true}},
			{Metadata: v1alpha1.ObjectMeta{Name: "b"}, Spec: v1alpha1.AppSpec{Prune: true}},
		},
	}
	rendered := &render.Result{Clusters: []render.ClusterResult{{Cluster: "north", Apps: []render.AppResult{
		{App: "a", Objects: configMaps(t, e.ns, 1)}, // cm-1 "moves" to b
		{App: "b", Err: errors.New("north/b: render failed on purpose")},
	}}}}
	connect := func(context.Context, string) (*apply.Manager, error) { return e.m, nil }
	res := apply.Fleet(ctxT(t), repo, rendered, connect, apply.FleetOptions{AllowMassPrune: true})
	if res.OK() {
		t.Fatal("Fleet reported OK although b failed to render")
	}
	if !e.exists(t, "cm-1") {
		t.Fatal("cm-1 was pruned on a cluster where another pair failed to render")
	}
	for _, p := range res.Pairs {
		if p.App == "a" && p.ChangeSet != nil {
			for _, c := range p.ChangeSet.Changes {
				if c.Action == apply.Pruned {
					t.Errorf("pruned %s despite the render failure", c.Object)
				}
			}
		}
	}
}

// A cluster that no app targets any more renders nothing; named in
// FleetOptions.Clusters, its leftover apps are still removed.
func TestFleetRemovesAppsFromClusterNoAppTargets(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "gone", Fleet: "f", Objects: configMaps(t, e.ns, 2), Prune: true})
	repo := &fleet.Repo{Fleet: &v1alpha1.Fleet{Metadata: v1alpha1.ObjectMeta{Name: "f"}}}
	connect := func(context.Context, string) (*apply.Manager, error) { return e.m, nil }
	res := apply.Fleet(ctxT(t), repo, &render.Result{}, connect, apply.FleetOptions{AllowMassPrune: true, Clusters: []string{"north"}})
	if len(res.Pairs) != 1 || res.Pairs[0].App != "gone" || !res.Pairs[0].Removed || res.Pairs[0].Err != nil {
		t.Fatalf("want app gone removed from north, got %+v", res.Pairs)
	}
	if e.exists(t, "cm-0") || e.exists(t, "cm-1") {
		t.Fatal("the removed app's objects are still there")
	}
}
