package plan

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// TestSameButRevision: the shortcut says "equal" only when comparable says
// so too.
func TestSameButRevision(t *testing.T) {
	spec := map[string]any{"replicas": int64(2)}
	obj := func(rev string, ann map[string]any, spec map[string]any) map[string]any {
		a := map[string]any{}
		for k, v := range ann {
			a[k] = v
		}
		if rev != "" {
			a[v1alpha1.AnnotationRevision] = rev
		}
		return map[string]any{"apiVersion": "v1", "kind": "X", "metadata": map[string]any{"name": "x", "annotations": a}, "spec": spec}
	}
	for _, tc := range []struct {
		name string
		a, b map[string]any
		want bool
	}{
		{"revision only", obj("r1", nil, spec), obj("r2", nil, spec), true},
		{"other annotation kept", obj("r1", map[string]any{"k": "v"}, spec), obj("r2", map[string]any{"k": "v"}, spec), true},
		{"annotation differs", obj("r1", map[string]any{"k": "v"}, spec), obj("r2", map[string]any{"k": "w"}, spec), false},
		{"spec differs", obj("r1", nil, spec), obj("r2", nil, map[string]any{"replicas": int64(3)}), false},
		{"no revision on one side", obj("", map[string]any{"k": "v"}, spec), obj("r2", map[string]any{"k": "v"}, spec), false},
	} {
		got := sameButRevision(tc.a, tc.b)
		if got != tc.want {
			t.Errorf("%s: sameButRevision = %v, want %v", tc.name, got, tc.want)
		}
		full := reflect.DeepEqual(comparable(&unstructured.Unstructured{Object: tc.a}), comparable(&unstructured.Unstructured{Object: tc.b}))
		if got && !full {
			t.Errorf("%s: shortcut says equal, comparable says they differ", tc.name)
		}
	}
}
