package apply

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Normalize returns a copy of an object without the fields the server populates
// (status, managedFields, resourceVersion, uid, generation, creationTimestamp,
// selfLink, deletionGracePeriodSeconds), with numbers in one representation, so
// that a live object and a server-side dry-run result can be compared.
func Normalize(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "status")
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	c.Object = canonical(c.Object).(map[string]any)
	return c
}

// Equal reports whether two objects are the same once normalized.
func Equal(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(Normalize(a).Object, Normalize(b).Object)
}

// canonical round-trips a value through JSON so ints and floats compare equal.
func canonical(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// ownedMatches reports whether the fields the manager owns on the live object
// (its Apply entry in managedFields, for the desired apiVersion) are exactly the
// desired fields with the desired values. When it does, a server-side apply of the
// desired object would change nothing, and no request is needed. false means "not
// known": the caller asks the server (dry-run).
func ownedMatches(live, desired *unstructured.Unstructured, manager string) bool {
	var owned map[string]any
	found := 0
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != manager || mf.Operation != "Apply" || mf.Subresource != "" {
			continue
		}
		found++
		if mf.APIVersion != desired.GetAPIVersion() || mf.FieldsV1 == nil {
			return false
		}
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &owned); err != nil {
			return false
		}
	}
	if found != 1 {
		return false
	}
	proj, ok := project(live.Object, owned)
	if !ok {
		return false
	}
	want := desiredFields(desired)
	return reflect.DeepEqual(canonical(proj), canonical(want))
}

// desiredFields is the desired object without what managedFields never records.
func desiredFields(desired *unstructured.Unstructured) map[string]any {
	d := desired.DeepCopy().Object
	delete(d, "apiVersion")
	delete(d, "kind")
	if md, ok := d["metadata"].(map[string]any); ok {
		delete(md, "name")
		delete(md, "namespace")
		if v, ok := md["creationTimestamp"]; ok && v == nil {
			delete(md, "creationTimestamp")
		}
		if len(md) == 0 {
			delete(d, "metadata")
		}
	}
	if st, ok := d["status"].(map[string]any); ok && len(st) == 0 {
		delete(d, "status")
	}
	return d
}

// project keeps the parts of v that a fieldsV1 set names. ok is false when the set
// cannot be followed (an owned field missing from the object, an unknown key).
func project(v any, set map[string]any) (any, bool) {
	if len(set) == 0 {
		return v, true // a leaf, or an atomic value owned whole
	}
	switch val := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, sub := range set {
			if k == "." {
				continue
			}
			name, found := strings.CutPrefix(k, "f:")
			if !found {
				return nil, false
			}
			child, present := val[name]
			if !present {
				return nil, false
			}
			subSet, _ := sub.(map[string]any)
			p, ok := project(child, subSet)
			if !ok {
				return nil, false
			}
			out[name] = p
		}
		return out, true
	case []any:
		var out []any
		used := 0
		for i, item := range val {
			sub, matched := matchItem(item, i, set)
			if !matched {
				continue
			}
			used++
			p, ok := project(item, sub)
			if !ok {
				return nil, false
			}
			out = append(out, p)
		}
		if used != countItemKeys(set) {
			return nil, false
		}
		if out == nil {
			out = []any{}
		}
		return out, true
	default:
		return nil, false
	}
}

func countItemKeys(set map[string]any) int {
	n := 0
	for k := range set {
		if k != "." {
			n++
		}
	}
	return n
}

// matchItem finds the fieldsV1 entry of a list item: k:{key fields}, v:value or i:index.
func matchItem(item any, index int, set map[string]any) (map[string]any, bool) {
	for k, sub := range set {
		subSet, _ := sub.(map[string]any)
		switch {
		case strings.HasPrefix(k, "k:"):
			var keys map[string]any
			if err := json.Unmarshal([]byte(k[2:]), &keys); err != nil {
				continue
			}
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			all := true
			for kk, kv := range keys {
				if !reflect.DeepEqual(canonical(m[kk]), kv) {
					all = false
					break
				}
			}
			if all {
				return subSet, true
			}
		case strings.HasPrefix(k, "v:"):
			var val any
			if err := json.Unmarshal([]byte(k[2:]), &val); err != nil {
				continue
			}
			if reflect.DeepEqual(canonical(item), val) {
				return subSet, true
			}
		case strings.HasPrefix(k, "i:"):
			if n, err := strconv.Atoi(k[2:]); err == nil && n == index {
				return subSet, true
			}
		}
	}
	return nil, false
}

// asLiveRevision returns desired with the live object's
// fleetsync.dev/revision, for comparing the two: a commit that does not change
// an object's content is no reason to write it, so the live object keeps the
// revision at which fleetsync last changed it (docs/apply.md). It returns nil
// when both do not carry the annotation or it is the same.
func asLiveRevision(desired, live *unstructured.Unstructured) *unstructured.Unstructured {
	want, ok := desired.GetAnnotations()[v1alpha1.AnnotationRevision]
	if !ok || live == nil {
		return nil
	}
	had, ok := live.GetAnnotations()[v1alpha1.AnnotationRevision]
	if !ok || had == want {
		return nil
	}
	md, _ := desired.Object["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	ann2 := make(map[string]any, len(ann))
	for k, v := range ann {
		ann2[k] = v
	}
	ann2[v1alpha1.AnnotationRevision] = had
	md2 := make(map[string]any, len(md))
	for k, v := range md {
		md2[k] = v
	}
	md2["annotations"] = ann2
	obj := make(map[string]any, len(desired.Object))
	for k, v := range desired.Object {
		obj[k] = v
	}
	obj["metadata"] = md2
	return &unstructured.Unstructured{Object: obj}
}

// matchesLive reports whether a server-side apply of desired would change the
// live object, the revision annotation aside: from the fields fleetsync owns
// (ownedMatches), without a request.
func matchesLive(live, desired *unstructured.Unstructured, manager string) bool {
	if d := asLiveRevision(desired, live); d != nil {
		desired = d // with another revision the plain comparison cannot match: one comparison
	}
	return ownedMatches(live, desired, manager)
}

// equalButRevision reports whether a dry-run result equals the live object
// once the revision annotation the dry run set is put back to the live one.
func equalButRevision(dry, live *unstructured.Unstructured) bool {
	if d := asLiveRevision(dry, live); d != nil {
		dry = d
	}
	return Equal(dry, live)
}
