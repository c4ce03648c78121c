// Package daemon puts the pipeline on a loop: it fetches the fleet repo on a
// timer and on webhooks, keeps the last revision that loaded and validated in
// force, reconciles the clusters with pkg/reconcile (which drives each app's
// rollout with pkg/rollout from what the clusters say), checks drift, and
// keeps a heartbeat per cluster. It only schedules library calls; all state
// that matters lives in the clusters (inventories), so a restarted daemon
// resumes where the clusters are. See docs/daemon.md.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// Defaults of Options.
const (
	DefaultInterval          = time.Minute
	DefaultDriftInterval     = 5 * time.Minute
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultDebounce merges a burst of triggers (webhooks) into one fetch.
	DefaultDebounce = 500 * time.Millisecond
)

// Options configure a Daemon.
type Options struct {
	// Source is the opened fleet repo; Ref the branch followed ("" for the
	// remote's default branch, set in the source.Options).
	Source *source.Repo
	Ref    string
	// Reconciler does the work; its Pool holds the cluster connections.
	Reconciler *reconcile.Reconciler
	// Clusters limits the daemon to these clusters (agent mode: one); empty
	// means every cluster of the repo.
	Clusters []string
	// Agent is set in agent mode (shown in the status).
	Agent bool
	// Interval between fetches, DriftInterval between drift checks,
	// HeartbeatInterval between heartbeats (defaults above).
	Interval, DriftInterval, HeartbeatInterval time.Duration
	// Debounce merges triggers arriving within it (default 500ms).
	Debounce time.Duration
	// Request is passed to every reconcile (timeouts, mass prune).
	Request reconcile.RequestOptions
	// Logger gets one line per reconcile outcome (default: discard).
	Logger *slog.Logger
	// Metrics, when set, is updated as the daemon works.
	Metrics *Metrics
}

// Daemon is the reconcile loop. Create it with New, start it with Run.
type Daemon struct {
	opts    Options
	trigger chan struct{}

	mu       sync.Mutex
	status   Status
	repo     *fleet.Repo // the revision in force
	fetched  string      // newest commit fetched
	ready    bool
	lastDiff time.Time
}

// New returns a Daemon.
func New(opts Options) *Daemon {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.DriftInterval <= 0 {
		opts.DriftInterval = DefaultDriftInterval
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	mode := "central"
	if opts.Agent {
		mode = "agent"
	}
	d := &Daemon{opts: opts, trigger: make(chan struct{}, 1)}
	d.status = Status{Mode: mode, Source: SourceStatus{URL: source.RedactURL(opts.Source.Location()), Branch: opts.Ref}}
	return d
}

// Trigger asks for a fetch now (webhooks); it never blocks, and triggers
// arriving while one is pending are merged.
func (d *Daemon) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Ready reports whether a revision of the fleet repo is in force.
func (d *Daemon) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// Status returns a copy of what the daemon knows.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Clusters = make([]ClusterStatus, len(d.status.Clusters))
	for i, c := range d.status.Clusters {
		c.Apps = slices.Clone(c.Apps)
		s.Clusters[i] = c
	}
	s.Rollouts = slices.Clone(d.status.Rollouts)
	return s
}

// Run fetches, reconciles and checks drift until ctx ends; heartbeats run
// beside it, one per cluster. It returns nil when ctx is cancelled: a
// reconcile in flight ends at its next object, and a cancelled rollout is
// never rolled back (pkg/reconcile treats cancellation as canceled, not
// unhealthy).
func (d *Daemon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	beats := newHeartbeats(d)
	defer beats.stop()
	timer := time.NewTimer(0) // the first fetch at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-d.trigger:
			// a burst of webhooks is one fetch
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d.opts.Debounce):
			}
			select {
			case <-d.trigger:
			default:
			}
		}
		d.cycle(ctx, beats, &wg)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d.opts.Interval)
	}
}

// cycle is one fetch and, with a revision in force, one reconcile.
func (d *Daemon) cycle(ctx context.Context, beats *heartbeats, wg *sync.WaitGroup) {
	d.fetch(ctx)
	d.mu.Lock()
	repo := d.repo
	d.mu.Unlock()
	if repo == nil || ctx.Err() != nil {
		return
	}
	names := d.clusterNames(repo)
	beats.ensure(ctx, names, wg)
	d.reconcile(ctx, repo, names, beats)
}

