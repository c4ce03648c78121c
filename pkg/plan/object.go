package plan

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Masks shown in place of Secret values.
const (
	secretMask        = "***"
	secretMaskChanged = "*** (changed)"
)

// diffContext is the number of unchanged lines around each hunk.
const diffContext = 3

// objectKey identifies an object within one cluster: the API version may
// change without the object being another one.
type objectKey struct {
	group, kind, namespace, name string
}

func keyOf(o *unstructured.Unstructured) objectKey {
	gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
	return objectKey{group: gv.Group, kind: o.GetKind(), namespace: o.GetNamespace(), name: o.GetName()}
}

func refOf(o *unstructured.Unstructured) ObjectRef {
	return ObjectRef{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}
}

// diffObject compares one object of base and head (either may be nil but not
// both). ok is false when they are equal but for the revision annotation.
func diffObject(base, head *unstructured.Unstructured) (ObjectChange, bool) {
	if base != nil && head != nil && sameButRevision(base.Object, head.Object) {
		return ObjectChange{}, false
	}
	b, h := comparable(base), comparable(head)
	var c ObjectChange
	switch {
	case base == nil:
		c = ObjectChange{Action: Add, Object: refOf(head)}
	case head == nil:
		c = ObjectChange{Action: Delete, Object: refOf(base), PruneDisabled: base.GetAnnotations()[v1alpha1.AnnotationPrune] == "disabled"}
	default:
		if reflect.DeepEqual(b, h) {
			return ObjectChange{}, false
		}
		c = ObjectChange{Action: Change, Object: refOf(head)}
	}
	if isSecret(base) || isSecret(head) {
		c.SecretKeys = maskSecrets(b, h)
	}
	c.Diff = unifiedDiff(c.Object, toYAML(b), toYAML(h))
	return c, true
}

// sameButRevision reports, without copying, that two rendered objects are
// equal but for the revision annotation, which both carry. It is a shortcut:
// false means "compare them with comparable". Unchanged objects of a plan's
// two renders share everything but their metadata and annotations maps, and
// reflect.DeepEqual takes shared maps and slices as equal at once.
func sameButRevision(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok {
			return false
		}
		if k != "metadata" {
			if !reflect.DeepEqual(av, bv) {
				return false
			}
			continue
		}
		am, aok := av.(map[string]any)
		bm, bok := bv.(map[string]any)
		if !aok || !bok || len(am) != len(bm) {
			return false
		}
		for mk, amv := range am {
			bmv, ok := bm[mk]
			if !ok {
				return false
			}
			if mk != "annotations" {
				if !reflect.DeepEqual(amv, bmv) {
					return false
				}
				continue
			}
			aa, aok := amv.(map[string]any)
			ba, bok := bmv.(map[string]any)
			if !aok || !bok || len(aa) != len(ba) {
				return false
			}
			if _, ok := aa[v1alpha1.AnnotationRevision]; !ok {
				return false
			}
			if _, ok := ba[v1alpha1.AnnotationRevision]; !ok {
				return false
			}
			for ak, aav := range aa {
				if ak == v1alpha1.AnnotationRevision {
					continue
				}
				if bav, ok := ba[ak]; !ok || !reflect.DeepEqual(aav, bav) {
					return false
				}
			}
		}
	}
	return true
}

// comparable returns a deep copy of the object's content without the revision
// annotation (and without an annotations map left empty by that), or nil.
func comparable(o *unstructured.Unstructured) map[string]any {
	if o == nil {
		return nil
	}
	c := o.DeepCopy()
	if ann := c.GetAnnotations(); ann != nil {
		if _, ok := ann[v1alpha1.AnnotationRevision]; ok {
			delete(ann, v1alpha1.AnnotationRevision)
			if len(ann) == 0 {
				unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
			} else {
				c.SetAnnotations(ann)
			}
		}
	}
	return c.Object
}

func isSecret(o *unstructured.Unstructured) bool {
	if o == nil {
		return false
	}
	gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
	return gv.Group == "" && o.GetKind() == "Secret"
}

// maskSecrets replaces every value of data and stringData in both objects
// (either may be nil): values equal on both sides, or present on one side
// only, become "***"; values that differ become "***" in base and
// "*** (changed)" in head. A field that is not a map is replaced as a whole.
// It returns the keys added, changed or removed, sorted.
func maskSecrets(base, head map[string]any) []string {
	var changed []string
	for _, field := range []string{"data", "stringData"} {
		bm, hm := mapField(base, field), mapField(head, field)
		for k, bv := range bm {
			if hv, ok := hm[k]; !ok || !reflect.DeepEqual(bv, hv) {
				changed = append(changed, field+"."+k)
			}
		}
		for k := range hm {
			if _, ok := bm[k]; !ok {
				changed = append(changed, field+"."+k)
			}
		}
		for k := range bm {
			bm[k] = secretMask
		}
		for k := range hm {
			hm[k] = secretMask
			if _, inBase := bm[k]; inBase && slices.Contains(changed, field+"."+k) {
				hm[k] = secretMaskChanged
			}
		}
		for _, obj := range []map[string]any{base, head} {
			if v, ok := obj[field]; ok {
				if _, isMap := v.(map[string]any); !isMap {
					obj[field] = secretMask
				}
			}
		}
	}
	sort.Strings(changed)
	return changed
}

// mapField returns obj[field] when it is a map, else nil (obj may be nil).
func mapField(obj map[string]any, field string) map[string]any {
	m, _ := obj[field].(map[string]any)
	return m
}

// toYAML renders an object's content as YAML ("" for nil). Keys are sorted,
// so equal content gives equal text.
func toYAML(obj map[string]any) string {
	if obj == nil {
		return ""
	}
	b, err := yaml.Marshal(obj)
	if err != nil {
		// Unstructured content always marshals; keep the failure visible.
		return fmt.Sprintf("# cannot encode object: %v\n", err)
	}
	return string(b)
}

// unifiedDiff diffs two YAML texts line by line.
func unifiedDiff(ref ObjectRef, a, b string) string {
	name := strings.ToLower(ref.Kind) + "/"
	if ref.Namespace != "" {
		name += ref.Namespace + "/"
	}
	name += ref.Name
	from, to := "a/"+name, "b/"+name
	if a == "" {
		from = "/dev/null"
	}
	if b == "" {
		to = "/dev/null"
	}
	out, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(a), B: splitLines(b),
		FromFile: from, ToFile: to, Context: diffContext,
	})
	if err != nil {
		return fmt.Sprintf("# cannot diff: %v\n", err)
	}
	return out
}

// splitLines splits text after each newline; a last line without one gets it.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}
