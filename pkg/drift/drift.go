package drift

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/apply"
)

// State is one object's drift state.
type State string

// States.
const (
	InSync  State = "in-sync"
	Drifted State = "drifted"
	Missing State = "missing"
	Extra   State = "extra"
	Unknown State = "error"
)

// Mask replaces Secret values in diffs.
const (
	Mask        = "***"
	MaskChanged = "*** (changed)"
)

// ObjectDrift is one object's state.
type ObjectDrift struct {
	Object apply.ObjectRef `json:"object"`
	State  State           `json:"state"`
	// Diff is a unified YAML diff from the live object to what an apply would
	// make of it (drifted objects only); Secret values are masked.
	Diff string `json:"diff,omitempty"`
	// ChangedBy names the imperative field managers (kubectl edit, patch,
	// scale, ...) whose changes an apply takes over and undoes.
	ChangedBy []string `json:"changedBy,omitempty"`
	// Approximate is set when the diff was predicted without the server (the
	// merge with a person's changes is invalid, so the server cannot dry-run it).
	Approximate bool `json:"approximate,omitempty"`
	// Prune is set for an extra object the next apply deletes (the request
	// prunes, its desired set is complete, and the mass-prune guard allows it).
	Prune bool   `json:"prune,omitempty"`
	Error string `json:"error,omitempty"`
}

// Report is the drift of one app on one cluster.
type Report struct {
	Cluster string        `json:"cluster"`
	App     string        `json:"app"`
	Objects []ObjectDrift `json:"objects"`
}

// Drifted reports whether any object is not in sync.
func (r *Report) Drifted() bool {
	for _, o := range r.Objects {
		if o.State != InSync {
			return true
		}
	}
	return false
}

// Count returns how many objects are in the state.
func (r *Report) Count(s State) int {
	n := 0
	for _, o := range r.Objects {
		if o.State == s {
			n++
		}
	}
	return n
}

// Get returns the drift of the object with this kind, namespace and name.
func (r *Report) Get(kind, namespace, name string) (ObjectDrift, bool) {
	for _, o := range r.Objects {
		if o.Object.Kind == kind && o.Object.Namespace == namespace && o.Object.Name == name {
			return o, true
		}
	}
	return ObjectDrift{}, false
}

// Detect compares an app's desired objects (req.Objects) and its inventory with
// the cluster. The report lists every object; the error joins per-object errors
// (those objects have state "error") and an unreadable inventory. Hooks
// (helm.sh/hook) are left out: they run on apply and are never drift, nor
// extra (apply does not prune an object that is now a hook).
func Detect(ctx context.Context, m *apply.Manager, req apply.Request) (*Report, error) {
	rep := &Report{Cluster: m.Cluster().Name, App: req.App}
	var errs []error
	desired := map[string]bool{}
	for _, o := range req.Objects {
		if apply.IsHook(o) {
			ref := apply.RefOf(o)
			desired[refKey(ref)] = true
			if ref.Namespace == "" { // namespaced hooks without one get the app's
				ref.Namespace = req.Namespace
				desired[refKey(ref)] = true
			}
		}
	}
	for _, p := range m.Preview(ctx, req) {
		desired[refKey(p.Object)] = true
		od := ObjectDrift{Object: p.Object, ChangedBy: p.TakenOver, Approximate: p.Approximate}
		switch {
		case p.Err != nil:
			od.State, od.Error = Unknown, p.Err.Error()
			errs = append(errs, p.Err)
		case p.InSync:
			od.State = InSync
		case p.Live == nil:
			od.State = Missing
		default:
			od.State = Drifted
			d, err := Diff(p.Live, p.Merged)
			if err != nil {
				err = fmt.Errorf("%s/%s: %s: diff: %w", rep.Cluster, req.App, p.Object, err)
				od.State, od.Error = Unknown, err.Error()
				errs = append(errs, err)
			}
			od.Diff = d
		}
		rep.Objects = append(rep.Objects, od)
	}
	inv, err := m.Inventory(ctx, req.App)
	if err != nil {
		errs = append(errs, err)
	}
	if inv != nil {
		stale := 0
		for _, ref := range inv.Objects {
			if !desired[refKey(ref)] {
				stale++
			}
		}
		// The same rule as the prune of apply.Manager.Apply.
		prune := req.Prune && !req.Incomplete && (req.AllowMassPrune || 2*stale <= len(inv.Objects))
		for _, ref := range inv.Objects {
			if desired[refKey(ref)] {
				continue
			}
			ok, err := m.Exists(ctx, ref)
			if err != nil {
				err = fmt.Errorf("%s/%s: %s: get: %w", rep.Cluster, req.App, ref, err)
				rep.Objects = append(rep.Objects, ObjectDrift{Object: ref, State: Unknown, Error: err.Error()})
				errs = append(errs, err)
				continue
			}
			if ok {
				rep.Objects = append(rep.Objects, ObjectDrift{Object: ref, State: Extra, Prune: prune})
			}
		}
	}
	sort.SliceStable(rep.Objects, func(i, j int) bool { return rep.Objects[i].Object.String() < rep.Objects[j].Object.String() })
	return rep, errors.Join(errs...)
}

