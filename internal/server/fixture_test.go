package server

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

const (
	revNew = "4f1c2a9e7b1d3c5e8f90a1b2c3d4e5f60718293a"
	revOld = "91be03c4aa70d2e1f3b4c5d6e7f8091a2b3c4d5e"
	revBad = "c0ffee12ab34cd56ef7890ab12cd34ef567890ab"
)

// rollbackReason is the reason of the fixture's failed canary, asserted in
// the page.
const rollbackReason = "not healthy 5m0s after the apply (healthTimeout): Deployment/web/web: 0/3 replicas available"

// threeClusters is a fleet of north, south and east with four apps: platform
// healthy everywhere, web rolled back on its canary north (held on south and
// east), mes drifted on south and out of sync on east (down), and metrics
// progressing on north and south only. The newest fetched commit is invalid.
func threeClusters(now time.Time) daemon.Status {
	seen := now.Add(-12 * time.Second)
	applied := now.Add(-40 * time.Minute)
	return daemon.Status{
		Mode: "central",
		Source: daemon.SourceStatus{
			URL:       "https://git.example.com/plant/fleet.git",
			Branch:    "main",
			Revision:  revNew,
			Fetched:   revBad,
			LastFetch: now.Add(-8 * time.Second),
			Error:     "apps/mes/app.yaml:12: spec.source.kustomize.path: \"../outside\" leaves the repo",
		},
		LastReconcile:    now.Add(-5 * time.Second),
		ReconcileSeconds: 4.2,
		InFlight:         []string{"mes", "metrics"},
		Clusters: []daemon.ClusterStatus{
			{
				Name: "east", Up: false, Version: "v1.37.2", NodesReady: 0, Nodes: 3,
				LastSeen: now.Add(-6 * time.Minute),
				Error:    "Get \"https://east.example:6443/version\": dial tcp 10.0.3.1:6443: connect: connection refused",
				Apps: []daemon.AppStatus{
					{Name: "mes", Revision: revOld, Sync: daemon.SyncOutOfSync, Health: daemon.HealthUnknown, LastApplied: applied},
					{Name: "platform", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthUnknown, LastApplied: applied},
					{Name: "web", Revision: revOld, Sync: daemon.SyncOutOfSync, Health: daemon.HealthUnknown, LastApplied: applied},
				},
			},
			{
				Name: "north", Up: true, Version: "v1.37.2", NodesReady: 3, Nodes: 3, LastSeen: seen,
				Apps: []daemon.AppStatus{
					{Name: "mes", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, LastApplied: applied},
					{Name: "metrics", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, LastApplied: applied},
					{Name: "platform", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, LastApplied: applied},
					{Name: "web", Revision: revOld, Sync: daemon.SyncRolledBack, Health: daemon.HealthHealthy, Error: rollbackReason, LastApplied: applied},
				},
			},
			{
				Name: "south", Up: true, Version: "v1.36.4", NodesReady: 4, Nodes: 5, LastSeen: seen.Add(-3 * time.Second),
				Apps: []daemon.AppStatus{
					{Name: "mes", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, Drifted: 2, LastApplied: applied},
					{Name: "metrics", Revision: revOld, Sync: daemon.SyncOutOfSync, Health: daemon.HealthProgressing, LastApplied: applied},
					{Name: "platform", Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, LastApplied: applied},
					{Name: "web", Revision: revOld, Sync: daemon.SyncOutOfSync, Health: daemon.HealthHealthy, LastApplied: applied},
				},
			},
		},
		Rollouts: []reconcile.AppRollout{
			{App: "mes", Target: revNew, Phase: rollout.PhaseProgressing, Wave: 1, Waves: 2,
				Reason: "wave 2: waiting for east (unreachable)",
				Clusters: []rollout.ClusterStatus{
					{Cluster: "north", Wave: 0, State: rollout.StateHealthy},
					{Cluster: "south", Wave: 1, State: rollout.StateHealthy},
					{Cluster: "east", Wave: 1, State: rollout.StateUnreachable, Reason: "connection refused"},
				}},
			{App: "metrics", Target: revNew, Phase: rollout.PhaseProgressing, Wave: 1, Waves: 2,
				Reason: "wave 2: waiting for south to be healthy",
				Clusters: []rollout.ClusterStatus{
					{Cluster: "north", Wave: 0, State: rollout.StateHealthy},
					{Cluster: "south", Wave: 1, State: rollout.StateProgressing},
				}},
			{App: "platform", Target: revNew, Phase: rollout.PhaseDone, Wave: 0, Waves: 1,
				Clusters: []rollout.ClusterStatus{
					{Cluster: "east", Wave: 0, State: rollout.StateHealthy},
					{Cluster: "north", Wave: 0, State: rollout.StateHealthy},
					{Cluster: "south", Wave: 0, State: rollout.StateHealthy},
				}},
			{App: "web", Target: revNew, Phase: rollout.PhaseRolledBack, Wave: 0, Waves: 2,
				Reason: "revision 4f1c2a9e7b1d failed and is held until a commit changes the app: wave 1 failed (1 failed, 0 tolerated): north: " + rollbackReason,
				Clusters: []rollout.ClusterStatus{
					{Cluster: "north", Wave: 0, State: rollout.StateRolledBack, Reason: rollbackReason},
					{Cluster: "east", Wave: 1, State: rollout.StateHeld},
					{Cluster: "south", Wave: 1, State: rollout.StateHeld},
				}},
		},
	}
}

