package apply

import (
	"fmt"
	"reflect"
	"testing"
)

// FuzzDecodeInventory feeds arbitrary ConfigMap data (a person's edit, a
// truncated write) to the inventory decoder: it never panics, and whatever
// it accepts survives an encode and a decode unchanged (what Apply writes
// back is what it read).
func FuzzDecodeInventory(f *testing.F) {
	f.Add("web", "r1", `[{"version":"v1","kind":"ConfigMap","namespace":"ns","name":"a"}]`, `[{"revision":"r0","digest":"d0","time":"2026-01-02T03:04:05Z"}]`, "2026-01-02T03:04:05Z", `{"a|b":"c"}`, `[]`)
	f.Add("", "", "", "", "", "", "")
	f.Add("x", "r", "[{not json", "null", "yesterday", "{", `[{"revision":1}]`)
	f.Fuzz(func(t *testing.T, app, rev, objects, history, appliedAt, digests, holds string) {
		data := map[string]string{"app": app, "revision": rev, "digest": "d", "objects": objects, "history": history,
			"appliedAt": appliedAt, "objectDigests": digests, "holds": holds, "prune": "true"}
		inv, err := decodeInventory(data)
		if err != nil {
			return
		}
		enc, err := encodeInventory(inv)
		if err != nil {
			t.Fatalf("encode of a decoded inventory: %v", err)
		}
		again, err := decodeInventory(enc)
		if err != nil {
			t.Fatalf("decode of an encoded inventory: %v\n%v", err, enc)
		}
		if !reflect.DeepEqual(normalizeInv(inv), normalizeInv(again)) {
			t.Fatalf("round trip changed the inventory:\n%+v\n%+v", inv, again)
		}
	})
}

// normalizeInv makes empty and nil collections compare equal.
func normalizeInv(inv *Inventory) Inventory {
	out := *inv
	if len(out.Objects) == 0 {
		out.Objects = nil
	}
	if len(out.History) == 0 {
		out.History = nil
	}
	if len(out.Holds) == 0 {
		out.Holds = nil
	}
	if len(out.Images) == 0 {
		out.Images = nil
	}
	if len(out.ObjectDigests) == 0 {
		out.ObjectDigests = nil
	}
	return out
}

// TestLargeInventoryFits: the inventory of an app of 10,000 objects (and of
// 20,000) is stored gzipped under the ConfigMap limit of 1 MiB and reads back
// the same; a small one stays plain.
func TestLargeInventoryFits(t *testing.T) {
	for _, n := range []int{10, 10_000, 20_000} {
		inv := &Inventory{App: "big", Revision: "r", Digest: "sha256:x", ObjectDigests: map[string]string{}}
		for i := range n {
			ref := ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "big-namespace", Name: fmt.Sprintf("config-%06d", i)}
			inv.Objects = append(inv.Objects, ref)
			inv.ObjectDigests[ref.key()] = fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15)
		}
		data, err := encodeInventory(inv)
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for k, v := range data {
			size += len(k) + len(v)
		}
		_, gz := data["objects.gz"]
		t.Logf("%d objects: %d bytes stored (gzipped: %v)", n, size, gz)
		if size > 1<<20 {
			t.Errorf("%d objects: the inventory takes %d bytes, over the 1 MiB of a ConfigMap", n, size)
		}
		if gz != (n >= 10_000) {
			t.Errorf("%d objects: gzipped %v", n, gz)
		}
		back, err := decodeInventory(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Objects, inv.Objects) || !reflect.DeepEqual(back.ObjectDigests, inv.ObjectDigests) {
			t.Errorf("%d objects: the inventory does not read back the same", n)
		}
	}
}
