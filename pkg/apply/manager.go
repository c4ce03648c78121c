package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

const (
	labelApp           = v1alpha1.LabelApp
	annotationSSA      = v1alpha1.AnnotationSSA
	annotationPrune    = v1alpha1.AnnotationPrune
	annotationRecreate = v1alpha1.AnnotationRecreate
)

// Manager applies, prunes and checks objects on one cluster. It is safe for
// concurrent use by different apps.
type Manager struct {
	cluster *cluster.Cluster
	opts    Options
	// namespaces seen to exist (by ensureNamespace), so that each apply does
	// not read its namespace again; forgotten when a write finds it missing.
	namespaces sync.Map
}

// NewManager returns a Manager for a cluster; zero option fields take their defaults.
func NewManager(c *cluster.Cluster, opts Options) *Manager {
	return &Manager{cluster: c, opts: opts.withDefaults()}
}

// Cluster returns the Manager's cluster connection.
func (m *Manager) Cluster() *cluster.Cluster { return m.cluster }

// Stages of an apply; prune runs them in reverse.
const (
	stageCRD = iota
	stageNamespace
	stageClusterScoped
	stageNamespaced
)

// target is one desired object on its way to the cluster.
type target struct {
	obj     *unstructured.Unstructured
	ref     ObjectRef
	mapping *meta.RESTMapping
	stage   int
	live    *unstructured.Unstructured // nil: not among the app's labelled objects
	err     error                      // preparation error
	random  bool                       // random output to keep (random.go)
	// changed: the object differs from the one the last successful apply
	// wrote (the inventory's object digests), so it is written without a
	// dry run first.
	changed bool
}

func isCRD(gk schema.GroupKind) bool {
	return gk.Group == "apiextensions.k8s.io" && gk.Kind == "CustomResourceDefinition"
}

func isNamespace(gk schema.GroupKind) bool { return gk.Group == "" && gk.Kind == "Namespace" }

func (m *Manager) resource(mapping *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	r := m.cluster.Dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.Namespace(ns)
	}
	return r
}

func (m *Manager) objErr(app string, ref ObjectRef, op string, err error) error {
	return &ObjectError{Cluster: m.cluster.Name, App: app, Object: ref, Op: op, Err: err}
}

// run is the state of one Apply.
type run struct {
	m    *Manager
	req  Request
	cs   *ChangeSet
	mu   sync.Mutex
	seen map[string]bool
	// crdKinds are the kinds defined by the CRDs of the request.
	crdKinds map[schema.GroupKind]bool
}

