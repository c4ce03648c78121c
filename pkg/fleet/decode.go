package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
	kjson "sigs.k8s.io/json"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// maxNodes bounds the YAML nodes one file may expand to (aliases included), so
// that an alias bomb cannot exhaust memory.
const maxNodes = 200_000

var (
	durationType = reflect.TypeFor[v1alpha1.Duration]()
	limitType    = reflect.TypeFor[v1alpha1.IntOrPercent]()
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// document is one parsed fleet file: its root mapping and the line of every field path.
type document struct {
	file  string
	root  *yaml.Node
	lines map[string]int
	// rejected holds the field paths that failed to decode; later checks of
	// those fields (or of fields inside them) are not reported twice.
	rejected map[string]bool
}

// isRejected reports whether field, or a field enclosing it, failed to decode.
func (d *document) isRejected(field string) bool {
	for field != "" {
		if d.rejected[field] {
			return true
		}
		i := max(strings.LastIndexByte(field, '.'), strings.LastIndexByte(field, '['))
		if i < 0 {
			return false
		}
		field = field[:i]
	}
	return false
}

// line returns the line of field, or of its closest enclosing field that has one.
func (d *document) line(field string) int {
	for {
		if l, ok := d.lines[field]; ok {
			return l
		}
		i := max(strings.LastIndexByte(field, '.'), strings.LastIndexByte(field, '['))
		if i < 0 {
			return d.lines[""]
		}
		field = field[:i]
	}
}

// parseDocument parses data as exactly one YAML document holding a mapping.
func parseDocument(file string, data []byte) (*document, []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []Problem{{File: file, Line: 1, Message: "the file is empty: want one object"}}
		}
		return nil, []Problem{yamlProblem(file, err)}
	}
	root := doc.Content[0]
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, []Problem{yamlProblem(file, err)}
	case len(next.Content) > 0 && next.Content[0].Tag == "!!null":
		// A trailing "---" is harmless.
	default:
		return nil, []Problem{{File: file, Line: next.Line, Message: "a second YAML document: a file holds exactly one object"}}
	}
	if root.Kind != yaml.MappingNode {
		return nil, []Problem{{File: file, Line: root.Line, Message: "want an object (a YAML mapping), found " + describe(root)}}
	}
	return &document{file: file, root: root, lines: map[string]int{"": root.Line}, rejected: map[string]bool{}}, nil
}

// yamlProblem turns a YAML syntax error into a problem at its line.
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Message: "invalid YAML: " + m[2]}
	}
	// yaml.v3 leaves the line out for errors on the first line.
	return Problem{File: file, Line: 1, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// topString returns the string value of a top-level key, and its line.
func (d *document) topString(key string) (string, int, bool) {
	for i := 0; i+1 < len(d.root.Content); i += 2 {
		k, v := d.root.Content[i], d.root.Content[i+1]
		if k.Value == key && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			return v.Value, k.Line, true
		}
	}
	return "", d.root.Line, false
}

// decodeInto checks the document against the Go type of into, field by field,
// then fills into. Every field that does not fit (unknown, wrong type, invalid
// duration, duplicate key) is a problem and is left out of into.
func (d *document) decodeInto(into any) []Problem {
	c := &converter{doc: d, budget: maxNodes}
	v, _ := c.value(d.root, reflect.TypeOf(into).Elem(), "")
	if c.exhausted {
		return c.probs
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(c.probs, Problem{File: d.file, Line: d.root.Line, Message: "cannot convert to JSON: " + err.Error()})
	}
	strict, err := kjson.UnmarshalStrict(b, into)
	for _, e := range append(strict, err) {
		if e != nil {
			c.probs = append(c.probs, Problem{File: d.file, Line: d.root.Line, Message: e.Error()})
		}
	}
	return c.probs
}

// converter turns YAML nodes into JSON-ready values, checking them against Go types.
type converter struct {
	doc       *document
	probs     []Problem
	budget    int
	exhausted bool
}

func (c *converter) fail(n *yaml.Node, field, format string, args ...any) {
	c.doc.rejected[field] = true
	c.probs = append(c.probs, Problem{File: c.doc.file, Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// value converts n for a Go value of type t at field path. It returns false when
// the value is absent (null) or was rejected.
func (c *converter) value(n *yaml.Node, t reflect.Type, field string) (any, bool) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c.budget--
	if c.budget < 0 {
		if !c.exhausted {
			c.exhausted = true
			c.fail(n, "", "the file expands to more than %d YAML nodes", maxNodes)
		}
		return nil, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, false
	}
	if t == durationType {
		return c.duration(n, field)
	}
	if t == limitType {
		return c.limit(n, field)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return c.value(n, t.Elem(), field)
	case reflect.Struct:
		return c.structValue(n, t, field)
	case reflect.Slice:
		return c.slice(n, t, field)
	case reflect.Map:
		return c.mapValue(n, t, field)
	case reflect.Interface:
		return c.generic(n, field)
	default:
		return c.scalar(n, t, field)
	}
}

func (c *converter) duration(n *yaml.Node, field string) (any, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		c.fail(n, field, "must be a duration string such as \"5m\", found %s", describe(n))
		return nil, false
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		c.fail(n, field, "invalid duration %q: want a Go duration such as \"90s\" or \"5m\"", n.Value)
		return nil, false
	}
	return n.Value, true
}

// limit reads a count (2) or a percentage ("25%") of clusters.
func (c *converter) limit(n *yaml.Node, field string) (any, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		c.fail(n, field, "must be a count such as 2 or a percentage such as \"25%%\", found %s", describe(n))
		return nil, false
	}
	if _, err := rollout.ParseLimit(n.Value); err != nil {
		c.fail(n, field, "%v", err)
		return nil, false
	}
	if n.Tag == "!!int" {
		return json.Number(n.Value), true
	}
	return n.Value, true
}

