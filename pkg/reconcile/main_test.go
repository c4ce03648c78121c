package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north", "south")) }

var cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// env is one test's view of north and south: the same namespace name on both
// (it holds the test's objects and inventories), a Manager per cluster and a
// Reconciler whose Pool dials them.
type env struct {
	ns  string
	m   map[string]*apply.Manager
	dyn map[string]dynamic.Interface
	cfg map[string]*rest.Config
	rec *reconcile.Reconciler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := testfleet.Get(t)
	e := &env{m: map[string]*apply.Manager{}, dyn: map[string]dynamic.Interface{}, cfg: map[string]*rest.Config{}}
	e.ns = f.Namespace(t, "north")
	for _, name := range []string{"north", "south"} {
		cfg := f.RESTConfig(t, name)
		if name == "south" {
			createNamespace(t, cfg, e.ns)
		}
		c, err := cluster.New(name, cfg, cluster.ConnectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		opts := apply.DefaultOptions()
		opts.InventoryNamespace = e.ns
		opts.PollInterval = 250 * time.Millisecond
		e.m[name] = apply.NewManager(c, opts)
		e.dyn[name] = dynamic.NewForConfigOrDie(cfg)
		e.cfg[name] = cfg
	}
	dial := func(_ context.Context, name string) (*apply.Manager, error) {
		m, ok := e.m[name]
		if !ok {
			return nil, fmt.Errorf("cluster %s: %w: not in this test", name, cluster.ErrNoCredentials)
		}
		return m, nil
	}
	e.rec = reconcile.New(reconcile.NewPool(dial, reconcile.PoolOptions{Backoff: 50 * time.Millisecond}), render.New(render.Options{}), reconcile.Options{})
	return e
}

func createNamespace(t *testing.T, cfg *rest.Config, ns string) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(cfg)
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := dyn.Resource(nsGVR).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dyn.Resource(nsGVR).Delete(context.Background(), ns, metav1.DeleteOptions{}) })
}

func ctxT(t *testing.T) context.Context { return testfleet.Context(t) }

// objs decodes a YAML stream after formatting it with the namespace as %[1]s.
func objs(t *testing.T, ns, stream string) []*unstructured.Unstructured {
	return testfleet.Objects(t, ns, stream)
}

func configMaps(t *testing.T, ns string, names ...string) []*unstructured.Unstructured {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %%[1]s}\ndata: {k: v}\n---\n", n)
	}
	return objs(t, ns, b.String())
}

func (e *env) exists(t *testing.T, clusterName, name string) bool {
	t.Helper()
	_, err := e.dyn[clusterName].Resource(cmGVR).Namespace(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func (e *env) mustApply(t *testing.T, clusterName string, req apply.Request) {
	t.Helper()
	if _, err := e.m[clusterName].Apply(ctxT(t), req); err != nil {
		t.Fatalf("apply %s on %s: %v", req.App, clusterName, err)
	}
}

// fleetRepo is a repo with a fleet name, north and south, and the apps.
func fleetRepo(name string, apps ...*v1alpha1.App) *fleet.Repo {
	repo := &fleet.Repo{Clusters: []*v1alpha1.Cluster{
		{Metadata: v1alpha1.ObjectMeta{Name: "north", Labels: map[string]string{"region": "north"}}},
		{Metadata: v1alpha1.ObjectMeta{Name: "south", Labels: map[string]string{"region": "south"}}},
	}, Apps: apps}
	if name != "" {
		repo.Fleet = &v1alpha1.Fleet{Metadata: v1alpha1.ObjectMeta{Name: name}}
	}
	return repo
}

func app(name, ns string, prune bool, deps ...string) *v1alpha1.App {
	return &v1alpha1.App{Metadata: v1alpha1.ObjectMeta{Name: name}, Spec: v1alpha1.AppSpec{Namespace: ns, Prune: prune, DependsOn: deps}}
}

// desired is a hand-made Desired: the pairs given, per cluster.
func desired(repo *fleet.Repo, clusters []string, pairs map[string][]render.AppResult) *reconcile.Desired {
	repo.Revision = "r1"
	d := &reconcile.Desired{Repo: repo, Clusters: clusters, Rendered: &render.Result{Revision: "r1"}}
	for _, c := range clusters {
		if apps, ok := pairs[c]; ok {
			d.Rendered.Clusters = append(d.Rendered.Clusters, render.ClusterResult{Cluster: c, Apps: apps})
		}
	}
	return d
}

func outcome(t *testing.T, res *reconcile.Result, clusterName, appName string) reconcile.PairOutcome {
	t.Helper()
	for _, p := range res.Pairs {
		if p.Cluster == clusterName && p.App == appName {
			return p
		}
	}
	t.Fatalf("no outcome for %s/%s in %+v", clusterName, appName, res.Pairs)
	return reconcile.PairOutcome{}
}
