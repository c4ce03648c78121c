package apply

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func ssaPolicy(u *unstructured.Unstructured) string {
	return u.GetAnnotations()[annotationSSA]
}

func (m *Manager) applyOpts(dryRun bool) metav1.ApplyOptions {
	o := metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: m.opts.ForceConflicts}
	if dryRun {
		o.DryRun = []string{metav1.DryRunAll}
	}
	return o
}

// applyOne applies one resolved target whose live state was fetched.
func (r *run) applyOne(ctx context.Context, t *target) {
	m := r.m
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	switch ssaPolicy(t.obj) {
	case SSAIgnore:
		r.record(Change{Object: t.ref, Action: Skipped, Reason: annotationSSA + ": " + SSAIgnore})
		return
	case SSAIfNotPresent:
		if t.live == nil {
			live, err := ri.Get(ctx, t.obj.GetName(), metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				r.fail(t, "get", err)
				return
			}
			if err == nil {
				t.live = live
			}
		}
		if t.live != nil {
			r.record(Change{Object: t.ref, Action: Skipped, Reason: annotationSSA + ": " + SSAIfNotPresent + " and the object exists"})
			return
		}
	}
	if t.live == nil {
		// Not among the app's labelled objects, so it cannot match the desired
		// state (which carries the label): a write is needed.
		r.write(ctx, t)
		return
	}
	if t.random {
		r.record(Change{Object: t.ref, Action: Unchanged, Reason: randomReason})
		return
	}
	if mgrs := takeoverManagers(t.live, m.opts.TakeOver); len(mgrs) > 0 {
		r.takeOverAndApply(ctx, t, mgrs)
		return
	}
	if matchesLive(t.live, t.obj, m.opts.FieldManager) {
		r.record(Change{Object: t.ref, Action: Unchanged})
		return
	}
	if t.changed && !r.req.DryRun {
		// Changed in git since the last successful apply: write it at once,
		// and judge the action by what the server returns.
		out, ok := r.applyOrRecord(ctx, t, false, "apply")
		if !ok {
			return
		}
		action := Configured
		if Equal(out, t.live) {
			action = Unchanged
		}
		r.record(Change{Object: t.ref, Action: action})
		return
	}
	dry, ok := r.applyOrRecord(ctx, t, true, "dry-run apply")
	if !ok {
		return
	}
	if equalButRevision(dry, t.live) {
		r.record(Change{Object: t.ref, Action: Unchanged})
		return
	}
	if r.req.DryRun {
		r.record(Change{Object: t.ref, Action: Configured})
		return
	}
	if _, ok := r.applyOrRecord(ctx, t, false, "apply"); ok {
		r.record(Change{Object: t.ref, Action: Configured})
	}
}

// applyOrRecord server-side applies the object (a dry run with dryRun); on
// failure it records the object's change (an immutable field goes through
// the recreate policy) and returns false.
func (r *run) applyOrRecord(ctx context.Context, t *target, dryRun bool, op string) (*unstructured.Unstructured, bool) {
	ri := r.m.resource(t.mapping, t.obj.GetNamespace())
	out, err := ri.Apply(ctx, t.obj.GetName(), t.obj, r.m.applyOpts(dryRun))
	if err != nil {
		if fields := immutableFields(err); len(fields) > 0 {
			r.immutable(ctx, t, fields, err)
			return nil, false
		}
		r.fail(t, op, err)
		return nil, false
	}
	return out, true
}

// write applies an object that is not among the app's objects on the cluster.
func (r *run) write(ctx context.Context, t *target) {
	ri := r.m.resource(t.mapping, t.obj.GetNamespace())
	out, err := ri.Apply(ctx, t.obj.GetName(), t.obj, r.m.applyOpts(r.req.DryRun))
	if err != nil {
		if fields := immutableFields(err); len(fields) > 0 {
			r.immutable(ctx, t, fields, err)
			return
		}
		op := "apply"
		if r.req.DryRun {
			if namespaceMissing(err) {
				// The namespace is created by this apply (or the app's namespace):
				// the server cannot dry-run into it yet.
				r.record(Change{Object: t.ref, Action: Created, Reason: "its namespace does not exist yet: not validated by the server"})
				return
			}
			op = "dry-run apply"
		}
		r.fail(t, op, err)
		return
	}
	reason := ""
	if mgrs := takeoverManagers(out, r.m.opts.TakeOver); len(mgrs) > 0 && !r.req.DryRun {
		// Adopted from a person's kubectl: their fields become ours, and the
		// apply again removes what the desired object does not have.
		if err := r.m.takeOverFields(ctx, t, out); err != nil {
			r.fail(t, "take over fields", err)
			return
		}
		if out, err = ri.Apply(ctx, t.obj.GetName(), t.obj, r.m.applyOpts(false)); err != nil {
			r.fail(t, "apply", err)
			return
		}
		reason = takeoverReason(mgrs)
	}
	// A created object has one manager: us. An existing object that lacked the
	// app label (adopted) has others.
	action := Created
	if mf := out.GetManagedFields(); len(mf) > 1 || (len(mf) == 1 && mf[0].Manager != r.m.opts.FieldManager) {
		action = Configured
	}
	r.record(Change{Object: t.ref, Action: action, Reason: reason})
}