func (r *run) record(c Change) {
	c.Cluster = r.m.cluster.Name
	c.App = r.req.App
	c.DryRun = r.req.DryRun && c.Action != Unchanged && c.Action != Failed && c.Action != Skipped
	if c.Err != nil {
		c.Error = c.Err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cs.Changes = append(r.cs.Changes, c)
	if r.req.Progress != nil {
		r.req.Progress(c)
	}
}

func (r *run) fail(t *target, op string, err error) {
	if namespaceMissing(err) {
		r.m.namespaces.Delete(t.obj.GetNamespace())
	}
	r.record(Change{Object: t.ref, Action: Failed, Err: r.m.objErr(r.req.App, t.ref, op, redact(err, t.obj))})
}

// Apply makes the request's objects real on the cluster, prunes what left the
// desired set (when allowed), stores the inventory and, with Wait, waits for health.
// Hooks (objects annotated helm.sh/hook) run around the release's objects as
// Helm runs them (hooks.go): pre-* hooks first (a failed one stops the app
// here: nothing else is applied or pruned), post-* hooks once the release's
// objects are healthy.
// The ChangeSet is never nil; the error joins every failure (failed objects and
// hooks, a refused prune, an unhealthy object, an inventory that could not be
// read or written).
func (m *Manager) Apply(ctx context.Context, req Request) (*ChangeSet, error) {
	r := &run{m: m, req: req, cs: &ChangeSet{Cluster: m.cluster.Name, App: req.App, Revision: req.Revision}, seen: map[string]bool{}}
	if req.App == "" {
		return r.cs, fmt.Errorf("cluster %s: apply: no app name", m.cluster.Name)
	}
	inv, err := m.currentInventory(ctx, req)
	if err != nil {
		return r.cs, err
	}
	var errs []error
	if err := r.ensureNamespace(ctx); err != nil {
		errs = append(errs, err)
	}
	release, hooks := splitHooks(req.Objects)
	digest := Digest(req.Objects)
	hookDigest := digest
	if stableInputs(inv, req) {
		hookDigest = inv.succeededDigest() // random output is no reason to run hooks
	}
	plan := planHooks(inv, hooks, hookDigest)
	hookRuns := r.prepareHooks(hooks)
	targets := r.prepare(release)
	markRandom(inv, req, targets)
	preOK := r.runPhase(ctx, plan.prePhase, r.hookRunsFor(plan.pre, hookRuns))
	newInv := &Inventory{App: req.App, Revision: req.Revision, Digest: digest, Prune: req.Prune, Fleet: req.Fleet,
		Images: req.Images, SourceDigest: req.SourceDigest}
	digests := objectDigests(inv, req, targets)
	markChanged(inv, targets, digests)
	if preOK {
		if err := r.applyStages(ctx, targets); err != nil {
			errs = append(errs, err)
		}
		desired := make([]ObjectRef, 0, len(targets))
		for _, t := range targets {
			desired = append(desired, t.ref)
		}
		// Hooks are not in the inventory, but an object that became a hook
		// is not pruned either.
		wanted := append(append([]ObjectRef(nil), desired...), hookRefs(hookRuns)...)
		keep, err := r.prune(ctx, inv, wanted)
		if err != nil {
			errs = append(errs, err)
		}
		newInv.Objects = mergeRefs(desired, keep)
	} else if inv != nil {
		newInv.Objects = inv.Objects // nothing of the release was applied
	}
	// AppliedAt starts a health deadline: it moves when the digest changes or
	// when this apply changed the cluster (a corrected drift is a new apply);
	// a no-op re-apply keeps it.
	newInv.AppliedAt = time.Now().UTC().Truncate(time.Second)
	if inv != nil {
		newInv.History, newInv.Holds, newInv.Succeeded = inv.History, inv.Holds, inv.Succeeded
		if inv.Digest == newInv.Digest && !inv.AppliedAt.IsZero() && !r.cs.wrote() {
			newInv.AppliedAt = inv.AppliedAt
		}
	}
	if err := r.cs.Err(); err != nil {
		errs = append(errs, err)
	}
	post := r.hookRunsFor(plan.post, hookRuns)
	if len(errs) == 0 && len(post) == 0 {
		newInv.Succeeded = digest
	}
	// Inputs and object digests describe the last successful apply only
	// (with post hooks: recorded once they succeeded).
	if inv != nil {
		newInv.Inputs, newInv.ObjectDigests = inv.Inputs, inv.ObjectDigests
	}
	if len(errs) == 0 && len(post) == 0 {
		newInv.Inputs, newInv.ObjectDigests = req.InputsDigest, digests
	}
	if !req.DryRun {
		if err := m.writeInventory(ctx, inv, newInv); err != nil {
			errs = append(errs, err)
		}
	}
	if req.DryRun && len(errs) == 0 {
		r.runPhase(ctx, plan.postPhase, post)
	}
	if (req.Wait || len(post) > 0) && !req.DryRun && len(errs) == 0 {
		if err := r.waitAndPost(ctx, targets, plan.postPhase, post, digest, digests); err != nil {
			errs = append(errs, err)
		}
	}
	r.cs.sort()
	return r.cs, errors.Join(errs...)
}

// currentInventory is the request's observed inventory (a copy: Apply
// changes what it holds) or, without one, the inventory read now.
func (m *Manager) currentInventory(ctx context.Context, req Request) (*Inventory, error) {
	if req.Observed == nil {
		return m.Inventory(ctx, req.App)
	}
	if req.Observed.Inventory == nil {
		return nil, nil
	}
	data, err := encodeInventory(req.Observed.Inventory)
	if err != nil {
		return nil, err
	}
	return decodeInventory(data)
}

// waitAndPost waits for the release's objects to be healthy, then runs the
// post-* hooks (like helm --wait) and, with Wait, records the revision as
// healthy.
func (r *run) waitAndPost(ctx context.Context, targets []*target, phase string, post []*hookRun, digest string, digests map[string]string) error {
	m, req := r.m, r.req
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	skipped := map[string]bool{}
	for _, c := range r.cs.Changes {
		if c.Action == Skipped {
			skipped[c.Object.key()] = true
		}
	}
	objs := make([]*unstructured.Unstructured, 0, len(targets))
	for _, t := range targets {
		if t.err == nil && !skipped[t.ref.key()] {
			objs = append(objs, t.obj)
		}
	}
	if _, err := m.WaitHealthy(ctx, req.App, objs, timeout); err != nil {
		return err
	}
	if len(post) > 0 {
		if !r.runPhase(ctx, phase, post) {
			return r.cs.Err()
		}
		if err := m.recordSucceeded(ctx, req.App, digest, req.InputsDigest, digests); err != nil {
			return err
		}
	}
	if !req.Wait {
		return nil
	}
	r.cs.Healthy = true
	return m.RecordHealthy(ctx, req.App, req.Revision, digest)
}

// hookRunsFor returns the prepared runs of a phase's hooks, in the phase's order.
func (r *run) hookRunsFor(hooks []hook, runs []*hookRun) []*hookRun {
	byObj := map[*unstructured.Unstructured]*hookRun{}
	for _, h := range runs {
		byObj[h.src] = h
	}
	out := make([]*hookRun, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, byObj[h.obj])
	}
	return out
}

