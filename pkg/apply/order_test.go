package apply_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

func TestOrderApps(t *testing.T) {
	reqs := []apply.AppRequest{
		{Request: apply.Request{App: "c"}, DependsOn: []string{"b"}},
		{Request: apply.Request{App: "a"}, DependsOn: []string{"b", "elsewhere"}},
		{Request: apply.Request{App: "b"}},
		{Request: apply.Request{App: "d"}},
	}
	got, err := apply.OrderApps(reqs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.App)
	}
	if strings.Join(names, ",") != "b,a,c,d" {
		t.Fatalf("order %v", names)
	}
	_, err = apply.OrderApps([]apply.AppRequest{
		{Request: apply.Request{App: "x"}, DependsOn: []string{"y"}},
		{Request: apply.Request{App: "y"}, DependsOn: []string{"x"}},
	})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle not reported: %v", err)
	}
}

func TestApplyAppsDependsOn(t *testing.T) {
	e := newEnv(t)
	backend := strings.ReplaceAll(deployment, "SELECTOR", "api")
	frontend := `apiVersion: v1
kind: ConfigMap
metadata: {name: frontend, namespace: %[1]s}
data: {backend: api}
`
	var order []string
	progress := func(c apply.Change) { order = append(order, c.App) }
	reqs := []apply.AppRequest{
		{Request: apply.Request{App: "frontend", Objects: objs(t, e.ns, frontend), Progress: progress, Timeout: 2 * time.Minute}, DependsOn: []string{"backend"}},
		{Request: apply.Request{App: "backend", Objects: objs(t, e.ns, backend), Progress: progress, Timeout: 2 * time.Minute}},
	}
	out := e.m.ApplyApps(ctxT(t), reqs, nil)
	if len(out) != 2 || out[0].App != "backend" || out[1].App != "frontend" {
		t.Fatalf("outcomes %+v", out)
	}
	for _, o := range out {
		if o.Err != nil || !o.Healthy {
			t.Fatalf("%s: healthy=%v err=%v", o.App, o.Healthy, o.Err)
		}
	}
	if strings.Join(order, ",") != "backend,frontend" {
		t.Fatalf("changes in order %v, want backend's before frontend's", order)
	}

	// A dependency that is not healthy stops its dependents.
	broken := strings.Replace(backend, "replicas: 2", "replicas: -1", 1)
	reqs[1].Objects = objs(t, e.ns, broken)
	reqs[0].Objects = objs(t, e.ns, strings.Replace(frontend, "backend: api", "backend: api-v2", 1))
	out = e.m.ApplyApps(ctxT(t), reqs, nil)
	if out[0].Err == nil || out[1].ChangeSet != nil || out[1].Err == nil {
		t.Fatalf("outcomes %+v", out)
	}
	if !strings.Contains(out[1].Err.Error(), "dependency backend is not healthy") {
		t.Fatalf("frontend error: %v", out[1].Err)
	}
	// A dependency outside the request is judged by its inventory on the cluster.
	out = e.m.ApplyApps(ctxT(t), reqs[:1], nil)
	if out[0].Err != nil || !out[0].Healthy {
		t.Fatalf("frontend with backend deployed earlier: %+v", out[0])
	}
	out = e.m.ApplyApps(ctxT(t), []apply.AppRequest{{Request: apply.Request{App: "x", Objects: objs(t, e.ns, frontend)}, DependsOn: []string{"nowhere"}}}, nil)
	if out[0].Err == nil || out[0].ChangeSet != nil {
		t.Fatalf("dependency that is not deployed: %+v", out[0])
	}
}

