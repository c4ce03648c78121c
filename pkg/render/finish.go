package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// clusterScoped lists the built-in cluster-scoped kinds by group/kind, one
// map for every caller, never changed: a cluster whose CRDs or discovery
// add kinds gets a copy. Any other kind is taken as namespaced.
var clusterScoped = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, gk := range []string{
		"/Namespace", "/Node", "/PersistentVolume", "/ComponentStatus",
		"apiextensions.k8s.io/CustomResourceDefinition",
		"apiregistration.k8s.io/APIService",
		"rbac.authorization.k8s.io/ClusterRole", "rbac.authorization.k8s.io/ClusterRoleBinding",
		"storage.k8s.io/StorageClass", "storage.k8s.io/CSIDriver", "storage.k8s.io/CSINode",
		"storage.k8s.io/VolumeAttachment", "storage.k8s.io/VolumeAttributesClass",
		"scheduling.k8s.io/PriorityClass", "node.k8s.io/RuntimeClass",
		"networking.k8s.io/IngressClass", "networking.k8s.io/IPAddress", "networking.k8s.io/ServiceCIDR",
		"admissionregistration.k8s.io/ValidatingWebhookConfiguration",
		"admissionregistration.k8s.io/MutatingWebhookConfiguration",
		"admissionregistration.k8s.io/ValidatingAdmissionPolicy",
		"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding",
		"admissionregistration.k8s.io/MutatingAdmissionPolicy",
		"admissionregistration.k8s.io/MutatingAdmissionPolicyBinding",
		"certificates.k8s.io/CertificateSigningRequest", "certificates.k8s.io/ClusterTrustBundle",
		"flowcontrol.apiserver.k8s.io/FlowSchema", "flowcontrol.apiserver.k8s.io/PriorityLevelConfiguration",
		"resource.k8s.io/DeviceClass", "resource.k8s.io/ResourceSlice",
		"policy/PodSecurityPolicy",
		// well-known cluster-scoped kinds of popular CRDs, for offline renders
		"gateway.networking.k8s.io/GatewayClass", "cert-manager.io/ClusterIssuer",
		"external-secrets.io/ClusterSecretStore", "external-secrets.io/ClusterExternalSecret",
		"kyverno.io/ClusterPolicy", "kyverno.io/ClusterCleanupPolicy",
		"snapshot.storage.k8s.io/VolumeSnapshotClass", "snapshot.storage.k8s.io/VolumeSnapshotContent",
		"karpenter.sh/NodePool", "karpenter.sh/NodeClaim", "templates.gatekeeper.sh/ConstraintTemplate",
	} {
		m[gk] = true
	}
	return m
})

// builtinKinds are the group/kinds of every built-in API type (client-go's
// scheme); their scope is the table above (listed: cluster-scoped).
var builtinKinds = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for gvk := range scheme.Scheme.AllKnownTypes() {
		if !strings.HasSuffix(gvk.Kind, "List") && !strings.HasSuffix(gvk.Kind, "Options") {
			m[gvk.Group+"/"+gvk.Kind] = true
		}
	}
	return m
})

// namespacedKinds are well-known namespaced kinds of popular CRDs: offline
// they are namespaced without a warning.
var namespacedKinds = map[string]bool{
	"monitoring.coreos.com/ServiceMonitor": true, "monitoring.coreos.com/PodMonitor": true,
	"monitoring.coreos.com/PrometheusRule": true, "monitoring.coreos.com/Prometheus": true,
	"monitoring.coreos.com/Alertmanager": true, "monitoring.coreos.com/Probe": true,
	"cert-manager.io/Certificate": true, "cert-manager.io/Issuer": true,
	"gateway.networking.k8s.io/Gateway": true, "gateway.networking.k8s.io/HTTPRoute": true,
	"gateway.networking.k8s.io/GRPCRoute": true, "gateway.networking.k8s.io/ReferenceGrant": true,
	"external-secrets.io/ExternalSecret": true, "external-secrets.io/SecretStore": true,
	"autoscaling.k8s.io/VerticalPodAutoscaler": true, "keda.sh/ScaledObject": true,
	"policy.linkerd.io/Server": true, "networking.istio.io/VirtualService": true,
	"networking.istio.io/DestinationRule": true, "cluster.x-k8s.io/MachineDeployment": true,
	"cluster.x-k8s.io/Cluster": true, "argoproj.io/Rollout": true,
}