func hookRefs(runs []*hookRun) []ObjectRef {
	out := make([]ObjectRef, 0, len(runs))
	for _, h := range runs {
		out = append(out, h.t.ref)
	}
	return out
}

// prepare copies and labels the objects and gives each its first stage guess
// (CRD, Namespace, or later; resolve refines it).
func (r *run) prepare(objs []*unstructured.Unstructured) []*target {
	out := make([]*target, 0, len(objs))
	for _, o := range objs {
		t := &target{obj: o.DeepCopy()}
		labels := t.obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[labelApp] = r.req.App
		t.obj.SetLabels(labels)
		gk := t.obj.GroupVersionKind().GroupKind()
		switch {
		case isCRD(gk):
			t.stage = stageCRD
			group, _, _ := unstructured.NestedString(t.obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(t.obj.Object, "spec", "names", "kind")
			if r.crdKinds == nil {
				r.crdKinds = map[schema.GroupKind]bool{}
			}
			r.crdKinds[schema.GroupKind{Group: group, Kind: kind}] = true
		case isNamespace(gk):
			t.stage = stageNamespace
		default:
			t.stage = stageNamespaced // refined by resolve once CRDs exist
		}
		t.ref = RefOf(t.obj)
		if t.obj.GetName() == "" || t.obj.GetKind() == "" || t.obj.GetAPIVersion() == "" {
			t.err = errors.New("object has no apiVersion, kind or metadata.name")
		}
		out = append(out, t)
	}
	return out
}

// resolve finds a target's REST mapping and scope, defaulting the namespace.
func (r *run) resolve(t *target) {
	if t.mapping != nil || t.err != nil {
		return
	}
	mapping, err := r.m.cluster.Mapping(t.obj.GroupVersionKind())
	if err != nil {
		t.err = err
		return
	}
	t.mapping = mapping
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if t.obj.GetNamespace() == "" {
			if r.req.Namespace == "" {
				t.err = errors.New("namespaced object without a namespace (and the app has no namespace)")
				return
			}
			t.obj.SetNamespace(r.req.Namespace)
		}
		t.stage = max(t.stage, stageNamespaced)
	} else {
		t.obj.SetNamespace("")
		if t.stage == stageNamespaced {
			t.stage = stageClusterScoped
		}
	}
	t.ref = RefOf(t.obj)
}

// applyStages applies CRDs and Namespaces, waits for the CRDs, then the rest:
// cluster-scoped objects before namespaced ones.
func (r *run) applyStages(ctx context.Context, targets []*target) error {
	var first, rest []*target
	for _, t := range targets {
		if t.stage <= stageNamespace {
			first = append(first, t)
		} else {
			rest = append(rest, t)
		}
	}
	for _, t := range first {
		r.resolve(t)
	}
	r.applyBatch(ctx, first)
	var crds []*target
	for _, t := range first {
		if t.stage == stageCRD && t.err == nil {
			crds = append(crds, t)
		}
	}
	var errs []error
	if len(crds) > 0 && !r.req.DryRun {
		if err := r.m.waitEstablished(ctx, r.req.App, crds); err != nil {
			errs = append(errs, err)
		}
		r.m.cluster.ResetMapper()
	}
	for _, t := range rest {
		r.resolve(t)
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].stage < rest[j].stage })
	var cs, ns []*target
	for _, t := range rest {
		if t.stage == stageClusterScoped {
			cs = append(cs, t)
		} else {
			ns = append(ns, t)
		}
	}
	r.applyBatch(ctx, cs)
	r.applyBatch(ctx, ns)
	return errors.Join(errs...)
}

