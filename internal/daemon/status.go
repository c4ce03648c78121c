package daemon

import (
	"time"

	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// Status is what the daemon knows, as GET /api/v1/status serves it (see
// docs/daemon.md). It never holds a secret value.
type Status struct {
	// Mode is "central" or "agent".
	Mode string `json:"mode"`
	// Source is the fleet repo and the revision in force.
	Source SourceStatus `json:"source"`
	// Clusters are sorted by name.
	Clusters []ClusterStatus `json:"clusters"`
	// Rollouts are per app, sorted by app: the last outcome of each, or its
	// progress while it is in flight.
	Rollouts []reconcile.AppRollout `json:"rollouts"`
	// InFlight are the apps whose rollout is running (sorted).
	InFlight []string `json:"inFlight"`
	// LastReconcile is when the last reconcile cycle ended (its rollouts may
	// still be in flight), with its duration.
	LastReconcile time.Time `json:"lastReconcile,omitzero"`
	// ReconcileSeconds is how long the last reconcile cycle took.
	ReconcileSeconds float64 `json:"reconcileSeconds"`
	// Shard is set for sharded central replicas: Clusters lists only the
	// clusters this replica holds.
	Shard *ShardStatus `json:"shard,omitempty"`
}

// ShardStatus is a sharded replica's part of the fleet.
type ShardStatus struct {
	// Identity is this replica's; Replicas are the live ones (sorted).
	Identity string   `json:"identity"`
	Replicas []string `json:"replicas"`
	// Clusters are the clusters whose Lease this replica holds (sorted).
	Clusters []string `json:"clusters"`
}

// SourceStatus is the fleet repo's side.
type SourceStatus struct {
	// URL is the repo, credentials removed.
	URL string `json:"url"`
	// Branch followed ("" for the remote's default branch).
	Branch string `json:"branch,omitempty"`
	// Revision is the commit in force: the last one that loaded and validated.
	Revision string `json:"revision,omitempty"`
	// Fetched is the newest commit fetched; it differs from Revision while a
	// newer commit is invalid (Error says why).
	Fetched string `json:"fetched,omitempty"`
	// LastFetch is when the last fetch ended.
	LastFetch time.Time `json:"lastFetch,omitzero"`
	// Error is the last fetch, load or validation error, one line per problem.
	Error string `json:"error,omitempty"`
}

// ClusterStatus is one cluster: its heartbeat and its apps.
type ClusterStatus struct {
	Name string `json:"name"`
	// Up is the last heartbeat's result.
	Up bool `json:"up"`
	// Version is the Kubernetes version reported by the cluster.
	Version string `json:"version,omitempty"`
	// NodesReady and Nodes count the cluster's nodes.
	NodesReady int `json:"nodesReady"`
	Nodes      int `json:"nodes"`
	// LastSeen is the last successful heartbeat.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Error is the last heartbeat's error while down.
	Error string `json:"error,omitempty"`
	// Removal is why the last removal of apps that left the repo failed or
	// was refused on this cluster (mass removal), while it lasts.
	Removal string `json:"removal,omitempty"`
	// Apps targeting the cluster, sorted by name.
	Apps []AppStatus `json:"apps"`
}

// Sync states of an app on a cluster.
const (
	SyncSynced     = "Synced"     // the revision in force is applied
	SyncOutOfSync  = "OutOfSync"  // not applied yet (e.g. a later wave)
	SyncFailed     = "Failed"     // the last apply failed
	SyncRolledBack = "RolledBack" // the revision in force failed here and was rolled back
)

// Health states of an app on a cluster.
const (
	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
	HealthUnknown     = "Unknown"
)

// AppStatus is one app on one cluster.
type AppStatus struct {
	Name string `json:"name"`
	// Revision is the commit applied on the cluster (from its inventory).
	Revision string `json:"revision,omitempty"`
	// Sync is Synced, OutOfSync, Failed or RolledBack.
	Sync string `json:"sync"`
	// Health is Healthy, Progressing, Degraded or Unknown.
	Health string `json:"health"`
	// Drifted counts the objects that differ from the desired state.
	Drifted int `json:"drifted"`
	// Error is the last error of the app on the cluster, one line.
	Error string `json:"error,omitempty"`
	// LastApplied is when the applied revision was applied.
	LastApplied time.Time `json:"lastApplied,omitzero"`
}

// Cluster returns the named cluster's status, or nil.
func (s *Status) Cluster(name string) *ClusterStatus {
	for i := range s.Clusters {
		if s.Clusters[i].Name == name {
			return &s.Clusters[i]
		}
	}
	return nil
}
