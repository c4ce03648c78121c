package apply

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ObjectRef identifies an object on a cluster.
type ObjectRef struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the reference of an object.
func RefOf(u *unstructured.Unstructured) ObjectRef {
	gvk := u.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GVK returns the reference's group, version and kind.
func (r ObjectRef) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// String is Kind/namespace/name (Kind/name for cluster-scoped objects), as in errors.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// key identifies an object regardless of its version.
func (r ObjectRef) key() string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Action is what happened to one object.
type Action string

// Actions of a ChangeSet.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Recreated  Action = "recreated"
	Unchanged  Action = "unchanged"
	Pruned     Action = "pruned"
	Skipped    Action = "skipped"
	Failed     Action = "failed"
	// Hook is a hook that ran (or, in a dry run, would run) in its Phase.
	Hook Action = "hook"
)

// Change is the outcome for one object.
type Change struct {
	Cluster string    `json:"cluster"`
	App     string    `json:"app"`
	Object  ObjectRef `json:"object"`
	Action  Action    `json:"action"`
	// DryRun is true when nothing was written (the action is what would happen).
	DryRun bool `json:"dryRun,omitempty"`
	// Phase is the hook event (pre-install, post-upgrade, ...) of a hook's
	// change; empty for the release's objects.
	Phase string `json:"phase,omitempty"`
	// Reason explains a skipped object, or how a hook ran.
	Reason string `json:"reason,omitempty"`
	// Err is set for failed objects; it names cluster, app and object.
	Err error `json:"-"`
	// Error is Err's message (for JSON output).
	Error string `json:"error,omitempty"`
}

// ChangeSet is the outcome of one Apply.
type ChangeSet struct {
	Cluster  string   `json:"cluster"`
	App      string   `json:"app"`
	Revision string   `json:"revision"`
	Changes  []Change `json:"changes"`
	// Healthy is set after a successful Wait.
	Healthy bool `json:"healthy"`
}

// Count returns how many changes have the action.
func (cs *ChangeSet) Count(a Action) int {
	n := 0
	for _, c := range cs.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Counts returns the number of changes per action.
func (cs *ChangeSet) Counts() map[Action]int {
	m := map[Action]int{}
	for _, c := range cs.Changes {
		m[c.Action]++
	}
	return m
}

// Wrote reports whether any object was created, configured, recreated or
// pruned, or a hook ran.
func (cs *ChangeSet) Wrote() bool { return cs.wrote() }

func (cs *ChangeSet) wrote() bool {
	for _, c := range cs.Changes {
		switch c.Action {
		case Created, Configured, Recreated, Pruned, Hook:
			return !c.DryRun
		}
	}
	return false
}

// Err joins the errors of failed objects (nil when none failed).
func (cs *ChangeSet) Err() error {
	var errs []error
	for _, c := range cs.Changes {
		if c.Err != nil {
			errs = append(errs, c.Err)
		}
	}
	return errors.Join(errs...)
}

// Get returns the change of the object with this kind, namespace and name.
func (cs *ChangeSet) Get(kind, namespace, name string) (Change, bool) {
	for _, c := range cs.Changes {
		if c.Object.Kind == kind && c.Object.Namespace == namespace && c.Object.Name == name {
			return c, true
		}
	}
	return Change{}, false
}

// sort orders the changes: pre-* hooks in the order they ran, the release's
// objects by name, post-* hooks in the order they ran.
func (cs *ChangeSet) sort() {
	sort.SliceStable(cs.Changes, func(i, j int) bool {
		a, b := cs.Changes[i], cs.Changes[j]
		if ra, rb := changeRank(a), changeRank(b); ra != rb {
			return ra < rb
		}
		if a.Phase != "" {
			return false // hooks keep their order
		}
		return a.Object.String() < b.Object.String()
	})
}

func changeRank(c Change) int {
	switch {
	case c.Phase == "":
		return 1
	case strings.HasPrefix(c.Phase, "pre-"):
		return 0
	default:
		return 2
	}
}

// ObjectError is an error about one object of one app on one cluster.
type ObjectError struct {
	Cluster string
	App     string
	Object  ObjectRef
	// Op is what failed: apply, dry-run apply, delete, get, ...
	Op  string
	Err error
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("%s/%s: %s: %s: %v", e.Cluster, e.App, e.Object, e.Op, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// ImmutableError says an apply changes immutable fields and recreation was not allowed.
type ImmutableError struct {
	// Fields are the immutable field paths the server named (e.g. spec.selector).
	Fields []string
	Err    error
}

func (e *ImmutableError) Error() string {
	return fmt.Sprintf("immutable field %s cannot change (annotate the object %s: %s to delete and recreate it): %v",
		strings.Join(e.Fields, ", "), annotationRecreate, RecreateEnabled, e.Err)
}

func (e *ImmutableError) Unwrap() error { return e.Err }

// MassPruneError says a prune was refused because it would delete too much.
type MassPruneError struct {
	Cluster, App     string
	Prune, Inventory int
}

func (e *MassPruneError) Error() string {
	return fmt.Sprintf("%s/%s: prune refused: it would delete %d of the app's %d objects (more than half); use --allow-mass-prune if that is intended",
		e.Cluster, e.App, e.Prune, e.Inventory)
}
