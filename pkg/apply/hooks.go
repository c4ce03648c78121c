package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Helm's annotations (helm.sh/helm/v3/pkg/release). pkg/apply reads them on
// any object, from a Helm chart or not.
const (
	// AnnotationHook makes an object a hook: a comma-separated list of the
	// events it runs on (pre-install, post-upgrade, ...).
	AnnotationHook = "helm.sh/hook"
	// AnnotationHookWeight orders the hooks of one event (an integer, default 0).
	AnnotationHookWeight = "helm.sh/hook-weight"
	// AnnotationHookDeletePolicy lists when a hook object is deleted
	// (default before-hook-creation).
	AnnotationHookDeletePolicy = "helm.sh/hook-delete-policy"
	// AnnotationResourcePolicy set to "keep" keeps an object on the cluster when
	// it would be pruned or uninstalled.
	AnnotationResourcePolicy = "helm.sh/resource-policy"
	// ResourcePolicyKeep is the value of AnnotationResourcePolicy that keeps.
	ResourcePolicyKeep = "keep"
)

// Hook events (phases) that fleetsync runs, and those it never runs.
const (
	PreInstall  = "pre-install"
	PostInstall = "post-install"
	PreUpgrade  = "pre-upgrade"
	PostUpgrade = "post-upgrade"
	// hookTest and hookTestSuccess are `helm test`'s: never run.
	hookTest        = "test"
	hookTestSuccess = "test-success"
)

// Hook delete policies.
const (
	BeforeHookCreation = "before-hook-creation"
	HookSucceeded      = "hook-succeeded"
	HookFailed         = "hook-failed"
)

// IsHook reports whether an object is a Helm hook (it has the helm.sh/hook
// annotation). Hooks are not part of an app's inventory: never pruned, never
// drift.
func IsHook(u *unstructured.Unstructured) bool {
	_, ok := u.GetAnnotations()[AnnotationHook]
	return ok
}

// hook is one hook object of a request, with its parsed annotations.
type hook struct {
	obj      *unstructured.Unstructured
	events   map[string]bool
	weight   int
	policies map[string]bool
}

// parseHook reads a hook's events, weight and delete policies as Helm does:
// values are comma-separated, trimmed and lower-cased; a weight that is not an
// integer is 0; no delete policy means before-hook-creation.
func parseHook(u *unstructured.Unstructured) hook {
	ann := u.GetAnnotations()
	h := hook{obj: u, events: splitList(ann[AnnotationHook]), policies: splitList(ann[AnnotationHookDeletePolicy])}
	if w, err := strconv.Atoi(strings.TrimSpace(ann[AnnotationHookWeight])); err == nil {
		h.weight = w
	}
	if len(h.policies) == 0 {
		h.policies = map[string]bool{BeforeHookCreation: true}
	}
	return h
}

func splitList(s string) map[string]bool {
	out := map[string]bool{}
	for _, v := range strings.Split(s, ",") {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			out[v] = true
		}
	}
	return out
}

// isTest reports whether the hook belongs to `helm test` (it never runs).
func (h hook) isTest() bool { return h.events[hookTest] || h.events[hookTestSuccess] }

// splitHooks separates a request's objects into the release's objects and
// its hooks; test hooks are dropped (render drops them already).
func splitHooks(objs []*unstructured.Unstructured) (release []*unstructured.Unstructured, hooks []hook) {
	for _, o := range objs {
		if !IsHook(o) {
			release = append(release, o)
			continue
		}
		if h := parseHook(o); !h.isTest() {
			hooks = append(hooks, h)
		}
	}
	return release, hooks
}

// hooksFor returns the hooks that run in a phase, in Helm's order: by weight,
// then by name, then by kind in Helm's install order (so that a ServiceAccount
// goes before the Job of the same name).
func hooksFor(hooks []hook, phase string) []hook {
	var out []hook
	for _, h := range hooks {
		if h.events[phase] {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.weight != b.weight {
			return a.weight < b.weight
		}
		if a.obj.GetName() != b.obj.GetName() {
			return a.obj.GetName() < b.obj.GetName()
		}
		return lessKind(a.obj.GetKind(), b.obj.GetKind())
	})
	return out
}