func refKey(r apply.ObjectRef) string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Reconcile detects drift and, in mode "correct", re-applies the request through
// the Manager when anything drifted (the ChangeSet is nil otherwise). Mode
// "report" (or empty) only reports.
func Reconcile(ctx context.Context, m *apply.Manager, req apply.Request, mode v1alpha1.DriftMode) (*Report, *apply.ChangeSet, error) {
	rep, err := Detect(ctx, m, req)
	if err != nil || mode != v1alpha1.DriftCorrect || !rep.Drifted() {
		return rep, nil, err
	}
	cs, err := m.Apply(ctx, req)
	return rep, cs, err
}

// Diff returns a unified YAML diff from live to merged, both normalized (server
// fields dropped) and with Secret values masked. It is empty when they are equal.
func Diff(live, merged *unstructured.Unstructured) (string, error) {
	a, b := apply.Normalize(live), apply.Normalize(merged)
	if a.GetKind() == "Secret" {
		maskSecrets(a, b)
	}
	if reflect.DeepEqual(a.Object, b.Object) {
		return "", nil
	}
	ya, err := yaml.Marshal(a.Object)
	if err != nil {
		return "", err
	}
	yb, err := yaml.Marshal(b.Object)
	if err != nil {
		return "", err
	}
	name := apply.RefOf(live).String()
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(ya)),
		B:        difflib.SplitLines(string(yb)),
		FromFile: name + " (live)",
		ToFile:   name + " (desired)",
		Context:  3,
	})
}

// maskSecrets replaces every data and stringData value of two versions of a Secret:
// "***" where both hold the same value, "*** (changed)" on the desired side where
// they differ. Values never survive.
func maskSecrets(live, desired *unstructured.Unstructured) {
	for _, field := range []string{"data", "stringData"} {
		lm, _, _ := unstructured.NestedMap(live.Object, field)
		dm, _, _ := unstructured.NestedMap(desired.Object, field)
		if lm != nil {
			out := map[string]any{}
			for k := range lm {
				out[k] = Mask
			}
			_ = unstructured.SetNestedMap(live.Object, out, field)
		}
		if dm != nil {
			out := map[string]any{}
			for k, v := range dm {
				if lv, ok := lm[k]; ok && reflect.DeepEqual(lv, v) {
					out[k] = Mask
				} else {
					out[k] = MaskChanged
				}
			}
			_ = unstructured.SetNestedMap(desired.Object, out, field)
		}
	}
	// Other fields of a Secret (annotations may hold last-applied copies) could
	// quote values: drop the kubectl last-applied annotation on both sides.
	for _, u := range []*unstructured.Unstructured{live, desired} {
		ann := u.GetAnnotations()
		if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			ann["kubectl.kubernetes.io/last-applied-configuration"] = Mask
			u.SetAnnotations(ann)
		}
	}
}
