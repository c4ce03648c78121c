package fleet

import (
	"io/fs"
	"path"

	v1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Repo is a loaded, validated fleet repo: every object of every kind, and the
// filesystem it came from (rooted at the repo's top folder).
type Repo struct {
	// FS is the repo's file tree; paths in it are slash-separated and relative to the repo root.
	FS fs.FS
	// Revision is the commit the repo was read from ("" for a plain directory).
	Revision string
	// Fleet holds the fleet-wide defaults; nil when fleet.yaml is absent.
	Fleet *v1alpha1.Fleet
	// Clusters sorted by name.
	Clusters []*v1alpha1.Cluster
	// Apps sorted by name.
	Apps []*v1alpha1.App
	// ScalePolicies sorted by name.
	ScalePolicies []*v1alpha1.ScalePolicy

	// positions locates the loaded objects' fields in their files (see Position).
	positions map[any]*document
}

// AppsDir is the folder of the apps; AppDir(name) is AppsDir/name.
const AppsDir = "apps"

// AppDir is the repo-relative folder of an app (apps/<name>); paths in the App are relative to it.
func AppDir(app string) string { return path.Join(AppsDir, app) }

// Cluster returns the named cluster, or nil.
func (r *Repo) Cluster(name string) *v1alpha1.Cluster {
	for _, c := range r.Clusters {
		if c.Metadata.Name == name {
			return c
		}
	}
	return nil
}

// App returns the named app, or nil.
func (r *Repo) App(name string) *v1alpha1.App {
	for _, a := range r.Apps {
		if a.Metadata.Name == name {
			return a
		}
	}
	return nil
}

// TargetClusters returns the clusters an app targets, sorted by name.
func (r *Repo) TargetClusters(app *v1alpha1.App) []*v1alpha1.Cluster {
	return r.Select(app.Spec.Targets.ClusterSelector)
}

// Select returns the clusters a selector matches, sorted by name. A nil selector
// matches none; an empty one matches all. An invalid selector matches none (the
// loader rejects invalid selectors, so a loaded Repo has none).
func (r *Repo) Select(sel *v1.LabelSelector) []*v1alpha1.Cluster {
	var out []*v1alpha1.Cluster
	for _, c := range r.Clusters {
		if Matches(sel, c) {
			out = append(out, c)
		}
	}
	return out
}

// Matches reports whether a selector selects a cluster. A nil selector selects nothing.
func Matches(sel *v1.LabelSelector, c *v1alpha1.Cluster) bool {
	if sel == nil {
		return false
	}
	s, err := v1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(c.Metadata.Labels))
}
