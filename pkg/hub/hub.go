// Package hub is how agents coordinate cross-cluster rollouts through a hub
// API server: each agent publishes the rollout state of its cluster's apps
// to one ConfigMap of its own (fleetsync-agent-<cluster> in
// fleetsync-system), and reads the others' to gate its waves with the same
// rollout engine as central mode. The hub holds no other state and runs no
// controller: it is any Kubernetes API server the agents can reach.
package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// Namespace holds the agents' objects on the hub.
const Namespace = "fleetsync-system"

// LabelAgent marks an agent's object; its value is the cluster.
const LabelAgent = "fleetsync.dev/agent"

// ObjectName is the name of a cluster's agent object.
func ObjectName(cluster string) string { return "fleetsync-agent-" + cluster }

// AgentState is what an agent publishes: its cluster's apps as its rollouts
// see them.
type AgentState struct {
	Cluster string `json:"cluster"`
	// Heartbeat is when the agent last published; a state older than a few
	// heartbeat intervals is stale (the agent or its link is down).
	Heartbeat time.Time `json:"heartbeat"`
	// HeartbeatSeconds is the agent's heartbeat interval: its state is stale
	// after three of them.
	HeartbeatSeconds float64 `json:"heartbeatSeconds,omitempty"`
	// Source is the fleet repo (credentials removed) and Revision the
	// revision in force at the agent.
	Source   string              `json:"source,omitempty"`
	Revision string              `json:"revision"`
	Apps     map[string]AppState `json:"apps"`
	// The cluster as the agent's last heartbeat saw it.
	Up         bool   `json:"up"`
	Version    string `json:"version,omitempty"`
	Nodes      int    `json:"nodes"`
	NodesReady int    `json:"nodesReady"`
	// ClusterError is the heartbeat's error while the cluster is down.
	ClusterError string `json:"clusterError,omitempty"`
}

// StaleAfter is how old the agent's state may get before its cluster counts
// as unreachable: three heartbeat intervals (dflt when it does not say).
func (s AgentState) StaleAfter(dflt time.Duration) time.Duration {
	if s.HeartbeatSeconds > 0 {
		return 3 * time.Duration(s.HeartbeatSeconds*float64(time.Second))
	}
	return 3 * dflt
}

// AppState is one app on the agent's cluster.
type AppState struct {
	// Target is the revision the agent rolls out; OnTarget says the cluster
	// has the target's output (its inventory holds the digest the agent
	// rendered for it).
	Target   string `json:"target"`
	OnTarget bool   `json:"onTarget"`
	// Revision and Digest are the inventory's (what is applied), AppliedAt
	// when that digest was first applied.
	Revision  string    `json:"revision,omitempty"`
	Digest    string    `json:"digest,omitempty"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// Health of what is applied, and since when it is healthy.
	Health       rollout.Health `json:"health"`
	HealthySince time.Time      `json:"healthySince,omitzero"`
	// Holds are the revisions that failed there and were rolled back.
	Holds []rollout.Hold `json:"holds,omitempty"`
	// Error is the last error of the app there (one line).
	Error string `json:"error,omitempty"`
	// Drifted counts the app's objects that differ there at the last drift
	// check.
	Drifted int `json:"drifted,omitempty"`
	// Rollout is the app's rollout as this agent's engine sees it (every
	// cluster's facts, from the hub): phase, wave and why.
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Rollout sums up an app's rollout (without its per-cluster list, which
// the hub has from each agent).
type Rollout struct {
	Phase  rollout.Phase `json:"phase"`
	Wave   int           `json:"wave"`
	Waves  int           `json:"waves"`
	Reason string        `json:"reason,omitempty"`
}

// Hub reads and writes agent objects on the hub API server.
type Hub struct {
	res dynamic.NamespaceableResourceInterface
}

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// New connects to the hub.
func New(cfg *rest.Config) (*Hub, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	return &Hub{res: dyn.Resource(configMapGVR)}, nil
}

// Publish writes the agent's object (server-side apply of the whole state,
// under the fleetsync-agent field manager). The agent's RBAC on the hub
// allows exactly this object (resourceNames).
func (h *Hub) Publish(ctx context.Context, st AgentState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	name := ObjectName(st.Cluster)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": Namespace,
			"labels": map[string]any{LabelAgent: st.Cluster, "app.kubernetes.io/managed-by": "fleetsync"}},
		"data": map[string]any{"state": string(b)},
	}}
	if _, err := h.res.Namespace(Namespace).Apply(ctx, name, obj, metav1.ApplyOptions{FieldManager: "fleetsync-agent", Force: true}); err != nil {
		return fmt.Errorf("hub: publish ConfigMap/%s/%s: %w", Namespace, name, err)
	}
	return nil
}

// Agents reads every agent's state (one list), by cluster. An object whose
// state cannot be decoded is left out and named in the warnings (its
// cluster then counts as unreachable).
func (h *Hub) Agents(ctx context.Context) (map[string]AgentState, []string, error) {
	list, err := h.res.Namespace(Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelAgent})
	if apierrors.IsNotFound(err) {
		return map[string]AgentState{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hub: list agents in %s: %w", Namespace, err)
	}
	out := map[string]AgentState{}
	var warnings []string
	for _, cm := range list.Items {
		cluster := cm.GetLabels()[LabelAgent]
		if cluster == "" || cm.GetName() != ObjectName(cluster) {
			continue
		}
		data, _, _ := unstructured.NestedString(cm.Object, "data", "state")
		var st AgentState
		if err := json.Unmarshal([]byte(data), &st); err != nil || st.Cluster != cluster {
			warnings = append(warnings, fmt.Sprintf("ConfigMap/%s/%s: not an agent state", Namespace, cm.GetName()))
			continue
		}
		out[cluster] = st
	}
	sort.Strings(warnings)
	return out, warnings, nil
}
