package apply

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	list, err := m.resource(mapping, "").List(ctx, opts)
	if err == nil {
		add(list)
		return out, nil
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace || !apierrors.IsForbidden(err) {
		return nil, err
	}
	for ns := range namespaces {
		list, err := m.resource(mapping, ns).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("in %q: %w", ns, err)
		}
		add(list)
	}
	return out, nil
}
