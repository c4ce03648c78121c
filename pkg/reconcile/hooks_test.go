package reconcile_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/internal/testtree"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// hookChart is a local chart with a ConfigMap and three hooks; FAIL makes
// its pre-install Job fail in the local fleet.
var hookChart = map[string]string{
	"Chart.yaml":              "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
	"values.yaml":             "fail: false\n",
	"templates/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-settings}\ndata: {v: \"1\"}\n",
	"templates/hooks.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations: {helm.sh/hook: "pre-install,pre-upgrade", helm.sh/hook-weight: "-1"}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {localfleet.fleetsync.dev/fail: {{ .Values.fail | quote }}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example.invalid/migrate:1}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-seed
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: "5", helm.sh/hook-delete-policy: hook-succeeded}
data: {v: "1"}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-notify
  annotations: {helm.sh/hook: post-install}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example.invalid/notify:1}]
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {helm.sh/hook: test}
spec:
  containers: [{name: c, image: example.invalid/test:1}]
`,
}

// A Helm chart's hooks, rendered and applied end to end: pre-install by
// weight, the release, post-install; no test hook; diff sees no drift; a
// failing pre-install hook stops its app with the Job's reason.
func TestHelmChartHooksEndToEnd(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	files := map[string]string{
		"fleet.yaml":          "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: f}\n",
		"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
	}
	for _, a := range []struct{ name, fail string }{{"good", "false"}, {"bad", "true"}} {
		files["apps/"+a.name+"/app.yaml"] = "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: " + a.name + "}\nspec:\n  namespace: " + e.ns +
			"\n  prune: true\n  source: {helm: {chart: ./chart, values: {fail: " + a.fail + "}}}\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n"
		for p, body := range hookChart {
			files["apps/"+a.name+"/chart/"+p] = body
		}
	}
	testtree.Write(t, dir, files)
	repo, err := fleet.Load(ctxT(t), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.rec.Desired(ctxT(t), repo, []string{"north"})
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string][]string{}
	progress := func(c apply.Change) {
		a := string(c.Action)
		if c.Phase != "" {
			a += " " + c.Phase
		}
		steps[c.App] = append(steps[c.App], a+" "+c.Object.Kind+"/"+c.Object.Name)
	}
	start := time.Now()
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute, Progress: progress})
	t.Logf("apply of two hooked charts: %s", time.Since(start).Round(time.Millisecond))
	want := []string{"hook pre-install Job/good-migrate", "hook pre-install ConfigMap/good-seed", "created ConfigMap/good-settings", "hook post-install Job/good-notify"}
	if !slices.Equal(steps["good"], want) {
		t.Fatalf("good: steps\n  %s\nwant\n  %s", strings.Join(steps["good"], "\n  "), strings.Join(want, "\n  "))
	}
	if p := outcome(t, res, "north", "good"); p.Err != nil || !p.Healthy {
		t.Fatalf("good: %+v", p)
	}
	bad := outcome(t, res, "north", "bad")
	if bad.Err == nil || bad.Healthy || !strings.Contains(bad.Error, "hook Job/"+e.ns+"/bad-migrate (pre-install): BackoffLimitExceeded: Job has reached the specified backoff limit") {
		t.Fatalf("bad: %+v", bad)
	}
	if e.exists(t, "north", "bad-settings") {
		t.Fatal("bad's release was applied after its pre-install hook failed")
	}
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
	for _, p := range diff.Pairs {
		if p.App == "good" && (p.Err != nil || p.Report.Drifted() || len(p.Report.Objects) != 1) {
			t.Fatalf("diff of good: %+v %v", p.Report, p.Err)
		}
	}
}
