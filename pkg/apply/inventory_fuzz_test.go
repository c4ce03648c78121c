package apply

import (
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
