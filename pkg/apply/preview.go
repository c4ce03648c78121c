package apply

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Preview is how one desired object compares with the cluster, found through the
// same path Apply takes, without writing anything.
type Preview struct {
	Object ObjectRef
	// Desired is the object as Apply would send it (labelled, namespace defaulted).
	Desired *unstructured.Unstructured
	// Live is the object on the cluster; nil when it does not exist.
	Live *unstructured.Unstructured
	// Merged is the server-side dry-run apply result; nil when the live object
	// matched without asking the server, or when it does not exist.
	Merged *unstructured.Unstructured
	// InSync is true when an apply would not change the live object.
	InSync bool
	// TakenOver names the imperative field managers (kubectl edit, patch, ...)
	// whose fields an apply takes over (and removes where not desired).
	TakenOver []string
	// Approximate is true when Merged was predicted without the server (the
	// dry-run of the merge with the imperative fields was invalid).
	Approximate bool
	// Err names cluster, app and object.
	Err error
}

// Preview compares every desired object with the cluster (objects annotated
// fleetsync.dev/ssa: Ignore are left out; IfNotPresent objects that exist are in
// sync). Hooks (helm.sh/hook) are left out: they run on apply, they are not
// kept in sync. It does not write, and the request's Prune and Wait are not used.
func (m *Manager) Preview(ctx context.Context, req Request) []Preview {
	r := &run{m: m, req: req, cs: &ChangeSet{}}
	release, _ := splitHooks(req.Objects)
	targets := r.prepare(release)
	out := make([]Preview, len(targets))
	var ok []*target
	var idx []int
	for i, t := range targets {
		r.resolve(t)
		out[i] = Preview{Object: t.ref, Desired: t.obj}
		switch {
		case ssaPolicy(t.obj) == SSAIgnore:
			out[i].InSync = true
			out[i].Err = nil
		case t.err != nil && meta.IsNoMatchError(t.err):
			// The kind is not served: the object is missing.
		case t.err != nil:
			out[i].Err = m.objErr(req.App, t.ref, "prepare", t.err)
		default:
			ok = append(ok, t)
			idx = append(idx, i)
		}
	}
	if err := m.fetchLive(ctx, req.App, ok, false); err != nil {
		for _, i := range idx {
			out[i].Err = m.objErr(req.App, out[i].Object, "list", err)
		}
		return out
	}
	sem := make(chan struct{}, m.opts.Concurrency)
	var wg sync.WaitGroup
	for n, t := range ok {
		i := idx[n]
		if ssaPolicy(t.obj) == SSAIgnore {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.previewOne(ctx, req.App, t, &out[i])
		}()
	}
	wg.Wait()
	return out
}

func (m *Manager) previewOne(ctx context.Context, app string, t *target, p *Preview) {
	ri := m.resource(t.mapping, t.obj.GetNamespace())
	if t.live == nil {
		// Not labelled for the app: look it up by name (it may exist unlabelled).
		live, err := ri.Get(ctx, t.obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			p.Err = m.objErr(app, t.ref, "get", err)
			return
		}
		t.live = live
	}
	p.Live = t.live
	if ssaPolicy(t.obj) == SSAIfNotPresent {
		p.InSync = true
		return
	}
	mgrs := takeoverManagers(t.live, m.opts.TakeOver)
	if len(mgrs) == 0 && matchesLive(t.live, t.obj, m.opts.FieldManager) {
		p.InSync = true
		return
	}
	dry, err := ri.Apply(ctx, t.obj.GetName(), t.obj, m.applyOpts(true))
	if err != nil && len(mgrs) > 0 && len(immutableFields(err)) == 0 {
		// Merged with the imperative fields the object is invalid; an apply
		// takes them over first. Predict the result without the server.
		exp, lerr := expectedLocally(t.live, t.obj, m.opts.TakeOver)
		if lerr == nil {
			p.Merged, p.TakenOver, p.Approximate = exp, mgrs, true
			p.InSync = false
			return
		}
	}
	if err != nil {
		p.Err = m.objErr(app, t.ref, "dry-run apply", redact(err, t.obj))
		return
	}
	if len(mgrs) > 0 {
		if dry, err = afterTakeover(dry, m.opts.TakeOver); err != nil {
			p.Err = m.objErr(app, t.ref, "dry-run apply", err)
			return
		}
		p.TakenOver = mgrs
	}
	p.Merged = dry
	p.InSync = equalButRevision(dry, t.live)
}

// Exists reports whether an object is on the cluster (a kind that is not served
// means it is not).
func (m *Manager) Exists(ctx context.Context, ref ObjectRef) (bool, error) {
	mapping, err := m.cluster.Mapping(ref.GVK())
	if err != nil {
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return false, err
	}
	_, err = m.resource(mapping, ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