// helmInstallOrder is Helm's install order of kinds (releaseutil.InstallOrder,
// helm.sh/helm/v3 v3.22.0, Apache-2.0; kept equal by a test).
var helmInstallOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
	"RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

var helmKindRank = func() map[string]int {
	m := make(map[string]int, len(helmInstallOrder))
	for i, k := range helmInstallOrder {
		m[k] = i
	}
	return m
}()

// lessKind orders kinds as Helm does: known kinds in install order, unknown
// kinds after them, alphabetically.
func lessKind(a, b string) bool {
	ra, aok := helmKindRank[a]
	rb, bok := helmKindRank[b]
	switch {
	case aok && bok:
		return ra < rb
	case aok != bok:
		return aok
	default:
		return a < b
	}
}

// hookPlan is which hooks an Apply runs, and in which phases.
type hookPlan struct {
	pre, post           []hook
	prePhase, postPhase string
	// skipped says why no hook runs although the request has hooks ("" when
	// they run or there are none).
	skipped string
}

// planHooks decides the phases of an apply: install while the app has never
// been applied successfully on the cluster, else upgrade. Hooks run only when
// the desired digest differs from the last successful apply's: fleetsync
// re-applies continuously, and a re-apply of the same output (a no-op, a
// drift correction) is not an upgrade.
func planHooks(inv *Inventory, hooks []hook, digest string) hookPlan {
	if len(hooks) == 0 {
		return hookPlan{}
	}
	if inv != nil && inv.succeededDigest() == digest {
		return hookPlan{skipped: "unchanged since the last successful apply"}
	}
	p := hookPlan{prePhase: PreUpgrade, postPhase: PostUpgrade}
	if !inv.installed() {
		p.prePhase, p.postPhase = PreInstall, PostInstall
	}
	p.pre, p.post = hooksFor(hooks, p.prePhase), hooksFor(hooks, p.postPhase)
	return p
}

// hookRun is one hook on its way to the cluster.
type hookRun struct {
	hook
	t   *target
	src *unstructured.Unstructured // the request's object (hook.obj is the labelled copy)
	// replaced is set when before-hook-creation deleted an earlier object.
	replaced bool
}

// prepareHooks labels the hooks like the release's objects and resolves
// what can be resolved now (a kind defined by the release's CRDs is resolved
// when the hook runs).
func (r *run) prepareHooks(hooks []hook) []*hookRun {
	objs := make([]*unstructured.Unstructured, len(hooks))
	for i, h := range hooks {
		objs[i] = h.obj
	}
	ts := r.prepare(objs)
	out := make([]*hookRun, len(hooks))
	for i, t := range ts {
		r.resolve(t)
		out[i] = &hookRun{hook: hooks[i], t: t, src: hooks[i].obj}
		out[i].obj = t.obj
	}
	return out
}

// runPhase runs a phase's hooks one after the other, each applied and waited
// for before the next (Helm's order). On success, the hooks with
// hook-succeeded are deleted (last first); on a failure, the failed hook with
// hook-failed and the earlier ones with hook-succeeded are, and the phase
// stops. A dry run only reports the hooks that would run. It returns whether
// every hook succeeded; failures are in the ChangeSet.
func (r *run) runPhase(ctx context.Context, phase string, hooks []*hookRun) bool {
	if r.req.DryRun {
		for _, h := range hooks {
			r.record(Change{Object: h.t.ref, Action: Hook, Phase: phase, Reason: fmt.Sprintf("weight %d: would run", h.weight)})
		}
		return true
	}
	for i, h := range hooks {
		msg, err := r.runHook(ctx, phase, h)
		if err != nil {
			if h.policies[HookFailed] {
				if derr := r.deleteHook(ctx, h); derr != nil {
					err = errors.Join(err, r.hookErr(phase, h, fmt.Errorf("delete (hook-failed): %w", derr)))
				}
			}
			r.record(Change{Object: h.t.ref, Action: Failed, Phase: phase, Err: err})
			r.deleteSucceeded(ctx, phase, hooks[:i])
			return false
		}
		reason := fmt.Sprintf("weight %d: %s", h.weight, msg)
		if h.replaced {
			reason += "; replaced the earlier one (" + BeforeHookCreation + ")"
		}
		if h.policies[HookSucceeded] {
			reason += "; deleted when the phase succeeds (" + HookSucceeded + ")"
		}
		r.record(Change{Object: h.t.ref, Action: Hook, Phase: phase, Reason: reason})
	}
	return r.deleteSucceeded(ctx, phase, hooks)
}

