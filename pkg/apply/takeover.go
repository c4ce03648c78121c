package apply

// Taking over fields from imperative managers.
//
// A person's `kubectl edit`, `patch`, `scale`, `label`, `annotate` or a
// client-side `kubectl apply` on an object fleetsync manages records the changed
// fields under that tool's field manager (operation Update). Server-side apply
// never removes fields another manager owns, so without help fleetsync could
// neither report an added field as drift nor restore the object: a port added by
// `kubectl patch` even makes the merged Service invalid. Like Flux, fleetsync
// first moves the fields of those managers into its own apply entry (one JSON
// patch of metadata.managedFields, guarded by the resourceVersion); the next
// server-side apply then removes what fleetsync no longer wants and restores the
// values it does. Controllers' fields (an HPA's replicas, defaults) are never
// taken over: only the managers listed in Options.TakeOver.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// DefaultTakeOver are the field managers of imperative changes made by people
// (kubectl's verbs and client-side apply, and the "before-first-apply" entry a
// server-side apply leaves on an object created client-side). Only their
// Update entries are taken over.
var DefaultTakeOver = []string{
	"kubectl", "kubectl-client-side-apply", "kubectl-edit", "kubectl-patch", "kubectl-scale",
	"kubectl-label", "kubectl-annotate", "kubectl-set", "kubectl-create", "kubectl-replace",
	"kubectl-run", "kubectl-expose", "kubectl-autoscale", "before-first-apply",
}

// takeoverManagers returns the imperative managers (from the list) that own
// fields of obj, sorted; none when there is nothing to take over.
//
// Namespaces are never taken over: their Update entries hold what the API
// server sets itself (the kubernetes.io/metadata.name label, the kubernetes
// finalizer, under "before-first-apply" when the Namespace was made by
// another app's apply at the same moment), which an apply may not remove
// and a managedFields patch may not move (seen at scale: the patch is
// refused as Invalid and the app fails).
func takeoverManagers(obj *unstructured.Unstructured, list []string) []string {
	if obj.GetKind() == "Namespace" && obj.GroupVersionKind().Group == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, mf := range obj.GetManagedFields() {
		if mf.Operation == metav1.ManagedFieldsOperationUpdate && slices.Contains(list, mf.Manager) {
			seen[mf.Manager] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isTakeover(mf metav1.ManagedFieldsEntry, list []string) bool {
	return mf.Operation == metav1.ManagedFieldsOperationUpdate && slices.Contains(list, mf.Manager)
}

func fieldSet(mf metav1.ManagedFieldsEntry) (*fieldpath.Set, error) {
	s := &fieldpath.Set{}
	if mf.FieldsV1 == nil {
		return s, nil
	}
	if err := s.FromJSON(bytes.NewReader(mf.FieldsV1.GetRawBytes())); err != nil {
		return nil, fmt.Errorf("managedFields of %s: %w", mf.Manager, err)
	}
	return s, nil
}

// takeOverFields moves the fields of the listed imperative managers into
// fleetsync's Apply entry on the live object (one JSON patch, guarded by the
// resourceVersion). apiVersion is the desired object's, used when fleetsync has
// no Apply entry yet.
func (m *Manager) takeOverFields(ctx context.Context, t *target, live *unstructured.Unstructured) error {
	entries := live.GetManagedFields()
	union := &fieldpath.Set{}
	var kept []metav1.ManagedFieldsEntry
	own := -1
	for _, mf := range entries {
		if isTakeover(mf, m.opts.TakeOver) {
			s, err := fieldSet(mf)
			if err != nil {
				return err
			}
			union = union.Union(s)
			continue
		}
		if mf.Manager == m.opts.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "" {
			own = len(kept)
		}
		kept = append(kept, mf)
	}
	if own < 0 {
		kept = append(kept, metav1.ManagedFieldsEntry{
			Manager: m.opts.FieldManager, Operation: metav1.ManagedFieldsOperationApply,
			APIVersion: t.obj.GetAPIVersion(), FieldsType: "FieldsV1", Time: &metav1.Time{Time: time.Now().UTC().Truncate(time.Second)},
		})
		own = len(kept) - 1
	}
	cur, err := fieldSet(kept[own])
	if err != nil {
		return err
	}
	raw, err := cur.Union(union).ToJSON()
	if err != nil {
		return err
	}
	kept[own].FieldsV1 = metav1.NewFieldsV1(string(raw))
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": live.GetResourceVersion()},
		{"op": "replace", "path": "/metadata/managedFields", "value": kept},
	})
	if err != nil {
		return err
	}
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	_, err = ri.Patch(ctx, t.obj.GetName(), types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: m.opts.FieldManager})
	return err
}

