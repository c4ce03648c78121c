package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/rollout"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// RevisionLoader loads the fleet repo at another commit, to render the
// revision a rollback returns to.
type RevisionLoader func(ctx context.Context, revision string) (*fleet.Repo, error)

// SourceRevisions loads revisions from a git source (kept open by the caller).
func SourceRevisions(src *source.Repo) RevisionLoader {
	return func(ctx context.Context, revision string) (*fleet.Repo, error) {
		rev, err := src.Open(ctx, revision)
		if err != nil {
			return nil, err
		}
		repo, err := fleet.Load(ctx, rev.FS)
		if err != nil {
			return nil, fmt.Errorf("revision %s: %w", revision, err)
		}
		repo.Revision = rev.Commit
		return repo, nil
	}
}

// AppRollout is one app's rollout: the last decision, and where each cluster is.
type AppRollout struct {
	App      string                  `json:"app"`
	Target   string                  `json:"target"`
	Phase    rollout.Phase           `json:"phase"`
	Wave     int                     `json:"wave"`
	Waves    int                     `json:"waves"`
	Reason   string                  `json:"reason,omitempty"`
	Clusters []rollout.ClusterStatus `json:"clusters"`
}

// RolloutEvent is a step of a rollout, for progress output.
type RolloutEvent struct {
	App     string
	Phase   rollout.Phase
	Wave    int // from 0
	Waves   int
	Message string
}

// RolloutError says why a pair is not healthy on the target at the end of
// its app's rollout.
type RolloutError struct {
	Cluster, App string
	State        rollout.State
	Reason       string
	Kind         apply.ErrorKind
	Err          error // the underlying error, when there is one
}

