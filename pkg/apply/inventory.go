package apply

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Inventory is what fleetsync applied for one app on one cluster. It is stored in
// the cluster, in ConfigMap fleetsync-system/fleetsync-inv-<app>.
type Inventory struct {
	App string `json:"app"`
	// Fleet names the fleet (fleet.yaml metadata.name, may be empty) that applied it.
	Fleet string `json:"fleet,omitempty"`
	// Revision is the revision of the last apply.
	Revision string `json:"revision"`
	// Digest is the digest of the last applied desired set (see Digest).
	Digest string `json:"digest"`
	// Objects are the objects fleetsync manages for the app, in apply order.
	Objects []ObjectRef `json:"objects"`
	// Prune is the app's prune setting at the last apply (used when the app
	// disappears from the cluster's desired state).
	Prune bool `json:"prune"`
	// History holds the last healthy revisions, newest first.
	History []HistoryEntry `json:"history,omitempty"`
	// AppliedAt is when Digest was first applied (a health deadline starts
	// there); re-applying the same digest keeps it.
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// Holds are revisions that failed here and were rolled back: a rollout
	// does not apply them again (see pkg/rollout).
	Holds []Hold `json:"holds,omitempty"`
	// Images pins each image reference of the applied revision (as written in
	// the repo) to the digest it was mirrored with; SourceDigest is the digest
	// of the desired set before the references were rewritten. A rollout of the
	// same output reuses these pins on every cluster (one digest per rollout).
	Images       map[string]string `json:"images,omitempty"`
	SourceDigest string            `json:"sourceDigest,omitempty"`
	// Succeeded is the digest of the last apply that finished without error,
	// its hooks included; hooks run only when the desired digest differs
	// from it (see hooks.go).
	Succeeded string `json:"succeeded,omitempty"`
	// Inputs is the Request.InputsDigest of the last successful apply, and
	// ObjectDigests the digest of each object it applied (by ObjectRef key):
	// together they tell random output from a change (see random.go).
	Inputs        string            `json:"inputs,omitempty"`
	ObjectDigests map[string]string `json:"objectDigests,omitempty"`
}

// installed reports whether the app was ever applied successfully here: an
// inventory with a successful apply or a healthy revision. Hooks of an app
// that is not installed run in the install phases.
func (inv *Inventory) installed() bool {
	return inv != nil && (inv.Succeeded != "" || len(inv.History) > 0)
}

// succeededDigest is the digest of the last successful apply; an inventory
// written before Succeeded was recorded falls back to its newest healthy
// revision.
func (inv *Inventory) succeededDigest() string {
	if inv.Succeeded == "" && len(inv.History) > 0 {
		return inv.History[0].Digest
	}
	return inv.Succeeded
}