func TestApplyFleetSkipsFailedRender(t *testing.T) {
	// A pair whose render failed is neither applied nor pruned, its dependents
	// wait, and other pairs go on.
	e := newEnv(t)
	repo := &fleet.Repo{
		Clusters: []*v1alpha1.Cluster{{Metadata: v1alpha1.ObjectMeta{Name: "north"}}},
		Apps: []*v1alpha1.App{
			{Metadata: v1alpha1.ObjectMeta{Name: "good"}, Spec: v1alpha1.AppSpec{Namespace: e.ns, Prune: true}},
			{Metadata: v1alpha1.ObjectMeta{Name: "bad"}, Spec: v1alpha1.AppSpec{Namespace: e.ns, Prune: true}},
			{Metadata: v1alpha1.ObjectMeta{Name: "needs-bad"}, Spec: v1alpha1.AppSpec{Namespace: e.ns, DependsOn: []string{"bad"}}},
		},
	}
	// "bad" was applied before, with 2 objects.
	mustApply(t, e, apply.Request{App: "bad", Objects: configMaps(t, e.ns, 2), Prune: true})
	rendered := &render.Result{Revision: "r2", Clusters: []render.ClusterResult{{Cluster: "north", Apps: []render.AppResult{
		{App: "bad", Err: errors.New("kustomize build: boom")},
		{App: "good", Objects: objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good, namespace: %[1]s}\n")},
		{App: "needs-bad", Objects: objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: needs-bad, namespace: %[1]s}\n")},
	}}}}
	connect := func(context.Context, string) (*apply.Manager, error) { return e.m, nil }
	res := apply.Fleet(ctxT(t), repo, rendered, connect, apply.FleetOptions{AllowMassPrune: true, Timeout: time.Minute})
	if res.OK() {
		t.Fatal("OK with a failed render")
	}
	got := map[string]apply.PairOutcome{}
	for _, p := range res.Pairs {
		got[p.App] = p
	}
	if p := got["bad"]; p.Err == nil || p.ChangeSet != nil || !strings.Contains(p.Err.Error(), "boom") {
		t.Fatalf("bad: %+v", p)
	}
	if p := got["good"]; p.Err != nil || !p.Healthy {
		t.Fatalf("good: %+v", p)
	}
	if p := got["needs-bad"]; p.Err == nil || p.ChangeSet != nil {
		t.Fatalf("needs-bad: %+v", p)
	}
	for _, n := range []string{"cm-0", "cm-1"} {
		if !e.exists(t, n) {
			t.Fatalf("%s of the failed pair was pruned", n)
		}
	}
}

func TestApplyFleetWaves(t *testing.T) {
	// Wave 2 of an app starts only when wave 1 is healthy: with wave 1 failing,
	// wave 2 is not applied.
	e := newEnv(t)
	north := &v1alpha1.Cluster{Metadata: v1alpha1.ObjectMeta{Name: "north", Labels: map[string]string{"region": "north"}}}
	south := &v1alpha1.Cluster{Metadata: v1alpha1.ObjectMeta{Name: "south", Labels: map[string]string{"region": "south"}}}
	app := &v1alpha1.App{Metadata: v1alpha1.ObjectMeta{Name: "canary"}, Spec: v1alpha1.AppSpec{Namespace: e.ns,
		Rollout: &v1alpha1.Rollout{Waves: []v1alpha1.Wave{
			{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "north"}}},
			{ClusterSelector: &metav1.LabelSelector{}},
		}}}}
	repo := &fleet.Repo{Clusters: []*v1alpha1.Cluster{north, south}, Apps: []*v1alpha1.App{app}}
	bad := objs(t, e.ns, "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: %[1]s}\nspec: {ports: [{port: 70000}]}\n")
	rendered := &render.Result{Clusters: []render.ClusterResult{
		{Cluster: "north", Apps: []render.AppResult{{App: "canary", Objects: bad}}},
		{Cluster: "south", Apps: []render.AppResult{{App: "canary", Objects: bad}}},
	}}
	connect := func(_ context.Context, name string) (*apply.Manager, error) {
		_ = name
		return e.m, nil
	}
	res := apply.Fleet(ctxT(t), repo, rendered, connect, apply.FleetOptions{Timeout: time.Minute})
	if res.Pairs[0].Cluster != "north" || res.Pairs[0].Wave != 0 || res.Pairs[0].ChangeSet == nil {
		t.Fatalf("north: %+v", res.Pairs[0])
	}
	s := res.Pairs[1]
	if s.Wave != 1 || s.ChangeSet != nil || s.Err == nil || !strings.Contains(s.Err.Error(), "rollout stopped") {
		t.Fatalf("south: %+v", s)
	}
}

