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
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/hub"
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
	// Hub, in agent mode, is where the agents coordinate: this agent
	// publishes its cluster's state there and gates its waves on the other
	// agents' (see pkg/hub). Without it an agent's waves are not gated
	// across clusters. HubPoll is how often the others' states are read
	// (default 1s).
	Hub     *hub.Hub
	HubPoll time.Duration
	// Settled, when set, is called when the last rollout in flight ends,
	// and after a drift check with none in flight (e.g. to give the memory
	// of a burst back to the system).
	Settled func()
	// Shards, for central replicas sharing the fleet (run --shards auto):
	// this replica renders every cluster and observes them all for the
	// rollouts' facts, but writes to, checks drift on and reports only the
	// clusters it holds (see Shards). Its Wrap must guard the clusters'
	// transports.
	Shards *Shards
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
	logged   map[string]string  // cluster/app -> the error last logged for it
	flights  map[string]*flight // app -> its rollout in flight
	// settled is, per app, the key of its last rollout that ran to its end:
	// a cycle's rollout with the same key has nothing to do.
	settled map[string]string
	fwg     sync.WaitGroup     // the flights' goroutines
	current *reconcile.Desired // the last cycle's render (the hub link publishes against it)
	hub     *hubLink           // agent mode with a hub
}

// flight is one app's rollout running beside the loop: the loop starts it
// when the app's desired state (its digest on each cluster) differs from the
// one in flight, and cancels it when a newer one supersedes it (a cancelled
// rollout is never rolled back). Cycles never wait for flights.
type flight struct {
	key    string
	cancel context.CancelFunc
	done   chan struct{}
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
	if opts.Shards != nil {
		mode = "central (sharded)"
	}
	// Applied objects are counted as they are written, not when the rollout
	// that writes them ends.
	if m, progress := opts.Metrics, opts.Request.Progress; m != nil {
		opts.Request.Progress = func(c apply.Change) {
			m.observeChange(c)
			if progress != nil {
				progress(c)
			}
		}
	}
	d := &Daemon{opts: opts, trigger: make(chan struct{}, 1), flights: map[string]*flight{}, settled: map[string]string{}}
	if opts.Hub != nil && len(opts.Clusters) == 1 {
		if opts.HubPoll <= 0 {
			opts.HubPoll = time.Second
		}
		d.hub = newHubLink(d, opts.Hub, opts.Clusters[0], opts.HubPoll)
	}
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
	s.Clusters = make([]ClusterStatus, 0, len(d.status.Clusters))
	for _, c := range d.status.Clusters {
		if d.opts.Shards != nil && !d.opts.Shards.Owns(c.Name) {
			continue // another replica's (sharded)
		}
		c.Apps = slices.Clone(c.Apps)
		s.Clusters = append(s.Clusters, c)
	}
	if sh := d.opts.Shards; sh != nil {
		s.Shard = &ShardStatus{Identity: sh.Identity(), Replicas: sh.Members(), Clusters: sh.Owned()}
	}
	s.Rollouts = slices.Clone(d.status.Rollouts)
	s.InFlight = make([]string, 0, len(d.flights))
	for app := range d.flights {
		s.InFlight = append(s.InFlight, app)
	}
	slices.Sort(s.InFlight)
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
	defer d.fwg.Wait() // flights end with ctx
	beats := newHeartbeats(d)
	defer beats.stop()
	if d.hub != nil {
		d.hub.start(ctx, &wg)
	}
	if sh := d.opts.Shards; sh != nil {
		// A cluster taken or handed over starts a cycle: its rollouts are
		// started again with the clusters this replica now holds.
		wg.Go(func() { sh.Run(ctx, d.Trigger) })
	}
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
		// A drift interval shorter than the poll interval wakes the loop
		// on its own schedule (a cycle's fetch is incremental: cheap).
		timer.Reset(min(d.opts.Interval, d.opts.DriftInterval))
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
	if d.opts.Shards != nil {
		d.opts.Shards.SetClusters(names)
	}
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
	if err != nil && ctx.Err() != nil {
		return // shutting down: not the repo's fault
	}
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

// reconcile renders the revision in force and, per app, starts a rollout in
// flight when the app's desired state differs from the one in flight (each
// app's rollout driven by the engine, pairs healthy on their target left
// alone); it removes the apps that left a cluster, checks drift when due on
// the apps not in flight, and records the outcome. It never waits for a
// rollout: a soak or a slow cluster holds only its own app.
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
		d.recordCycle(repo, names, nil, nil, nil, start)
		return
	}
	d.mu.Lock()
	d.status.Clusters = slices.DeleteFunc(d.status.Clusters, func(c ClusterStatus) bool { return !slices.Contains(names, c.Name) })
	d.mu.Unlock()
	var desired *reconcile.Desired
	var err error
	if d.hub != nil {
		// Every cluster is rendered (offline but this one), so that the
		// rollouts can compare the other agents' states with their targets.
		desired, err = rec.DesiredOnline(ctx, repo, up)
	} else {
		desired, err = rec.Desired(ctx, repo, up)
	}
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
	if d.hub != nil {
		o.Local, o.Remote = up, d.hub.remote
	}
	if d.opts.Shards != nil {
		o.Owned = d.opts.Shards.Owns
	}
	d.mu.Lock()
	d.current = desired
	d.mu.Unlock()
	keys := appKeys(desired)
	if d.opts.Shards != nil {
		// A rollout is for the clusters held when it starts: a cluster taken
		// or handed over starts it again.
		held := "|held=" + strings.Join(d.opts.Shards.Owned(), ",")
		for app := range keys {
			keys[app] += held
		}
	}
	d.mu.Lock()
	for app, f := range d.flights {
		if _, ok := keys[app]; !ok {
			f.cancel() // the app left the repo or every cluster in scope
		}
	}
	d.mu.Unlock()
	// Apps with a rollout to do are left out of this cycle's drift check:
	// those whose rollout of an earlier cycle is still running, and those
	// whose rollout this cycle starts for something new (not the no-op
	// rollout every cycle starts for a settled app).
	d.mu.Lock()
	busy := map[string]bool{}
	for app := range d.flights {
		busy[app] = true
	}
	for app, key := range keys {
		if d.settled[app] != key {
			busy[app] = true
		}
	}
	d.mu.Unlock()
	for _, app := range slices.Sorted(maps.Keys(keys)) {
		d.launch(ctx, repo, desired, app, keys[app], o)
	}
	removed := rec.RemoveDeparted(ctx, desired, o)
	if ctx.Err() != nil {
		return // shutting down: nothing half-recorded
	}
	refused := map[string]string{}
	for _, p := range removed {
		d.logPair(p)
		d.opts.Metrics.observePair(p)
		if p.Err != nil {
			refused[p.Cluster], _, _ = strings.Cut(p.Err.Error(), "\n")
		}
	}
	d.mu.Lock()
	for i := range d.status.Clusters {
		d.status.Clusters[i].Removal = refused[d.status.Clusters[i].Name]
	}
	d.mu.Unlock()
	var drifts *reconcile.DiffResult
	if time.Since(d.lastDiff) >= d.opts.DriftInterval {
		do := reconcile.DiffOptions{RequestOptions: d.opts.Request, Correct: true, OnTarget: true}
		do.Local, do.Remote, do.Owned = o.Local, o.Remote, o.Owned // only the clusters this process writes to
		do.Only = func(app string) bool { return !busy[app] }
		drifts = rec.Diff(ctx, desired, do)
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
	d.recordCycle(repo, names, desired, removed, drifts, start)
	d.opts.Metrics.observeCycle(time.Since(start), up)
	if d.hub != nil {
		d.hub.changed()
	}
	d.mu.Lock()
	idle := len(d.flights) == 0
	d.mu.Unlock()
	if idle && drifts != nil {
		d.settle() // a drift check reads every object: a burst of its own
	}
}

