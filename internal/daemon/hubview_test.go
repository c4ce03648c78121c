package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

func TestHubStatus(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	target := "b2"
	agents := map[string]hub.AgentState{
		"north": {Cluster: "north", Heartbeat: now.Add(-time.Second), HeartbeatSeconds: 10, Revision: target, Up: true, Version: "v1.37.2", Nodes: 3, NodesReady: 3,
			Apps: map[string]hub.AppState{"web": {Target: target, Revision: "a1", Digest: "d1", Health: rollout.Healthy,
				Holds: []rollout.Hold{{Revision: target}}, Error: "rolled back", Rollout: &hub.Rollout{Phase: rollout.PhaseRolledBack, Waves: 2}}}},
		"south": {Cluster: "south", Heartbeat: now.Add(-2 * time.Second), HeartbeatSeconds: 10, Revision: target, Up: true,
			Apps: map[string]hub.AppState{"web": {Target: target, Revision: "a1", Digest: "d1", Health: rollout.Healthy, Rollout: &hub.Rollout{Phase: rollout.PhaseProgressing}}}},
		"east": {Cluster: "east", Heartbeat: now.Add(-time.Minute), HeartbeatSeconds: 10, Revision: "a1", Up: true,
			Apps: map[string]hub.AppState{"web": {Target: "a1", OnTarget: true, Revision: "a1", Digest: "d1", Health: rollout.Healthy}}},
		"west": {Cluster: "west", Heartbeat: now.Add(-time.Second), HeartbeatSeconds: 10, Revision: target, Up: true,
			Apps: map[string]hub.AppState{"web": {Target: target, OnTarget: true, Revision: target, Digest: "d2", Health: rollout.Failed, Error: "not healthy"}}},
	}
	st := HubStatus(agents, []string{"ConfigMap/fleetsync-system/fleetsync-agent-x: not an agent state"}, now)
	if st.Mode != "hub" || len(st.Clusters) != 4 || st.Clusters[0].Name != "east" {
		t.Fatalf("clusters: %+v", st.Clusters)
	}
	if st.Source.Revision != target || !strings.Contains(st.Source.Error, "a1 on east") || !strings.Contains(st.Source.Error, "not an agent state") {
		t.Errorf("source: %+v", st.Source)
	}
	if c := st.Cluster("east"); c.Up || !strings.Contains(c.Error, "1m0s ago") {
		t.Errorf("a state a minute old with a 10s heartbeat is down: %+v", c)
	}
	if c := st.Cluster("north"); !c.Up || c.Version != "v1.37.2" || c.NodesReady != 3 {
		t.Errorf("north: %+v", c)
	}
	want := map[string]string{"north": SyncRolledBack, "south": SyncOutOfSync, "east": SyncSynced, "west": SyncSynced}
	for c, w := range want {
		if got := appOn(st, c, "web"); got.Sync != w {
			t.Errorf("web on %s: sync %s, want %s", c, got.Sync, w)
		}
	}
	if got := appOn(st, "west", "web").Health; got != HealthDegraded {
		t.Errorf("west's failed app is %s, want Degraded", got)
	}
	if len(st.Rollouts) != 1 || st.Rollouts[0].Phase != rollout.PhaseRolledBack || st.Rollouts[0].Waves != 2 {
		t.Fatalf("rollouts: %+v", st.Rollouts)
	}
	states := map[string]rollout.State{}
	for _, c := range st.Rollouts[0].Clusters {
		states[c.Cluster] = c.State
	}
	wantStates := map[string]rollout.State{"north": rollout.StateRolledBack, "south": rollout.StateHeld, "east": rollout.StateUnreachable, "west": rollout.StateFailed}
	for c, w := range wantStates {
		if states[c] != w {
			t.Errorf("web's rollout on %s: %s, want %s", c, states[c], w)
		}
	}
	if empty := HubStatus(nil, nil, now); empty.Clusters == nil || empty.Rollouts == nil || empty.Source.Error != "" {
		t.Errorf("no agents: %+v", empty)
	}
}

func appOn(st Status, cluster, app string) AppStatus {
	if c := st.Cluster(cluster); c != nil {
		for _, a := range c.Apps {
			if a.Name == app {
				return a
			}
		}
	}
	return AppStatus{}
}
