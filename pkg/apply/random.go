package apply

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Random output: a chart that calls randAlphaNum renders a new password each
// time. When a request's InputsDigest equals the inputs of the last
// successful apply, nothing the object is made from changed, so an object
// whose content differs from what that apply wrote is random output: the
// live object is kept (not re-applied), which keeps the password and does not
// restart the workload. Objects whose content is the same are applied as
// usual (drift is still corrected), and an object missing on the cluster is
// created.

// objectDigest is a short digest of one object's desired content (the
// revision annotation left out, as Digest does).
func objectDigest(u *unstructured.Unstructured) string {
	d := Digest([]*unstructured.Unstructured{u})
	return strings.TrimPrefix(d, "sha256:")[:16]
}

// stableInputs reports whether the request renders from the same inputs as
// the last successful apply recorded in inv.
func stableInputs(inv *Inventory, req Request) bool {
	return req.InputsDigest != "" && inv != nil && inv.Inputs == req.InputsDigest && inv.succeededDigest() != ""
}

// markRandom flags the targets whose content differs from the last
// successful apply although the inputs did not change.
func markRandom(inv *Inventory, req Request, targets []*target) {
	if !stableInputs(inv, req) {
		return
	}
	for _, t := range targets {
		if old, ok := inv.ObjectDigests[t.ref.key()]; ok && old != objectDigest(t.obj) {
			t.random = true
		}
	}
}

// objectDigests is what the new inventory records: each target's digest, or,
// for random output that was kept, the digest of what is live.
func objectDigests(inv *Inventory, req Request, targets []*target) map[string]string {
	if req.InputsDigest == "" {
		return nil
	}
	out := make(map[string]string, len(targets))
	for _, t := range targets {
		if t.random && inv != nil {
			out[t.ref.key()] = inv.ObjectDigests[t.ref.key()]
			continue
		}
		out[t.ref.key()] = objectDigest(t.obj)
	}
	return out
}

// randomReason explains a kept object in the ChangeSet.
const randomReason = "random output (the render inputs are unchanged since the last successful apply): the live object is kept"

// markChanged marks the targets whose object digest differs from the one the
// inventory recorded at the last successful apply: git changed them, so a
// dry run to learn whether the apply changes anything would only add a
// request. Objects without a recorded digest keep the dry run.
func markChanged(inv *Inventory, targets []*target, digests map[string]string) {
	if inv == nil || len(inv.ObjectDigests) == 0 || digests == nil {
		return
	}
	for _, t := range targets {
		k := t.ref.key()
		if old := inv.ObjectDigests[k]; old != "" && digests[k] != old {
			t.changed = true
		}
	}
}
