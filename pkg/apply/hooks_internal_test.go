package apply

import (
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// obj is a test object: kind/name and its annotations as k=v pairs.
func obj(kindName string, ann ...string) *unstructured.Unstructured {
	kind, name, _ := strings.Cut(kindName, "/")
	apiVersion := "v1"
	if kind == "Job" {
		apiVersion = "batch/v1"
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
	if len(ann) > 0 {
		m := map[string]string{}
		for _, a := range ann {
			k, v, _ := strings.Cut(a, "=")
			m[k] = v
		}
		u.SetAnnotations(m)
	}
	return u
}

func names(hooks []hook) []string {
	var out []string
	for _, h := range hooks {
		out = append(out, h.obj.GetKind()+"/"+h.obj.GetName())
	}
	return out
}

func TestSplitHooks(t *testing.T) {
	objs := []*unstructured.Unstructured{
		obj("ConfigMap/plain"),
		obj("Job/migrate", "helm.sh/hook=pre-install,pre-upgrade"),
		obj("Pod/test", "helm.sh/hook=test"),
		obj("Pod/test-old", "helm.sh/hook= Test-Success "),
		obj("Secret/other", "helm.sh/resource-policy=keep"),
	}
	release, hooks := splitHooks(objs)
	if len(release) != 2 || release[0].GetName() != "plain" || release[1].GetName() != "other" {
		t.Fatalf("release = %v", release)
	}
	if got := names(hooks); !slices.Equal(got, []string{"Job/migrate"}) {
		t.Fatalf("hooks = %v (test hooks must be dropped)", got)
	}
}

func TestParseHook(t *testing.T) {
	tests := []struct {
		ann      []string
		events   []string
		weight   int
		policies []string
	}{
		{[]string{"helm.sh/hook=pre-install"}, []string{PreInstall}, 0, []string{BeforeHookCreation}},
		{[]string{"helm.sh/hook= Pre-Install , post-upgrade", "helm.sh/hook-weight=-5"}, []string{PreInstall, PostUpgrade}, -5, []string{BeforeHookCreation}},
		{[]string{"helm.sh/hook=post-install", "helm.sh/hook-weight=heavy", "helm.sh/hook-delete-policy=hook-succeeded, hook-failed"},
			[]string{PostInstall}, 0, []string{HookFailed, HookSucceeded}},
		{[]string{"helm.sh/hook=pre-upgrade", "helm.sh/hook-weight= 3 ", "helm.sh/hook-delete-policy=before-hook-creation,hook-succeeded"},
			[]string{PreUpgrade}, 3, []string{BeforeHookCreation, HookSucceeded}},
	}
	for _, tc := range tests {
		h := parseHook(obj("Job/j", tc.ann...))
		var events, policies []string
		for e := range h.events {
			events = append(events, e)
		}
		for p := range h.policies {
			policies = append(policies, p)
		}
		slices.Sort(events)
		slices.Sort(policies)
		slices.Sort(tc.events)
		if !slices.Equal(events, tc.events) || h.weight != tc.weight || !slices.Equal(policies, tc.policies) {
			t.Errorf("%v: events %v weight %d policies %v, want %v %d %v", tc.ann, events, h.weight, policies, tc.events, tc.weight, tc.policies)
		}
	}
}

func TestHooksForOrder(t *testing.T) {
	hooks := []hook{
		parseHook(obj("Job/z-late", "helm.sh/hook=pre-install", "helm.sh/hook-weight=10")),
		parseHook(obj("Job/migrate", "helm.sh/hook=pre-install,pre-upgrade")),
		parseHook(obj("ServiceAccount/migrate", "helm.sh/hook=pre-install,pre-upgrade")),
		parseHook(obj("Role/migrate", "helm.sh/hook=pre-install,pre-upgrade")),
		parseHook(obj("ConfigMap/a-first", "helm.sh/hook=pre-install", "helm.sh/hook-weight=-1")),
		parseHook(obj("Widget/migrate", "helm.sh/hook=pre-install")), // unknown kind: after the known ones
		parseHook(obj("Job/b-same-weight", "helm.sh/hook=pre-install")),
		parseHook(obj("Job/post", "helm.sh/hook=post-install")),
		parseHook(obj("Job/upgrade-only", "helm.sh/hook=pre-upgrade", "helm.sh/hook-weight=-3")),
	}
	tests := []struct {
		phase string
		want  []string
	}{
		{PreInstall, []string{"ConfigMap/a-first", "Job/b-same-weight", "ServiceAccount/migrate", "Role/migrate", "Job/migrate", "Widget/migrate", "Job/z-late"}},
		{PreUpgrade, []string{"Job/upgrade-only", "ServiceAccount/migrate", "Role/migrate", "Job/migrate"}},
		{PostInstall, []string{"Job/post"}},
		{PostUpgrade, nil},
	}
	for _, tc := range tests {
		if got := names(hooksFor(hooks, tc.phase)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.phase, got, tc.want)
		}
	}
}

func TestHelmInstallOrderIsHelms(t *testing.T) {
	if !slices.Equal(helmInstallOrder, []string(releaseutil.InstallOrder)) {
		t.Fatalf("helmInstallOrder differs from helm's releaseutil.InstallOrder:\n%v\n%v", helmInstallOrder, releaseutil.InstallOrder)
	}
}

func TestPlanHooks(t *testing.T) {
	hooks := []hook{
		parseHook(obj("Job/pre", "helm.sh/hook=pre-install,pre-upgrade")),
		parseHook(obj("Job/post-i", "helm.sh/hook=post-install")),
		parseHook(obj("Job/post-u", "helm.sh/hook=post-upgrade")),
	}
	healthy := []HistoryEntry{{Revision: "r1", Digest: "d1", Time: time.Now()}}
	tests := []struct {
		name      string
		inv       *Inventory
		hooks     []hook
		digest    string
		pre, post []string
		phase     string
	}{
		{"first install", nil, hooks, "d1", []string{"Job/pre"}, []string{"Job/post-i"}, PreInstall},
		{"install failed before: install again", &Inventory{Digest: "d1"}, hooks, "d1", []string{"Job/pre"}, []string{"Job/post-i"}, PreInstall},
		{"upgrade", &Inventory{Digest: "d1", Succeeded: "d1"}, hooks, "d2", []string{"Job/pre"}, []string{"Job/post-u"}, PreUpgrade},
		{"no-op re-apply", &Inventory{Digest: "d1", Succeeded: "d1"}, hooks, "d1", nil, nil, ""},
		{"upgrade failed before: again", &Inventory{Digest: "d2", Succeeded: "d1"}, hooks, "d2", []string{"Job/pre"}, []string{"Job/post-u"}, PreUpgrade},
		{"inventory from before succeeded: its healthy revision", &Inventory{Digest: "d1", History: healthy}, hooks, "d1", nil, nil, ""},
		{"inventory from before succeeded, new digest: upgrade", &Inventory{Digest: "d1", History: healthy}, hooks, "d2", []string{"Job/pre"}, []string{"Job/post-u"}, PreUpgrade},
		{"no hooks", nil, nil, "d1", nil, nil, ""},
	}
	for _, tc := range tests {
		p := planHooks(tc.inv, tc.hooks, tc.digest)
		if !slices.Equal(names(p.pre), tc.pre) || !slices.Equal(names(p.post), tc.post) || (tc.phase != "" && p.prePhase != tc.phase) {
			t.Errorf("%s: pre %v post %v phase %q, want %v %v %q", tc.name, names(p.pre), names(p.post), p.prePhase, tc.pre, tc.post, tc.phase)
		}
	}
}

func TestHookReady(t *testing.T) {
	job := func(conds ...map[string]any) *unstructured.Unstructured {
		u := obj("Job/j")
		list := make([]any, len(conds))
		for i, c := range conds {
			list[i] = c
		}
		_ = unstructured.SetNestedSlice(u.Object, list, "status", "conditions")
		return u
	}
	pod := func(phase string) *unstructured.Unstructured {
		u := obj("Pod/p")
		_ = unstructured.SetNestedField(u.Object, phase, "status", "phase")
		return u
	}
	tests := []struct {
		name         string
		u            *unstructured.Unstructured
		done, failed bool
		msg          string
	}{
		{"running Job", job(), false, false, "Job not complete yet"},
		{"complete Job", job(map[string]any{"type": "SuccessCriteriaMet", "status": "True"}, map[string]any{"type": "Complete", "status": "True"}), true, false, "Job complete"},
		{"failed Job", job(map[string]any{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}),
			false, true, "BackoffLimitExceeded: Job has reached the specified backoff limit"},
		{"Complete False", job(map[string]any{"type": "Complete", "status": "False"}), false, false, "Job not complete yet"},
		{"running Pod", pod("Running"), false, false, "Pod not succeeded yet (Running)"},
		{"succeeded Pod", pod("Succeeded"), true, false, "Pod succeeded"},
		{"failed Pod", pod("Failed"), false, true, "Pod failed"},
		{"ConfigMap", obj("ConfigMap/c"), true, false, "Current"},
	}
	for _, tc := range tests {
		done, msg, failed := hookReady(tc.u)
		if done != tc.done || failed != tc.failed || msg != tc.msg {
			t.Errorf("%s: done %v failed %v %q, want %v %v %q", tc.name, done, failed, msg, tc.done, tc.failed, tc.msg)
		}
	}
}

func TestHookErrorKindAndMessage(t *testing.T) {
	ref := ObjectRef{Group: "batch", Version: "v1", Kind: "Job", Namespace: "ns", Name: "migrate"}
	e := &HookError{Cluster: "north", App: "mes", Object: ref, Phase: PreInstall, Failed: true, Reason: "BackoffLimitExceeded: Job has reached the specified backoff limit"}
	if got, want := e.Error(), "north/mes: hook Job/ns/migrate (pre-install): BackoffLimitExceeded: Job has reached the specified backoff limit"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if KindOf(e) != ErrUnhealthy {
		t.Errorf("kind %s", KindOf(e))
	}
	timeout := &HookError{Cluster: "north", App: "mes", Object: ref, Phase: PostUpgrade, Timeout: "5m0s", Reason: "Job not complete yet"}
	if KindOf(timeout) != ErrUnhealthy || !strings.Contains(timeout.Error(), "not ready after 5m0s: Job not complete yet") {
		t.Errorf("timeout: %s %v", KindOf(timeout), timeout)
	}
	applyFailed := &HookError{Cluster: "north", App: "mes", Object: ref, Phase: PreUpgrade, Err: ErrPermanent}
	if KindOf(applyFailed) != ErrPermanent {
		t.Errorf("apply failure kind %s", KindOf(applyFailed))
	}
}

func TestChangeSetSortKeepsHookOrder(t *testing.T) {
	cs := &ChangeSet{Changes: []Change{
		{Object: ObjectRef{Kind: "Job", Name: "z"}, Action: Hook, Phase: PreInstall},
		{Object: ObjectRef{Kind: "Job", Name: "a"}, Action: Hook, Phase: PreInstall},
		{Object: ObjectRef{Kind: "Service", Name: "b"}, Action: Created},
		{Object: ObjectRef{Kind: "ConfigMap", Name: "c"}, Action: Created},
		{Object: ObjectRef{Kind: "Job", Name: "post-b"}, Action: Hook, Phase: PostInstall},
		{Object: ObjectRef{Kind: "Job", Name: "post-a"}, Action: Failed, Phase: PostInstall},
	}}
	cs.sort()
	var got []string
	for _, c := range cs.Changes {
		got = append(got, c.Object.Name)
	}
	if want := []string{"z", "a", "c", "b", "post-b", "post-a"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