// afterTakeover predicts the object a server-side apply makes after the take
// over, from a dry-run apply result (whose managedFields already give forced
// fields to fleetsync): the fields only imperative managers still own are
// removed, as the apply would remove them.
func afterTakeover(merged *unstructured.Unstructured, list []string) (*unstructured.Unstructured, error) {
	theirs, others := &fieldpath.Set{}, &fieldpath.Set{}
	for _, mf := range merged.GetManagedFields() {
		s, err := fieldSet(mf)
		if err != nil {
			return nil, err
		}
		if isTakeover(mf, list) {
			theirs = theirs.Union(s)
		} else {
			others = others.Union(s)
		}
	}
	out := merged.DeepCopy()
	removeFieldSet(out.Object, theirs.Difference(others))
	var mfs []metav1.ManagedFieldsEntry
	for _, mf := range out.GetManagedFields() {
		if !isTakeover(mf, list) {
			mfs = append(mfs, mf)
		}
	}
	out.SetManagedFields(mfs)
	return out, nil
}

// expectedLocally predicts the result of take over and apply without the
// server, for when a dry-run apply fails because the merge with the imperative
// fields is invalid: the imperative-only fields leave the live object, then the
// desired fields are laid over it (maps merged, lists replaced). An
// approximation, for showing drift only.
func expectedLocally(live, desired *unstructured.Unstructured, list []string) (*unstructured.Unstructured, error) {
	out, err := afterTakeover(live, list)
	if err != nil {
		return nil, err
	}
	overlay(out.Object, desired.Object)
	return out, nil
}

func overlay(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				overlay(dm, sm)
				continue
			}
		}
		dst[k] = canonical(v) // a deep copy, numbers as JSON has them
	}
}

// removeFieldSet deletes from obj every member of the set (fields, list items),
// and maps and lists left empty by that.
func removeFieldSet(obj map[string]any, s *fieldpath.Set) {
	s.Iterate(func(p fieldpath.Path) { removePath(obj, p) })
}

func removePath(v any, p fieldpath.Path) any {
	if len(p) == 0 {
		return nil
	}
	pe := p[0]
	switch val := v.(type) {
	case map[string]any:
		if pe.FieldName == nil {
			return v
		}
		child, ok := val[*pe.FieldName]
		if !ok {
			return v
		}
		if len(p) == 1 {
			delete(val, *pe.FieldName)
			return v
		}
		wasEmpty := isEmpty(child)
		nc := removePath(child, p[1:])
		if isEmpty(nc) && !wasEmpty {
			delete(val, *pe.FieldName)
		} else {
			val[*pe.FieldName] = nc
		}
		return v
	case []any:
		for i, item := range val {
			if !matchesElement(item, i, pe) {
				continue
			}
			if len(p) == 1 {
				return append(val[:i:i], val[i+1:]...)
			}
			val[i] = removePath(item, p[1:])
			return val
		}
	}
	return v
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case nil:
		return true
	}
	return false
}

func matchesElement(item any, index int, pe fieldpath.PathElement) bool {
	switch {
	case pe.Index != nil:
		return *pe.Index == index
	case pe.Value != nil:
		return reflect.DeepEqual(canonical(item), canonical((*pe.Value).Unstructured()))
	case pe.Key != nil:
		m, ok := item.(map[string]any)
		if !ok {
			return false
		}
		for _, f := range *pe.Key {
			if !reflect.DeepEqual(canonical(m[f.Name]), canonical(f.Value.Unstructured())) {
				return false
			}
		}
		return true
	}
	return false
}

// takeoverReason says whose fields were taken over, for a Change's Reason.
func takeoverReason(managers []string) string {
	return "took over fields changed by " + strings.Join(managers, ", ")
}
