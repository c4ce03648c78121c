package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// hubLink is an agent's side of the hub: it publishes its cluster's rollout
// state (after every rollout step, and at least every heartbeat interval)
// and keeps the other agents' states, read every poll interval, for the
// rollout engine's facts about their clusters.
type hubLink struct {
	d       *Daemon
	hub     *hub.Hub
	cluster string
	poll    time.Duration
	poke    chan struct{}

	mu       sync.Mutex
	agents   map[string]hub.AgentState
	readErr  error
	last     string    // the last published state, without its heartbeat
	lastBeat time.Time // when it was published
}

func newHubLink(d *Daemon, h *hub.Hub, cluster string, poll time.Duration) *hubLink {
	return &hubLink{d: d, hub: h, cluster: cluster, poll: poll, poke: make(chan struct{}, 1), agents: map[string]hub.AgentState{}}
}

// start runs the publisher and the reader until ctx ends.
func (l *hubLink) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		beat := time.NewTicker(l.d.opts.HeartbeatInterval)
		defer beat.Stop()
		for {
			l.publish(ctx)
			select {
			case <-ctx.Done():
				return
			case <-l.poke:
			case <-beat.C:
			}
		}
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(l.poll)
		defer t.Stop()
		for {
			agents, warnings, err := l.hub.Agents(ctx)
			l.mu.Lock()
			if err == nil {
				l.agents = agents
			}
			l.readErr = err
			l.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				l.d.opts.Logger.Warn("hub: read the agents' states", "error", err)
			}
			for _, w := range warnings {
				l.d.opts.Logger.Warn("hub: "+w, "cluster", l.cluster)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// changed asks for a publication (a rollout stepped).
func (l *hubLink) changed() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// publish writes the agent's state when it changed, or when the last
// heartbeat is half an interval old.
func (l *hubLink) publish(ctx context.Context) {
	d := l.d
	d.mu.Lock()
	desired := d.current
	errs, drifted := map[string]string{}, map[string]int{}
	var cluster ClusterStatus
	if cs := d.status.Cluster(l.cluster); cs != nil {
		cluster = *cs
		for _, a := range cs.Apps {
			errs[a.Name], drifted[a.Name] = a.Error, a.Drifted
		}
	}
	rollouts := map[string]*hub.Rollout{}
	for _, r := range d.status.Rollouts {
		rollouts[r.App] = &hub.Rollout{Phase: r.Phase, Wave: r.Wave, Waves: r.Waves, Reason: r.Reason}
	}
	source := d.status.Source.URL
	d.mu.Unlock()
	if desired == nil {
		return
	}
	m, err := d.opts.Reconciler.Pool().Get(ctx, l.cluster)
	if err != nil {
		return // the heartbeat shows the cluster down; the state goes stale
	}
	obs, err := m.ObserveAll(ctx)
	if err != nil {
		d.opts.Logger.Warn("hub: observe the cluster", "cluster", l.cluster, "error", err)
		return
	}
	st := hub.AgentState{Cluster: l.cluster, Revision: desired.Repo.Revision, Apps: map[string]hub.AppState{},
		HeartbeatSeconds: d.opts.HeartbeatInterval.Seconds(), Source: source,
		Up: cluster.Up, Version: cluster.Version, Nodes: cluster.Nodes, NodesReady: cluster.NodesReady, ClusterError: cluster.Error}
	for _, cr := range desired.Rendered.Clusters {
		if cr.Cluster != l.cluster {
			continue
		}
		for _, ar := range cr.Apps {
			as := hub.AppState{Target: desired.Repo.Revision, Health: rollout.Unknown, Error: errs[ar.App], Drifted: drifted[ar.App], Rollout: rollouts[ar.App]}
			if o := obs[ar.App]; o != nil && o.Inventory != nil {
				inv := o.Inventory
				as.Revision, as.Digest, as.AppliedAt = inv.Revision, inv.Digest, inv.AppliedAt
				as.OnTarget = ar.Err == nil && inv.Digest == apply.Digest(ar.Objects)
				switch {
				case o.Failed:
					as.Health = rollout.Failed
				case o.Healthy:
					as.Health = rollout.Healthy
					for _, h := range inv.History {
						if h.Digest == inv.Digest {
							as.HealthySince = h.Time
							break
						}
					}
				default:
					as.Health = rollout.Progressing
				}
				for _, h := range inv.Holds {
					as.Holds = append(as.Holds, rollout.Hold{Revision: h.Revision, Digest: h.Digest, Reason: h.Reason, Time: h.Time})
				}
			}
			st.Apps[ar.App] = as
		}
	}
	b, _ := json.Marshal(st)
	l.mu.Lock()
	same := string(b) == l.last && time.Since(l.lastBeat) < l.d.opts.HeartbeatInterval/2
	l.mu.Unlock()
	if same {
		return
	}
	st.Heartbeat = time.Now().UTC()
	if err := l.hub.Publish(ctx, st); err != nil {
		if ctx.Err() == nil {
			d.opts.Logger.Error("hub: publish", "cluster", l.cluster, "error", err)
		}
		return
	}
	l.mu.Lock()
	l.last, l.lastBeat = string(b), time.Now()
	l.mu.Unlock()
}

// staleAfter is how old an agent's heartbeat may be before its cluster
// counts as unreachable.
func (l *hubLink) staleAfter(st hub.AgentState) time.Duration {
	return st.StaleAfter(l.d.opts.HeartbeatInterval)
}

// remote is reconcile's view of another agent's cluster.
func (l *hubLink) remote(app, cluster string) reconcile.RemoteState {
	l.mu.Lock()
	st, ok := l.agents[cluster]
	readErr := l.readErr
	l.mu.Unlock()
	switch {
	case !ok && readErr != nil:
		return reconcile.RemoteState{Problem: "hub not readable: " + readErr.Error()}
	case !ok:
		return reconcile.RemoteState{Problem: "no state from its agent on the hub"}
	case time.Since(st.Heartbeat) > l.staleAfter(st):
		return reconcile.RemoteState{Problem: fmt.Sprintf("its agent last published to the hub %s ago", time.Since(st.Heartbeat).Round(time.Second))}
	}
	as, ok := st.Apps[app]
	if !ok {
		return reconcile.RemoteState{Health: rollout.Unknown}
	}
	return reconcile.RemoteState{Target: as.Target, OnTarget: as.OnTarget, Revision: as.Revision, Digest: as.Digest, AppliedAt: as.AppliedAt,
		Health: as.Health, HealthySince: as.HealthySince, Holds: as.Holds}
}
