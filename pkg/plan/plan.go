package plan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/render"
)

// APIVersion and Kind identify the JSON form of a Plan (see docs/plan.md).
const (
	APIVersion = "fleetsync.dev/v1alpha1"
	Kind       = "Plan"
)

// Action says what happens to one object.
type Action string

// The actions of an ObjectChange.
const (
	Add    Action = "add"
	Change Action = "change"
	Delete Action = "delete"
)

// Plan is the difference between the rendered fleets of two commits. Only
// clusters and apps with a change or an error are listed.
type Plan struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Base and Head are the revisions compared ("" when unknown).
	Base string `json:"base"`
	Head string `json:"head"`
	// Summary counts what the clusters below hold.
	Summary Summary `json:"summary"`
	// Errors are failures that concern a whole side, such as a fleet repo
	// that does not load; per-pair render errors are in AppPlan.
	Errors []SideError `json:"errors"`
	// Clusters with at least one changed or failed app, sorted by name.
	Clusters []ClusterPlan `json:"clusters"`
}

// Summary gives the totals of a plan.
type Summary struct {
	// ClustersAffected lists the clusters with a changed app, sorted.
	ClustersAffected []string `json:"clustersAffected"`
	// AppsChanged lists the apps changed on at least one cluster, sorted.
	AppsChanged []string `json:"appsChanged"`
	// Added, Changed and Deleted count objects over all clusters.
	Added   int `json:"added"`
	Changed int `json:"changed"`
	Deleted int `json:"deleted"`
	// Deletions lists every object that leaves a cluster's desired set.
	Deletions []Deletion `json:"deletions"`
	// Errors counts render errors (both sides) plus side errors.
	Errors int `json:"errors"`
}

// Deletion names an object that leaves the desired set of one cluster.
type Deletion struct {
	Cluster string    `json:"cluster"`
	App     string    `json:"app"`
	Object  ObjectRef `json:"object"`
	// PruneDisabled is true when the object carries fleetsync.dev/prune:
	// disabled, so it stays on the cluster.
	PruneDisabled bool `json:"pruneDisabled,omitempty"`
}

// SideError is a failure of a whole side (base or head).
type SideError struct {
	Side    string `json:"side"` // "base" or "head"
	Message string `json:"message"`
}

// ClusterPlan holds the changed or failed apps of one cluster.
type ClusterPlan struct {
	Cluster string    `json:"cluster"`
	Apps    []AppPlan `json:"apps"` // sorted by app name
}

// AppStatus says how an app changes on a cluster.
type AppStatus string

// The statuses of an AppPlan.
const (
	// AppAdded: the app newly targets the cluster.
	AppAdded AppStatus = "added"
	// AppRemoved: the app no longer targets the cluster.
	AppRemoved AppStatus = "removed"
	// AppChanged: the app's rendered objects differ.
	AppChanged AppStatus = "changed"
	// AppError: one side failed to render; no object diff is given.
	AppError AppStatus = "error"
)

// AppPlan is the change of one app on one cluster.
type AppPlan struct {
	App    string    `json:"app"`
	Status AppStatus `json:"status"`
	// BaseError and HeadError are the render errors of each side, if any.
	BaseError string `json:"baseError,omitempty"`
	HeadError string `json:"headError,omitempty"`
	// Warnings are the head render's warnings for the pair (render.AppResult.Warnings).
	Warnings []string `json:"warnings,omitempty"`
	// Objects changed, in head render order, deletions last (in base order).
	Objects []ObjectChange `json:"objects"`
}

// ObjectRef identifies an object in a cluster.
type ObjectRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// String formats the ref as Kind/namespace/name (or Kind/name).
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ObjectChange is one object added, changed or deleted.
type ObjectChange struct {
	Action Action    `json:"action"`
	Object ObjectRef `json:"object"`
	// Diff is a unified diff of the object's YAML (without the revision
	// annotation; Secret values masked), with "a/" and "b/" file headers.
	Diff string `json:"diff"`
	// SecretKeys names the Secret keys added, changed or removed, as
	// "data.KEY" or "stringData.KEY", sorted. Values are never given.
	SecretKeys []string `json:"secretKeys,omitempty"`
	// PruneDisabled is set on a deletion of an object annotated
	// fleetsync.dev/prune: disabled.
	PruneDisabled bool `json:"pruneDisabled,omitempty"`
}

// HasChanges reports whether anything differs between base and head: an
// object added, changed or deleted, or a pair that failed on base only. A
// pair failing on head is an error (see Err), not a change.
func (p *Plan) HasChanges() bool { return len(p.Summary.ClustersAffected) > 0 }

// Err returns the errors that make the head unusable: side errors and head
// render errors, joined; nil when head loaded and rendered everywhere.
// Base-only render errors are reported in the plan but are not errors of
// the plan (the change may be what fixes them).
func (p *Plan) Err() error {
	var errs []error
	for _, e := range p.Errors {
		errs = append(errs, fmt.Errorf("%s: %s", e.Side, e.Message))
	}
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			if a.HeadError != "" {
				errs = append(errs, fmt.Errorf("head: %s/%s: %s", c.Cluster, a.App, a.HeadError))
			}
		}
	}
	return errors.Join(errs...)
}

// AddError records a failure of a whole side ("base" or "head"), such as a
// repo that does not load, and counts it in the summary.
func (p *Plan) AddError(side string, err error) {
	if err == nil {
		return
	}
	p.Errors = append(p.Errors, SideError{Side: side, Message: err.Error()})
	p.Summary.Errors++
}

