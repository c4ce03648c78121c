package apply_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/pkg/apply"
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