// fieldTypes maps the JSON names of a struct's fields (inlined embedded structs included) to their types.
func fieldTypes(t reflect.Type, into map[string]reflect.Type) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" && (f.Anonymous || strings.Contains(opts, "inline")) && f.Type.Kind() == reflect.Struct {
			fieldTypes(f.Type, into)
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// mappingPairs returns the key/value pairs of a mapping, checking keys are plain
// unique scalars; join makes the field path of a key.
func (c *converter) mappingPairs(n *yaml.Node, field string, join func(string) string) [][2]*yaml.Node {
	seen := map[string]int{}
	var pairs [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.fail(k, field, "a key must be a plain value, found %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			c.fail(k, field, "YAML merge keys (<<) are not supported")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			c.fail(k, join(k.Value), "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		c.doc.lines[join(k.Value)] = k.Line
		pairs = append(pairs, [2]*yaml.Node{k, v})
	}
	return pairs
}

func (c *converter) structValue(n *yaml.Node, t reflect.Type, field string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, field, "must be an object, found %s", describe(n))
		return nil, false
	}
	fields := map[string]reflect.Type{}
	fieldTypes(t, fields)
	out := map[string]any{}
	for _, kv := range c.mappingPairs(n, field, func(k string) string { return joinField(field, k) }) {
		k, v := kv[0], kv[1]
		path := joinField(field, k.Value)
		ft, ok := fields[k.Value]
		if !ok {
			c.fail(k, path, "unknown field (known here: %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			continue
		}
		if val, ok := c.value(v, ft, path); ok {
			out[k.Value] = val
		}
	}
	return out, true
}

func (c *converter) slice(n *yaml.Node, t reflect.Type, field string) (any, bool) {
	if n.Kind != yaml.SequenceNode {
		c.fail(n, field, "must be a list, found %s", describe(n))
		return nil, false
	}
	out := make([]any, 0, len(n.Content))
	for i, item := range n.Content {
		path := field + "[" + strconv.Itoa(i) + "]"
		c.doc.lines[path] = item.Line
		val, ok := c.value(item, t.Elem(), path)
		if !ok {
			val = reflect.Zero(t.Elem()).Interface()
		}
		out = append(out, val)
	}
	return out, true
}

func (c *converter) mapValue(n *yaml.Node, t reflect.Type, field string) (any, bool) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, field, "must be an object, found %s", describe(n))
		return nil, false
	}
	out := map[string]any{}
	for _, kv := range c.mappingPairs(n, field, func(k string) string { return joinField(field, k) }) {
		path := joinField(field, kv[0].Value)
		if val, ok := c.value(kv[1], t.Elem(), path); ok {
			out[kv[0].Value] = val
		} else if t.Elem().Kind() == reflect.Interface {
			out[kv[0].Value] = nil
		}
	}
	return out, true
}

// generic converts free-form values (Helm values): any JSON value is fine.
func (c *converter) generic(n *yaml.Node, field string) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		return c.mapValue(n, reflect.TypeFor[map[string]any](), field)
	case yaml.SequenceNode:
		return c.slice(n, reflect.TypeFor[[]any](), field)
	case yaml.ScalarNode:
	default:
		c.fail(n, field, "unsupported YAML node %s", describe(n))
		return nil, false
	}
	switch n.Tag {
	case "!!str", "!!timestamp", "!!binary":
		return n.Value, true
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.fail(n, field, "invalid boolean %q", n.Value)
			return nil, false
		}
		return b, true
	case "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			c.fail(n, field, "invalid number %q", n.Value)
			return nil, false
		}
		if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			c.fail(n, field, "%q cannot be represented in JSON", n.Value)
			return nil, false
		}
		return v, true
	default:
		c.fail(n, field, "unsupported YAML tag %s", n.Tag)
		return nil, false
	}
}

func (c *converter) scalar(n *yaml.Node, t reflect.Type, field string) (any, bool) {
	want := map[reflect.Kind]string{reflect.String: "a string", reflect.Bool: "a boolean"}[t.Kind()]
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "an integer"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	}
	if n.Kind != yaml.ScalarNode {
		c.fail(n, field, "must be %s, found %s", want, describe(n))
		return nil, false
	}
	switch t.Kind() {
	case reflect.String:
		if n.Tag == "!!str" || n.Tag == "!!timestamp" {
			return n.Value, true
		}
	case reflect.Bool:
		var b bool
		if n.Tag == "!!bool" && n.Decode(&b) == nil {
			return b, true
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Tag == "!!int" && n.Decode(&i) == nil {
			if reflect.Zero(t).OverflowInt(i) {
				c.fail(n, field, "%d is out of range", i)
				return nil, false
			}
			return i, true
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.Tag == "!!int" && n.Decode(&u) == nil {
			if reflect.Zero(t).OverflowUint(u) {
				c.fail(n, field, "%d is out of range", u)
				return nil, false
			}
			return u, true
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		if (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
	}
	hint := ""
	if t.Kind() == reflect.String && n.Kind == yaml.ScalarNode {
		hint = " (quote the value)"
	}
	c.fail(n, field, "must be %s, found %s%s", want, describe(n), hint)
	return nil, false
}

// describe names the kind of value a node holds, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("%s %q", n.Tag, n.Value)
}

// joinField appends a key to a field path.
func joinField(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}
