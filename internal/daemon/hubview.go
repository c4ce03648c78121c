package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// HubStatus is the fleet of agents as the hub holds it, in the daemon's
// Status shape (mode "hub"): a cluster per agent, its apps as the agent
// published them, and per app the rollout as the agents' engines see it
// with each cluster's state. An agent whose state is older than three of
// its heartbeat intervals shows its cluster down. warnings name hub objects
// that are not agent states.
func HubStatus(agents map[string]hub.AgentState, warnings []string, now time.Time) Status {
	st := Status{Mode: "hub", Clusters: []ClusterStatus{}, Rollouts: []reconcile.AppRollout{}, InFlight: []string{}}
	names := make([]string, 0, len(agents))
	for n := range agents {
		names = append(names, n)
	}
	sort.Strings(names)
	revisions := map[string][]string{}
	type appView struct {
		summary  *hub.Rollout
		target   string
		clusters []rollout.ClusterStatus
	}
	apps := map[string]*appView{}
	for _, n := range names {
		a := agents[n]
		age := now.Sub(a.Heartbeat)
		stale := age > a.StaleAfter(DefaultHeartbeatInterval)
		cs := ClusterStatus{Name: n, Up: a.Up && !stale, Version: a.Version, Nodes: a.Nodes, NodesReady: a.NodesReady, LastSeen: a.Heartbeat, Error: a.ClusterError}
		if stale {
			cs.Error = fmt.Sprintf("its agent last published to the hub %s ago", age.Round(time.Second))
		}
		if st.Source.URL == "" {
			st.Source.URL = a.Source
		}
		revisions[a.Revision] = append(revisions[a.Revision], n)
		for _, app := range slices.Sorted(maps.Keys(a.Apps)) {
			as := a.Apps[app]
			cs.Apps = append(cs.Apps, hubAppStatus(app, as))
			v := apps[app]
			if v == nil {
				v = &appView{target: as.Target}
				apps[app] = v
			}
			if worse(as.Rollout, v.summary) {
				v.summary, v.target = as.Rollout, as.Target
			}
			state := hubClusterState(as)
			if stale {
				state = rollout.StateUnreachable
			}
			v.clusters = append(v.clusters, rollout.ClusterStatus{Cluster: n, State: state, Reason: as.Error})
		}
		if cs.Apps == nil {
			cs.Apps = []AppStatus{}
		}
		st.Clusters = append(st.Clusters, cs)
	}
	// The revision in force: the agents'; when they differ, the one most
	// have, and the others named.
	var best string
	for r, cl := range revisions {
		if best == "" || len(cl) > len(revisions[best]) || len(cl) == len(revisions[best]) && r > best {
			best = r
		}
	}
	st.Source.Revision = best
	if len(revisions) > 1 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(revisions)) {
			if r != best {
				parts = append(parts, fmt.Sprintf("%s on %s", short(r), strings.Join(revisions[r], ",")))
			}
		}
		st.Source.Error = "agents on other revisions: " + strings.Join(parts, "; ")
	}
	if len(warnings) > 0 {
		st.Source.Error = strings.TrimPrefix(st.Source.Error+"; "+strings.Join(warnings, "; "), "; ")
	}
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		v := apps[app]
		r := reconcile.AppRollout{App: app, Target: v.target, Phase: rollout.PhaseProgressing, Clusters: v.clusters}
		if v.summary != nil {
			r.Phase, r.Wave, r.Waves, r.Reason = v.summary.Phase, v.summary.Wave, v.summary.Waves, v.summary.Reason
		}
		if r.Phase == rollout.PhaseRolledBack || r.Phase == rollout.PhaseHalted {
			for i := range r.Clusters {
				if r.Clusters[i].State == rollout.StatePending {
					r.Clusters[i].State = rollout.StateHeld // the rollout stopped before it
				}
			}
		}
		st.Rollouts = append(st.Rollouts, r)
	}
	return st
}

// phaseRank orders rollout phases by how much they need a person's eye.
var phaseRank = map[rollout.Phase]int{rollout.PhaseDone: 0, rollout.PhaseProgressing: 1, rollout.PhaseRollingBack: 2, rollout.PhaseHalted: 3, rollout.PhaseRolledBack: 4}

// worse reports whether a shows more trouble than b (nil is nothing known).
func worse(a, b *hub.Rollout) bool {
	if a == nil {
		return false
	}
	return b == nil || phaseRank[a.Phase] > phaseRank[b.Phase]
}

// hubAppStatus is an app on an agent's cluster as the status shows it.
func hubAppStatus(name string, as hub.AppState) AppStatus {
	a := AppStatus{Name: name, Revision: as.Revision, Drifted: as.Drifted, Error: as.Error, LastApplied: as.AppliedAt}
	switch {
	case heldTarget(as):
		a.Sync = SyncRolledBack
	case as.OnTarget:
		a.Sync = SyncSynced
	case as.Health == rollout.Failed && as.Error != "":
		a.Sync = SyncFailed
	default:
		a.Sync = SyncOutOfSync
	}
	switch as.Health {
	case rollout.Healthy:
		a.Health = HealthHealthy
	case rollout.Progressing:
		a.Health = HealthProgressing
	case rollout.Failed:
		a.Health = HealthDegraded
	default:
		a.Health = HealthUnknown
	}
	return a
}

