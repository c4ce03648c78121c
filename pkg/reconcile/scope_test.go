package reconcile_test

import (
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/fleetsync/fleetsync/internal/testtree"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// A cluster-scoped kind whose CRD is on the cluster but in no app of the
// fleet: connected, its scope comes from discovery (no namespace, no
// warning); offline it is namespaced with a warning, never silently.
func TestDesiredScopeFromDiscovery(t *testing.T) {
	e := newEnv(t)
	group := e.ns + ".scope.fleetsync.dev"
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "gizmos." + group},
		"spec": map[string]any{
			"group": group, "scope": "Cluster",
			"names":    map[string]any{"kind": "Gizmo", "plural": "gizmos", "singular": "gizmo", "listKind": "GizmoList"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true, "schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := e.dyn["north"].Resource(crds).Create(ctxT(t), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.dyn["north"].Resource(crds).Delete(ctxT(t), crd.GetName(), metav1.DeleteOptions{}) })
	dir := t.TempDir()
	files := map[string]string{
		"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
		"apps/giz/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: giz}\nspec:\n  namespace: " + e.ns +
			"\n  source: {kustomize: {path: base}}\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n",
		"apps/giz/base/gizmo.yaml": "apiVersion: " + group + "/v1\nkind: Gizmo\nmetadata: {name: big}\n",
	}
	testtree.Write(t, dir, files)
	repo, err := fleet.Load(ctxT(t), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	gizmo := func(res *render.Result) (*unstructured.Unstructured, []string) {
		p := res.Get("north", "giz")
		if p == nil || p.Err != nil {
			t.Fatalf("north/giz: %+v", p)
		}
		for _, o := range p.Objects {
			if o.GetKind() == "Gizmo" {
				return o, p.Warnings
			}
		}
		t.Fatal("no Gizmo rendered")
		return nil, nil
	}
	// The CRD is served once established, and in discovery a little later
	// (the API server updates its discovery document on its own): wait for
	// both before the Pool reads discovery (once).
	dc := discovery.NewDiscoveryClientForConfigOrDie(e.cfg["north"])
	served := func() bool {
		l, err := dc.ServerResourcesForGroupVersion(group + "/v1")
		return err == nil && len(l.APIResources) > 0
	}
	deadline := time.Now().Add(30 * time.Second)
	for !established(t, e.dyn["north"].Resource(crds), crd.GetName()) || !served() {
		if time.Now().After(deadline) {
			t.Fatal("the CRD was not established and in discovery in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	d, err := e.rec.Desired(ctxT(t), repo, []string{"north"})
	if err != nil {
		t.Fatal(err)
	}
	if o, warns := gizmo(d.Rendered); o.GetNamespace() != "" || len(warns) != 0 {
		t.Fatalf("connected render: namespace %q, warnings %q; want cluster-scoped from discovery", o.GetNamespace(), warns)
	}
	o, warns := gizmo(render.New(render.Options{}).Render(ctxT(t), repo, render.Selection{}))
	if o.GetNamespace() != e.ns || len(warns) != 1 || !strings.Contains(warns[0], "the scope of kind "+group+"/Gizmo is unknown here") {
		t.Fatalf("offline render: namespace %q, warnings %q", o.GetNamespace(), warns)
	}
}

func established(t *testing.T, ri dynamic.ResourceInterface, name string) bool {
	t.Helper()
	u, err := ri.Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