// deleteSucceeded deletes, last first, the hooks with hook-succeeded.
func (r *run) deleteSucceeded(ctx context.Context, phase string, hooks []*hookRun) bool {
	ok := true
	for i := len(hooks) - 1; i >= 0; i-- {
		h := hooks[i]
		if !h.policies[HookSucceeded] {
			continue
		}
		if err := r.deleteHook(ctx, h); err != nil {
			r.record(Change{Object: h.t.ref, Action: Failed, Phase: phase, Err: r.hookErr(phase, h, fmt.Errorf("delete (%s): %w", HookSucceeded, err))})
			ok = false
		}
	}
	return ok
}

// runHook applies one hook (after deleting an earlier one, by default) and
// waits until it is ready; it returns what ready meant for it.
func (r *run) runHook(ctx context.Context, phase string, h *hookRun) (string, error) {
	t := h.t
	if t.mapping == nil && meta.IsNoMatchError(t.err) {
		t.err = nil
		r.resolve(t) // its CRD may have been applied meanwhile
	}
	if t.err != nil {
		return "", r.hookErr(phase, h, fmt.Errorf("prepare: %w", t.err))
	}
	if h.policies[BeforeHookCreation] && !isCRD(t.obj.GroupVersionKind().GroupKind()) {
		gone, err := r.m.deleteAndWait(ctx, t, metav1.DeletePropagationBackground)
		if err != nil {
			return "", r.hookErr(phase, h, fmt.Errorf("delete the earlier one (%s): %w", BeforeHookCreation, err))
		}
		h.replaced = gone
	}
	ri := r.m.resource(t.mapping, t.obj.GetNamespace())
	if _, err := ri.Apply(ctx, t.obj.GetName(), t.obj, r.m.applyOpts(false)); err != nil {
		return "", r.hookErr(phase, h, fmt.Errorf("apply: %w", redact(err, t.obj)))
	}
	timeout := r.req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	msg, err := r.m.waitHook(ctx, t, timeout)
	if err != nil {
		var he *HookError
		if errors.As(err, &he) {
			he.Cluster, he.App, he.Object, he.Phase = r.m.cluster.Name, r.req.App, t.ref, phase
			return "", he
		}
		return "", r.hookErr(phase, h, err)
	}
	return msg, nil
}

// deleteHook deletes a hook object (propagation Background: a Job takes its
// Pods) and waits until it is gone. CRDs are never deleted by a policy.
func (r *run) deleteHook(ctx context.Context, h *hookRun) error {
	if h.t.mapping == nil || isCRD(h.t.obj.GroupVersionKind().GroupKind()) {
		return nil
	}
	_, err := r.m.deleteAndWait(ctx, h.t, metav1.DeletePropagationBackground)
	return err
}

func (r *run) hookErr(phase string, h *hookRun, err error) *HookError {
	return &HookError{Cluster: r.m.cluster.Name, App: r.req.App, Object: h.t.ref, Phase: phase, Err: err}
}

