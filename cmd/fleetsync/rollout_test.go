package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

// rolloutRepo is a git fleet repo for north, south and east with one app per
// entry of apps (name -> app.yaml body after "spec:"), each a Deployment.
type rolloutRepo struct {
	dir, suffix string
}

func newRolloutRepo(t *testing.T) *rolloutRepo {
	t.Helper()
	gittest.SkipWithoutGit(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	r := &rolloutRepo{dir: t.TempDir(), suffix: hex.EncodeToString(b)}
	gittest.Init(t, r.dir)
	r.write(t, "fleet.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: rollout-"+r.suffix+"}\n")
	for _, c := range []string{"north", "south", "east"} {
		r.write(t, "clusters/"+c+".yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\n  labels: {region: %s, env: prod}\n", c, c))
	}
	return r
}

func (r *rolloutRepo) write(t *testing.T, rel, body string) {
	t.Helper()
	p := filepath.Join(r.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// app writes an app with a one-replica Deployment; annotations go on its pod
// template (the local fleet's never-ready annotation makes it fail).
func (r *rolloutRepo) app(t *testing.T, name, spec, podAnnotations string) string {
	t.Helper()
	return r.appWithImage(t, name, spec, podAnnotations, "example.invalid/web:1")
}

// appWithImage is app with the Deployment's image.
func (r *rolloutRepo) appWithImage(t *testing.T, name, spec, podAnnotations, image string) string {
	t.Helper()
	full := name + "-" + r.suffix
	r.write(t, "apps/"+full+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  namespace: %s\n  source: {kustomize: {path: base}}\n  prune: true\n%s", full, full, spec))
	r.write(t, "apps/"+full+"/base/kustomization.yaml", "resources: [deployment.yaml]\n")
	r.write(t, "apps/"+full+"/base/deployment.yaml", fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {%s}
    spec: {containers: [{name: web, image: %q}]}
`, podAnnotations, image))
	return full
}

func (r *rolloutRepo) commit(t *testing.T, msg string) string {
	return gittest.CommitAll(t, r.dir, msg)
}

// args are the flags of a verb on this repo and the shared fleet (only its
// kubeconfig dir: --kubeconfig names nothing, whatever $KUBECONFIG says).
func (r *rolloutRepo) args(f *testfleet.Fleet, verb ...string) []string {
	return append(verb, "--repo", r.dir, "--ref", "main", "--kubeconfig-dir", f.Dir, "--kubeconfig", filepath.Join(r.dir, ".absent-kubeconfig"))
}

// inventory reads an app's inventory on a cluster of the shared fleet.
func inventory(t *testing.T, f *testfleet.Fleet, clusterName, app string) *apply.Inventory {
	t.Helper()
	c, err := cluster.New(clusterName, f.RESTConfig(t, clusterName), cluster.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := apply.NewManager(c, apply.DefaultOptions()).Inventory(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// deployment reads the app's Deployment "web" on a cluster of the shared fleet.
func deployment(t *testing.T, f *testfleet.Fleet, clusterName, ns string) *appsv1.Deployment {
	t.Helper()
	d, err := kubernetes.NewForConfigOrDie(f.RESTConfig(t, clusterName)).AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const canarySpec = `  targets: {clusterSelector: {matchLabels: {env: prod}}}
  rollout:
    waves:
      - clusterSelector: {matchLabels: {region: north}}
      - clusterSelector: {}
        maxConcurrent: 1
    healthTimeout: 15s
    autoRollback: true
`

// A release whose pods never become ready stops at the north canary and is
// rolled back there automatically; south and east never get it; rollout status
// says why; the same commit is not retried; a commit that fixes it rolls out.
func TestRolloutCanaryFailsAndRollsBack(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	app := r.app(t, "canary", canarySpec, "")
	good := r.commit(t, "good release")
	if out, msg, code := runApplyOrDiff(t, "apply", r.args(f)...); code != 0 {
		t.Fatalf("apply of the good release: exit %d (%s)\n%s", code, msg, out)
	}
	r.app(t, "canary", canarySpec, "localfleet.fleetsync.dev/never-ready: \"true\"")
	bad := r.commit(t, "bad release")
	start := time.Now()
	out, _, code := runApplyOrDiff(t, "apply", r.args(f)...)
	took := time.Since(start)
	if code != 1 || !strings.Contains(out, "rolling back") || !strings.Contains(out, "RolledBack") {
		t.Fatalf("apply of the bad release: exit %d, want 1 with a rollback\n%s", code, out)
	}
	t.Logf("bad release: detected (healthTimeout 15s) and rolled back in %.1fs", took.Seconds())
	inv := inventory(t, f, "north", app)
	if inv.Revision != good || len(inv.Holds) != 1 || inv.Holds[0].Revision != bad {
		t.Fatalf("north after the rollback: revision %s, holds %+v; want %s with %s held", inv.Revision, inv.Holds, good, bad)
	}
	if _, ok := deployment(t, f, "north", app).Spec.Template.Annotations["localfleet.fleetsync.dev/never-ready"]; ok {
		t.Fatal("north still runs the bad release")
	}
	for _, c := range []string{"south", "east"} {
		if inv := inventory(t, f, c, app); inv.Revision != good {
			t.Fatalf("%s got revision %s, want only %s (the good one)", c, inv.Revision, good)
		}
	}
	status, _, code := execute(t, newRolloutStatusCmd(), r.args(f)...)
	if code != 0 || !strings.Contains(status, app+": RolledBack") || !strings.Contains(status, "wave 1 failed") ||
		!strings.Contains(status, "north") || !strings.Contains(status, "Held") {
		t.Fatalf("rollout status: exit %d\n%s", code, status)
	}

	// Anti-flap: the same bad commit (and a commit that does not change the
	// app) is not tried again.
	r.write(t, "README.md", "unrelated\n")
	r.commit(t, "unrelated change")
	out, _, code = runApplyOrDiff(t, "apply", r.args(f)...)
	if code != 1 || !strings.Contains(out, "held until a commit changes the app") || strings.Contains(out, "Deployment/"+app+"/web") {
		t.Fatalf("apply of a held revision: exit %d, want 1 and nothing applied\n%s", code, out)
	}

	// A commit that changes the app lifts the hold and rolls out everywhere.
	r.app(t, "canary", canarySpec, "fixed: \"yes\"")
	fixed := r.commit(t, "fixed release")
	if out, msg, code := runApplyOrDiff(t, "apply", r.args(f)...); code != 0 {
		t.Fatalf("apply of the fixed release: exit %d (%s)\n%s", code, msg, out)
	}
	for _, c := range []string{"north", "south", "east"} {
		if inv := inventory(t, f, c, app); inv.Revision != fixed {
			t.Fatalf("%s on %s, want the fixed %s", c, inv.Revision, fixed)
		}
	}
}

// An app whose canary is slow (never ready until its deadline) on north does
// not hold back an unrelated app's waves on south and east.
func TestRolloutSlowAppDoesNotHoldBackOthers(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	slow := r.app(t, "slow", "  targets: {clusterSelector: {matchLabels: {region: north}}}\n  rollout: {healthTimeout: 45s}\n", "localfleet.fleetsync.dev/never-ready: \"true\"")
	quick := r.app(t, "quick", `  targets: {clusterSelector: {matchLabels: {env: prod}}}
  rollout:
    waves:
      - clusterSelector: {matchLabels: {region: south}}
      - clusterSelector: {matchLabels: {region: east}}
      - clusterSelector: {}
`, "")
	r.commit(t, "two apps")
	out, _, code := runApplyOrDiff(t, "apply", r.args(f)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (slow fails)\n%s", code, out)
	}
	quickDone := strings.Index(out, "rollout "+quick+" [wave 3/3] Done")
	slowEnd := strings.Index(out, "rollout "+slow+" [wave 1/1] Halted")
	if quickDone < 0 || slowEnd < 0 || quickDone > slowEnd {
		t.Fatalf("want %s's rollout done (all three waves) before %s's ends (quick at %d, slow at %d)\n%s", quick, slow, quickDone, slowEnd, out)
	}
}

// apply SIGKILLed in the middle of a rollout (during the canary's soak) and
// run again resumes from what the clusters say, and ends where one
// uninterrupted run ends: every cluster on the new revision, healthy, nothing
// held.
func TestRolloutKilledMidwayResumes(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	spec := `  targets: {clusterSelector: {matchLabels: {env: prod}}}
  rollout:
    waves:
      - clusterSelector: {matchLabels: {region: north}}
        soakTime: 6s
      - clusterSelector: {}
    healthTimeout: 1m
    autoRollback: true
`
	app := r.app(t, "resume", spec, "")
	r.commit(t, "v1")
	if out, msg, code := runApplyOrDiff(t, "apply", r.args(f)...); code != 0 {
		t.Fatalf("apply v1: exit %d (%s)\n%s", code, msg, out)
	}
	r.app(t, "resume", spec, "version: \"2\"")
	v2 := r.commit(t, "v2")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, r.args(f, "apply")...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "soaking on north") {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !strings.Contains(strings.Join(seen, "\n"), "soaking on north") {
		t.Fatalf("the first apply never reached the soak:\n%s", strings.Join(seen, "\n"))
	}
	if inv := inventory(t, f, "south", app); inv.Revision == v2 {
		t.Fatal("south got v2 before the canary's soak ended")
	}

	out, msg, code := runApplyOrDiff(t, "apply", r.args(f)...)
	if code != 0 {
		t.Fatalf("apply after the kill: exit %d (%s)\n%s", code, msg, out)
	}
	if strings.Contains(out, "applying "+v2[:12]+" on [north]") {
		t.Fatalf("the resumed run applied the canary again instead of resuming the soak:\n%s", out)
	}
	for _, c := range []string{"north", "south", "east"} {
		inv := inventory(t, f, c, app)
		if inv.Revision != v2 || len(inv.Holds) != 0 || len(inv.History) == 0 || inv.History[0].Revision != v2 {
			t.Fatalf("%s after the resumed run: %+v", c, inv)
		}
	}
}