func gkOf(o object) string { return groupOf(str(o, "apiVersion")) + "/" + str(o, "kind") }

// clusterFacts is what finishing an app needs to know about its cluster.
type clusterFacts struct {
	cluster  *v1alpha1.Cluster
	scoped   map[string]bool   // group/kind -> cluster-scoped
	nsOwner  map[string]string // namespace -> app that creates the Namespace object
	explicit map[string]bool   // Namespaces some app renders itself
}

// renderAll renders every pair, then runs the per-cluster steps of every
// cluster (the scope of a kind may come from a CRD any pair of the fleet
// renders, so finishing waits for every render). It checks for objects
// produced by two apps on one cluster.
func (run *renderRun) renderAll(ctx context.Context, jobs []*pairJob) []ClusterResult {
	byCluster := map[string][]*pairJob{}
	var order []string
	for _, j := range jobs {
		n := j.cluster.Metadata.Name
		if _, ok := byCluster[n]; !ok {
			order = append(order, n)
		}
		byCluster[n] = append(byCluster[n], j)
	}
	sort.Strings(order)
	// Concurrency workers take the pairs in order. A pair whose render
	// another worker is running waits for it without holding a worker: it
	// takes the flight's result once every worker is done.
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(run.r.opts.Concurrency, len(jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				run.renderJob(ctx, jobs[i])
			}
		})
	}
	wg.Wait()
	for _, j := range jobs {
		if f := j.waits; f != nil {
			j.waits = nil
			if j.src, j.err = f.src, f.err; f.err != nil {
				j.err = pairErr(j.cluster, j.app, f.err)
			}
		}
	}
	fleetCRDs := map[string]bool{}
	for _, j := range jobs {
		if j.src != nil {
			maps.Copy(fleetCRDs, j.src.crdScopes)
		}
	}
	out := make([]ClusterResult, len(order))
	shared := newSharedFinishes()
	for _, n := range order {
		l := byCluster[n]
		sort.Slice(l, func(i, j int) bool { return l[i].app.Metadata.Name < l[j].app.Metadata.Name })
	}
	next.Store(0)
	for range min(run.r.opts.Concurrency, len(order)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(order) {
					return
				}
				out[i] = ClusterResult{Cluster: order[i], Apps: run.finishCluster(byCluster[order[i]], fleetCRDs, shared)}
			}
		})
	}
	wg.Wait()
	return out
}

// renderJob renders one pair's source into j.src (or j.err), or leaves in
// j.waits the flight of another pair with the same render.
func (run *renderRun) renderJob(ctx context.Context, j *pairJob) {
	if j.err != nil {
		return
	}
	if err := ctx.Err(); err != nil {
		j.err = pairErr(j.cluster, j.app, err)
		return
	}
	j.src, j.waits, j.err = run.renderPair(ctx, j.cluster, j.app)
}

