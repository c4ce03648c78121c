package apply_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

// configMaps returns n ConfigMaps cm-0..cm-(n-1); annotated ones get prune: disabled.
func configMaps(t *testing.T, ns string, n int, keep ...int) []*unstructured.Unstructured {
	var b strings.Builder
	for i := range n {
		ann := ""
		for _, k := range keep {
			if k == i {
				ann = "\n  annotations: {fleetsync.dev/prune: disabled}"
			}
		}
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\n  namespace: %%[1]s%s\ndata: {i: \"%d\"}\n---\n", i, ann, i)
	}
	return objs(t, ns, b.String())
}

func (e *env) exists(t *testing.T, name string) bool {
	t.Helper()
	_, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), name, metav1.GetOptions{})
	return err == nil
}

func TestPrune(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 5, 4), Prune: true})
	// Drop cm-3 and cm-4 (cm-4 has prune: disabled).
	cs := mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 3), Prune: true})
	wantAction(t, cs, "ConfigMap", e.ns, "cm-3", apply.Pruned)
	wantAction(t, cs, "ConfigMap", e.ns, "cm-4", apply.Skipped)
	if e.exists(t, "cm-3") {
		t.Error("cm-3 not deleted")
	}
	if !e.exists(t, "cm-4") {
		t.Error("cm-4 (prune: disabled) was deleted")
	}
	inv, err := e.m.Inventory(ctxT(t), "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Objects) != 3 {
		t.Fatalf("inventory after prune: %+v", inv.Objects)
	}
}

func TestPruneOffKeepsInventory(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 4)})
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 3)}) // Prune false
	if !e.exists(t, "cm-3") {
		t.Fatal("deleted without Prune")
	}
	// A later pruning apply still knows cm-3.
	cs := mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 3), Prune: true})
	wantAction(t, cs, "ConfigMap", e.ns, "cm-3", apply.Pruned)
}

func TestMassPruneRefused(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 4), Prune: true})
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "p", Objects: configMaps(t, e.ns, 1), Prune: true})
	var mp *apply.MassPruneError
	if !errors.As(err, &mp) || mp.Prune != 3 || mp.Inventory != 4 {
		t.Fatalf("err = %v, want a MassPruneError for 3 of 4", err)
	}
	if !strings.Contains(err.Error(), "north/p") || !strings.Contains(err.Error(), "--allow-mass-prune") {
		t.Errorf("error does not name the pair and the way out: %v", err)
	}
	if n := cs.Count(apply.Pruned); n != 0 {
		t.Fatalf("pruned %d", n)
	}
	for i := 1; i < 4; i++ {
		if !e.exists(t, fmt.Sprintf("cm-%d", i)) {
			t.Fatalf("cm-%d deleted by a refused prune", i)
		}
	}
	inv, err := e.m.Inventory(ctxT(t), "p")
	if err != nil || len(inv.Objects) != 4 {
		t.Fatalf("inventory lost objects: %+v %v", inv, err)
	}
	cs = mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 1), Prune: true, AllowMassPrune: true})
	if n := cs.Count(apply.Pruned); n != 3 {
		t.Fatalf("pruned %d with AllowMassPrune, want 3", n)
	}
}

func TestIncompleteNeverPrunes(t *testing.T) {
	// When loading, rendering or mirroring failed, the caller marks the request
	// Incomplete: whatever Prune and AllowMassPrune say, nothing is deleted and the
	// inventory keeps every object.
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 4), Prune: true})
	cs := mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 2), Prune: true, AllowMassPrune: true, Incomplete: true})
	if n := cs.Count(apply.Pruned); n != 0 {
		t.Fatalf("an incomplete request pruned %d objects", n)
	}
	for i := range 4 {
		if !e.exists(t, fmt.Sprintf("cm-%d", i)) {
			t.Fatalf("cm-%d deleted", i)
		}
	}
	inv, err := e.m.Inventory(ctxT(t), "p")
	if err != nil || len(inv.Objects) != 4 {
		t.Fatalf("inventory = %+v, %v; want all 4 objects kept", inv, err)
	}
	// An empty incomplete request (the whole render failed) prunes nothing either.
	cs = mustApply(t, e, apply.Request{App: "p", Prune: true, AllowMassPrune: true, Incomplete: true})
	if n := cs.Count(apply.Pruned); n != 0 || !e.exists(t, "cm-0") {
		t.Fatalf("pruned %d", n)
	}
}

func TestPruneOrderNamespacedBeforeNamespace(t *testing.T) {
	e := newEnv(t)
	nsName := e.ns + "-own"
	stream := `apiVersion: v1
kind: Namespace
metadata: {name: %[1]s-own}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: inside, namespace: %[1]s-own}
data: {a: b}
`
	mustApply(t, e, apply.Request{App: "own", Objects: objs(t, e.ns, stream), Prune: true})
	var order []string
	cs := mustApply(t, e, apply.Request{App: "own", Prune: true, AllowMassPrune: true,
		Progress: func(c apply.Change) { order = append(order, c.Object.Kind) }})
	wantAction(t, cs, "Namespace", "", nsName, apply.Pruned)
	wantAction(t, cs, "ConfigMap", nsName, "inside", apply.Pruned)
	if strings.Join(order, ",") != "ConfigMap,Namespace" {
		t.Fatalf("prune order %v, want the ConfigMap before its Namespace", order)
	}
}

// TestPruneNeverDeletesForeignObjects: an object a person listed in an app's
// inventory (an edit of the ConfigMap) is not deleted by prune, because
// fleetsync never applied it (its managedFields say so); fleetsync's own
// leftovers are pruned as usual.
func TestPruneNeverDeletesForeignObjects(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 4), Prune: true})
	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "foreign", "namespace": e.ns, "labels": map[string]any{"fleetsync.dev/app": "p"}},
		"data":     map[string]any{"owner": "a person"},
	}}
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Create(ctxT(t), foreign, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	inv, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), apply.InventoryName("p"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := inv.Object["data"].(map[string]any)
	objects := data["objects"].(string)
	data["objects"] = strings.Replace(objects, "[", fmt.Sprintf(`[{"version":"v1","kind":"ConfigMap","namespace":%q,"name":"foreign"},`, e.ns), 1)
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Update(ctxT(t), inv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs := mustApply(t, e, apply.Request{App: "p", Objects: configMaps(t, e.ns, 3), Prune: true})
	wantAction(t, cs, "ConfigMap", e.ns, "cm-3", apply.Pruned)
	c := wantAction(t, cs, "ConfigMap", e.ns, "foreign", apply.Skipped)
	if !strings.Contains(c.Reason, "not applied by fleetsync") {
		t.Errorf("foreign object skipped with reason %q, want it to say fleetsync did not apply it", c.Reason)
	}
	if !e.exists(t, "foreign") {
		t.Fatal("prune deleted an object fleetsync never applied")
	}
	if e.exists(t, "cm-3") {
		t.Error("cm-3 (fleetsync's) not pruned")
	}
}