// waitHook polls a hook until it is ready, as Helm waits for hooks: a Job
// until Complete, a Pod until Succeeded, other kinds until kstatus Current. A
// failed Job or Pod ends the wait with its reason; so does the timeout.
func (m *Manager) waitHook(ctx context.Context, t *target, timeout time.Duration) (string, error) {
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	deadline := time.Now().Add(timeout)
	var last string
	for {
		live, err := ri.Get(ctx, t.obj.GetName(), metav1.GetOptions{})
		switch {
		case ctx.Err() != nil:
			return "", fmt.Errorf("wait interrupted: %w", context.Cause(ctx))
		case apierrors.IsNotFound(err):
			last = "not found"
		case err != nil:
			last = err.Error()
		default:
			done, msg, failed := hookReady(live)
			if failed {
				return "", &HookError{Failed: true, Reason: msg}
			}
			if done {
				return msg, nil
			}
			last = msg
		}
		if !time.Now().Before(deadline) {
			return "", &HookError{Timeout: timeout.String(), Reason: last}
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(m.opts.PollInterval, time.Until(deadline))):
		}
	}
}

// hookReady says whether a hook object is ready (done), or failed, with a
// message: a failed Job's reason and message (BackoffLimitExceeded: Job has
// reached the specified backoff limit).
func hookReady(u *unstructured.Unstructured) (done bool, msg string, failed bool) {
	gk := u.GroupVersionKind().GroupKind()
	switch {
	case gk.Group == "batch" && gk.Kind == "Job":
		if c, ok := condition(u, "Failed"); ok {
			return false, reasonMessage(c, "Job failed"), true
		}
		if _, ok := condition(u, "Complete"); ok {
			return true, "Job complete", false
		}
		return false, "Job not complete yet", false
	case gk.Group == "" && gk.Kind == "Pod":
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		switch phase {
		case "Succeeded":
			return true, "Pod succeeded", false
		case "Failed":
			reason, _, _ := unstructured.NestedString(u.Object, "status", "reason")
			message, _, _ := unstructured.NestedString(u.Object, "status", "message")
			return false, reasonMessage(map[string]any{"reason": reason, "message": message}, "Pod failed"), true
		}
		return false, "Pod not succeeded yet (" + phase + ")", false
	}
	res, err := status.Compute(u)
	if err != nil {
		return false, err.Error(), false
	}
	switch res.Status {
	case status.CurrentStatus:
		return true, "Current", false
	case status.FailedStatus:
		return false, res.Message, true
	}
	return false, string(res.Status) + ": " + res.Message, false
}

// condition returns the status condition of the type when it is True.
func condition(u *unstructured.Unstructured, typ string) (map[string]any, bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, ok := c.(map[string]any)
		if ok && cm["type"] == typ && cm["status"] == "True" {
			return cm, true
		}
	}
	return nil, false
}

func reasonMessage(c map[string]any, fallback string) string {
	reason, _ := c["reason"].(string)
	message, _ := c["message"].(string)
	switch {
	case reason != "" && message != "":
		return reason + ": " + message
	case reason != "":
		return reason
	case message != "":
		return message
	}
	return fallback
}

// HookError says a hook did not run to the end: it failed (a Job's Failed
// condition) or was not ready before the timeout, both ErrUnhealthy, or it
// could not be applied or deleted (Err, whose kind it takes).
type HookError struct {
	Cluster, App string
	Object       ObjectRef
	// Phase is the hook event being run (pre-install, post-upgrade, ...).
	Phase string
	// Failed is set when the hook reported failure; Timeout is the deadline
	// that passed otherwise; Reason is the hook's own message.
	Failed  bool
	Timeout string
	Reason  string
	Err     error
}

func (e *HookError) Error() string {
	what := e.Reason
	switch {
	case e.Err != nil:
		what = e.Err.Error()
	case !e.Failed:
		what = "not ready after " + e.Timeout + ": " + e.Reason
	}
	return fmt.Sprintf("%s/%s: hook %s (%s): %s", e.Cluster, e.App, e.Object, e.Phase, what)
}

func (e *HookError) Unwrap() error { return e.Err }

// ErrorKind is ErrUnhealthy for a failed or timed-out hook (a rollout rolls
// back), else the kind of Err.
func (e *HookError) ErrorKind() ErrorKind {
	if e.Err == nil {
		return ErrUnhealthy
	}
	return ""
}

// Is makes errors.Is(err, ErrUnhealthy) true for a failed or timed-out hook.
func (e *HookError) Is(target error) bool { return e.Err == nil && target == ErrUnhealthy }
