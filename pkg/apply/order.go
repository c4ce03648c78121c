package apply

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// AppRequest is an app to apply on the Manager's cluster and the apps (on the same
// cluster) that must be healthy before it.
type AppRequest struct {
	Request
	DependsOn []string
}

// AppOutcome is the result of one app of ApplyApps.
type AppOutcome struct {
	App       string
	ChangeSet *ChangeSet // nil when the app was not applied
	// Healthy is true when the app was applied and is healthy.
	Healthy bool
	Err     error
}

// OrderApps sorts apps so that each comes after its dependencies (by name among
// equals). Dependencies outside the list are ignored here. A cycle is an error
// (validate rejects cycles, so a loaded repo has none).
func OrderApps(reqs []AppRequest) ([]AppRequest, error) {
	byName := map[string]AppRequest{}
	names := make([]string, 0, len(reqs))
	for _, r := range reqs {
		byName[r.App] = r
		names = append(names, r.App)
	}
	sort.Strings(names)
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []AppRequest
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("dependsOn cycle: %v", append(path, name))
		}
		state[name] = visiting
		deps := append([]string(nil), byName[name].DependsOn...)
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := byName[d]; !ok {
				continue
			}
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, byName[name])
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ApplyApps applies a cluster's apps one at a time in dependsOn order, each with
// Wait (unless DryRun). An app is applied only when every dependency is healthy:
// dependencies in reqs by their outcome here, others by prior (app -> healthy,
// e.g. from an earlier rollout wave) or else by the health of the objects in their
// inventory on this cluster. Apps that do not depend on each other still run one
// after the other: simple, and the order is the same on every run.
func (m *Manager) ApplyApps(ctx context.Context, reqs []AppRequest, prior map[string]bool) []AppOutcome {
	ordered, err := OrderApps(reqs)
	if err != nil {
		out := make([]AppOutcome, 0, len(reqs))
		for _, r := range reqs {
			out = append(out, AppOutcome{App: r.App, Err: fmt.Errorf("%s/%s: %w", m.cluster.Name, r.App, err)})
		}
		return out
	}
	healthy := map[string]bool{}
	for k, v := range prior {
		healthy[k] = v
	}
	out := make([]AppOutcome, 0, len(ordered))
	for _, r := range ordered {
		if err := m.dependenciesHealthy(ctx, r, healthy); err != nil {
			healthy[r.App] = false
			out = append(out, AppOutcome{App: r.App, Err: err})
			continue
		}
		req := r.Request
		req.Wait = !req.DryRun
		cs, err := m.Apply(ctx, req)
		ok := err == nil && (cs.Healthy || req.DryRun)
		healthy[r.App] = ok
		out = append(out, AppOutcome{App: r.App, ChangeSet: cs, Healthy: ok && !req.DryRun, Err: err})
	}
	return out
}

func (m *Manager) dependenciesHealthy(ctx context.Context, r AppRequest, healthy map[string]bool) error {
	for _, d := range r.DependsOn {
		ok, known := healthy[d]
		if !known {
			var err error
			ok, err = m.inventoryHealthy(ctx, d, r.Timeout)
			if err != nil {
				return fmt.Errorf("%s/%s: dependency %s: %w", m.cluster.Name, r.App, d, err)
			}
			healthy[d] = ok
		}
		if !ok {
			return fmt.Errorf("%s/%s: not applied: dependency %s is not healthy on this cluster", m.cluster.Name, r.App, d)
		}
	}
	return nil
}

// inventoryHealthy waits for the objects of an app's inventory to be healthy.
func (m *Manager) inventoryHealthy(ctx context.Context, app string, timeout time.Duration) (bool, error) {
	inv, err := m.Inventory(ctx, app)
	if err != nil {
		return false, err
	}
	if inv == nil {
		return false, fmt.Errorf("not deployed on this cluster (no inventory)")
	}
	objs := make([]*unstructured.Unstructured, 0, len(inv.Objects))
	for _, ref := range inv.Objects {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ref.GVK())
		u.SetNamespace(ref.Namespace)
		u.SetName(ref.Name)
		objs = append(objs, u)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	_, err = m.WaitHealthy(ctx, app, objs, timeout)
	return err == nil, nil
}