// finishCluster runs the per-cluster steps of every app of one cluster.
// Pairs of other clusters of the same Render with the same inputs to these
// steps (see clusterKey) share one result through shared: the same objects,
// so that they are also encoded once.
func (run *renderRun) finishCluster(jobs []*pairJob, fleetCRDs map[string]bool, shared *sharedFinishes) []AppResult {
	c := jobs[0].cluster
	facts := &clusterFacts{cluster: c, scoped: clusterScoped(), nsOwner: map[string]string{}, explicit: map[string]bool{}}
	// Scopes, weakest first: the built-in table, CRDs anywhere in the
	// fleet's render, CRDs of this cluster's apps, the cluster's discovery.
	extra := maps.Clone(fleetCRDs)
	for _, j := range jobs {
		if j.src == nil {
			continue
		}
		for _, ns := range j.src.namespaces {
			facts.explicit[ns] = true
		}
		maps.Copy(extra, j.src.crdScopes)
	}
	maps.Copy(extra, run.scopes[c.Metadata.Name])
	var crds []string
	for gk, cs := range extra {
		if known, ok := facts.scoped[gk]; !ok || known != cs {
			if crds == nil {
				facts.scoped = maps.Clone(facts.scoped)
			}
			facts.scoped[gk] = cs
			crds = append(crds, gk+"="+strconv.FormatBool(cs))
		}
	}
	// The Namespace object of spec.namespace goes to the first app (by name)
	// targeting the cluster with that namespace, unless a rendered app has it.
	for _, a := range run.repo.Apps {
		ns := a.Spec.Namespace
		if _, taken := facts.nsOwner[ns]; ns != "" && !taken && run.match.matches(a.Spec.Targets.ClusterSelector, c) {
			facts.nsOwner[ns] = a.Metadata.Name
		}
	}
	ckey, skey, kerr := run.clusterKey(facts, crds)
	pairs := make([]AppResult, len(jobs))
	ids := make([][]string, len(jobs))
	for i, j := range jobs {
		name := j.app.Metadata.Name
		pairs[i] = AppResult{App: name, Err: j.err}
		if j.err != nil {
			continue
		}
		ns := j.app.Spec.Namespace
		autoNS := ns != "" && facts.nsOwner[ns] == name && !facts.explicit[ns]
		// name|namespace|autoNS|render: with ckey the pair's key, with skey
		// the key of pairs of other clusters with the same per-cluster inputs.
		pairPart := "|" + name + "|" + ns + "|" + strconv.FormatBool(autoNS) + "|"
		id := strconv.FormatUint(j.src.id, 10)
		key := ckey + pairPart + id
		slot := c.Metadata.Name + "/" + name
		if kerr == nil {
			// The key names the source render, so the digest of a pair found
			// under it is the one stored with it.
			if objs, oids, warns, digest, ok := run.r.finished.get(slot, key, run.revision); ok {
				pairs[i].Objects, ids[i], pairs[i].Warnings, pairs[i].InputsDigest = objs, oids, warns, digest
				continue
			}
			pairs[i].InputsDigest = inputsDigest(ckey + pairPart + j.src.inputs)
		}
		shareKey := skey + pairPart + id
		if kerr == nil {
			if f := shared.get(shareKey); f != nil {
				run.r.finished.put(slot, key, pairs[i].InputsDigest, f)
				pairs[i].Objects, ids[i], pairs[i].Warnings = f.at(run.revision), f.ids, f.warnings
				continue
			}
		}
		base, warns, err := run.finishApp(facts, j.app, j.src.objs, autoNS)
		if err != nil {
			pairs[i].Err = pairErr(c, j.app, err)
			continue
		}
		warns = append(append([]string(nil), j.src.warnings...), warns...)
		f := &finished{base: base, ids: objectIDs(base), revision: run.revision, stamped: stamp(base, run.revision), warnings: warns}
		if kerr == nil {
			f = shared.put(shareKey, f)
			run.r.finished.put(slot, key, pairs[i].InputsDigest, f)
		}
		pairs[i].Objects, ids[i], pairs[i].Warnings = f.at(run.revision), f.ids, f.warnings
	}
	checkDuplicates(c.Metadata.Name, pairs, ids)
	return pairs
}

func inputsDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// clusterKey fingerprints what the per-cluster steps of every app on the
// cluster depend on, besides the app itself and its source render. The
// second key leaves out the cluster's name, which none of these steps reads
// (storage classes and node pools come from the spec, the scale policies
// that apply are listed): clusters with equal second keys get equal results.
func (run *renderRun) clusterKey(f *clusterFacts, crds []string) (string, string, error) {
	type policy struct {
		Name   string                   `json:"name"`
		Spec   v1alpha1.ScalePolicySpec `json:"spec"`
		Attach string                   `json:"attach"`
	}
	var policies []policy
	for _, p := range run.repo.ScalePolicies {
		if run.match.matches(p.Spec.Targets.ClusterSelector, f.cluster) {
			policies = append(policies, policy{p.Metadata.Name, p.Spec, run.nodePoolApp(p, f.cluster)})
		}
	}
	sort.Strings(crds)
	explicit := make([]string, 0, len(f.explicit))
	for ns := range f.explicit {
		explicit = append(explicit, ns)
	}
	sort.Strings(explicit)
	// The cluster's spec, once per cluster and Render; the rest is short.
	spec, err := run.fingerprint(&f.cluster.Spec)
	if err != nil {
		return "", "", err
	}
	rest, err := json.Marshal(map[string]any{"crds": crds, "explicit": explicit, "policies": policies})
	if err != nil {
		return "", "", err
	}
	anyCluster := sha256.Sum256([]byte(spec + "\x00" + string(rest)))
	h := sha256.Sum256([]byte(f.cluster.Metadata.Name + "\x00" + hex.EncodeToString(anyCluster[:])))
	return hex.EncodeToString(h[:]), hex.EncodeToString(anyCluster[:]), nil
}

