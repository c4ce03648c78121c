package render

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeObjects: any input either fails or gives valid objects that
// survive an encode/decode round trip unchanged.
func FuzzDecodeObjects(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\n# Source: c/templates/x.yaml\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"))
	f.Add([]byte("---\n---\nnull\n"))
	f.Add([]byte("kind: ConfigMap\nmetadata: {name: 1}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {x: 1.5, y: 9007199254740993}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := decodeObjects(data, "fuzz")
		if err != nil {
			return
		}
		for _, o := range objs {
			if err := checkObject(o); err != nil {
				t.Fatalf("decoded an invalid object: %v", err)
			}
		}
		b, err := encodeYAML(objs)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := decodeObjects(b, "again")
		if err != nil {
			t.Fatalf("decode of encoded output: %v\n%s", err, b)
		}
		if d := cmp.Diff(objs, again); d != "" {
			t.Fatalf("round trip changed the objects:\n%s", d)
		}
	})
}
