package apply

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// prune deletes the inventory objects that left the desired set, when the
// request allows it. It returns the references that must stay in the inventory:
// everything not desired when nothing may be pruned, else the failed deletes.
func (r *run) prune(ctx context.Context, inv *Inventory, desired []ObjectRef) ([]ObjectRef, error) {
	if inv == nil {
		return nil, nil
	}
	want := map[string]bool{}
	for _, d := range desired {
		want[d.key()] = true
	}
	var stale []ObjectRef
	for _, o := range inv.Objects {
		if !want[o.key()] {
			stale = append(stale, o)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if !r.req.Prune || r.req.Incomplete {
		return stale, nil
	}
	if 2*len(stale) > len(inv.Objects) && !r.req.AllowMassPrune {
		return stale, &MassPruneError{Cluster: r.m.cluster.Name, App: r.req.App, Prune: len(stale), Inventory: len(inv.Objects)}
	}
	// Reverse stage order: namespaced objects, other cluster-scoped objects,
	// Namespaces, CRDs last (custom resources go before their definition).
	sort.SliceStable(stale, func(i, j int) bool { return refStage(stale[i]) > refStage(stale[j]) })
	var keep []ObjectRef
	for _, ref := range stale {
		c, err := r.m.pruneOne(ctx, r.req.App, ref, desired, r.req.DryRun)
		r.record(c) // a failed delete is reported through the ChangeSet
		if err != nil {
			keep = append(keep, ref)
		}
	}
	return keep, nil
}

// pruneOne deletes one object unless it opted out, moved to another app, or is gone.
func (m *Manager) pruneOne(ctx context.Context, app string, ref ObjectRef, desired []ObjectRef, dryRun bool) (Change, error) {
	mapping, err := m.cluster.Mapping(ref.GVK())
	if err != nil {
		if meta.IsNoMatchError(err) {
			// The kind is gone (its CRD was deleted): so is the object.
			return Change{Object: ref, Action: Pruned, Reason: "kind no longer served"}, nil
		}
		err = m.objErr(app, ref, "prune", err)
		return Change{Object: ref, Action: Failed, Err: err}, err
	}
	ri := m.resource(mapping, ref.Namespace)
	live, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Change{Object: ref, Action: Pruned, Reason: "already gone"}, nil
	}
	if err != nil {
		err = m.objErr(app, ref, "prune: get", err)
		return Change{Object: ref, Action: Failed, Err: err}, err
	}
	if !appliedBy(live, m.opts.FieldManager) {
		// Listed in the inventory (a person's edit of it, or a foreign
		// object), but not written by fleetsync: never deleted.
		return Change{Object: ref, Action: Skipped, Reason: fmt.Sprintf("not applied by fleetsync (no %q apply in its managedFields): left on the cluster", m.opts.FieldManager)}, nil
	}
	if live.GetAnnotations()[annotationPrune] == PruneDisabled {
		return Change{Object: ref, Action: Skipped, Reason: annotationPrune + ": " + PruneDisabled + " (left on the cluster, no longer managed)"}, nil
	}
	if live.GetAnnotations()[AnnotationResourcePolicy] == ResourcePolicyKeep {
		return Change{Object: ref, Action: Skipped, Reason: AnnotationResourcePolicy + ": " + ResourcePolicyKeep + " (left on the cluster, no longer managed)"}, nil
	}
	if owner := live.GetLabels()[labelApp]; owner != "" && owner != app {
		return Change{Object: ref, Action: Skipped, Reason: fmt.Sprintf("now belongs to app %s", owner)}, nil
	}
	// A Namespace or CRD takes its contents with it: keep it while anything in it is wanted.
	if who, err := m.cascadeUsers(ctx, app, desired, live); err != nil {
		err = m.objErr(app, ref, "prune: check what deleting it would take along", err)
		return Change{Object: ref, Action: Failed, Err: err}, err
	} else if who != "" {
		return Change{Object: ref, Action: Skipped, Reason: "not pruned: " + who}, nil
	}
	if dryRun {
		return Change{Object: ref, Action: Pruned}, nil
	}
	uid := live.GetUID()
	policy := metav1.DeletePropagationBackground
	if ref.Group == "" && ref.Kind == "Namespace" {
		m.namespaces.Delete(ref.Name)
	}
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		err = m.objErr(app, ref, "prune: delete", err)
		return Change{Object: ref, Action: Failed, Err: err}, err
	}
	return Change{Object: ref, Action: Pruned}, nil
}

// appliedBy reports whether the object carries a server-side apply of the
// field manager: what fleetsync applied does, whoever edited it since.
func appliedBy(live *unstructured.Unstructured, manager string) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}
