package apply_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/pkg/apply"
)

var jobGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

// hookJob is a Job hook; fail makes its Pod exit 1 in the local fleet
// (localfleet.fleetsync.dev/fail), so the Job fails.
func hookJob(name, events string, weight int, policy string, fail bool) string {
	ann := fmt.Sprintf("helm.sh/hook: %q, helm.sh/hook-weight: \"%d\"", events, weight)
	if policy != "" {
		ann += fmt.Sprintf(", helm.sh/hook-delete-policy: %q", policy)
	}
	podAnn := ""
	if fail {
		podAnn = `metadata: {annotations: {localfleet.fleetsync.dev/fail: "true"}}`
	}
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  namespace: %%[1]s
  annotations: {%s}
spec:
  backoffLimit: 0
  template:
    %s
    spec:
      restartPolicy: Never
      containers: [{name: c, image: example.invalid/hook:1}]
---
`, name, ann, podAnn)
}

// configMap is a release ConfigMap (or a hook, with annotations).
func configMap(name, value, annotations string) string {
	if annotations != "" {
		annotations = ", annotations: {" + annotations + "}"
	}
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %%[1]s%s}\ndata: {v: %q}\n---\n", name, annotations, value)
}

// steps records a progress line per change: "action[ phase] Kind/name".
type steps struct{ lines []string }

func (s *steps) progress(c apply.Change) {
	a := string(c.Action)
	if c.Phase != "" {
		a += " " + c.Phase
	}
	s.lines = append(s.lines, a+" "+c.Object.Kind+"/"+c.Object.Name)
}

func (e *env) uid(t *testing.T, gvr schema.GroupVersionResource, name string) string {
	t.Helper()
	u, err := e.dyn.Resource(gvr).Namespace(e.ns).Get(ctxT(t), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(u.GetUID())
}

func wantSteps(t *testing.T, what string, got *steps, want ...string) {
	t.Helper()
	if !slices.Equal(got.lines, want) {
		t.Fatalf("%s: steps\n  %s\nwant\n  %s", what, strings.Join(got.lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// A chart's hooks on install, upgrade, a no-op re-apply and a dry run: phase
// by phase, by weight, each waited for; never in the inventory.
func TestHooksInstallUpgradeNoopDryRun(t *testing.T) {
	e := newEnv(t)
	hooks := configMap("pre-settings", "1", `helm.sh/hook: pre-install, helm.sh/hook-weight: "-1"`) +
		hookJob("pre-heavy", "pre-install", 5, "", false) +
		hookJob("migrate", "pre-install,pre-upgrade", 1, "", false) +
		hookJob("upgrade-only", "pre-upgrade", 0, "", false) +
		hookJob("notify", "post-install,post-upgrade", 0, "", false)
	v1 := objs(t, e.ns, configMap("app", "v1", "")+hooks)
	start := time.Now()
	var s steps
	cs := mustApply(t, e, apply.Request{App: "h", Revision: "r1", Objects: v1, Wait: true, Timeout: time.Minute, Progress: s.progress})
	t.Logf("install with 4 hooks: %s", time.Since(start).Round(time.Millisecond))
	wantSteps(t, "install", &s,
		"hook pre-install ConfigMap/pre-settings", "hook pre-install Job/migrate", "hook pre-install Job/pre-heavy",
		"created ConfigMap/app", "hook post-install Job/notify")
	if !cs.Healthy || cs.Count(apply.Hook) != 4 {
		t.Fatalf("install: healthy %v, %d hooks: %+v", cs.Healthy, cs.Count(apply.Hook), cs.Changes)
	}
	if c := wantAction(t, cs, "Job", e.ns, "migrate", apply.Hook); c.Phase != apply.PreInstall || !strings.Contains(c.Reason, "Job complete") {
		t.Fatalf("migrate: %+v", c)
	}
	inv, err := e.m.Inventory(ctxT(t), "h")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Objects) != 1 || inv.Objects[0].Name != "app" {
		t.Fatalf("hooks in the inventory: %+v", inv.Objects)
	}
	migrate := e.uid(t, jobGVR, "migrate")

	// Upgrade: the pre-upgrade hooks, the release, the post-upgrade hook; the
	// earlier migrate Job is replaced (before-hook-creation, the default).
	v2 := objs(t, e.ns, configMap("app", "v2", "")+hooks)
	s = steps{}
	cs = mustApply(t, e, apply.Request{App: "h", Revision: "r2", Objects: v2, Wait: true, Timeout: time.Minute, Progress: s.progress})
	wantSteps(t, "upgrade", &s,
		"hook pre-upgrade Job/upgrade-only", "hook pre-upgrade Job/migrate", "configured ConfigMap/app", "hook post-upgrade Job/notify")
	if c := wantAction(t, cs, "Job", e.ns, "migrate", apply.Hook); !strings.Contains(c.Reason, "replaced the earlier one (before-hook-creation)") {
		t.Fatalf("migrate on upgrade: %+v", c)
	}
	if now := e.uid(t, jobGVR, "migrate"); now == migrate || now == "" {
		t.Fatalf("migrate Job not re-created: uid %s -> %s", migrate, now)
	}
	migrate = e.uid(t, jobGVR, "migrate")

	// The same output again, from a new commit: no hook runs (only the
	// inventory records the revision).
	e.cnt.reset()
	s = steps{}
	cs = mustApply(t, e, apply.Request{App: "h", Revision: "r3", Objects: v2, Wait: true, Timeout: time.Minute, Progress: s.progress})
	wantSteps(t, "no-op re-apply", &s, "unchanged ConfigMap/app")
	if strings.Contains(e.cnt.writeLog(), "/jobs") || cs.Count(apply.Hook) != 0 || e.uid(t, jobGVR, "migrate") != migrate {
		t.Fatalf("no-op re-apply ran hooks: %d writes:\n%s", e.cnt.writes.Load(), e.cnt.writeLog())
	}
	// And once more with the same revision: not a single write.
	e.cnt.reset()
	mustApply(t, e, apply.Request{App: "h", Revision: "r3", Objects: v2, Wait: true, Timeout: time.Minute})
	if e.cnt.writes.Load() != 0 {
		t.Fatalf("no-op re-apply: %d writes:\n%s", e.cnt.writes.Load(), e.cnt.writeLog())
	}

	// A dry run of a new output lists the hooks that would run, runs none.
	v3 := objs(t, e.ns, configMap("app", "v3", "")+hooks)
	e.cnt.reset()
	s = steps{}
	cs, err = e.m.Apply(ctxT(t), apply.Request{App: "h", Revision: "r4", Objects: v3, DryRun: true, Progress: s.progress})
	if err != nil {
		t.Fatal(err)
	}
	wantSteps(t, "dry run", &s,
		"hook pre-upgrade Job/upgrade-only", "hook pre-upgrade Job/migrate", "configured ConfigMap/app", "hook post-upgrade Job/notify")
	if c := wantAction(t, cs, "Job", e.ns, "migrate", apply.Hook); !c.DryRun || !strings.Contains(c.Reason, "would run") {
		t.Fatalf("dry run: %+v", c)
	}
	if e.cnt.writes.Load() != 0 || e.uid(t, jobGVR, "migrate") != migrate {
		t.Fatalf("dry run wrote: %d writes:\n%s", e.cnt.writes.Load(), e.cnt.writeLog())
	}
	// The ChangeSet keeps the run order too.
	var order []string
	for _, c := range cs.Changes {
		order = append(order, c.Object.Name)
	}
	if !slices.Equal(order, []string{"upgrade-only", "migrate", "app", "notify"}) {
		t.Fatalf("ChangeSet order %v", order)
	}
}

func TestHookSucceededIsDeleted(t *testing.T) {
	e := newEnv(t)
	desired := objs(t, e.ns, configMap("app", "v1", "")+
		hookJob("sa-user", "pre-install", 0, "hook-succeeded", false)+
		configMap("sa-user", "shared", `helm.sh/hook: pre-install, helm.sh/hook-delete-policy: "hook-succeeded,before-hook-creation"`))
	var s steps
	cs := mustApply(t, e, apply.Request{App: "hs", Objects: desired, Progress: s.progress})
	// Same weight and name: ConfigMap before Job (Helm's kind order).
	wantSteps(t, "install", &s, "hook pre-install ConfigMap/sa-user", "hook pre-install Job/sa-user", "created ConfigMap/app")
	if c := wantAction(t, cs, "Job", e.ns, "sa-user", apply.Hook); !strings.Contains(c.Reason, "deleted when the phase succeeds (hook-succeeded)") {
		t.Fatalf("job: %+v", c)
	}
	if e.uid(t, jobGVR, "sa-user") != "" {
		t.Fatal("the hook-succeeded Job is still there")
	}
	// The ConfigMap of the same name was a hook-succeeded hook too; the
	// release's ConfigMap is there.
	if u, err := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "sa-user", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("hook ConfigMap: %v %v", u, err)
	}
	if e.uid(t, cmGVR, "app") == "" {
		t.Fatal("release ConfigMap missing")
	}
}

// A failing pre-install Job stops the app: the release is not applied, the
// error is ErrUnhealthy with the Job's reason; hook-failed deletes the Job.
// Once the hook is fixed, the next apply is still an install.
func TestFailingPreInstallHookStopsTheRelease(t *testing.T) {
	e := newEnv(t)
	failing := objs(t, e.ns, configMap("app", "v1", "")+hookJob("migrate", "pre-install", 0, "hook-failed", true)+
		hookJob("never", "post-install", 0, "", false))
	start := time.Now()
	cs, err := e.m.Apply(ctxT(t), apply.Request{App: "fail", Objects: failing, Prune: true, Wait: true, Timeout: time.Minute})
	t.Logf("failing hook reported after %s", time.Since(start).Round(time.Millisecond))
	if err == nil {
		t.Fatal("no error from a failing pre-install hook")
	}
	if apply.KindOf(err) != apply.ErrUnhealthy || !errors.Is(err, apply.ErrUnhealthy) {
		t.Fatalf("kind %s: %v", apply.KindOf(err), err)
	}
	want := "north/fail: hook Job/" + e.ns + "/migrate (pre-install): BackoffLimitExceeded: Job has reached the specified backoff limit"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\nwant it to contain %q", err, want)
	}
	if c := wantAction(t, cs, "Job", e.ns, "migrate", apply.Failed); c.Phase != apply.PreInstall {
		t.Fatalf("change %+v", c)
	}
	if _, ok := cs.Get("ConfigMap", e.ns, "app"); ok || e.uid(t, cmGVR, "app") != "" {
		t.Fatal("the release was applied after a failed pre-install hook")
	}
	if e.uid(t, jobGVR, "never") != "" || e.uid(t, jobGVR, "migrate") != "" {
		t.Fatal("post-install hook ran, or the hook-failed Job was kept")
	}
	inv, err := e.m.Inventory(ctxT(t), "fail")
	if err != nil || inv == nil || len(inv.Objects) != 0 || inv.Succeeded != "" {
		t.Fatalf("inventory after the failure: %+v %v", inv, err)
	}

	// Fixed: still an install (never succeeded here).
	fixed := objs(t, e.ns, configMap("app", "v1", "")+hookJob("migrate", "pre-install", 0, "hook-failed", false)+
		hookJob("never", "post-install", 0, "", false))
	var s steps
	mustApply(t, e, apply.Request{App: "fail", Objects: fixed, Prune: true, Wait: true, Timeout: time.Minute, Progress: s.progress})
	wantSteps(t, "after the fix", &s, "hook pre-install Job/migrate", "created ConfigMap/app", "hook post-install Job/never")
}

// A failing post-upgrade hook fails the apply (unhealthy) after the release
// was applied, and the next apply of the same output runs the hooks again.
func TestFailingPostUpgradeHookIsRetried(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "post", Objects: objs(t, e.ns, configMap("app", "v1", "")+hookJob("check", "post-upgrade", 0, "", true))})
	v2 := objs(t, e.ns, configMap("app", "v2", "")+hookJob("check", "post-upgrade", 0, "", true))
	_, err := e.m.Apply(ctxT(t), apply.Request{App: "post", Objects: v2, Timeout: time.Minute})
	if apply.KindOf(err) != apply.ErrUnhealthy || !strings.Contains(err.Error(), "hook Job/"+e.ns+"/check (post-upgrade): BackoffLimitExceeded") {
		t.Fatalf("err %v (%s)", err, apply.KindOf(err))
	}
	if u, _ := e.dyn.Resource(cmGVR).Namespace(e.ns).Get(ctxT(t), "app", metav1.GetOptions{}); u == nil || u.Object["data"].(map[string]any)["v"] != "v2" {
		t.Fatalf("release not upgraded: %v", u)
	}
	var s steps
	_, err = e.m.Apply(ctxT(t), apply.Request{App: "post", Objects: v2, Timeout: time.Minute, Progress: s.progress})
	if err == nil {
		t.Fatal("the hook was not run again")
	}
	wantSteps(t, "retry", &s, "unchanged ConfigMap/app", "failed post-upgrade Job/check")
}

// helm.sh/resource-policy: keep survives prune and uninstall.
func TestResourcePolicyKeep(t *testing.T) {
	e := newEnv(t)
	mustApply(t, e, apply.Request{App: "keep", Prune: true, Objects: objs(t, e.ns,
		configMap("kept", "1", `helm.sh/resource-policy: keep`)+configMap("gone", "1", "")+configMap("stays", "1", "")+
			configMap("kept-on-uninstall", "1", `helm.sh/resource-policy: keep`))})
	cs := mustApply(t, e, apply.Request{App: "keep", Prune: true, AllowMassPrune: true, Objects: objs(t, e.ns,
		configMap("stays", "1", "")+configMap("kept-on-uninstall", "1", `helm.sh/resource-policy: keep`))})
	wantAction(t, cs, "ConfigMap", e.ns, "gone", apply.Pruned)
	if c := wantAction(t, cs, "ConfigMap", e.ns, "kept", apply.Skipped); !strings.Contains(c.Reason, "helm.sh/resource-policy: keep") {
		t.Fatalf("kept: %+v", c)
	}
	if e.uid(t, cmGVR, "kept") == "" || e.uid(t, cmGVR, "gone") != "" {
		t.Fatal("keep not honoured by prune")
	}
	if _, err := e.m.Uninstall(ctxT(t), "keep", false); err != nil {
		t.Fatal(err)
	}
	if e.uid(t, cmGVR, "kept-on-uninstall") == "" || e.uid(t, cmGVR, "stays") != "" {
		t.Fatal("keep not honoured by uninstall")
	}
}

// An object that was in the inventory and became a hook is not pruned (it
// leaves the inventory), and Preview (diff) leaves hooks out.
func TestObjectBecomingAHookIsNotPruned(t *testing.T) {
	e := newEnv(t)
	plain := objs(t, e.ns, configMap("app", "v1", "")+configMap("settings", "1", ""))
	mustApply(t, e, apply.Request{App: "became", Prune: true, Objects: plain})
	uid := e.uid(t, cmGVR, "settings")
	asHook := objs(t, e.ns, configMap("app", "v2", "")+configMap("settings", "1", `helm.sh/hook: post-upgrade, helm.sh/hook-delete-policy: hook-failed`))
	cs := mustApply(t, e, apply.Request{App: "became", Prune: true, Objects: asHook})
	if _, ok := cs.Get("ConfigMap", e.ns, "settings"); !ok || cs.Count(apply.Pruned) != 0 {
		t.Fatalf("changes: %+v", cs.Changes)
	}
	if e.uid(t, cmGVR, "settings") != uid {
		t.Fatal("the object that became a hook was deleted")
	}
	inv, err := e.m.Inventory(ctxT(t), "became")
	if err != nil || len(inv.Objects) != 1 {
		t.Fatalf("inventory %+v %v", inv, err)
	}
	// Previews (diff) leave hooks out.
	for _, p := range e.m.Preview(ctxT(t), apply.Request{App: "became", Objects: asHook}) {
		if p.Object.Name == "settings" {
			t.Fatalf("Preview compares a hook: %+v", p)
		}
	}
}