// applyBatch fetches the live objects of a batch, then applies each with bounded
// concurrency.
func (r *run) applyBatch(ctx context.Context, ts []*target) {
	var ok []*target
	for _, t := range ts {
		key := t.ref.key()
		if t.err == nil && r.seen[key] {
			t.err = errors.New("the object appears twice in the app")
		}
		r.seen[key] = true
		if t.err != nil && r.req.DryRun && meta.IsNoMatchError(t.err) && r.crdKinds[t.obj.GroupVersionKind().GroupKind()] {
			r.record(Change{Object: t.ref, Action: Skipped, Reason: "its CRD is part of this apply, not installed in a dry run"})
			continue
		}
		if t.err != nil {
			r.fail(t, "prepare", t.err)
			continue
		}
		ok = append(ok, t)
	}
	if len(ok) == 0 {
		return
	}
	if err := r.m.fetchLive(ctx, r.req.App, ok, false); err != nil {
		for _, t := range ok {
			r.fail(t, "list", err)
		}
		return
	}
	sem := make(chan struct{}, r.m.opts.Concurrency)
	var wg sync.WaitGroup
	for _, t := range ok {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.applyOne(ctx, t)
		}()
	}
	wg.Wait()
}

// fetchLive lists, per resource and namespace, the app's labelled objects
// (forHealth: as metadata only for the kinds that need no more) and
// sets each target's live object (nil when absent).
func (m *Manager) fetchLive(ctx context.Context, app string, ts []*target, forHealth bool) error {
	type group struct {
		mapping *meta.RESTMapping
		ns      string
	}
	groups := map[string]group{}
	for _, t := range ts {
		k := t.mapping.Resource.String() + "|" + t.obj.GetNamespace()
		groups[k] = group{mapping: t.mapping, ns: t.obj.GetNamespace()}
	}
	live := map[string]*unstructured.Unstructured{}
	for _, g := range groups {
		opts := metav1.ListOptions{LabelSelector: labelApp + "=" + app}
		var list *unstructured.UnstructuredList
		var err error
		if forHealth {
			list, err = m.list(ctx, g.mapping, g.ns, opts)
		} else {
			list, err = m.resource(g.mapping, g.ns).List(ctx, opts)
		}
		if err != nil {
			return fmt.Errorf("list %s in %q: %w", g.mapping.Resource.Resource, g.ns, err)
		}
		for i := range list.Items {
			u := &list.Items[i]
			live[g.mapping.Resource.String()+"|"+u.GetNamespace()+"|"+u.GetName()] = u
		}
	}
	for _, t := range ts {
		t.live = live[t.mapping.Resource.String()+"|"+t.obj.GetNamespace()+"|"+t.obj.GetName()]
	}
	return nil
}

// ensureNamespace creates the app's namespace when it is missing and not one of
// the app's objects.
func (r *run) ensureNamespace(ctx context.Context) error {
	ns := r.req.Namespace
	if ns == "" || r.req.DryRun {
		return nil
	}
	for _, o := range r.req.Objects {
		if isNamespace(o.GroupVersionKind().GroupKind()) && o.GetName() == ns {
			return nil
		}
	}
	return r.m.ensureNamespace(ctx, ns)
}

func (m *Manager) ensureNamespace(ctx context.Context, ns string) error {
	if _, ok := m.namespaces.Load(ns); ok {
		return nil
	}
	if err := m.createNamespace(ctx, ns); err != nil {
		return err
	}
	m.namespaces.Store(ns, true)
	return nil
}

func (m *Manager) createNamespace(ctx context.Context, ns string) error {
	nsRes := m.cluster.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	_, err := nsRes.Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("cluster %s: Namespace/%s: get: %w", m.cluster.Name, ns, err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns},
	}}
	// A create, not a server-side apply: an apply by fleetsync's field
	// manager of the bare Namespace would take away the labels and
	// annotations that an app's own Namespace object, applied by the same
	// manager a moment before (apps of one namespace apply concurrently),
	// set on it.
	if _, err := nsRes.Create(ctx, obj, metav1.CreateOptions{FieldManager: m.opts.FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: Namespace/%s: create: %w", m.cluster.Name, ns, err)
	}
	return nil
}

// waitEstablished waits for the CRDs to have the Established condition.
func (m *Manager) waitEstablished(ctx context.Context, app string, crds []*target) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.CRDTimeout)
	defer cancel()
	for _, t := range crds {
		for {
			u, err := m.resource(t.mapping, "").Get(ctx, t.obj.GetName(), metav1.GetOptions{})
			if err == nil && crdEstablished(u) {
				break
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return m.objErr(app, t.ref, "wait established", err)
			}
			select {
			case <-ctx.Done():
				return m.objErr(app, t.ref, "wait established", fmt.Errorf("not Established after %s", m.opts.CRDTimeout))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func crdEstablished(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, ok := c.(map[string]any)
		if ok && cm["type"] == "Established" && cm["status"] == "True" {
			return true
		}
	}
	return false
}
