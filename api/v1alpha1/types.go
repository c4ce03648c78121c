package v1alpha1

import (
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupVersion is the apiVersion of every fleet repo object.
const GroupVersion = "fleetsync.dev/v1alpha1"

// Kinds of the fleet repo.
const (
	KindFleet       = "Fleet"
	KindCluster     = "Cluster"
	KindApp         = "App"
	KindScalePolicy = "ScalePolicy"
)

// Labels and annotations fleetsync puts on, or reads from, rendered objects.
const (
	// LabelApp names the app an object belongs to.
	LabelApp = "fleetsync.dev/app"
	// AnnotationRevision holds the fleet repo commit an object was rendered from.
	AnnotationRevision = "fleetsync.dev/revision"
	// AnnotationSSA is the per-object apply policy: "IfNotPresent" creates but never
	// updates, "Ignore" skips the object.
	AnnotationSSA = "fleetsync.dev/ssa"
	// AnnotationPrune set to "disabled" keeps an object when it leaves the desired set.
	AnnotationPrune = "fleetsync.dev/prune"
	// AnnotationRecreate set to "enabled" allows delete-and-recreate on immutable field changes.
	AnnotationRecreate = "fleetsync.dev/recreate"
	// AnnotationSubstitute set to "disabled" exempts an object from a
	// Kustomize app's ${cluster.*} substitution.
	AnnotationSubstitute = "fleetsync.dev/substitute"
)

// TypeMeta is the apiVersion and kind of a fleet repo object.
type TypeMeta struct {
	// APIVersion must be fleetsync.dev/v1alpha1.
	APIVersion string `json:"apiVersion"`
	// Kind is one of Fleet, Cluster, App, ScalePolicy.
	Kind string `json:"kind"`
}

// ObjectMeta names a fleet repo object.
type ObjectMeta struct {
	// Name is a DNS-1123 label, unique per kind.
	Name string `json:"name"`
	// Labels are matched by clusterSelectors (meaningful on Clusters).
	Labels map[string]string `json:"labels,omitempty"`
}

// Duration is a Go duration written as a string such as "5m" or "90s".
type Duration struct {
	time.Duration `json:"-"`
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string such as "5m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a Go duration such as \"90s\" or \"5m\"", s)
	}
	d.Duration = v
	return nil
}

// IntOrPercent is a number of clusters, written as a count (3) or a
// percentage of a wave ("25%").
type IntOrPercent struct {
	// Value is the text form: "3" or "25%".
	Value string `json:"-"`
}

// String is the text form ("" when unset).
func (v IntOrPercent) String() string { return v.Value }

// MarshalJSON writes a count as a number and a percentage as a string.
func (v IntOrPercent) MarshalJSON() ([]byte, error) {
	var n int
	if _, err := fmt.Sscanf(v.Value, "%d", &n); err == nil && fmt.Sprint(n) == v.Value {
		return json.Marshal(n)
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrPercent) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		v.Value = n.String()
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a count such as 2 or a percentage such as \"25%%\"")
	}
	v.Value = s
	return nil
}

// Values is a free-form tree of Helm values or cluster values.
type Values map[string]any

// ClusterTargets selects clusters by their labels.
type ClusterTargets struct {
	// ClusterSelector is a standard Kubernetes label selector over Cluster labels.
	// An empty selector ({}) selects every cluster; an absent one selects none.
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
}

// Fleet holds defaults for the whole fleet (fleet.yaml, optional).
type Fleet struct {
	TypeMeta `json:",inline"`
	// Metadata names the fleet.
	Metadata ObjectMeta `json:"metadata"`
	// Spec holds the defaults.
	Spec FleetSpec `json:"spec,omitempty"`
}

// FleetSpec holds fleet-wide defaults.
type FleetSpec struct {
	// KubernetesVersion is the version Helm renders with (.Capabilities) for clusters
	// whose version is not known, e.g. "v1.37.2".
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Values are merged under every cluster's spec.values (cluster values win).
	Values Values `json:"values,omitempty"`
	// HealthTimeout is the default time an app has to become healthy on a cluster.
	HealthTimeout *Duration `json:"healthTimeout,omitempty"`
}

