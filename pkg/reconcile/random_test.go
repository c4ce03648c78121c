package reconcile_test

import (
	"context"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/internal/testtree"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// randomChart generates a password with randAlphaNum and rolls its
// Deployment when the password changes (a checksum annotation), as popular
// charts do.
var randomChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: db\nversion: 0.1.0\n",
	"values.yaml": "tier: a\n",
	"templates/secret.yaml": `{{- $pw := randAlphaNum 16 }}
apiVersion: v1
kind: Secret
metadata: {name: {{ .Release.Name }}-password}
stringData: {password: {{ $pw | quote }}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {checksum/password: {{ $pw | sha256sum | quote }}}
    spec:
      containers: [{name: db, image: example.invalid/db:1, env: [{name: TIER, value: {{ .Values.tier | quote }}}]}]
`,
}

// A chart with random output, applied by three separate processes' worth of
// renders: unchanged inputs never rotate the password or restart the
// workload; a changed value re-applies everything.
func TestRandomOutputNotReapplied(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write := func(tier string) {
		files := map[string]string{
			"fleet.yaml":          "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: f}\n",
			"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
			"apps/db/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: db}\nspec:\n  namespace: " + e.ns +
				"\n  source: {helm: {chart: ./chart, values: {tier: " + tier + "}}}\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n",
		}
		for p, body := range randomChart {
			files["apps/db/chart/"+p] = body
		}
		testtree.Write(t, dir, files)
	}
	// Each apply uses a new Renderer, as a new process (or a cold daemon) would.
	applyOnce := func() map[string]apply.Action {
		t.Helper()
		repo, err := fleet.Load(ctxT(t), os.DirFS(dir))
		if err != nil {
			t.Fatal(err)
		}
		dial := func(_ context.Context, name string) (*apply.Manager, error) { return e.m[name], nil }
		rec := reconcile.New(reconcile.NewPool(dial, reconcile.PoolOptions{}), render.New(render.Options{}), reconcile.Options{})
		d, err := rec.Desired(ctxT(t), repo, []string{"north"})
		if err != nil {
			t.Fatal(err)
		}
		actions := map[string]apply.Action{}
		res := rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute, Progress: func(c apply.Change) { actions[c.Object.Kind] = c.Action }})
		if p := outcome(t, res, "north", "db"); p.Err != nil || !p.Healthy {
			t.Fatalf("apply: %+v", p)
		}
		return actions
	}
	secrets := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	password := func() string {
		return e.get(t, secrets, "db-password").Object["data"].(map[string]any)["password"].(string)
	}
	generation := func() int64 { return e.get(t, deployments, "db").GetGeneration() }

	write("a")
	applyOnce()
	pw, gen := password(), generation()
	for i := range 2 {
		got := applyOnce()
		if got["Secret"] != apply.Unchanged || got["Deployment"] != apply.Unchanged {
			t.Fatalf("re-apply %d with unchanged inputs: %v, want both unchanged", i, got)
		}
		if password() != pw || generation() != gen {
			t.Fatalf("re-apply %d rotated the password or rolled the Deployment (generation %d -> %d)", i, gen, generation())
		}
	}
	write("b") // a real change: everything is applied, a new password included
	if got := applyOnce(); got["Deployment"] != apply.Configured || got["Secret"] != apply.Configured {
		t.Fatalf("apply after a values change: %v, want both configured", got)
	}
	if password() == pw || generation() == gen {
		t.Fatal("a changed input did not re-apply the random output")
	}
}
