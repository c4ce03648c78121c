package apply

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Deleting a Namespace or a CustomResourceDefinition deletes every object in it
// or of its kind. Such a prune is only safe when none of those objects is still
// wanted: by the app being applied (its desired set) or by any other app whose
// inventory is on the cluster. This is what keeps a Namespace that moved from
// one app to another (render gives a shared Namespace to one of them) alive
// while the other app has not been applied yet.

// cascadeUsers names who still uses what deleting obj would take with it, or
// returns "" when nobody does.
func (m *Manager) cascadeUsers(ctx context.Context, app string, desired []ObjectRef, obj *unstructured.Unstructured) (string, error) {
	var uses func(ObjectRef) bool
	switch {
	case isNamespace(obj.GroupVersionKind().GroupKind()):
		ns := obj.GetName()
		uses = func(r ObjectRef) bool { return r.Namespace == ns }
	case isCRD(obj.GroupVersionKind().GroupKind()):
		group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
		uses = func(r ObjectRef) bool { return r.Group == group && r.Kind == kind }
	default:
		return "", nil
	}
	for _, r := range desired {
		if uses(r) {
			return fmt.Sprintf("app %s still wants %s", app, r), nil
		}
	}
	apps, err := m.Inventories(ctx)
	if err != nil {
		return "", err
	}
	for _, other := range apps {
		if other == app {
			continue
		}
		inv, err := m.Inventory(ctx, other)
		if err != nil {
			return "", err
		}
		if inv == nil {
			continue
		}
		for _, r := range inv.Objects {
			if uses(r) {
				return fmt.Sprintf("app %s still has %s", other, r), nil
			}
		}
	}
	return "", nil
}