func TestApplyFleetRemovesAppsThatLeftTheCluster(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "old", Fleet: "this-fleet", Objects: configMaps(t, e.ns, 2), Prune: true})
	mustApply(t, e, apply.Request{App: "foreign", Fleet: "another-fleet", Prune: true,
		Objects: objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: foreign, namespace: %[1]s}\n")})
	mustApply(t, e, apply.Request{App: "kept", Fleet: "this-fleet", Objects: objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: %[1]s}\n")})
	repo := &fleet.Repo{
		Fleet:    &v1alpha1.Fleet{Metadata: v1alpha1.ObjectMeta{Name: "this-fleet"}},
		Clusters: []*v1alpha1.Cluster{{Metadata: v1alpha1.ObjectMeta{Name: "north"}}},
		Apps:     []*v1alpha1.App{{Metadata: v1alpha1.ObjectMeta{Name: "cur"}, Spec: v1alpha1.AppSpec{Namespace: e.ns}}},
	}
	rendered := &render.Result{Clusters: []render.ClusterResult{{Cluster: "north", Apps: []render.AppResult{
		{App: "cur", Objects: objs(t, e.ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cur, namespace: %[1]s}\n")},
	}}}}
	connect := func(context.Context, string) (*apply.Manager, error) { return e.m, nil }
	outcome := func(res *apply.FleetResult, app string) apply.PairOutcome {
		for _, p := range res.Pairs {
			if p.App == app {
				return p
			}
		}
		t.Fatalf("no outcome for %s in %+v", app, res.Pairs)
		return apply.PairOutcome{}
	}

	// Removing a whole app is a mass prune: refused without AllowMassPrune.
	res := apply.Fleet(ctxT(t), repo, rendered, connect, apply.FleetOptions{Timeout: time.Minute})
	if o := outcome(res, "old"); !o.Removed || o.Err == nil || !strings.Contains(o.Err.Error(), "no longer desired") {
		t.Fatalf("old: %+v", o)
	}
	if !e.exists(t, "cm-0") || !e.exists(t, "cm-1") {
		t.Fatal("objects of a removed app deleted without --allow-mass-prune")
	}
	// An app that did not prune leaves its objects and is forgotten.
	if o := outcome(res, "kept"); o.Err != nil || o.ChangeSet.Count(apply.Skipped) != 1 {
		t.Fatalf("kept: %+v", o)
	}
	if !e.exists(t, "kept") {
		t.Fatal("object of a non-pruning app deleted")
	}
	if inv, err := e.m.Inventory(ctxT(t), "kept"); err != nil || inv != nil {
		t.Fatalf("inventory of kept: %+v %v", inv, err)
	}

	res = apply.Fleet(ctxT(t), repo, rendered, connect, apply.FleetOptions{Timeout: time.Minute, AllowMassPrune: true})
	if o := outcome(res, "old"); o.Err != nil || o.ChangeSet.Count(apply.Pruned) != 2 {
		t.Fatalf("old with AllowMassPrune: %+v", o)
	}
	if e.exists(t, "cm-0") || e.exists(t, "cm-1") {
		t.Fatal("objects of the removed app still there")
	}
	if inv, err := e.m.Inventory(ctxT(t), "old"); err != nil || inv != nil {
		t.Fatalf("inventory of old: %+v %v", inv, err)
	}
	if !res.OK() {
		t.Fatalf("not OK: %+v", res.Pairs)
	}
	// Another fleet's app on the same cluster is never touched.
	for _, p := range res.Pairs {
		if p.App == "foreign" {
			t.Fatalf("another fleet's app was handled: %+v", p)
		}
	}
	if !e.exists(t, "foreign") {
		t.Fatal("another fleet's object deleted")
	}
}
