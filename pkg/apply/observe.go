package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// ObserveAll observes every app that has an inventory on the cluster, with
// few reads whatever the number of apps: one list of the inventory
// ConfigMaps, then one list per resource kind found in them, cluster-wide and
// selected by fleetsync's app label (per namespace when a cluster-wide list is
// forbidden). It gives what Observe gives for each app, and nil for an app
// whose inventory cannot be decoded (Observe reports its error). The
// daemon's no-op cycle costs these few reads per cluster instead of a few per
// app.
func (m *Manager) ObserveAll(ctx context.Context) (map[string]*Observation, error) {
	all, _, err := m.listInventories(ctx)
	if err != nil {
		return nil, err
	}
	invs := map[string]*Inventory{}
	out := make(map[string]*Observation, len(all))
	for app, inv := range all {
		if inv != nil {
			invs[app] = inv
		} else {
			out[app] = nil
		}
	}
	// Every object of every inventory, grouped by resource.
	type entry struct {
		app string
		t   *target
	}
	var entries []entry
	unknown := map[string][]ObjectStatus{}
	byResource := map[string]*meta.RESTMapping{}
	namespaces := map[string]map[string]bool{}
	for app, inv := range invs {
		for _, o := range inv.objectStubs() {
			t := &target{obj: o, ref: RefOf(o)}
			mapping, err := m.cluster.Mapping(o.GroupVersionKind())
			if err != nil {
				unknown[app] = append(unknown[app], ObjectStatus{Object: t.ref, Status: string(status.UnknownStatus), Message: err.Error()})
				continue
			}
			t.mapping = mapping
			r := mapping.Resource.String()
			byResource[r] = mapping
			if namespaces[r] == nil {
				namespaces[r] = map[string]bool{}
			}
			namespaces[r][o.GetNamespace()] = true
			entries = append(entries, entry{app: app, t: t})
		}
	}
	live := map[string]*unstructured.Unstructured{} // resource|namespace|name|app
	for r, mapping := range byResource {
		items, err := m.listLabelled(ctx, mapping, namespaces[r])
		if err != nil {
			return nil, fmt.Errorf("cluster %s: list %s: %w", m.cluster.Name, mapping.Resource.Resource, err)
		}
		for _, u := range items {
			live[r+"|"+u.GetNamespace()+"|"+u.GetName()+"|"+u.GetLabels()[labelApp]] = u
		}
	}
	targets := map[string][]*target{}
	for _, e := range entries {
		e.t.live = live[e.t.mapping.Resource.String()+"|"+e.t.obj.GetNamespace()+"|"+e.t.obj.GetName()+"|"+e.app]
		targets[e.app] = append(targets[e.app], e.t)
	}
	for app, inv := range invs {
		sts := append(unknown[app], statuses(targets[app])...)
		sortStatuses(sts)
		out[app] = observation(inv, sts)
	}
	return out, nil
}

// listLabelled lists a resource's objects that carry fleetsync's app label:
// cluster-wide in one request, or per namespace (those given) when the
// cluster-wide list is forbidden.
func (m *Manager) listLabelled(ctx context.Context, mapping *meta.RESTMapping, namespaces map[string]bool) ([]*unstructured.Unstructured, error) {
	opts := metav1.ListOptions{LabelSelector: labelApp}
	var out []*unstructured.Unstructured
	add := func(l *unstructured.UnstructuredList) {
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	l, err := m.list(ctx, mapping, "", opts)
	if err == nil {
		add(l)
		return out, nil
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace || !apierrors.IsForbidden(err) {
		return nil, err
	}
	for ns := range namespaces {
		l, err := m.list(ctx, mapping, ns, opts)
		if err != nil {
			return nil, fmt.Errorf("in %q: %w", ns, err)
		}
		add(l)
	}
	return out, nil
}

// list lists a resource's objects (in ns, "" for all), as metadata only for
// the kinds that need no more to be observed.
func (m *Manager) list(ctx context.Context, mapping *meta.RESTMapping, ns string, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	if metadataOnly[mapping.GroupVersionKind.GroupKind()] && m.cluster.Metadata != nil {
		return m.listMetadata(ctx, mapping, ns, opts)
	}
	return m.resource(mapping, ns).List(ctx, opts)
}

// metadataOnly are kinds without a status: kstatus finds them Current when
// they exist (Terminating while deleted, from the metadata), so observing
// them needs their metadata only. Listing a few thousand ConfigMaps and
// Secrets this way reads and keeps no data (and no secret value).
var metadataOnly = map[schema.GroupKind]bool{
	{Kind: "ConfigMap"}: true, {Kind: "Secret"}: true, {Kind: "ServiceAccount"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}: true, {Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true, {Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}: true, {Group: "scheduling.k8s.io", Kind: "PriorityClass"}: true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}: true,
}

// listMetadata lists the objects' metadata (PartialObjectMetadata) as
// objects with apiVersion, kind and metadata only.
func (m *Manager) listMetadata(ctx context.Context, mapping *meta.RESTMapping, ns string, opts metav1.ListOptions) (*unstructured.UnstructuredList, error) {
	r := m.cluster.Metadata.Resource(mapping.Resource)
	var pl *metav1.PartialObjectMetadataList
	var err error
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		pl, err = r.Namespace(ns).List(ctx, opts)
	} else {
		pl, err = r.List(ctx, opts)
	}
	if err != nil {
		return nil, err
	}
	out := &unstructured.UnstructuredList{Items: make([]unstructured.Unstructured, 0, len(pl.Items))}
	apiVersion, kind := mapping.GroupVersionKind.GroupVersion().String(), mapping.GroupVersionKind.Kind
	for i := range pl.Items {
		item := &pl.Items[i]
		item.ManagedFields = nil // not needed to observe, the bulk of it
		md, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&item.ObjectMeta)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": md}})
	}
	return out, nil
}