// Cluster describes one member cluster (clusters/<name>.yaml).
type Cluster struct {
	TypeMeta `json:",inline"`
	// Metadata names the cluster; its labels are what clusterSelectors match.
	Metadata ObjectMeta `json:"metadata"`
	// Spec describes how the cluster differs from the others.
	Spec ClusterSpec `json:"spec,omitempty"`
}

// ClusterSpec describes a cluster's differences.
type ClusterSpec struct {
	// Storage maps logical storage classes to this cluster's classes.
	Storage *StorageSpec `json:"storage,omitempty"`
	// Registry is the image mirroring target for this cluster.
	Registry *RegistrySpec `json:"registry,omitempty"`
	// Values are free-form facts about the cluster; apps reference them
	// explicitly as ${cluster.values.<path>} (nothing is injected into charts).
	Values Values `json:"values,omitempty"`
	// KubernetesVersion is the cluster's version when known ahead of time, e.g.
	// "v1.37.2" (or "1.37.2"); Helm renders .Capabilities with it. Live
	// discovery wins when the cluster is connected.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// APIVersions are extra API versions ("group/version", or
	// "group/version/Kind") for Helm's .Capabilities.APIVersions when rendering
	// offline (render, plan); connected commands discover them from the cluster.
	APIVersions []string `json:"apiVersions,omitempty"`
	// NodePools are the cluster's scalable node pools, named by ScalePolicy.nodePool.
	NodePools []NodePool `json:"nodePools,omitempty"`
}

// StorageSpec maps logical storage classes to the cluster's real ones.
type StorageSpec struct {
	// Default is the class given to PVCs and volumeClaimTemplates that name no class.
	Default string `json:"default,omitempty"`
	// Classes maps a logical class name (as written in manifests) to this cluster's class.
	Classes map[string]string `json:"classes,omitempty"`
}

// RegistrySpec is a cluster's image mirror.
type RegistrySpec struct {
	// Mirror is the registry and repository prefix images are copied to, e.g.
	// "registry.north.example:5000/fleet".
	Mirror string `json:"mirror"`
	// Insecure allows plain HTTP or an unverified certificate for this registry.
	Insecure bool `json:"insecure,omitempty"`
}

// NodePool is a scalable group of nodes, backed by a Cluster API MachineDeployment.
type NodePool struct {
	// Name is how ScalePolicies refer to the pool.
	Name string `json:"name"`
	// MachineDeployment is the Cluster API object that backs the pool.
	MachineDeployment ObjectRef `json:"machineDeployment"`
}

// ObjectRef names a namespaced object.
type ObjectRef struct {
	// Namespace of the object.
	Namespace string `json:"namespace"`
	// Name of the object.
	Name string `json:"name"`
}

// App is one application deployed to the clusters it targets (apps/<app>/app.yaml).
type App struct {
	TypeMeta `json:",inline"`
	// Metadata names the app; the name must equal the app's folder name.
	Metadata ObjectMeta `json:"metadata"`
	// Spec says what to render and where.
	Spec AppSpec `json:"spec"`
}

// DriftMode says what to do when a cluster drifts from the desired state.
type DriftMode string

// Drift modes.
const (
	DriftReport  DriftMode = "report"
	DriftCorrect DriftMode = "correct"
)

// AppSpec describes an app.
type AppSpec struct {
	// Namespace receives namespaced objects that name no namespace; it is created if missing.
	Namespace string `json:"namespace,omitempty"`
	// Source says how to render the app: exactly one of kustomize or helm.
	Source AppSource `json:"source"`
	// Targets selects the clusters the app runs on.
	Targets ClusterTargets `json:"targets"`
	// Customizations are applied in order, each to the target clusters it selects.
	Customizations []Customization `json:"customizations,omitempty"`
	// DependsOn names apps that must be healthy on the same cluster first.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Rollout controls cross-cluster progressive delivery.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Prune deletes objects that left the desired set (inventory-based).
	Prune bool `json:"prune,omitempty"`
	// Drift is "report" (default) or "correct".
	Drift DriftMode `json:"drift,omitempty"`
	// ImageMirror mirrors and rewrites images where the cluster has spec.registry.
	ImageMirror bool `json:"imageMirror,omitempty"`
}

