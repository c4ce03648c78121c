package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/internal/testtree"
)

// `fleetsync apply` prints a chart's hooks as they run, in order, and
// `apply --dry-run` the hooks that would run.
func TestApplyPrintsHooks(t *testing.T) {
	f := testfleet.Get(t)
	ns := f.Namespace(t, "north")
	app := ns // inventories are cluster-wide (fleetsync-system): one app per test
	t.Cleanup(func() {
		cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "north"))
		_ = cs.CoreV1().ConfigMaps("fleetsync-system").Delete(context.Background(), "fleetsync-inv-"+app, metav1.DeleteOptions{})
	})
	repo := t.TempDir()
	files := map[string]string{
		"fleet.yaml":          "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: hooks}\n",
		"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
		"apps/" + app + "/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: " + app + "}\nspec:\n  namespace: " + ns +
			"\n  source: {helm: {chart: ./chart}}\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n",
		"apps/" + app + "/chart/Chart.yaml":           "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"apps/" + app + "/chart/values.yaml":          "v: \"1\"\n",
		"apps/" + app + "/chart/templates/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: {{ .Values.v | quote }}}\n",
		"apps/" + app + "/chart/templates/hooks.yaml": hookJobs,
	}
	testtree.Write(t, repo, files)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	base := []string{"--repo", repo, "--kubeconfig-dir", f.Dir, "--timeout", "1m"}
	out, msg, code := runApplyOrDiff(t, "apply", base...)
	if code != 0 {
		t.Fatalf("apply: exit %d (%s)\n%s", code, msg, out)
	}
	wantLines(t, out,
		`Job/`+ns+`/migrate\s+hook pre-install\s+weight -1: Job complete`,
		`ConfigMap/`+ns+`/web\s+created`,
		`Job/`+ns+`/notify\s+hook post-install\s+weight 0: Job complete`)
	if !regexp.MustCompile(`(?m)^north\s+` + app + `\s+1\s+\d+\s+\d+\s+\d+\s+0\s+0\s+2\s+0\s+Healthy`).MatchString(out) {
		t.Fatalf("summary lacks the hooks count:\n%s", out)
	}

	if err := os.WriteFile(filepath.Join(repo, "apps/"+app+"/chart/values.yaml"), []byte("v: \"2\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, msg, code = runApplyOrDiff(t, "apply", append(base, "--dry-run")...)
	if code != 0 {
		t.Fatalf("apply --dry-run: exit %d (%s)\n%s", code, msg, out)
	}
	wantLines(t, out,
		`Job/`+ns+`/migrate\s+hook pre-upgrade \(dry run\)\s+weight -1: would run`,
		`ConfigMap/`+ns+`/web\s+configured \(dry run\)`)
	if strings.Contains(out, "notify") {
		t.Fatalf("a post-install-only hook would run on upgrade:\n%s", out)
	}
	out, msg, code = runApplyOrDiff(t, "diff", base[:4]...)
	if code != 1 || strings.Contains(out, "migrate") {
		t.Fatalf("diff: exit %d (%s), want 1 (the ConfigMap), no hook:\n%s", code, msg, out)
	}
}

const hookJobs = `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {helm.sh/hook: "pre-install,pre-upgrade", helm.sh/hook-weight: "-1"}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example.invalid/migrate:1}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: notify
  annotations: {helm.sh/hook: post-install}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example.invalid/notify:1}]
`

// wantLines checks that each pattern matches a line of out, in this order.
func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	rest := out
	for _, p := range patterns {
		loc := regexp.MustCompile(p).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("output lacks %q (in this order):\n%s", p, out)
		}
		rest = rest[loc[1]:]
	}
}