// fetch updates the source and loads a new commit; a commit that does not
// load or validate leaves the revision in force as it is.
func (d *Daemon) fetch(ctx context.Context) {
	start := time.Now()
	rev, err := d.opts.Source.Fetch(ctx)
	d.opts.Metrics.observeFetch(err)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.opts.Logger.Error("fetch failed", "url", d.status.Source.URL, "error", err)
		d.setSourceError("fetch: " + err.Error())
		return
	}
	d.mu.Lock()
	same := rev.Commit != "" && rev.Commit == d.fetched && d.repo != nil
	d.fetched = rev.Commit
	d.status.Source.Fetched = rev.Commit
	d.status.Source.LastFetch = time.Now().UTC()
	d.mu.Unlock()
	if same {
		return
	}
	repo, err := fleet.Load(ctx, rev.FS)
	if err != nil {
		d.opts.Metrics.stageError("load")
		d.opts.Logger.Error("fleet repo invalid: the last good revision stays in force", "revision", short(rev.Commit), "error", oneLine(err))
		d.setSourceError(fmt.Sprintf("revision %s: %s", short(rev.Commit), err))
		return
	}
	repo.Revision = rev.Commit
	d.mu.Lock()
	d.repo = repo
	d.ready = true
	d.status.Source.Revision = rev.Commit
	d.status.Source.Error = ""
	d.mu.Unlock()
	d.opts.Metrics.setRevision(d.status.Source.URL, rev.Commit)
	d.opts.Logger.Info("revision in force", "revision", short(rev.Commit), "took", time.Since(start).Round(time.Millisecond))
}

func (d *Daemon) setSourceError(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.Source.Error = msg
	d.status.Source.LastFetch = time.Now().UTC()
}

// clusterNames are the clusters this daemon works on.
func (d *Daemon) clusterNames(repo *fleet.Repo) []string {
	if len(d.opts.Clusters) > 0 {
		return slices.Clone(d.opts.Clusters)
	}
	names := make([]string, 0, len(repo.Clusters))
	for _, c := range repo.Clusters {
		names = append(names, c.Metadata.Name)
	}
	slices.Sort(names)
	return names
}

// reconcile renders the revision in force, applies it (each app's rollout
// driven by the engine), checks drift when due, and records the outcome.
func (d *Daemon) reconcile(ctx context.Context, repo *fleet.Repo, names []string, beats *heartbeats) {
	rec := d.opts.Reconciler
	start := time.Now()
	// A cluster whose heartbeat says it is down is left out of this cycle:
	// it never delays the others, and catches up once it is back.
	var up []string
	for _, n := range names {
		if beats.up(n) {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		d.record(repo, names, nil, nil, nil, start)
		return
	}
	desired, err := rec.Desired(ctx, repo, up)
	if err != nil {
		d.opts.Metrics.stageError("render")
		d.opts.Logger.Error("render failed", "error", err)
		return
	}
	desired.Revisions = reconcile.SourceRevisions(d.opts.Source)
	// Pairs already healthy on their target are left alone: a cycle where
	// nothing changed reads a few lists per cluster and writes nothing; drift
	// is the drift check's business, below.
	o := d.opts.Request
	o.KeepHealthy = true
	res := rec.Apply(ctx, desired, o)
	if ctx.Err() != nil {
		return // shutting down: nothing half-recorded
	}
	for _, p := range res.Pairs {
		d.logPair(p)
		d.opts.Metrics.observePair(p)
	}
	var drifts *reconcile.DiffResult
	if time.Since(d.lastDiff) >= d.opts.DriftInterval {
		drifts = rec.Diff(ctx, desired, reconcile.DiffOptions{RequestOptions: d.opts.Request, Correct: true})
		d.lastDiff = time.Now()
		for _, p := range drifts.Pairs {
			if p.Report != nil {
				d.opts.Metrics.observeDrift(p.Cluster, p.App, len(p.Report.Objects)-p.Report.Count(drift.InSync))
			}
			if p.Corrected != nil {
				d.opts.Logger.Info("drift corrected", "cluster", p.Cluster, "app", p.App, "objects", len(p.Corrected.Changes))
			}
		}
	}
	// Apply returns each app's rollout as it ended: no second look at the clusters.
	d.record(repo, names, desired, res, drifts, start)
	d.recordRollouts(res.Rollouts)
	d.opts.Metrics.observeRollouts(res.Rollouts)
	d.opts.Metrics.observeCycle(time.Since(start), up)
}

func (d *Daemon) logPair(p reconcile.PairOutcome) {
	attrs := []any{"cluster", p.Cluster, "app", p.App}
	if p.ChangeSet != nil {
		attrs = append(attrs, "revision", short(p.ChangeSet.Revision), "changes", summary(p.ChangeSet))
	}
	switch {
	case p.Err != nil:
		d.opts.Logger.Error("reconcile failed", append(attrs, "kind", string(p.ErrorKind), "error", apply.Brief(p.Err))...)
	case p.Removed:
		d.opts.Logger.Info("app removed", attrs...)
	default:
		d.opts.Logger.Info("reconciled", append(attrs, "healthy", p.Healthy)...)
	}
}

// summary counts a ChangeSet's changes by action, e.g. "configured=1 unchanged=4".
func summary(cs *apply.ChangeSet) string {
	counts := map[apply.Action]int{}
	for _, c := range cs.Changes {
		counts[c.Action]++
	}
	keys := make([]string, 0, len(counts))
	for a := range counts {
		keys = append(keys, string(a))
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[apply.Action(k)])
	}
	return strings.Join(parts, " ")
}