// largeFleet is 50 clusters by 30 apps in three waves, with a few failures,
// drifts, a down cluster and a halted rollout.
func largeFleet(now time.Time) daemon.Status {
	regions := []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	var clusters []daemon.ClusterStatus
	for i := range 50 {
		clusters = append(clusters, daemon.ClusterStatus{
			Name: fmt.Sprintf("%s-%02d", regions[i%len(regions)], i/len(regions)+1),
			Up:   true, Version: "v1.37.2", NodesReady: 6, Nodes: 6,
			LastSeen: now.Add(-time.Duration(5+i%25) * time.Second),
		})
	}
	clusters[17].Up, clusters[17].NodesReady = false, 0
	clusters[17].Error = "heartbeat: context deadline exceeded"
	clusters[17].LastSeen = now.Add(-9 * time.Minute)
	clusters[31].NodesReady = 4

	var rolls []reconcile.AppRollout
	for a := range 30 {
		app := fmt.Sprintf("service-%02d", a+1)
		roll := reconcile.AppRollout{App: app, Target: revNew, Phase: rollout.PhaseDone, Wave: 2, Waves: 3}
		for i := range clusters {
			if (a+i)%7 == 0 && a%3 == 0 {
				continue // not targeted
			}
			st := daemon.AppStatus{Name: app, Revision: revNew, Sync: daemon.SyncSynced, Health: daemon.HealthHealthy, LastApplied: now.Add(-time.Hour)}
			rs := rollout.ClusterStatus{Cluster: clusters[i].Name, Wave: min(i/10, 2), State: rollout.StateHealthy}
			switch {
			case !clusters[i].Up:
				st.Sync, st.Health, st.Revision = daemon.SyncOutOfSync, daemon.HealthUnknown, revOld
				rs.State, rs.Reason = rollout.StateUnreachable, "heartbeat: context deadline exceeded"
			case a == 4 && i == 12:
				st.Sync, st.Health, st.Revision = daemon.SyncFailed, daemon.HealthDegraded, revNew
				st.Error = "Deployment/service-05/api: apply: admission webhook denied the request: image not signed"
				rs.State, rs.Reason = rollout.StateFailed, st.Error
				roll.Phase, roll.Wave, roll.Reason = rollout.PhaseHalted, 1, "wave 2 failed (1 failed, 0 tolerated): "+clusters[i].Name+": "+st.Error
			case a == 4 && i > 12:
				st.Sync, st.Revision = daemon.SyncOutOfSync, revOld
				rs.State = rollout.StateHeld
			case a == 9 && i < 10:
				st.Sync, st.Revision = daemon.SyncRolledBack, revOld
				st.Error = "not healthy 5m0s after the apply (healthTimeout)"
				rs.State, rs.Reason = rollout.StateRolledBack, st.Error
				roll.Phase, roll.Wave, roll.Reason = rollout.PhaseRolledBack, 0, "revision 4f1c2a9e7b1d failed and is held: "+st.Error
			case a == 9:
				st.Sync, st.Revision = daemon.SyncOutOfSync, revOld
				rs.State = rollout.StateHeld
			case a == 20 && i >= 20:
				st.Sync, st.Health = daemon.SyncOutOfSync, daemon.HealthProgressing
				rs.State = rollout.StatePending
				if i < 25 {
					rs.State = rollout.StateProgressing
				}
				roll.Phase, roll.Wave = rollout.PhaseProgressing, 2
			}
			if (a*7+i*3)%41 == 0 {
				st.Drifted = 1 + (a+i)%3
			}
			clusters[i].Apps = append(clusters[i].Apps, st)
			roll.Clusters = append(roll.Clusters, rs)
		}
		rolls = append(rolls, roll)
	}
	slices.SortFunc(clusters, func(a, b daemon.ClusterStatus) int { return strings.Compare(a.Name, b.Name) })
	return daemon.Status{
		Mode: "central",
		Source: daemon.SourceStatus{
			URL: "https://git.example.com/plant/fleet.git", Branch: "main",
			Revision: revNew, Fetched: revNew, LastFetch: now.Add(-20 * time.Second),
		},
		LastReconcile: now.Add(-3 * time.Second), ReconcileSeconds: 38.5,
		Clusters: clusters, Rollouts: rolls, InFlight: []string{},
	}
}