// heldTarget reports whether the revision the agent rolls out failed there
// and is held (rolled back).
func heldTarget(as hub.AppState) bool {
	for _, h := range as.Holds {
		if h.Revision == as.Target {
			return true
		}
	}
	return false
}

// hubClusterState is a cluster's state in an app's rollout, from its agent's word.
func hubClusterState(as hub.AppState) rollout.State {
	switch {
	case heldTarget(as) && as.Digest != "":
		return rollout.StateRolledBack
	case heldTarget(as):
		return rollout.StateHeld
	case !as.OnTarget:
		return rollout.StatePending
	case as.Health == rollout.Healthy:
		return rollout.StateHealthy
	case as.Health == rollout.Failed:
		return rollout.StateFailed
	}
	return rollout.StateProgressing
}

// HubView reads the agents' states from the hub every poll interval for
// `fleetsync serve`: read-only, it holds no state of its own.
type HubView struct {
	hub    *hub.Hub
	poll   time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	status  Status
	read    bool
	lastErr error
}

// NewHubView returns a view of the hub, read every poll (default 5s).
func NewHubView(h *hub.Hub, poll time.Duration, logger *slog.Logger) *HubView {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HubView{hub: h, poll: poll, logger: logger, status: HubStatus(nil, nil, time.Now())}
}

// Run reads the hub until ctx ends.
func (v *HubView) Run(ctx context.Context) {
	t := time.NewTicker(v.poll)
	defer t.Stop()
	for {
		_ = v.Refresh(ctx) // logged and kept in the status
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh reads the hub once.
func (v *HubView) Refresh(ctx context.Context) error {
	agents, warnings, err := v.hub.Agents(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lastErr = err
	if err != nil {
		if ctx.Err() == nil {
			v.logger.Warn("hub: read the agents' states", "error", err)
		}
		v.status.Source.Error = "hub: " + err.Error()
		return err
	}
	v.status = HubStatus(agents, warnings, time.Now())
	v.read = true
	return nil
}

// Status is the last view of the hub.
func (v *HubView) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.status
	s.Clusters = slices.Clone(s.Clusters)
	s.Rollouts = slices.Clone(s.Rollouts)
	return s
}

// Ready reports whether the hub has been read.
func (v *HubView) Ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.read
}

// Metrics serves the view as Prometheus gauges, computed at each scrape:
// the same names as the daemon's where they mean the same.
func (v *HubView) Metrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(hubCollector{v}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	hubAgentsDesc     = prometheus.NewDesc("fleetsync_hub_agents", "Agents with a state on the hub.", nil, nil)
	hubUpDesc         = prometheus.NewDesc("fleetsync_cluster_up", "1 when the cluster's agent is publishing and its last heartbeat succeeded.", []string{"cluster"}, nil)
	hubNodesDesc      = prometheus.NewDesc("fleetsync_cluster_nodes_ready", "Ready nodes at the agent's last heartbeat.", []string{"cluster"}, nil)
	hubDriftDesc      = prometheus.NewDesc("fleetsync_drifted_objects", "Objects that differ from the desired state at the agent's last drift check.", []string{"cluster", "app"}, nil)
	hubSyncDesc       = prometheus.NewDesc("fleetsync_app_sync", "1 for the sync state of an app on a cluster.", []string{"cluster", "app", "sync"}, nil)
	hubRolloutDesc    = prometheus.NewDesc("fleetsync_rollout_phase", "1 for the phase an app's rollout is in.", []string{"app", "phase"}, nil)
	hubReadErrorsDesc = prometheus.NewDesc("fleetsync_hub_read_ok", "1 when the last read of the hub succeeded.", nil, nil)
)

type hubCollector struct{ v *HubView }

func (c hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hubAgentsDesc, hubUpDesc, hubNodesDesc, hubDriftDesc, hubSyncDesc, hubRolloutDesc, hubReadErrorsDesc} {
		ch <- d
	}
}

func (c hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.v.Status()
	c.v.mu.Lock()
	ok := c.v.lastErr == nil && c.v.read
	c.v.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(hubReadErrorsDesc, boolFloat(ok))
	gauge(hubAgentsDesc, float64(len(st.Clusters)))
	for _, cs := range st.Clusters {
		gauge(hubUpDesc, boolFloat(cs.Up), cs.Name)
		gauge(hubNodesDesc, float64(cs.NodesReady), cs.Name)
		for _, a := range cs.Apps {
			gauge(hubDriftDesc, float64(a.Drifted), cs.Name, a.Name)
			gauge(hubSyncDesc, 1, cs.Name, a.Name, a.Sync)
		}
	}
	for _, r := range st.Rollouts {
		gauge(hubRolloutDesc, 1, r.App, string(r.Phase))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