// AppSource is exactly one of Kustomize or Helm.
type AppSource struct {
	// Kustomize builds a kustomization directory.
	Kustomize *KustomizeSource `json:"kustomize,omitempty"`
	// Helm renders a chart.
	Helm *HelmSource `json:"helm,omitempty"`
}

// KustomizeSource is a kustomization directory.
type KustomizeSource struct {
	// Path is relative to the app's folder and must stay inside the repo. A
	// folder without a kustomization file is a folder of plain manifests:
	// every .yaml, .yml and .json file in it is a resource.
	Path string `json:"path"`
	// Recurse includes the manifests of subfolders too, for a folder of plain
	// manifests (a folder with a kustomization file is built as it says).
	Recurse bool `json:"recurse,omitempty"`
	// Substitute replaces ${cluster.*} references in the built objects' string
	// values with the target cluster's facts (Flux-style post-build
	// substitution; opt-in). Objects annotated fleetsync.dev/substitute:
	// disabled are left alone.
	Substitute bool `json:"substitute,omitempty"`
}

// HelmSource is a Helm chart and its values.
type HelmSource struct {
	// Chart is a path relative to the app's folder (./chart), an oci:// reference,
	// a chart name in the https repository given by Repo, or the https URL of
	// a chart archive (.tgz), which needs SHA256.
	Chart string `json:"chart"`
	// SHA256 is the hex SHA-256 of the archive a chart URL names (required there).
	SHA256 string `json:"sha256,omitempty"`
	// Repo is an https chart repository URL, for charts given by name.
	Repo string `json:"repo,omitempty"`
	// Version of a remote chart (required for remote charts).
	Version string `json:"version,omitempty"`
	// ReleaseName defaults to the app name.
	ReleaseName string `json:"releaseName,omitempty"`
	// Values override the chart defaults and valuesFiles.
	Values Values `json:"values,omitempty"`
	// ValuesFiles are relative to the app's folder, applied in order.
	ValuesFiles []string `json:"valuesFiles,omitempty"`
}

// Customization changes the app on the target clusters it selects.
type Customization struct {
	// ClusterSelector picks the clusters this customization applies to.
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// Kustomize, on a Kustomize app, builds this path instead of
	// source.kustomize.path; on a Helm app it is an overlay built over the
	// rendered chart (fleetsync adds the chart's output as its first resource).
	Kustomize *KustomizeSource `json:"kustomize,omitempty"`
	// ValuesFiles are Helm values files (relative to the app's folder) merged
	// over the source values, before this customization's values.
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// Values are Helm values deep-merged over the source values.
	Values Values `json:"values,omitempty"`
	// Patches are applied after rendering, in Kustomize patch syntax.
	Patches []Patch `json:"patches,omitempty"`
}

// Patch is a Kustomize-style patch: a strategic-merge patch or a JSON 6902 patch.
type Patch struct {
	// Target selects the objects to patch.
	Target *PatchTarget `json:"target,omitempty"`
	// Patch is the patch text (strategic merge YAML, or a JSON 6902 operation list).
	Patch string `json:"patch"`
}