// takeOverAndApply applies an object that people changed with kubectl: their
// fields are taken over first, so the apply restores the desired object (see
// takeover.go). A dry run predicts the result from a server-side dry-run.
func (r *run) takeOverAndApply(ctx context.Context, t *target, mgrs []string) {
	m := r.m
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	reason := takeoverReason(mgrs)
	if r.req.DryRun {
		dry, err := ri.Apply(ctx, t.obj.GetName(), t.obj, m.applyOpts(true))
		if err != nil {
			if fields := immutableFields(err); len(fields) > 0 {
				r.immutable(ctx, t, fields, err)
				return
			}
			// Merged with their fields the object is invalid; after the take
			// over it is not: what changes is not validated here.
			r.record(Change{Object: t.ref, Action: Configured, Reason: reason + " (not validated by the server: " + Brief(err) + ")"})
			return
		}
		exp, err := afterTakeover(dry, m.opts.TakeOver)
		if err != nil {
			r.fail(t, "dry-run apply", err)
			return
		}
		if Equal(exp, t.live) {
			r.record(Change{Object: t.ref, Action: Unchanged})
			return
		}
		r.record(Change{Object: t.ref, Action: Configured, Reason: reason})
		return
	}
	live := t.live
	err := m.takeOverFields(ctx, t, live)
	if err != nil {
		// The object changed meanwhile (the resourceVersion guard): once more.
		if live, err = ri.Get(ctx, t.obj.GetName(), metav1.GetOptions{}); err == nil {
			err = m.takeOverFields(ctx, t, live)
		}
	}
	if err != nil {
		r.fail(t, "take over fields", err)
		return
	}
	out, err := ri.Apply(ctx, t.obj.GetName(), t.obj, m.applyOpts(false))
	if err != nil {
		if fields := immutableFields(err); len(fields) > 0 {
			r.immutable(ctx, t, fields, err)
			return
		}
		r.fail(t, "apply", err)
		return
	}
	if Equal(out, t.live) {
		r.record(Change{Object: t.ref, Action: Unchanged, Reason: reason})
		return
	}
	r.record(Change{Object: t.ref, Action: Configured, Reason: reason})
}

// immutable handles an apply that would change immutable fields: an error, or
// delete-and-recreate when allowed.
func (r *run) immutable(ctx context.Context, t *target, fields []string, err error) {
	if !r.req.Force && t.obj.GetAnnotations()[annotationRecreate] != RecreateEnabled {
		r.fail(t, "apply", &ImmutableError{Fields: fields, Err: err})
		return
	}
	if r.req.DryRun {
		r.record(Change{Object: t.ref, Action: Recreated, Reason: "immutable field " + strings.Join(fields, ", ")})
		return
	}
	if _, err := r.m.deleteAndWait(ctx, t, metav1.DeletePropagationForeground); err != nil {
		r.fail(t, "recreate: delete", err)
		return
	}
	ri := r.m.resource(t.mapping, t.obj.GetNamespace())
	if _, err := ri.Apply(ctx, t.obj.GetName(), t.obj, r.m.applyOpts(false)); err != nil {
		r.fail(t, "recreate: apply", err)
		return
	}
	r.record(Change{Object: t.ref, Action: Recreated, Reason: "immutable field " + strings.Join(fields, ", ")})
}

// deleteAndWait deletes the live object (with the propagation policy) and
// waits until it is gone; gone reports whether there was one.
func (m *Manager) deleteAndWait(ctx context.Context, t *target, policy metav1.DeletionPropagation) (gone bool, err error) {
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	name := t.obj.GetName()
	live, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	uid := live.GetUID()
	err = ri.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.DeleteTimeout)
	defer cancel()
	for {
		cur, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.GetUID() != uid) {
			return true, nil
		}
		if err != nil && ctx.Err() == nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("still present %s after delete", m.opts.DeleteTimeout)
		case <-time.After(m.opts.PollInterval / 4):
		}
	}
}

// immutableFields returns the fields an Invalid error says are immutable.
func immutableFields(err error) []string {
	if !apierrors.IsInvalid(err) {
		return nil
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return nil
	}
	set := map[string]bool{}
	if d := st.Status().Details; d != nil {
		for _, c := range d.Causes {
			msg := strings.ToLower(c.Message)
			if strings.Contains(msg, "immutable") || strings.Contains(msg, "may not change") || strings.Contains(msg, "cannot change") {
				field := c.Field
				if field == "" {
					field = "(unnamed field)"
				}
				set[field] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// redactedError hides Secret values the API server may quote in an error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap keeps the API status (reason, code, so apierrors.IsInvalid and friends
// still work) but never the original message, which quoted the values.
func (e *redactedError) Unwrap() error {
	var st apierrors.APIStatus
	if errors.As(e.err, &st) {
		status := st.Status()
		status.Message = e.msg
		status.Details = nil
		return &apierrors.StatusError{ErrStatus: status}
	}
	return nil
}

// redact removes the values of a Secret (raw and base64) from an error message.
func redact(err error, obj *unstructured.Unstructured) error {
	if err == nil || obj == nil || obj.GetKind() != "Secret" || obj.GroupVersionKind().Group != "" {
		return err
	}
	msg := err.Error()
	changed := false
	for _, v := range SecretValues(obj) {
		if len(v) >= 3 && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "***")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// SecretValues returns the values of a Secret's data (base64 and decoded) and
// stringData, for redaction. Never print them.
func SecretValues(obj *unstructured.Unstructured) []string {
	var out []string
	data, _, _ := unstructured.NestedMap(obj.Object, "data")
	for _, v := range data {
		s, ok := v.(string)
		if !ok {
			continue
		}
		out = append(out, s)
		if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
			out = append(out, string(dec))
		}
	}
	sd, _, _ := unstructured.NestedMap(obj.Object, "stringData")
	for _, v := range sd {
		if s, ok := v.(string); ok {
			out = append(out, s)
			out = append(out, base64.StdEncoding.EncodeToString([]byte(s)))
		}
	}
	// Longest first, so a value containing another is replaced whole.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// namespaceMissing reports whether an error says the object's namespace does not exist.
func namespaceMissing(err error) bool {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Kind == "namespaces"
}
