package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one Kubernetes object as JSON-compatible data (numbers are
// int64 or float64), as unstructured.Unstructured holds it.
type object = map[string]any

// decodeObjects splits a YAML stream into objects, expanding v1 Lists and
// skipping empty documents. Every object must have apiVersion, kind and
// metadata.name; errors name the source (and Helm's "# Source:" template).
func decodeObjects(data []byte, source string) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, n, err)
		}
		where := docSource(doc, source, n)
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: not valid YAML: %w", where, err)
		}
		j = bytes.TrimSpace(j)
		if len(j) == 0 || string(j) == "null" {
			continue
		}
		var v any
		if err := utiljson.Unmarshal(j, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		o, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not a Kubernetes object (a YAML mapping)", where)
		}
		if out, err = appendObject(out, o, where); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendObject appends o to out, or the objects of o when it is a List (a
// v1 List, or any *List without a name of its own), after checking them.
func appendObject(out []object, o object, where string) ([]object, error) {
	items, hasItems := o["items"].([]any)
	isList := hasItems && (str(o, "kind") == "List" || strings.HasSuffix(str(o, "kind"), "List") && str(o, "metadata", "name") == "")
	if !isList {
		if err := checkObject(o); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return append(out, o), nil
	}
	for i, it := range items {
		item, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: items[%d]: not a Kubernetes object", where, i)
		}
		if err := checkObject(item); err != nil {
			return nil, fmt.Errorf("%s: items[%d]: %w", where, i, err)
		}
		out = append(out, item)
	}
	return out, nil
}

// docSource names a document: Helm's "# Source: chart/templates/x.yaml"
// comment when present, else the document number.
func docSource(doc []byte, source string, n int) string {
	for _, line := range strings.Split(string(doc), "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return source + ": " + t
		}
	}
	return fmt.Sprintf("%s: document %d", source, n)
}

// checkObject reports what an object lacks to be a valid Kubernetes object.
func checkObject(o object) error {
	var missing []string
	if str(o, "apiVersion") == "" {
		missing = append(missing, "apiVersion")
	}
	if str(o, "kind") == "" {
		missing = append(missing, "kind")
	}
	if str(o, "metadata", "name") == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("invalid object %s: missing %s", describe(o), strings.Join(missing, ", "))
	}
	return nil
}

// describe names an object as Kind/namespace/name, as far as it is known.
func describe(o object) string {
	kind, ns, name := str(o, "kind"), str(o, "metadata", "namespace"), str(o, "metadata", "name")
	if kind == "" {
		kind = "(no kind)"
	}
	if name == "" {
		name = "(no name)"
	}
	if ns != "" {
		return kind + "/" + ns + "/" + name
	}
	return kind + "/" + name
}

// str returns the string at a field path, or "".
func str(o object, fields ...string) string {
	v, _ := field(o, fields...)
	s, _ := v.(string)
	return s
}

// field returns the value at a field path.
func field(o object, fields ...string) (any, bool) {
	var cur any = o
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[f]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// child returns the map at key, creating it when absent.
func child(o object, key string) map[string]any {
	if m, ok := o[key].(map[string]any); ok {
		return m
	}
	m := map[string]any{}
	o[key] = m
	return m
}

// groupOf returns the API group of an apiVersion ("" for the core group).
func groupOf(apiVersion string) string {
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		return g
	}
	return ""
}

// encodeYAML writes objects as one YAML stream ("---" between documents),
// keys sorted, so equal objects give equal bytes: the bytes of
// sigs.k8s.io/yaml.Marshal, written by appendYAMLDoc when it can.
func encodeYAML(objs []object) ([]byte, error) {
	var buf []byte
	for i, o := range objs {
		if i > 0 {
			buf = append(buf, "---\n"...)
		}
		var ok bool
		if buf, ok = appendYAMLDoc(buf, o); ok {
			continue
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", describe(o), err)
		}
		buf = append(buf, b...)
	}
	return buf, nil
}