// Hold is a revision of the app that failed on this cluster and was rolled back.
type Hold struct {
	Revision string    `json:"revision"`
	Digest   string    `json:"digest"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
}

// HistoryEntry is one healthy revision.
type HistoryEntry struct {
	Revision string    `json:"revision"`
	Digest   string    `json:"digest"`
	Time     time.Time `json:"time"`
	// Images are the image pins of that revision (for a rollback to it).
	Images map[string]string `json:"images,omitempty"`
}

// LastHealthy returns the newest healthy revision other than skip, if any (the
// revision to roll back to).
func (inv *Inventory) LastHealthy(skip string) (HistoryEntry, bool) {
	if inv == nil {
		return HistoryEntry{}, false
	}
	for _, h := range inv.History {
		if h.Revision != skip {
			return h, true
		}
	}
	return HistoryEntry{}, false
}

// InventoryName is the ConfigMap name of an app's inventory.
func InventoryName(app string) string { return InventoryPrefix + app }

// Digest is the sha256 of a desired set (canonical JSON of each object, in
// order), without the fleetsync.dev/revision annotation: a commit that does
// not change an app's output gives the same digest, so its rollout goes on.
func Digest(objs []*unstructured.Unstructured) string {
	h := sha256.New()
	for _, o := range objs {
		b, err := json.Marshal(withoutRevision(o.Object)) // map keys are sorted: deterministic
		if err != nil {
			fmt.Fprintf(h, "unencodable %s\n", RefOf(o))
			continue
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// withoutRevision returns obj without the revision annotation, sharing what
// it does not change.
func withoutRevision(obj map[string]any) map[string]any {
	md, _ := obj["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	if _, ok := ann[v1alpha1.AnnotationRevision]; !ok {
		return obj
	}
	ann2 := make(map[string]any, len(ann))
	for k, v := range ann {
		if k != v1alpha1.AnnotationRevision {
			ann2[k] = v
		}
	}
	md2 := make(map[string]any, len(md))
	for k, v := range md {
		md2[k] = v
	}
	if len(ann2) == 0 {
		delete(md2, "annotations")
	} else {
		md2["annotations"] = ann2
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	out["metadata"] = md2
	return out
}

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// Inventory reads an app's inventory; it returns nil, nil when there is none.
func (m *Manager) Inventory(ctx context.Context, app string) (*Inventory, error) {
	cm, err := m.cluster.Dynamic.Resource(configMapGVR).Namespace(m.opts.InventoryNamespace).Get(ctx, InventoryName(app), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s/%s: read inventory ConfigMap/%s/%s: %w", m.cluster.Name, app, m.opts.InventoryNamespace, InventoryName(app), err)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	inv, err := decodeInventory(data)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: inventory ConfigMap/%s/%s: %w", m.cluster.Name, app, m.opts.InventoryNamespace, InventoryName(app), err)
	}
	return inv, nil
}

func decodeInventory(data map[string]string) (*Inventory, error) {
	inv := &Inventory{App: data["app"], Revision: data["revision"], Digest: data["digest"], Prune: data["prune"] == "true", Fleet: data["fleet"]}
	objects, err := getLarge(data, "objects")
	if err != nil {
		return nil, err
	}
	if s := objects; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.Objects); err != nil {
			return nil, fmt.Errorf("key objects: %w", err)
		}
	}
	if s := data["history"]; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.History); err != nil {
			return nil, fmt.Errorf("key history: %w", err)
		}
	}
	if s := data["appliedAt"]; s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, fmt.Errorf("key appliedAt: %w", err)
		}
		inv.AppliedAt = t
	}
	if s := data["holds"]; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.Holds); err != nil {
			return nil, fmt.Errorf("key holds: %w", err)
		}
	}
	if s := data["images"]; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.Images); err != nil {
			return nil, fmt.Errorf("key images: %w", err)
		}
	}
	inv.SourceDigest = data["sourceDigest"]
	inv.Succeeded = data["succeeded"]
	inv.Inputs = data["inputs"]
	digests, err := getLarge(data, "objectDigests")
	if err != nil {
		return nil, err
	}
	if s := digests; s != "" {
		if err := json.Unmarshal([]byte(s), &inv.ObjectDigests); err != nil {
			return nil, fmt.Errorf("key objectDigests: %w", err)
		}
	}
	return inv, nil
}

func encodeInventory(inv *Inventory) (map[string]string, error) {
	var objs bytes.Buffer
	objs.WriteString("[\n")
	for i, r := range inv.Objects {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		objs.Write(b)
		if i < len(inv.Objects)-1 {
			objs.WriteString(",")
		}
		objs.WriteString("\n")
	}
	objs.WriteString("]\n")
	data := map[string]string{
		"app":      inv.App,
		"revision": inv.Revision,
		"digest":   inv.Digest,
		"prune":    strconv.FormatBool(inv.Prune),
	}
	if err := putLarge(data, "objects", objs.Bytes()); err != nil {
		return nil, err
	}
	if inv.Fleet != "" {
		data["fleet"] = inv.Fleet
	}
	if len(inv.History) > 0 {
		b, err := json.MarshalIndent(inv.History, "", "  ")
		if err != nil {
			return nil, err
		}
		data["history"] = string(b) + "\n"
	}
	if !inv.AppliedAt.IsZero() {
		data["appliedAt"] = inv.AppliedAt.UTC().Format(time.RFC3339)
	}
	if len(inv.Holds) > 0 {
		b, err := json.MarshalIndent(inv.Holds, "", "  ")
		if err != nil {
			return nil, err
		}
		data["holds"] = string(b) + "\n"
	}
	if len(inv.Images) > 0 {
		b, err := json.MarshalIndent(inv.Images, "", "  ")
		if err != nil {
			return nil, err
		}
		data["images"] = string(b) + "\n"
	}
	if inv.SourceDigest != "" {
		data["sourceDigest"] = inv.SourceDigest
	}
	if inv.Succeeded != "" {
		data["succeeded"] = inv.Succeeded
	}
	if inv.Inputs != "" {
		data["inputs"] = inv.Inputs
	}
	if len(inv.ObjectDigests) > 0 {
		b, err := json.Marshal(inv.ObjectDigests) // keys sorted: deterministic
		if err != nil {
			return nil, err
		}
		if err := putLarge(data, "objectDigests", append(b, '\n')); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// largeValue is the size from which a list of the inventory is stored
// gzipped (under KEY.gz, base64): a ConfigMap holds at most 1 MiB, and an
// app of 10,000 objects lists about 1.3 MB of references and digests
// (docs/apply.md). Smaller inventories stay readable with kubectl.
const largeValue = 128 << 10

// maxInflated bounds what a gzipped value may inflate to when read (a
// person's edit must not be a zip bomb).
const maxInflated = 64 << 20

func putLarge(data map[string]string, key string, b []byte) error {
	if len(b) < largeValue {
		data[key] = string(b)
		return nil
	}
	var z bytes.Buffer
	w, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	data[key+".gz"] = base64.StdEncoding.EncodeToString(z.Bytes())
	return nil
}

// getLarge returns the value of key, inflating KEY.gz when that is where it is.
func getLarge(data map[string]string, key string) (string, error) {
	gz, ok := data[key+".gz"]
	if !ok {
		return data[key], nil
	}
	raw, err := base64.StdEncoding.DecodeString(gz)
	if err != nil {
		return "", fmt.Errorf("key %s.gz: %w", key, err)
	}
	r, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("key %s.gz: %w", key, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return "", fmt.Errorf("key %s.gz: %w", key, err)
	}
	if len(b) > maxInflated {
		return "", fmt.Errorf("key %s.gz: inflates to more than %d MiB", key, maxInflated>>20)
	}
	return string(b), nil
}

// writeInventory stores inv unless it equals old; it creates the inventory
// namespace when missing.
func (m *Manager) writeInventory(ctx context.Context, old, inv *Inventory) error {
	if old != nil {
		a, errA := encodeInventory(old)
		b, errB := encodeInventory(inv)
		if errA == nil && errB == nil && reflect.DeepEqual(a, b) {
			return nil
		}
	}
	data, err := encodeInventory(inv)
	if err != nil {
		return fmt.Errorf("%s/%s: encode inventory: %w", m.cluster.Name, inv.App, err)
	}
	dataAny := map[string]any{}
	for k, v := range data {
		dataAny[k] = v
	}
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":      InventoryName(inv.App),
			"namespace": m.opts.InventoryNamespace,
			"labels":    map[string]any{"app.kubernetes.io/managed-by": "fleetsync", labelInventory: inv.App},
		},
		"data": dataAny,
	}}
	ri := m.cluster.Dynamic.Resource(configMapGVR).Namespace(m.opts.InventoryNamespace)
	opts := metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true}
	_, err = ri.Apply(ctx, cm.GetName(), cm, opts)
	if apierrors.IsNotFound(err) {
		if err := m.ensureNamespace(ctx, m.opts.InventoryNamespace); err != nil {
			return fmt.Errorf("%s/%s: inventory: %w", m.cluster.Name, inv.App, err)
		}
		_, err = ri.Apply(ctx, cm.GetName(), cm, opts)
	}
	if err != nil {
		return fmt.Errorf("%s/%s: write inventory ConfigMap/%s/%s: %w", m.cluster.Name, inv.App, m.opts.InventoryNamespace, cm.GetName(), err)
	}
	return nil
}

// RecordHealthy adds a revision to the front of the app's healthy history (at most
// HistoryLimit entries; an entry for the same revision and digest moves to the front).
func (m *Manager) RecordHealthy(ctx context.Context, app, revision, digest string) error {
	inv, err := m.Inventory(ctx, app)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("%s/%s: record healthy revision: no inventory", m.cluster.Name, app)
	}
	if len(inv.History) > 0 && inv.History[0].Revision == revision && inv.History[0].Digest == digest {
		return nil // already the newest: no write
	}
	hist := []HistoryEntry{{Revision: revision, Digest: digest, Time: time.Now().UTC().Truncate(time.Second)}}
	if inv.Digest == digest {
		hist[0].Images = inv.Images
	}
	for _, h := range inv.History {
		if h.Revision == revision && h.Digest == digest {
			continue
		}
		hist = append(hist, h)
	}
	if len(hist) > m.opts.HistoryLimit {
		hist = hist[:m.opts.HistoryLimit]
	}
	next := *inv
	next.History = hist
	return m.writeInventory(ctx, inv, &next)
}

// recordSucceeded stores the digest and inputs of a successful apply (after
// its post-* hooks ran).
func (m *Manager) recordSucceeded(ctx context.Context, app, digest, inputs string, digests map[string]string) error {
	inv, err := m.Inventory(ctx, app)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("%s/%s: record successful apply: no inventory", m.cluster.Name, app)
	}
	next := *inv
	next.Succeeded, next.Inputs, next.ObjectDigests = digest, inputs, digests
	return m.writeInventory(ctx, inv, &next)
}

// RecordHold adds a failed revision to the app's holds (once per digest; at
// most HistoryLimit, newest first).
func (m *Manager) RecordHold(ctx context.Context, app string, h Hold) error {
	inv, err := m.Inventory(ctx, app)
	if err != nil {
		return err
	}
	if inv == nil {
		return fmt.Errorf("%s/%s: record held revision: no inventory", m.cluster.Name, app)
	}
	for _, old := range inv.Holds {
		if old.Digest == h.Digest {
			return nil
		}
	}
	next := *inv
	next.Holds = append([]Hold{h}, inv.Holds...)
	if len(next.Holds) > m.opts.HistoryLimit {
		next.Holds = next.Holds[:m.opts.HistoryLimit]
	}
	return m.writeInventory(ctx, inv, &next)
}

// mergeRefs returns desired followed by the kept refs that are not desired, in
// stage order (stable).
func mergeRefs(desired, keep []ObjectRef) []ObjectRef {
	seen := map[string]bool{}
	var out []ObjectRef
	for _, list := range [][]ObjectRef{desired, keep} {
		for _, r := range list {
			if seen[r.key()] {
				continue
			}
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return refStage(out[i]) < refStage(out[j]) })
	return out
}

// refStage approximates an object's stage from its reference alone.
func refStage(r ObjectRef) int {
	gk := r.GVK().GroupKind()
	switch {
	case isCRD(gk):
		return stageCRD
	case isNamespace(gk):
		return stageNamespace
	case r.Namespace == "":
		return stageClusterScoped
	default:
		return stageNamespaced
	}
}

// labelInventory marks inventory ConfigMaps; its value is the app.
const labelInventory = "fleetsync.dev/inventory"

// Inventories returns the apps that have an inventory on the cluster, sorted.
func (m *Manager) Inventories(ctx context.Context) ([]string, error) {
	invs, _, err := m.listInventories(ctx)
	if err != nil {
		return nil, err
	}
	apps := make([]string, 0, len(invs))
	for app := range invs {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	return apps, nil
}

// AllInventories reads every inventory on the cluster with one list, sorted
// by app; an inventory that cannot be decoded is an error naming it.
func (m *Manager) AllInventories(ctx context.Context) ([]*Inventory, error) {
	invs, bad, err := m.listInventories(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Inventory, 0, len(invs))
	for app, inv := range invs {
		if inv == nil {
			return nil, bad[app]
		}
		out = append(out, inv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out, nil
}

// listInventories lists the inventory ConfigMaps and decodes them: app ->
// inventory (nil, with its error in bad, when it cannot be decoded).
func (m *Manager) listInventories(ctx context.Context) (map[string]*Inventory, map[string]error, error) {
	list, err := m.cluster.Dynamic.Resource(configMapGVR).Namespace(m.opts.InventoryNamespace).List(ctx, metav1.ListOptions{LabelSelector: labelInventory})
	if apierrors.IsNotFound(err) {
		return map[string]*Inventory{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cluster %s: list inventories in %s: %w", m.cluster.Name, m.opts.InventoryNamespace, err)
	}
	invs := map[string]*Inventory{}
	bad := map[string]error{}
	for i := range list.Items {
		cm := &list.Items[i]
		app := cm.GetLabels()[labelInventory]
		if app == "" || cm.GetName() != InventoryName(app) {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		inv, err := decodeInventory(data)
		if err != nil {
			bad[app] = fmt.Errorf("%s/%s: inventory ConfigMap/%s/%s: %w", m.cluster.Name, app, m.opts.InventoryNamespace, cm.GetName(), err)
		} else if inv.App == "" {
			inv.App = app
		}
		invs[app] = inv
	}
	return invs, bad, nil
}

// UninstallRequest is the request that removes an app no longer desired on a
// cluster: no objects, its inventory's fleet and revision, prune as the
// inventory says. Uninstall applies it; drift compares with it, so that both
// agree on what removal deletes.
func UninstallRequest(inv *Inventory) Request {
	return Request{App: inv.App, Fleet: inv.Fleet, Revision: inv.Revision, Prune: inv.Prune, AllowMassPrune: true}
}

// Uninstall handles an app that is no longer desired on the cluster at all (it
// left the repo, or no longer targets the cluster). When its inventory says
// prune, every object is pruned (the other prune rules hold: objects that
// opted out, moved to another app or still hold another app's objects stay).
// Without prune, the objects are left on the cluster. Either way the inventory
// is deleted once nothing in it is managed any more.
//
// Removing a whole app is deliberate, so the per-app mass-prune guard does not
// apply; the caller guards against accidents (pkg/reconcile refuses to remove
// more than half of a cluster's apps at once). Never call it when loading,
// fetching, rendering or validating the repo failed.
func (m *Manager) Uninstall(ctx context.Context, app string, dryRun bool) (*ChangeSet, error) {
	inv, err := m.Inventory(ctx, app)
	if err != nil || inv == nil {
		return &ChangeSet{Cluster: m.cluster.Name, App: app}, err
	}
	cs := &ChangeSet{Cluster: m.cluster.Name, App: app, Revision: inv.Revision}
	if inv.Prune {
		req := UninstallRequest(inv)
		req.DryRun = dryRun
		cs, err = m.Apply(ctx, req)
		if err != nil {
			return cs, err
		}
		if after, err := m.Inventory(ctx, app); err != nil || (after != nil && len(after.Objects) > 0) {
			return cs, err // failed deletes stay in the inventory
		}
	} else {
		for _, ref := range inv.Objects {
			cs.Changes = append(cs.Changes, Change{Cluster: m.cluster.Name, App: app, Object: ref, Action: Skipped,
				Reason: "the app left this cluster and does not prune: left on the cluster, no longer managed", DryRun: dryRun})
		}
	}
	if dryRun {
		return cs, nil
	}
	err = m.cluster.Dynamic.Resource(configMapGVR).Namespace(m.opts.InventoryNamespace).Delete(ctx, InventoryName(app), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return cs, fmt.Errorf("%s/%s: delete inventory: %w", m.cluster.Name, app, err)
	}
	return cs, nil
}