// PatchTarget selects objects to patch, as in Kustomize.
type PatchTarget struct {
	// Group of the objects.
	Group string `json:"group,omitempty"`
	// Version of the objects.
	Version string `json:"version,omitempty"`
	// Kind of the objects.
	Kind string `json:"kind,omitempty"`
	// Name of the objects (a regular expression, as in Kustomize).
	Name string `json:"name,omitempty"`
	// Namespace of the objects.
	Namespace string `json:"namespace,omitempty"`
	// LabelSelector over the objects' labels.
	LabelSelector string `json:"labelSelector,omitempty"`
	// AnnotationSelector over the objects' annotations.
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// Rollout is the cross-cluster progressive delivery of an app.
type Rollout struct {
	// Waves start one after the other; a wave starts only when the previous one
	// passed: each of its clusters healthy on the new revision for the wave's
	// soakTime, but for maxFailures. A cluster belongs to the first wave that
	// selects it. Without waves, all target clusters form one wave.
	Waves []Wave `json:"waves,omitempty"`
	// HealthTimeout is how long each cluster has, from the apply, to become
	// healthy (default 5m); a timeout is a failure.
	HealthTimeout *Duration `json:"healthTimeout,omitempty"`
	// AutoRollback: when a wave fails, every cluster that received the failing
	// revision gets its last healthy revision re-applied, and the failing
	// revision is held (not retried) until a commit changes the app.
	AutoRollback bool `json:"autoRollback,omitempty"`
}

// Wave is one step of a rollout.
type Wave struct {
	// ClusterSelector picks the wave's clusters among the app's targets.
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// MaxConcurrent is how many clusters of the wave are updated at once: a
	// count (2) or a percentage of the wave ("25%", rounded down, at least 1).
	// Default: the whole wave.
	MaxConcurrent *IntOrPercent `json:"maxConcurrent,omitempty"`
	// MaxFailures is how many clusters of the wave may be unhealthy (or
	// unreachable) before the rollout halts; default 0, so a canary wave
	// tolerates none.
	MaxFailures *int `json:"maxFailures,omitempty"`
	// SoakTime is how long every cluster of the wave stays healthy on the new
	// revision before the next wave starts; default 0.
	SoakTime *Duration `json:"soakTime,omitempty"`
}

// ScalePolicy renders autoscaling for workloads and node pools (policies/*.yaml).
type ScalePolicy struct {
	TypeMeta `json:",inline"`
	// Metadata names the policy.
	Metadata ObjectMeta `json:"metadata"`
	// Spec says when and what to scale.
	Spec ScalePolicySpec `json:"spec"`
}

// ScalePolicySpec says when and what to scale.
type ScalePolicySpec struct {
	// Targets selects the clusters the policy applies to.
	Targets ClusterTargets `json:"targets"`
	// Trigger is the metric condition that scales up.
	Trigger Trigger `json:"trigger"`
	// Workloads are scaled by HorizontalPodAutoscalers.
	Workloads []ScaleWorkload `json:"workloads,omitempty"`
	// NodePool is scaled by the Cluster API autoscaler.
	NodePool *NodePoolScale `json:"nodePool,omitempty"`
}

// Trigger is a metric threshold held for a duration.
type Trigger struct {
	// Metric is "cpu" or "memory" (average utilisation, percent).
	Metric string `json:"metric"`
	// Threshold is the utilisation target in percent, 1-100.
	Threshold int32 `json:"threshold"`
	// Duration the threshold must be exceeded before scaling up (the HPA's scale-up stabilisation window).
	Duration Duration `json:"duration"`
}

// ScaleWorkload is one workload scaled by an HPA.
type ScaleWorkload struct {
	// App that renders the workload.
	App string `json:"app"`
	// Kind of the workload: Deployment or StatefulSet.
	Kind string `json:"kind"`
	// Name of the workload.
	Name string `json:"name"`
	// MinReplicas of the HPA (at least 1).
	MinReplicas int32 `json:"minReplicas"`
	// MaxReplicas of the HPA (at least minReplicas).
	MaxReplicas int32 `json:"maxReplicas"`
}

// NodePoolScale bounds a node pool for the Cluster API autoscaler.
type NodePoolScale struct {
	// Name of a node pool every targeted cluster declares in spec.nodePools.
	Name string `json:"name"`
	// MinNodes of the pool.
	MinNodes int32 `json:"minNodes"`
	// MaxNodes of the pool (at least minNodes).
	MaxNodes int32 `json:"maxNodes"`
}