// record rebuilds the apps of each cluster's status from this cycle.
func (d *Daemon) record(repo *fleet.Repo, names []string, desired *reconcile.Desired, res *reconcile.Result, drifts *reconcile.DiffResult, start time.Time) {
	outcomes := map[string]reconcile.PairOutcome{}
	if res != nil {
		for _, p := range res.Pairs {
			outcomes[p.Cluster+"/"+p.App] = p
		}
	}
	drifted := map[string]int{}
	if drifts != nil {
		for _, p := range drifts.Pairs {
			if p.Report != nil {
				drifted[p.Cluster+"/"+p.App] = len(p.Report.Objects) - p.Report.Count(drift.InSync)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := map[string]AppStatus{}
	for _, c := range d.status.Clusters {
		for _, a := range c.Apps {
			old[c.Name+"/"+a.Name] = a
		}
	}
	for _, n := range names {
		cs := d.clusterStatus(n)
		var apps []AppStatus
		for _, app := range repo.Apps {
			if desired != nil && desired.Rendered != nil && desired.Rendered.Get(n, app.Metadata.Name) == nil {
				continue // the app does not target the cluster
			}
			if desired == nil && !targets(repo, app.Metadata.Name, n) {
				continue
			}
			key := n + "/" + app.Metadata.Name
			a, ok := old[key]
			if !ok {
				a = AppStatus{Name: app.Metadata.Name, Sync: SyncOutOfSync, Health: HealthUnknown}
			}
			if p, ok := outcomes[key]; ok {
				a = appStatus(a, p, repo.Revision)
			}
			if n, ok := drifted[key]; ok {
				a.Drifted = n
			}
			apps = append(apps, a)
		}
		cs.Apps = apps
	}
	d.status.LastReconcile = time.Now().UTC()
	d.status.ReconcileSeconds = time.Since(start).Seconds()
}

// targets reports whether an app targets a cluster (for clusters left out of
// a cycle).
func targets(repo *fleet.Repo, app, cluster string) bool {
	a, c := repo.App(app), repo.Cluster(cluster)
	if a == nil || c == nil {
		return false
	}
	return fleet.Matches(a.Spec.Targets.ClusterSelector, c)
}

// appStatus folds a pair's outcome into its status.
func appStatus(a AppStatus, p reconcile.PairOutcome, revision string) AppStatus {
	a.Error = ""
	switch {
	case p.Err != nil:
		a.Error = apply.Brief(p.Err)
		var re *reconcile.RolloutError
		if errors.As(p.Err, &re) && re.State == rollout.StateRolledBack {
			// Back on the last healthy revision: its health is what it was.
			a.Sync = SyncRolledBack
			if a.Health == "" {
				a.Health = HealthUnknown
			}
			return a
		} else if p.ChangeSet == nil {
			a.Sync = SyncOutOfSync // not applied here yet (a later wave, a dependency)
		} else {
			a.Sync = SyncFailed
		}
		switch apply.KindOf(p.Err) {
		case apply.ErrUnhealthy:
			a.Health = HealthDegraded
		default:
			if a.Health == "" {
				a.Health = HealthUnknown
			}
		}
	case p.ChangeSet != nil:
		a.Sync = SyncSynced
		a.Revision = revision
		a.LastApplied = time.Now().UTC()
		if p.Healthy {
			a.Health = HealthHealthy
		} else {
			a.Health = HealthProgressing
		}
	}
	return a
}

func (d *Daemon) recordRollouts(r []reconcile.AppRollout) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status.Rollouts = r
}

// clusterStatus returns the status entry of a cluster, adding it (under d.mu).
func (d *Daemon) clusterStatus(name string) *ClusterStatus {
	if c := d.status.Cluster(name); c != nil {
		return c
	}
	d.status.Clusters = append(d.status.Clusters, ClusterStatus{Name: name})
	slices.SortFunc(d.status.Clusters, func(a, b ClusterStatus) int { return strings.Compare(a.Name, b.Name) })
	return d.status.Cluster(name)
}

// noCredentials reports whether an error says the daemon has no credentials
// for a cluster (it is then shown, never retried hard).
func noCredentials(err error) bool { return errors.Is(err, cluster.ErrNoCredentials) }

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
