package fleet

import (
	"path"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Position returns the repo-relative file an object of the Repo was loaded from
// and the line of one of its fields (e.g. "spec.source"; "" for the object
// itself), so that later stages (render, drift) can report problems the way
// Load does. For a Repo not made by Load, the file is where the format puts the
// object and the line is 0.
func (r *Repo) Position(obj any, field string) (file string, line int) {
	if d, ok := r.positions[obj]; ok {
		return d.file, d.line(field)
	}
	switch o := obj.(type) {
	case *v1alpha1.Fleet:
		return FleetFile, 0
	case *v1alpha1.Cluster:
		return path.Join(ClustersDir, o.Metadata.Name+yamlExt), 0
	case *v1alpha1.App:
		return path.Join(AppDir(o.Metadata.Name), AppFile), 0
	case *v1alpha1.ScalePolicy:
		return path.Join(PoliciesDir, o.Metadata.Name+yamlExt), 0
	}
	return "", 0
}