// Compute diffs two render results. A nil side means that side could not be
// rendered at all: no pair is compared then (record the reason with
// AddError). Compute stops early, recording an error, when ctx is done.
func Compute(ctx context.Context, base, head *render.Result) *Plan {
	p := &Plan{APIVersion: APIVersion, Kind: Kind, Errors: []SideError{}, Clusters: []ClusterPlan{}}
	if base != nil {
		p.Base = base.Revision
	}
	if head != nil {
		p.Head = head.Revision
	}
	if base == nil || head == nil {
		p.finish()
		return p
	}
	baseIdx, headIdx := index(base), index(head)
	for _, cluster := range unionKeys(baseIdx, headIdx) {
		if err := ctx.Err(); err != nil {
			p.AddError("head", fmt.Errorf("plan interrupted at cluster %s: %w", cluster, err))
			break
		}
		bApps, hApps := baseIdx[cluster], headIdx[cluster]
		cp := ClusterPlan{Cluster: cluster}
		for _, app := range unionKeys(bApps, hApps) {
			if ap, ok := comparePair(cluster, app, bApps[app], hApps[app]); ok {
				cp.Apps = append(cp.Apps, ap)
			}
		}
		if len(cp.Apps) > 0 {
			p.Clusters = append(p.Clusters, cp)
		}
	}
	p.finish()
	return p
}

// index maps cluster -> app -> pair.
func index(r *render.Result) map[string]map[string]*render.AppResult {
	m := make(map[string]map[string]*render.AppResult, len(r.Clusters))
	for i := range r.Clusters {
		c := &r.Clusters[i]
		apps := make(map[string]*render.AppResult, len(c.Apps))
		for j := range c.Apps {
			apps[c.Apps[j].App] = &c.Apps[j]
		}
		m[c.Cluster] = apps
	}
	return m
}

// unionKeys returns the sorted union of two maps' keys.
func unionKeys[V any](a, b map[string]V) []string {
	seen := make(map[string]bool, len(a)+len(b))
	keys := make([]string, 0, len(a)+len(b))
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// comparePair diffs one (cluster, app) pair; either side may be nil (the app
// does not target the cluster there). ok is false when nothing differs.
func comparePair(cluster, app string, base, head *render.AppResult) (AppPlan, bool) {
	ap := AppPlan{App: app, Status: AppChanged}
	// Render errors start with "cluster/app: "; the plan says that already.
	prefix := cluster + "/" + app + ": "
	if base != nil && base.Err != nil {
		ap.BaseError = strings.TrimPrefix(base.Err.Error(), prefix)
	}
	if head != nil && head.Err != nil {
		ap.HeadError = strings.TrimPrefix(head.Err.Error(), prefix)
	}
	if head != nil {
		ap.Warnings = head.Warnings
	}
	if ap.BaseError != "" || ap.HeadError != "" {
		if ap.BaseError == ap.HeadError {
			// The same failure on both sides is no change, but is still reported.
			ap.BaseError = ""
		}
		ap.Status = AppError
		ap.Objects = []ObjectChange{}
		return ap, true
	}
	var baseObjs, headObjs []*unstructured.Unstructured
	switch {
	case base == nil:
		ap.Status = AppAdded
		headObjs = head.Objects
	case head == nil:
		ap.Status = AppRemoved
		baseObjs = base.Objects
	default:
		baseObjs, headObjs = base.Objects, head.Objects
	}
	ap.Objects = diffObjects(baseObjs, headObjs)
	if len(ap.Objects) == 0 && ap.Status == AppChanged {
		return ap, false
	}
	return ap, true
}

// diffObjects matches objects by group, kind, namespace and name.
func diffObjects(base, head []*unstructured.Unstructured) []ObjectChange {
	baseByKey := make(map[objectKey]*unstructured.Unstructured, len(base))
	for _, o := range base {
		baseByKey[keyOf(o)] = o
	}
	changes := []ObjectChange{}
	seen := make(map[objectKey]bool, len(head))
	for _, h := range head {
		k := keyOf(h)
		seen[k] = true
		if c, ok := diffObject(baseByKey[k], h); ok {
			changes = append(changes, c)
		}
	}
	for _, b := range base {
		if !seen[keyOf(b)] {
			c, _ := diffObject(b, nil)
			changes = append(changes, c)
		}
	}
	return changes
}

// finish fills the summary from the clusters.
func (p *Plan) finish() {
	s := &p.Summary
	s.ClustersAffected, s.AppsChanged, s.Deletions = []string{}, []string{}, []Deletion{}
	apps := map[string]bool{}
	for _, c := range p.Clusters {
		affected := false
		for _, a := range c.Apps {
			if a.BaseError != "" {
				s.Errors++
			}
			if a.HeadError != "" {
				s.Errors++
			}
			if a.Status != AppError || a.BaseError != "" {
				affected = true
				apps[a.App] = true
			}
			for _, o := range a.Objects {
				switch o.Action {
				case Add:
					s.Added++
				case Change:
					s.Changed++
				case Delete:
					s.Deleted++
					s.Deletions = append(s.Deletions, Deletion{Cluster: c.Cluster, App: a.App, Object: o.Object, PruneDisabled: o.PruneDisabled})
				}
			}
		}
		if affected {
			s.ClustersAffected = append(s.ClustersAffected, c.Cluster)
		}
	}
	for a := range apps {
		s.AppsChanged = append(s.AppsChanged, a)
	}
	sort.Strings(s.AppsChanged)
}