// sharedFinishes holds the finished pairs of one Render by their key without
// the cluster's name.
type sharedFinishes struct {
	mu sync.Mutex
	m  map[string]*finished
}

func newSharedFinishes() *sharedFinishes { return &sharedFinishes{m: map[string]*finished{}} }

func (s *sharedFinishes) get(key string) *finished {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// put keeps f under key and returns it, or the result another cluster kept
// there meanwhile.
func (s *sharedFinishes) put(key string, f *finished) *finished {
	s.mu.Lock()
	defer s.mu.Unlock()
	if had, ok := s.m[key]; ok {
		return had
	}
	s.m[key] = f
	return f
}

// finishCache keeps the finished objects of the latest renders of each
// (cluster, app) without the revision annotation, and the last revision
// stamped on them: an unchanged pair at the same revision costs nothing, at
// a new revision only a shallow copy of each object's metadata. Pairs that
// shared a result (finishCluster) share the entry, and so the stamped copy.
type finishCache struct {
	mu sync.Mutex
	m  map[string][]finishSlot
}

type finishSlot struct {
	key    string
	digest string // the pair's InputsDigest
	f      *finished
}

type finished struct {
	base     []*unstructured.Unstructured // no revision annotation; never changed
	ids      []string                     // objectIDs(base)
	warnings []string

	mu       sync.Mutex // guards revision and stamped
	revision string
	stamped  []*unstructured.Unstructured
}

// at returns the objects stamped with revision.
func (f *finished) at(revision string) []*unstructured.Unstructured {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revision != revision {
		f.revision, f.stamped = revision, stamp(f.base, revision)
	}
	return f.stamped
}

// maxFinishedPerPair keeps two versions per pair: the base and head of a plan.
const maxFinishedPerPair = 2

func newFinishCache() *finishCache { return &finishCache{m: map[string][]finishSlot{}} }

func (c *finishCache) get(slot, key, revision string) (objs []*unstructured.Unstructured, ids, warnings []string, digest string, ok bool) {
	c.mu.Lock()
	var hit finishSlot
	for _, e := range c.m[slot] {
		if e.key == key {
			hit = e
			break
		}
	}
	c.mu.Unlock()
	if hit.f == nil {
		return nil, nil, nil, "", false
	}
	return hit.f.at(revision), hit.f.ids, hit.f.warnings, hit.digest, true
}

func (c *finishCache) put(slot, key, digest string, f *finished) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := append([]finishSlot{{key: key, digest: digest, f: f}}, c.m[slot]...)
	if len(l) > maxFinishedPerPair {
		l = l[:maxFinishedPerPair]
	}
	c.m[slot] = l
}

// stamp returns the objects with the revision annotation, copying only the
// maps on the way to it (the rest is shared, read-only).
func stamp(objs []*unstructured.Unstructured, revision string) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, u := range objs {
		o := maps.Clone(u.Object)
		if o == nil {
			o = map[string]any{}
		}
		md, _ := o["metadata"].(map[string]any)
		md = maps.Clone(md)
		if md == nil {
			md = map[string]any{}
		}
		ann, _ := md["annotations"].(map[string]any)
		ann = maps.Clone(ann)
		if ann == nil {
			ann = map[string]any{}
		}
		ann[v1alpha1.AnnotationRevision] = revision
		md["annotations"] = ann
		o["metadata"] = md
		out[i] = &unstructured.Unstructured{Object: o}
	}
	return out
}

