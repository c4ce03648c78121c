package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
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

// ApplyApps applies a cluster's apps in dependsOn order, each with Wait (unless
// DryRun): an app starts as soon as its dependencies are healthy, and apps that
// do not depend on each other run concurrently (at most AppConcurrency at once).
// Dependencies in reqs count by their outcome here, others by prior (app ->
// healthy, e.g. from an earlier rollout wave) or else by the health of the
// objects in their inventory on this cluster. An app whose dependency is not
// healthy is not applied; its error keeps the dependency's reason. Outcomes are
// in dependsOn order.
func (m *Manager) ApplyApps(ctx context.Context, reqs []AppRequest, prior map[string]bool) []AppOutcome {
	ordered, err := OrderApps(reqs)
	if err != nil {
		out := make([]AppOutcome, 0, len(reqs))
		for _, r := range reqs {
			out = append(out, AppOutcome{App: r.App, Err: fmt.Errorf("%s/%s: %w", m.cluster.Name, r.App, err)})
		}
		return out
	}
	type slot struct {
		done chan struct{}
		out  AppOutcome
	}
	slots := map[string]*slot{}
	for _, r := range ordered {
		slots[r.App] = &slot{done: make(chan struct{})}
	}
	deps := &depHealth{m: m, prior: prior, known: map[string]error{}}
	sem := make(chan struct{}, m.opts.AppConcurrency)
	var wg sync.WaitGroup
	for _, r := range ordered {
		s := slots[r.App]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.done)
			var errs []error
			for _, d := range r.DependsOn {
				if ds, ok := slots[d]; ok {
					<-ds.done
					if dryRunOK := r.DryRun && ds.out.Err == nil; !ds.out.Healthy && !dryRunOK {
						errs = append(errs, dependencyError(m.cluster.Name, r.App, d, ds.out.Err))
					}
					continue
				}
				if err := deps.check(ctx, d, r.Timeout); err != nil {
					errs = append(errs, dependencyError(m.cluster.Name, r.App, d, err))
				}
			}
			if len(errs) > 0 {
				s.out = AppOutcome{App: r.App, Err: errors.Join(errs...)}
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				s.out = AppOutcome{App: r.App, Err: fmt.Errorf("%s/%s: not applied: %w", m.cluster.Name, r.App, context.Cause(ctx))}
				return
			}
			defer func() { <-sem }()
			req := r.Request
			req.Wait = !req.DryRun
			cs, err := m.Apply(ctx, req)
			ok := err == nil && (cs.Healthy || req.DryRun)
			s.out = AppOutcome{App: r.App, ChangeSet: cs, Healthy: ok && !req.DryRun, Err: err}
		}()
	}
	wg.Wait()
	out := make([]AppOutcome, 0, len(ordered))
	for _, r := range ordered {
		out = append(out, slots[r.App].out)
	}
	return out
}

// DependencyError says an app was not applied because a dependency on the same
// cluster is not healthy; Err is the dependency's own reason (nil: unknown).
type DependencyError struct {
	Cluster, App, Dependency string
	Err                      error
}

func (e *DependencyError) Error() string {
	msg := fmt.Sprintf("%s/%s: not applied: dependency %s is not healthy on this cluster", e.Cluster, e.App, e.Dependency)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap gives the dependency's reason, so that its kind (a cancelled context,
// a transient error) is the dependent's kind too.
func (e *DependencyError) Unwrap() error { return e.Err }

func dependencyError(clusterName, app, dep string, err error) error {
	if err == nil {
		err = ErrUnhealthy
	}
	return &DependencyError{Cluster: clusterName, App: app, Dependency: dep, Err: err}
}

// depHealth answers, once per dependency, whether an app that is not part of
// this ApplyApps is healthy on the cluster.
type depHealth struct {
	m     *Manager
	prior map[string]bool
	mu    sync.Mutex
	known map[string]error
}

func (d *depHealth) check(ctx context.Context, app string, timeout time.Duration) error {
	if ok, found := d.prior[app]; found {
		if ok {
			return nil
		}
		return fmt.Errorf("%s is not healthy (earlier in this run)", app)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err, found := d.known[app]; found {
		return err
	}
	err := d.m.inventoryHealthy(ctx, app, timeout)
	d.known[app] = err
	return err
}

// inventoryHealthy waits for the objects of an app's inventory to be healthy.
func (m *Manager) inventoryHealthy(ctx context.Context, app string, timeout time.Duration) error {
	inv, err := m.Inventory(ctx, app)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("%s is not deployed on this cluster (no inventory)", app)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	_, err = m.WaitHealthy(ctx, app, inv.objectStubs(), timeout)
	return err
}

// WaitDependencies waits (at most timeout each) for the app's dependencies to
// be healthy on the cluster, judged by the objects of their inventories. The
// error is a *DependencyError per dependency that is not, with its reason.
func (m *Manager) WaitDependencies(ctx context.Context, app string, deps []string, timeout time.Duration) error {
	d := &depHealth{m: m, known: map[string]error{}}
	var errs []error
	for _, dep := range deps {
		if err := d.check(ctx, dep, timeout); err != nil {
			errs = append(errs, dependencyError(m.cluster.Name, app, dep, err))
		}
	}
	return errors.Join(errs...)
}
