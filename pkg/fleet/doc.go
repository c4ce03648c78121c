// Package fleet loads a fleet repo (fleet.yaml, clusters/, apps/, policies/) from
// an io/fs.FS into a validated model (Repo).
//
// Load decodes every file strictly (unknown fields are errors), checks every rule
// of the fleet repo format (names, selectors, references between objects, paths
// that must stay inside the repo, ScalePolicy bounds, ...) and reports every
// problem it finds, each with its file, line and field path, as Problems. It never
// uses operating-system paths: the same code loads a checked-out directory
// (os.DirFS) or a tree served straight from git objects.
//
// The package does not render manifests (pkg/render does) and does no network
// I/O: remote Helm charts are checked for form (oci:// or https repo, pinned
// version), not fetched.
package fleet