// finishApp copies the shared render and applies the per-cluster steps.
func (run *renderRun) finishApp(f *clusterFacts, app *v1alpha1.App, shared []object, autoNS bool) ([]*unstructured.Unstructured, []string, error) {
	objs := make([]object, 0, len(shared)+2)
	for _, o := range shared {
		objs = append(objs, runtime.DeepCopyJSON(o))
	}
	var warns []string
	ns := app.Spec.Namespace
	if ns != "" {
		unknown := map[string]bool{}
		for _, o := range objs {
			gk := gkOf(o)
			if str(o, "metadata", "namespace") != "" {
				continue
			}
			cs, known := f.scoped[gk]
			if !known && !builtinKinds()[gk] && !namespacedKinds[gk] && !unknown[gk] {
				unknown[gk] = true
				warns = append(warns, fmt.Sprintf("%s %s: the scope of kind %s is unknown here (not a built-in kind, no CRD for it in the fleet's render, the cluster not connected): taken as namespaced (%s); connected commands use the cluster's discovery", str(o, "kind"), str(o, "metadata", "name"), strings.TrimPrefix(gk, "/"), ns))
			}
			if !cs {
				child(o, "metadata")["namespace"] = ns
			}
		}
		if autoNS {
			objs = append(objs, object{
				"apiVersion": "v1", "kind": "Namespace",
				"metadata": map[string]any{"name": ns},
			})
		}
	}
	for _, o := range objs {
		if err := mapStorage(f.cluster, o); err != nil {
			return nil, nil, err
		}
	}
	extra, err := run.scaleObjects(f.cluster, app, objs)
	if err != nil {
		return nil, nil, err
	}
	objs = append(objs, extra...)
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		md := child(o, "metadata")
		child(md, "labels")[v1alpha1.LabelApp] = app.Metadata.Name
		out[i] = &unstructured.Unstructured{Object: o}
	}
	sortObjects(out, f.scoped)
	return out, warns, nil
}

// rank orders objects for apply: CRDs, Namespaces, other cluster-scoped, namespaced.
func rank(u *unstructured.Unstructured, scoped map[string]bool) int {
	gk := groupOf(u.GetAPIVersion()) + "/" + u.GetKind()
	switch {
	case gk == "apiextensions.k8s.io/CustomResourceDefinition":
		return 0
	case gk == "/Namespace":
		return 1
	case scoped[gk]:
		return 2
	}
	return 3
}

func sortObjects(objs []*unstructured.Unstructured, scoped map[string]bool) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if ra, rb := rank(a, scoped), rank(b, scoped); ra != rb {
			return ra < rb
		}
		ka := []string{a.GetKind(), a.GetNamespace(), a.GetName(), a.GetAPIVersion()}
		kb := []string{b.GetKind(), b.GetNamespace(), b.GetName(), b.GetAPIVersion()}
		for k := range ka {
			if ka[k] != kb[k] {
				return ka[k] < kb[k]
			}
		}
		return false
	})
}

// objectIDs returns the group/kind/namespace/name of each object.
func objectIDs(objs []*unstructured.Unstructured) []string {
	ids := make([]string, len(objs))
	for i, u := range objs {
		ids[i] = groupOf(u.GetAPIVersion()) + "/" + u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
	}
	return ids
}

// checkDuplicates fails every pair of a cluster whose objects another app
// of the same cluster also renders (same group, kind, namespace, name);
// ids[i] is objectIDs(pairs[i].Objects).
func checkDuplicates(cluster string, pairs []AppResult, ids [][]string) {
	n := 0
	for _, l := range ids {
		n += len(l)
	}
	owner := make(map[string]int, n)
	dup := map[int][]string{}
	for i, p := range pairs {
		if p.Err != nil {
			continue
		}
		for _, id := range ids[i] {
			first, seen := owner[id]
			if !seen {
				owner[id] = i
				continue
			}
			what := strings.TrimPrefix(id, "/")
			if first == i {
				dup[i] = append(dup[i], what+" is rendered twice")
				continue
			}
			dup[first] = append(dup[first], fmt.Sprintf("%s is also rendered by app %s", what, pairs[i].App))
			dup[i] = append(dup[i], fmt.Sprintf("%s is also rendered by app %s", what, pairs[first].App))
		}
	}
	for i, msgs := range dup {
		p := &pairs[i]
		p.Err = fmt.Errorf("%s/%s: duplicate objects: %s", cluster, p.App, strings.Join(msgs, "; "))
		p.Objects = nil
	}
}