func (e *RolloutError) Error() string {
	msg := fmt.Sprintf("%s/%s: %s", e.Cluster, e.App, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches the error's kind.
func (e *RolloutError) Is(target error) bool { return target == e.Kind }

// ErrorKind is the kind apply.KindOf reports for it.
func (e *RolloutError) ErrorKind() apply.ErrorKind { return e.Kind }

// Unwrap returns the underlying error.
func (e *RolloutError) Unwrap() error { return e.Err }

// strategyFor resolves an app's rollout against the clusters that render it:
// waves of cluster names in order (clusters no wave selects, which validation
// forbids, make a last wave). An app without waves is one wave of every
// cluster in which failures are tolerated (each cluster stands alone).
func strategyFor(repo *fleet.Repo, appName string, clusters []string, timeout time.Duration) rollout.Strategy {
	s := rollout.Strategy{HealthTimeout: timeout}
	app := repo.App(appName)
	if app == nil || app.Spec.Rollout == nil || len(app.Spec.Rollout.Waves) == 0 {
		s.Waves = []rollout.Wave{{Clusters: clusters, MaxFailures: len(clusters)}}
		if app != nil && app.Spec.Rollout != nil {
			s.AutoRollback = app.Spec.Rollout.AutoRollback
			s.Waves[0].MaxFailures = 0
		}
		return s
	}
	r := app.Spec.Rollout
	s.AutoRollback = r.AutoRollback
	placed := map[string]bool{}
	for _, w := range r.Waves {
		rw := rollout.Wave{}
		for _, c := range clusters {
			if cl := repo.Cluster(c); cl != nil && !placed[c] && fleet.Matches(w.ClusterSelector, cl) {
				rw.Clusters = append(rw.Clusters, c)
				placed[c] = true
			}
		}
		if w.MaxConcurrent != nil {
			rw.MaxConcurrent, _ = rollout.ParseLimit(w.MaxConcurrent.Value) // validated on load
		}
		if w.MaxFailures != nil {
			rw.MaxFailures = *w.MaxFailures
		}
		if w.SoakTime != nil {
			rw.SoakTime = w.SoakTime.Duration
		}
		s.Waves = append(s.Waves, rw)
	}
	var rest []string
	for _, c := range clusters {
		if !placed[c] {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		s.Waves = append(s.Waves, rollout.Wave{Clusters: rest})
	}
	return s
}

// appRun is the state of one app's rollout within one call: what was done
// here (for the outcome) and in-run knowledge that the clusters do not hold
// (a failed apply, a dependency that is not healthy, when a cluster was last
// seen unhealthy).
type appRun struct {
	r        *Reconciler
	d        *Desired
	o        RequestOptions
	app      string
	pairs    map[string]*render.AppResult
	clusters []string
	strategy rollout.Strategy
	digests  map[string]string

	mu         sync.Mutex
	changes    map[string]*apply.ChangeSet
	problems   map[string]error // cluster -> why it cannot take part (for the rest of the run)
	lastErr    map[string]error // cluster -> why it could not be observed last time
	synced     map[string]bool  // clusters already on the target, applied again once (drift)
	attempts   map[string]int
	failed     map[string]error // applied, but the apply failed permanently
	unhealthy  map[string]time.Time
	firstSeen  map[string]time.Time
	lastReport string
	observed   map[string]*apply.Observation // cluster -> the last look, until the next write
}

func (r *Reconciler) newAppRun(d *Desired, app string, o RequestOptions) *appRun {
	a := &appRun{r: r, d: d, o: o, app: app, pairs: map[string]*render.AppResult{}, digests: map[string]string{},
		changes: map[string]*apply.ChangeSet{}, problems: map[string]error{}, attempts: map[string]int{},
		lastErr: map[string]error{}, synced: map[string]bool{},
		failed: map[string]error{}, unhealthy: map[string]time.Time{}, firstSeen: map[string]time.Time{},
		observed: map[string]*apply.Observation{}}
	for ci := range d.Rendered.Clusters {
		cr := &d.Rendered.Clusters[ci]
		for ai := range cr.Apps {
			if ar := &cr.Apps[ai]; ar.App == app {
				a.pairs[cr.Cluster] = ar
				a.clusters = append(a.clusters, cr.Cluster)
				if ar.Err == nil {
					a.digests[cr.Cluster] = apply.Digest(ar.Objects)
				} else {
					a.digests[cr.Cluster] = "render-failed"
					a.problems[cr.Cluster] = ar.Err
				}
			}
		}
	}
	sort.Strings(a.clusters)
	timeout := Request(d.Repo, &render.AppResult{App: app}, false, o).Timeout
	a.strategy = strategyFor(d.Repo, app, a.clusters, timeout)
	return a
}

// facts observes the app on every cluster, in parallel.
func (a *appRun) facts(ctx context.Context, now time.Time) map[string]rollout.Facts {
	out := map[string]rollout.Facts{}
	var mu sync.Mutex
	a.r.forEachCluster(ctx, a.clusters, func(ctx context.Context, c string) {
		f := a.observe(ctx, c, now)
		mu.Lock()
		out[c] = f
		mu.Unlock()
	})
	return out
}

func (a *appRun) observe(ctx context.Context, c string, now time.Time) rollout.Facts {
	if a.o.remote(c) {
		return a.remoteFacts(c)
	}
	f := rollout.Facts{Cluster: c, Reachable: true, Health: rollout.Unknown}
	a.mu.Lock()
	problem := a.problems[c]
	a.mu.Unlock()
	if problem != nil {
		f.Reachable, f.Problem = false, apply.Brief(problem)
		var ce *ClusterError
		f.Blocked = !errors.As(problem, &ce)
		return f
	}
	m, err := a.r.pool.Get(ctx, c)
	if err == nil {
		var obs *apply.Observation
		if obs, err = a.r.obs.observe(ctx, m, a.app); err == nil {
			a.mu.Lock()
			delete(a.lastErr, c)
			a.observed[c] = obs
			a.mu.Unlock()
			return a.factsFrom(ctx, m, c, obs, now)
		}
	}
	a.mu.Lock()
	a.lastErr[c] = err
	a.mu.Unlock()
	f.Reachable, f.Problem = false, apply.Brief(err)
	return f
}

func (a *appRun) factsFrom(ctx context.Context, m *apply.Manager, c string, obs *apply.Observation, now time.Time) rollout.Facts {
	f := rollout.Facts{Cluster: c, Reachable: true, Health: rollout.Unknown}
	inv := obs.Inventory
	if inv == nil {
		return f
	}
	f.Applied = rollout.Revision{Revision: inv.Revision, Digest: inv.Digest}
	f.AppliedAt = inv.AppliedAt
	if f.AppliedAt.IsZero() { // an inventory from before appliedAt was recorded
		a.mu.Lock()
		if a.firstSeen[c].IsZero() {
			a.firstSeen[c] = now
		}
		f.AppliedAt = a.firstSeen[c]
		a.mu.Unlock()
	}
	for _, h := range inv.Holds {
		f.Holds = append(f.Holds, rollout.Hold{Revision: h.Revision, Digest: h.Digest, Reason: h.Reason, Time: h.Time})
	}
	target := a.digests[c]
	for _, h := range inv.History {
		if h.Digest != target && h.Digest != "" {
			f.LastHealthy = &rollout.Revision{Revision: h.Revision, Digest: h.Digest}
			break
		}
	}
	a.mu.Lock()
	failedApply := a.failed[c]
	a.mu.Unlock()
	switch {
	case failedApply != nil && inv.Digest == target:
		f.Health = rollout.Failed
	case obs.Failed:
		f.Health = rollout.Failed
	case obs.Healthy:
		f.Health = rollout.Healthy
		f.HealthySince = a.healthySince(ctx, m, c, inv, now)
	default:
		f.Health = rollout.Progressing
		a.mu.Lock()
		a.unhealthy[c] = now
		a.mu.Unlock()
	}
	return f
}

// remoteFacts are the facts of a cluster another agent reconciles, from
// what it published: its digests are its own render's, so "on the target"
// is its word for the same revision, mapped onto this run's digest for it.
func (a *appRun) remoteFacts(c string) rollout.Facts {
	rs := a.o.Remote(a.app, c)
	if rs.Problem != "" {
		return rollout.Facts{Cluster: c, Health: rollout.Unknown, Problem: rs.Problem}
	}
	target := revisionOf(a.d.Repo)
	f := rollout.Facts{Cluster: c, Reachable: true, Health: rs.Health, HealthySince: rs.HealthySince, AppliedAt: rs.AppliedAt,
		Applied: rollout.Revision{Revision: rs.Revision, Digest: "remote:" + rs.Digest}}
	if rs.Digest == "" {
		f.Applied = rollout.Revision{}
	}
	if rs.OnTarget && rs.Target == target {
		f.Applied.Digest = a.digests[c]
	}
	if f.Health == "" {
		f.Health = rollout.Unknown
	}
	for _, h := range rs.Holds {
		if h.Revision == target {
			h.Digest = a.digests[c]
		} else {
			h.Digest = "remote:" + h.Digest
		}
		f.Holds = append(f.Holds, h)
	}
	return f
}

// healthySince is when the applied digest became healthy: its history entry
// (written now when missing), or later when this run saw it unhealthy since.
func (a *appRun) healthySince(ctx context.Context, m *apply.Manager, c string, inv *apply.Inventory, now time.Time) time.Time {
	since := time.Time{}
	for _, h := range inv.History {
		if h.Digest == inv.Digest {
			since = h.Time
			break
		}
	}
	if since.IsZero() && !a.o.DryRun && a.o.local(c) {
		err := m.RecordHealthy(ctx, a.app, inv.Revision, inv.Digest)
		a.wrote(c)
		if err == nil {
			since = now
		}
	}
	if since.IsZero() {
		since = now
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if u := a.unhealthy[c]; u.After(since) {
		since = u
	}
	return since
}

// rolloutApp drives one app's rollout until it is done, halted or rolled
// back (or ctx ends), and returns its last plan.
func (a *appRun) run(ctx context.Context, poll time.Duration, events func(RolloutEvent)) rollout.Plan {
	var last rollout.Plan
	for {
		now := time.Now()
		facts := a.facts(ctx, now)
		if ctx.Err() != nil && len(last.Clusters) > 0 {
			last.Reason = "interrupted: " + context.Cause(ctx).Error()
			return last
		}
		plan := rollout.Decide(rollout.Input{App: a.app, Strategy: a.strategy, Target: revisionOf(a.d.Repo), Digests: a.digests, Facts: facts, Now: now})
		last = plan
		if ctx.Err() != nil {
			plan.Reason = "interrupted: " + context.Cause(ctx).Error()
			return plan
		}
		a.report(plan, events)
		if a.resync(ctx, plan, facts) {
			continue // look again after correcting drift
		}
		switch plan.Phase {
		case rollout.PhaseDone, rollout.PhaseHalted, rollout.PhaseRolledBack:
			return plan
		}
		if a.execute(ctx, plan, facts) {
			continue
		}
		wait := poll
		if plan.Recheck > 0 && plan.Recheck < wait {
			wait = plan.Recheck
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (a *appRun) report(p rollout.Plan, events func(RolloutEvent)) {
	if events == nil {
		return
	}
	msg := p.Reason
	if msg == "" && p.Phase == rollout.PhaseDone {
		msg = "healthy on " + short(revisionOf(a.d.Repo)) + " on every cluster"
	}
	if len(p.Apply) > 0 {
		msg = fmt.Sprintf("wave %d: applying %s on %v", p.Wave+1, short(revisionOf(a.d.Repo)), p.Apply)
	}
	if len(p.RollBack) > 0 {
		var to []string
		for _, rb := range p.RollBack {
			to = append(to, rb.Cluster+" -> "+short(rb.To.Revision))
		}
		msg = fmt.Sprintf("rolling back %v: %s", to, p.Reason)
	}
	key := string(p.Phase) + "|" + msg
	a.mu.Lock()
	same := key == a.lastReport
	a.lastReport = key
	a.mu.Unlock()
	if !same {
		events(RolloutEvent{App: a.app, Phase: p.Phase, Wave: p.Wave, Waves: len(a.strategy.Waves), Message: msg})
	}
}

// execute carries out a plan's decisions; it reports whether it did anything.
func (a *appRun) execute(ctx context.Context, p rollout.Plan, facts map[string]rollout.Facts) bool {
	if p.Hold != nil {
		for _, c := range a.clusters {
			if f := facts[c]; a.o.local(c) && f.Reachable && f.Applied.Digest != "" && f.Applied.Digest == a.digests[c] {
				a.recordHold(ctx, c, *p.Hold)
			}
		}
	}
	rollbacks := map[string]rollout.RollBack{}
	var names []string
	for _, c := range p.Apply {
		if a.o.local(c) {
			names = append(names, c)
		}
	}
	for _, rb := range p.RollBack {
		if a.o.local(rb.Cluster) { // another agent rolls its own cluster back
			rollbacks[rb.Cluster] = rb
			names = append(names, rb.Cluster)
		}
	}
	a.r.forEachCluster(ctx, names, func(ctx context.Context, c string) {
		if rb, ok := rollbacks[c]; ok {
			a.rollBack(ctx, rb)
		} else {
			a.applyTarget(ctx, c)
		}
	})
	return len(names) > 0
}

// resync applies the target once more on the clusters that are already on it
// (and not being rolled back): a no-op without drift, and the correction of
// changes made on the cluster (a person's kubectl edit, a deleted object).
func (a *appRun) resync(ctx context.Context, p rollout.Plan, facts map[string]rollout.Facts) bool {
	if p.Phase == rollout.PhaseRollingBack {
		return false
	}
	var todo []string
	a.mu.Lock()
	for _, c := range a.clusters {
		if f := facts[c]; !a.synced[c] && a.o.local(c) && f.Reachable && f.Applied.Digest == a.digests[c] {
			if a.o.KeepHealthy && f.Health == rollout.Healthy {
				continue
			}
			a.synced[c] = true
			todo = append(todo, c)
		}
	}
	a.mu.Unlock()
	a.r.forEachCluster(ctx, todo, a.applyTarget)
	return len(todo) > 0
}

func (a *appRun) recordHold(ctx context.Context, c string, h rollout.Hold) {
	m, err := a.r.pool.Get(ctx, c)
	if err == nil {
		err = m.RecordHold(ctx, a.app, apply.Hold{Revision: h.Revision, Digest: a.digests[c], Reason: h.Reason, Time: h.Time.UTC().Truncate(time.Second)})
		a.wrote(c)
	}
	if err != nil {
		a.setProblem(c, fmt.Errorf("record the failed revision: %w", err))
	}
}

// wrote records a write to the app on a cluster: shared observations taken
// before it are not used for the app, and this run's last look there is
// dropped (an apply then reads the inventory itself).
func (a *appRun) wrote(c string) {
	a.r.obs.wrote(c, a.app)
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.observed, c)
}

func (a *appRun) setProblem(c string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.problems[c] = err
}

// applyTarget applies the target on a cluster (after its dependencies there
// are healthy); the rollout loop then watches its health.
func (a *appRun) applyTarget(ctx context.Context, c string) {
	m, err := a.r.pool.Get(ctx, c)
	if err != nil {
		a.setProblem(c, err)
		return
	}
	a.mu.Lock()
	a.synced[c] = true
	a.mu.Unlock()
	req := a.d.request(c, a.pairs[c], a.o)
	if err := a.waitDependencies(ctx, m, c, req.DependsOn, req.Timeout); err != nil {
		a.setProblem(c, err)
		return
	}
	req.Wait = false
	a.mu.Lock()
	if len(req.DependsOn) == 0 {
		req.Observed = a.observed[c] // what the decision was made on (no wait since)
	}
	delete(a.observed, c)
	a.mu.Unlock()
	release := a.r.slot(ctx, c)
	cs, err := m.Apply(ctx, req.Request)
	release()
	a.wrote(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.changes[c] = cs
	if err == nil {
		return
	}
	a.attempts[c]++
	switch {
	case apply.KindOf(err) == apply.ErrCanceled:
	case apply.KindOf(err) == apply.ErrTransient && a.attempts[c] < 3:
		// tried again by the next decision (the cluster is not on the target)
		// or, when the inventory moved, judged by its health
	default:
		a.failed[c] = err
		if a.attempts[c] >= 3 {
			a.problems[c] = err // not even the inventory moved: stop trying here
		}
	}
}

// waitDependencies waits until each dependency is healthy on the cluster on
// its own target of this run (the revision this run rolls out for it), at
// most timeout: B on cluster C waits for A on C only. A dependency that does
// not target the cluster is judged by its inventory there.
func (a *appRun) waitDependencies(ctx context.Context, m *apply.Manager, c string, deps []string, timeout time.Duration) error {
	var errs []error
	for _, dep := range deps {
		var pair *render.AppResult
		if a.d.Rendered != nil {
			pair = a.d.Rendered.Get(c, dep)
		}
		if pair == nil {
			if err := m.WaitDependencies(ctx, a.app, []string{dep}, timeout); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if pair.Err != nil {
			errs = append(errs, &apply.DependencyError{Cluster: c, App: a.app, Dependency: dep, Err: fmt.Errorf("render failed: %w", pair.Err)})
			continue
		}
		if err := a.waitOnTarget(ctx, m, dep, apply.Digest(pair.Objects), timeout); err != nil {
			errs = append(errs, &apply.DependencyError{Cluster: c, App: a.app, Dependency: dep, Err: err})
		}
	}
	return errors.Join(errs...)
}

// waitOnTarget polls until the app's inventory on the cluster has the digest
// and its objects are healthy.
func (a *appRun) waitOnTarget(ctx context.Context, m *apply.Manager, app, digest string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		obs, err := a.r.obs.observe(ctx, m, app)
		switch {
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil:
		case obs.Inventory == nil:
			err = fmt.Errorf("%s is not deployed on this cluster yet", app)
		case obs.Inventory.Digest != digest:
			err = fmt.Errorf("%s is not on this run's revision on this cluster yet", app)
			for _, h := range obs.Inventory.Holds {
				if h.Digest == digest {
					return fmt.Errorf("%s's revision failed on this cluster and was rolled back: %s", app, h.Reason)
				}
			}
		case obs.Healthy:
			return nil
		default:
			err = &apply.HealthError{Cluster: m.Cluster().Name, App: app, Timeout: timeout.String(), Objects: obs.Objects}
		}
		if !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(a.r.opts.PollInterval):
		}
	}
}

// rollBack re-applies a cluster's last healthy revision, rendered again from
// its commit, pruning what that revision does not have (usual guards).
func (a *appRun) rollBack(ctx context.Context, rb rollout.RollBack) {
	c := rb.Cluster
	err := func() error {
		if a.d.Revisions == nil {
			return fmt.Errorf("cannot roll back to %s: the repo has no git history to render it from (use a git URL or --ref)", short(rb.To.Revision))
		}
		old, err := a.d.revision(ctx, rb.To.Revision)
		if err != nil {
			return fmt.Errorf("roll back to %s: %w", short(rb.To.Revision), err)
		}
		m, err := a.r.pool.Get(ctx, c)
		if err != nil {
			return err
		}
		res := a.r.renderer.Render(ctx, old, render.Selection{Clusters: []string{c}, Apps: []string{a.app}, KubeVersions: map[string]string{c: a.r.pool.Version(c)}})
		ar := res.Get(c, a.app)
		if ar == nil {
			return fmt.Errorf("roll back to %s: the app does not target %s at that revision", short(rb.To.Revision), c)
		}
		if ar.Err != nil {
			return fmt.Errorf("roll back to %s: %w", short(rb.To.Revision), ar.Err)
		}
		objs := ar.Objects
		var pi *pairImages
		if mirror, ok := mirrored(old, c, a.app); ok && a.d.syncer != nil {
			if objs, pi, err = a.rewriteRollback(ctx, m, c, mirror, rb, ar); err != nil {
				return err
			}
		}
		req := Request(old, &render.AppResult{App: a.app, Objects: objs}, false, a.o)
		if pi != nil {
			req.Images, req.SourceDigest, req.InputsDigest = pi.pins, pi.sourceDigest, pinInputs(req.InputsDigest, pi.pins)
		}
		req.Wait = false
		release := a.r.slot(ctx, c)
		cs, err := m.Apply(ctx, req.Request)
		release()
		a.wrote(c)
		a.mu.Lock()
		a.changes[c] = cs
		delete(a.failed, c)
		a.mu.Unlock()
		return err
	}()
	if err != nil {
		a.setProblem(c, err)
	}
}

// slot waits for one of the cluster's AppConcurrency apply slots (apps of
// one cluster are applied concurrently, bounded) and returns its release.
func (r *Reconciler) slot(ctx context.Context, clusterName string) func() {
	release, err := r.slots.Acquire(ctx, clusterName)
	if err != nil {
		return func() {} // ctx ended: the apply that follows fails with it
	}
	return release
}

// rewriteRollback pins the images of a rolled-back revision as that revision
// ran (the pins its history entry recorded; its copies are in the mirror).
func (a *appRun) rewriteRollback(ctx context.Context, m *apply.Manager, c, mirror string, rb rollout.RollBack, ar *render.AppResult) ([]*unstructured.Unstructured, *pairImages, error) {
	uses, err := imagesync.Collect(ar.Objects, a.r.podSpecPaths())
	if err != nil {
		return nil, nil, fmt.Errorf("roll back to %s: image sync: %w", short(rb.To.Revision), err)
	}
	pins := map[string]string{}
	if inv, err := m.Inventory(ctx, a.app); err == nil && inv != nil {
		for _, h := range inv.History {
			if h.Digest == rb.To.Digest {
				pins = h.Images
				break
			}
		}
	}
	pi := &pairImages{mirror: mirror, uses: uses, sourceDigest: apply.Digest(ar.Objects)}
	objs, err := rewrite(ctx, a.d.syncer, c, a.app, ar.Objects, pi, pins)
	if err != nil {
		return nil, nil, fmt.Errorf("roll back to %s: %w", short(rb.To.Revision), err)
	}
	return objs, pi, nil
}

// revision loads (once per call) the repo at another commit.
func (d *Desired) revision(ctx context.Context, rev string) (*fleet.Repo, error) {
	d.revMu.Lock()
	defer d.revMu.Unlock()
	if repo, ok := d.revCache[rev]; ok {
		return repo, nil
	}
	repo, err := d.Revisions(ctx, rev)
	if err != nil {
		return nil, err
	}
	if d.revCache == nil {
		d.revCache = map[string]*fleet.Repo{}
	}
	d.revCache[rev] = repo
	return repo, nil
}

// outcomes turns the last plan into one PairOutcome per cluster.
func (a *appRun) outcomes(p rollout.Plan, ctxErr error) []PairOutcome {
	out := make([]PairOutcome, 0, len(a.clusters))
	statuses := map[string]rollout.ClusterStatus{}
	for _, st := range p.Clusters {
		statuses[st.Cluster] = st
	}
	for _, c := range a.clusters {
		st, ok := statuses[c]
		if !ok {
			st = rollout.ClusterStatus{Cluster: c, State: rollout.StatePending}
		}
		po := PairOutcome{Cluster: c, App: a.app, Wave: st.Wave}
		a.mu.Lock()
		po.ChangeSet = a.changes[c]
		problem, failed := a.problems[c], a.failed[c]
		if problem == nil {
			problem = a.lastErr[c]
		}
		a.mu.Unlock()
		if ar := a.pairs[c]; ar != nil && ar.Err != nil {
			po.Err = fmt.Errorf("not applied (and nothing pruned on this cluster): %w", ar.Err)
			out = append(out, po)
			continue
		}
		switch st.State {
		case rollout.StateHealthy:
			po.Healthy = true
		case rollout.StateSoaking:
			po.Healthy = true
		default:
			e := &RolloutError{Cluster: c, App: a.app, State: st.State, Kind: apply.ErrPermanent}
			switch st.State {
			case rollout.StateFailed:
				e.Reason, e.Kind, e.Err = "failed: "+st.Reason, apply.ErrUnhealthy, failed
				if failed != nil {
					e.Reason, e.Kind = "failed", apply.KindOf(failed)
				}
			case rollout.StateRolledBack:
				e.Reason, e.Kind = "rolled back ("+st.Reason+"): "+p.Reason, apply.ErrUnhealthy
			case rollout.StateHeld, rollout.StatePending:
				e.Reason = fmt.Sprintf("not applied: rollout %s at wave %d: %s", p.Phase, p.Wave+1, p.Reason)
			case rollout.StateUnreachable, rollout.StateBlocked:
				e.Reason, e.Err = "not applied", problem
				if problem == nil || apply.KindOf(problem) == apply.ErrTransient {
					e.Kind = apply.ErrTransient
				}
				if failed != nil {
					// The apply failed, and looking at the result failed too:
					// the apply's error is the cause.
					e.Reason, e.Err, e.Kind = "failed", failed, apply.KindOf(failed)
				}
			default:
				e.Reason = string(st.State) + ": " + p.Reason
			}
			if ctxErr != nil {
				e.Reason, e.Kind, e.Err = "interrupted", apply.ErrCanceled, ctxErr
			}
			po.Err = e
		}
		out = append(out, po)
	}
	return out
}

func (a *appRun) summary(p rollout.Plan) AppRollout {
	return AppRollout{App: a.app, Target: revisionOf(a.d.Repo), Phase: p.Phase, Wave: p.Wave, Waves: len(a.strategy.Waves), Reason: p.Reason, Clusters: p.Clusters}
}

// rollouts drives every app's rollout concurrently: no global barrier, an
// app's waves wait only for that app's clusters.
func (r *Reconciler) rollouts(ctx context.Context, d *Desired, o RequestOptions) ([]PairOutcome, []AppRollout) {
	apps := map[string]bool{}
	for _, cr := range d.Rendered.Clusters {
		for _, ar := range cr.Apps {
			if o.accepts(ar.App) {
				apps[ar.App] = true
			}
		}
	}
	names := make([]string, 0, len(apps))
	for a := range apps {
		names = append(names, a)
	}
	sort.Strings(names)
	var mu sync.Mutex
	var pairs []PairOutcome
	var rolls []AppRollout
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := r.newAppRun(d, name, o)
			plan := a.run(ctx, r.opts.PollInterval, o.Events)
			outs := a.outcomes(plan, ctx.Err())
			mu.Lock()
			pairs = append(pairs, outs...)
			rolls = append(rolls, a.summary(plan))
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(rolls, func(i, j int) bool { return rolls[i].App < rolls[j].App })
	return pairs, rolls
}

// RolloutStatus reads each app's rollout from the clusters (apps: all when
// empty) and says where it is, without changing anything.
func (r *Reconciler) RolloutStatus(ctx context.Context, d *Desired, apps []string) ([]AppRollout, error) {
	var errs []error
	for _, name := range apps {
		if d.Repo.App(name) == nil {
			errs = append(errs, fmt.Errorf("--app %s: no such app in the fleet repo", name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	want := map[string]bool{}
	for _, a := range apps {
		want[a] = true
	}
	var out []AppRollout
	for _, app := range d.Repo.Apps {
		name := app.Metadata.Name
		if len(apps) > 0 && !want[name] {
			continue
		}
		a := r.newAppRun(d, name, RequestOptions{DryRun: true})
		if len(a.clusters) == 0 {
			continue
		}
		now := time.Now()
		plan := rollout.Decide(rollout.Input{App: name, Strategy: a.strategy, Target: revisionOf(d.Repo), Digests: a.digests, Facts: a.facts(ctx, now), Now: now})
		out = append(out, a.summary(plan))
	}
	return out, nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
