package apply

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// ObjectStatus is one object's health (kstatus).
type ObjectStatus struct {
	Object ObjectRef `json:"object"`
	// Status is a kstatus status: Current (healthy), InProgress, Failed,
	// Terminating, NotFound or Unknown.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Healthy reports whether every status is Current.
func Healthy(sts []ObjectStatus) bool {
	for _, s := range sts {
		if s.Status != string(status.CurrentStatus) {
			return false
		}
	}
	return true
}

// Health reads the objects from the cluster once and computes their kstatus.
func (m *Manager) Health(ctx context.Context, app string, objs []*unstructured.Unstructured) ([]ObjectStatus, error) {
	var ts []*target
	var out []ObjectStatus
	for _, o := range objs {
		t := &target{obj: o, ref: RefOf(o)}
		mapping, err := m.cluster.Mapping(o.GroupVersionKind())
		if err != nil {
			out = append(out, ObjectStatus{Object: t.ref, Status: string(status.UnknownStatus), Message: err.Error()})
			continue
		}
		t.mapping = mapping
		ts = append(ts, t)
	}
	if err := m.fetchLive(ctx, app, ts, true); err != nil {
		return nil, fmt.Errorf("%s/%s: health: %w", m.cluster.Name, app, err)
	}
	out = append(out, statuses(ts)...)
	sortStatuses(out)
	return out, nil
}

// statuses computes the kstatus of targets whose live objects were read
// (sorted by object, with the statuses of the targets that could not be).
func statuses(ts []*target) []ObjectStatus {
	out := make([]ObjectStatus, 0, len(ts))
	for _, t := range ts {
		if t.live == nil {
			out = append(out, ObjectStatus{Object: t.ref, Status: string(status.NotFoundStatus), Message: "not found"})
			continue
		}
		res, err := status.Compute(t.live)
		if err != nil {
			out = append(out, ObjectStatus{Object: t.ref, Status: string(status.UnknownStatus), Message: err.Error()})
			continue
		}
		out = append(out, ObjectStatus{Object: t.ref, Status: string(res.Status), Message: res.Message})
	}
	return out
}

func sortStatuses(out []ObjectStatus) {
	sort.SliceStable(out, func(i, j int) bool { return out[i].Object.String() < out[j].Object.String() })
}

// Observation is what is on a cluster for one app: its inventory and the
// health of the objects in it, read once (no waiting).
type Observation struct {
	Inventory *Inventory
	Objects   []ObjectStatus
	// Healthy: every object is Current; Failed: some object is kstatus Failed.
	Healthy, Failed bool
}

// Observe reads an app's inventory and the health of its objects once. A
// missing inventory gives an Observation with a nil Inventory.
func (m *Manager) Observe(ctx context.Context, app string) (*Observation, error) {
	inv, err := m.Inventory(ctx, app)
	if err != nil || inv == nil {
		return &Observation{}, err
	}
	sts, err := m.Health(ctx, app, inv.objectStubs())
	if err != nil {
		return &Observation{Inventory: inv}, err
	}
	return observation(inv, sts), nil
}

func observation(inv *Inventory, sts []ObjectStatus) *Observation {
	o := &Observation{Inventory: inv, Objects: sts, Healthy: Healthy(sts)}
	for _, s := range sts {
		o.Failed = o.Failed || s.Status == string(status.FailedStatus)
	}
	return o
}

// WaitHealthy polls the objects' health until every one is Current, or until the
// timeout (then a *HealthError names every object that is not, with kstatus's
// message). A Failed object ends the wait early. When ctx ends first, the error
// is the context's (ErrCanceled, or a deadline: never a health verdict).
func (m *Manager) WaitHealthy(ctx context.Context, app string, objs []*unstructured.Unstructured, timeout time.Duration) ([]ObjectStatus, error) {
	deadline := time.Now().Add(timeout)
	var last []ObjectStatus
	var lastErr error
	for {
		sts, err := m.Health(ctx, app, objs)
		if ctx.Err() != nil {
			return last, fmt.Errorf("%s/%s: health wait interrupted: %w", m.cluster.Name, app, context.Cause(ctx))
		}
		if err == nil {
			last, lastErr = sts, nil
			if Healthy(sts) {
				return sts, nil
			}
			for _, s := range sts {
				if s.Status == string(status.FailedStatus) {
					return sts, &HealthError{Cluster: m.cluster.Name, App: app, Failed: true, Objects: sts}
				}
			}
		} else {
			lastErr = err
		}
		if !time.Now().Before(deadline) {
			return last, &HealthError{Cluster: m.cluster.Name, App: app, Timeout: timeout.String(), Objects: last, Err: lastErr}
		}
		wait := min(m.opts.PollInterval, time.Until(deadline))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// objectStubs are the inventory's objects as stubs (kind, namespace, name)
// for health reads.
func (inv *Inventory) objectStubs() []*unstructured.Unstructured {
	objs := make([]*unstructured.Unstructured, 0, len(inv.Objects))
	for _, ref := range inv.Objects {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ref.GVK())
		u.SetNamespace(ref.Namespace)
		u.SetName(ref.Name)
		objs = append(objs, u)
	}
	return objs
}