// settle runs when no rollout is in flight: the shared cluster
// observations are dropped, then Options.Settled is called.
func (d *Daemon) settle() {
	d.opts.Reconciler.Idle()
	if d.opts.Settled != nil {
		d.opts.Settled()
	}
}

// appKeys is, per app of the render, what its rollout is for: its digest
// on each cluster (a render error counts as a digest). A new commit that
// does not change an app leaves its rollout in flight alone.
func appKeys(desired *reconcile.Desired) map[string]string {
	parts := map[string][]string{}
	for _, cr := range desired.Rendered.Clusters {
		for _, ar := range cr.Apps {
			dg := "render-failed"
			if ar.Err == nil {
				dg = apply.Digest(ar.Objects)
			}
			parts[ar.App] = append(parts[ar.App], cr.Cluster+"="+dg)
		}
	}
	keys := make(map[string]string, len(parts))
	for app, p := range parts {
		slices.Sort(p)
		keys[app] = strings.Join(p, ",")
	}
	return keys
}

// launch starts the app's rollout in flight unless the one in flight is for
// the same desired state; a superseded one is cancelled first (and ends at
// its next object, never rolled back).
func (d *Daemon) launch(ctx context.Context, repo *fleet.Repo, desired *reconcile.Desired, app, key string, o reconcile.RequestOptions) {
	d.mu.Lock()
	old := d.flights[app]
	d.mu.Unlock()
	if old != nil {
		if old.key == key {
			return
		}
		old.cancel()
		select {
		case <-old.done:
		case <-ctx.Done():
			return
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &flight{key: key, cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	d.flights[app] = f
	d.mu.Unlock()
	o.Only = func(a string) bool { return a == app }
	events := o.Events
	o.Events = func(e reconcile.RolloutEvent) {
		d.rolloutEvent(e)
		if d.hub != nil {
			d.hub.changed()
		}
		if events != nil {
			events(e)
		}
	}
	d.fwg.Add(1)
	go func() {
		defer d.fwg.Done()
		defer close(f.done)
		defer cancel()
		res := d.opts.Reconciler.Apply(fctx, desired, o)
		d.mu.Lock()
		if d.flights[app] == f {
			delete(d.flights, app)
		}
		idle := len(d.flights) == 0
		d.mu.Unlock()
		if idle {
			defer d.settle()
		}
		if fctx.Err() != nil {
			return // superseded or shutting down: the next rollout records
		}
		d.mu.Lock()
		d.settled[app] = key
		d.mu.Unlock()
		for _, p := range res.Pairs {
			if !d.ours(p.Cluster) {
				continue // another agent's cluster (agent mode with a hub)
			}
			d.logPair(p)
			d.opts.Metrics.observePair(p)
		}
		d.recordPairs(repo, res.Pairs)
		d.recordRollouts(res.Rollouts)
		if d.hub != nil {
			d.hub.changed()
		}
	}()
}

// ours reports whether the daemon reconciles the cluster (an agent with a
// hub renders every cluster but writes and reports only its own).
func (d *Daemon) ours(cluster string) bool {
	if d.opts.Shards != nil {
		return d.opts.Shards.Owns(cluster)
	}
	return len(d.opts.Clusters) == 0 || slices.Contains(d.opts.Clusters, cluster)
}

// rolloutEvent shows a rollout's progress while it is in flight.
func (d *Daemon) rolloutEvent(e reconcile.RolloutEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.status.Rollouts {
		if r := &d.status.Rollouts[i]; r.App == e.App {
			r.Phase, r.Wave, r.Waves, r.Reason = e.Phase, e.Wave, e.Waves, e.Message
			return
		}
	}
	d.status.Rollouts = append(d.status.Rollouts, reconcile.AppRollout{App: e.App, Phase: e.Phase, Wave: e.Wave, Waves: e.Waves, Reason: e.Message})
	slices.SortFunc(d.status.Rollouts, func(a, b reconcile.AppRollout) int { return strings.Compare(a.App, b.App) })
}

func (d *Daemon) logPair(p reconcile.PairOutcome) {
	// The same failure again (a held revision, a refused object, every
	// cycle) is logged once, until the pair's outcome changes.
	key, msg := p.Cluster+"/"+p.App, ""
	if p.Err != nil {
		msg = p.Err.Error()
	}
	d.mu.Lock()
	if d.logged == nil {
		d.logged = map[string]string{}
	}
	repeat := msg != "" && d.logged[key] == msg
	d.logged[key] = msg
	d.mu.Unlock()
	if repeat {
		return
	}
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

// recordCycle rebuilds the list of apps of each cluster's status from this
// cycle's render (keeping what is known of each pair), and records the
// removals and drift counts.
func (d *Daemon) recordCycle(repo *fleet.Repo, names []string, desired *reconcile.Desired, removed []reconcile.PairOutcome, drifts *reconcile.DiffResult, start time.Time) {
	failedRemoval := map[string]reconcile.PairOutcome{}
	for _, p := range removed {
		if p.Err != nil && p.App != "" {
			failedRemoval[p.Cluster+"/"+p.App] = p
		}
	}
	drifted := map[string]int{}
	if drifts != nil {
		for _, p := range drifts.Pairs {
			switch {
			case p.Report != nil:
				drifted[p.Cluster+"/"+p.App] = len(p.Report.Objects) - p.Report.Count(drift.InSync)
			case p.OffTarget:
				drifted[p.Cluster+"/"+p.App] = 0 // on the revision its rollout keeps it on
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
		inScope := desired != nil && slices.Contains(desired.Clusters, n)
		for _, app := range repo.Apps {
			if inScope && desired.Rendered.Get(n, app.Metadata.Name) == nil {
				continue // the app does not target the cluster
			}
			if !inScope && !targets(repo, app.Metadata.Name, n) {
				continue // a cluster left out of this cycle (down)
			}
			key := n + "/" + app.Metadata.Name
			a, ok := old[key]
			if !ok {
				a = AppStatus{Name: app.Metadata.Name, Sync: SyncOutOfSync, Health: HealthUnknown}
			}
			if n, ok := drifted[key]; ok {
				a.Drifted = n
			}
			apps = append(apps, a)
		}
		for key, p := range failedRemoval {
			if strings.HasPrefix(key, n+"/") {
				apps = append(apps, appStatus(AppStatus{Name: p.App, Sync: SyncFailed, Health: HealthUnknown}, p, repo.Revision))
			}
		}
		cs.Apps = apps
	}
	var rolls []reconcile.AppRollout
	for _, r := range d.status.Rollouts {
		if repo.App(r.App) != nil {
			rolls = append(rolls, r)
		}
	}
	d.status.Rollouts = rolls
	d.status.LastReconcile = time.Now().UTC()
	d.status.ReconcileSeconds = time.Since(start).Seconds()
}

// recordPairs folds the outcomes of a rollout into the pairs' status.
func (d *Daemon) recordPairs(repo *fleet.Repo, pairs []reconcile.PairOutcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range pairs {
		if !d.ours(p.Cluster) {
			continue // another agent's cluster (agent mode with a hub)
		}
		cs := d.clusterStatus(p.Cluster)
		i := slices.IndexFunc(cs.Apps, func(a AppStatus) bool { return a.Name == p.App })
		if i < 0 {
			cs.Apps = append(cs.Apps, AppStatus{Name: p.App, Sync: SyncOutOfSync, Health: HealthUnknown})
			slices.SortFunc(cs.Apps, func(a, b AppStatus) int { return strings.Compare(a.Name, b.Name) })
			i = slices.IndexFunc(cs.Apps, func(a AppStatus) bool { return a.Name == p.App })
		}
		cs.Apps[i] = appStatus(cs.Apps[i], p, repo.Revision)
	}
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
	default:
		// Applied now, or already healthy on the target (left alone): in
		// both cases the cluster has what the revision in force says.
		a.Sync = SyncSynced
		a.Revision = revision
		if p.ChangeSet != nil && p.ChangeSet.Wrote() {
			a.LastApplied = time.Now().UTC()
		}
		if p.Healthy {
			a.Health = HealthHealthy
		} else {
			a.Health = HealthProgressing
		}
	}
	return a
}

// recordRollouts replaces the apps' rollouts in the status.
func (d *Daemon) recordRollouts(rs []reconcile.AppRollout) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range rs {
		i := slices.IndexFunc(d.status.Rollouts, func(x reconcile.AppRollout) bool { return x.App == r.App })
		if i >= 0 {
			d.status.Rollouts[i] = r
		} else {
			d.status.Rollouts = append(d.status.Rollouts, r)
		}
	}
	slices.SortFunc(d.status.Rollouts, func(a, b reconcile.AppRollout) int { return strings.Compare(a.App, b.App) })
	d.opts.Metrics.observeRollouts(d.status.Rollouts)
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
