package render

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/resmap"
)

// resMapObjects returns the objects of krusty's result as decodeObjects
// reads m.AsYaml(), without writing and reading the text. That path takes
// each resource to YAML text with yaml.v3, reads the text back with yaml.v3
// into Go values, encodes them as JSON, turns the JSON into YAML with
// sigs.k8s.io/yaml (go-yaml v2), and decodeObjects reads that YAML back to
// JSON and the JSON into values (int64, float64). So the type of a scalar is
// the one yaml.v3 resolves for what it writes (plain `yes` stays a string,
// `1.0` becomes the integer 1 on the way through JSON): nodeValue works it
// out from the node's tag, style and value. A resource holding anything it
// does not reproduce with certainty (see nodeValue) goes the text way on its
// own; ok is false when a resource fails either way or is not a valid object,
// and the caller then decodes m.AsYaml() for the exact error.
func resMapObjects(m resmap.ResMap, source string) (objs []object, ok bool) {
	for _, res := range m.Resources() {
		if v, vok := nodeValue(res.YNode(), false); vok {
			o, isMap := v.(map[string]any)
			if !isMap {
				return nil, false
			}
			var err error
			if objs, err = appendObject(objs, o, source); err != nil {
				return nil, false
			}
			continue
		}
		b, err := res.AsYAML()
		if err != nil {
			return nil, false
		}
		more, err := decodeObjects(b, source)
		if err != nil {
			return nil, false
		}
		objs = append(objs, more...)
	}
	return objs, true
}

// nodeValue is the value yaml.v3 reads back from its encoding of n, after
// the JSON round trip of AsYaml and decodeObjects: map[string]any, []any,
// string, int64, float64, bool or nil. ok is false for what that path could
// read otherwise or fail on: aliases, anchors, merge keys, explicit or
// unusual tags, duplicate keys, keys that are not strings, folded scalars, timestamps,
// numbers beyond int64, NaN and infinities, and strings with characters the
// YAML encoders may rewrite (control characters but tab and newline, line and
// paragraph separators, byte order marks, invalid UTF-8). flow tells that n
// sits inside a flow-style collection, where an empty plain scalar is quoted.
func nodeValue(n *yaml3.Node, flow bool) (any, bool) {
	if n == nil || n.Anchor != "" || n.Style&yaml3.TaggedStyle != 0 {
		return nil, false
	}
	flow = flow || n.Style&yaml3.FlowStyle != 0
	switch n.Kind {
	case yaml3.DocumentNode:
		if len(n.Content) != 1 {
			return nil, false
		}
		return nodeValue(n.Content[0], flow)
	case yaml3.MappingNode:
		if t := n.ShortTag(); t != "!!map" || len(n.Content)%2 != 0 {
			return nil, false
		}
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k, ok := nodeKey(n.Content[i])
			if !ok {
				return nil, false
			}
			if _, dup := m[k]; dup {
				return nil, false
			}
			v, ok := nodeValue(n.Content[i+1], flow)
			if !ok {
				return nil, false
			}
			m[k] = v
		}
		return m, true
	case yaml3.SequenceNode:
		if t := n.ShortTag(); t != "!!seq" {
			return nil, false
		}
		l := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, ok := nodeValue(c, flow)
			if !ok {
				return nil, false
			}
			l[i] = v
		}
		return l, true
	case yaml3.ScalarNode:
		return scalarValue(n, flow)
	}
	return nil, false
}

// nodeKey is a mapping key as a string; ok is false unless yaml.v3 reads it
// back as a string (anything else makes the encoding to JSON fail).
func nodeKey(n *yaml3.Node) (string, bool) {
	if n.Kind != yaml3.ScalarNode || n.Anchor != "" || n.Style&(yaml3.TaggedStyle|yaml3.FoldedStyle) != 0 || n.Value == "" || !safeString(n.Value) {
		return "", false
	}
	if quotedStyle(n) {
		switch shortTag(n.Tag) {
		case "", "!!str":
			return n.Value, true
		}
		return "", false
	}
	switch shortTag(n.Tag) {
	case "!!str":
		return n.Value, true
	case "":
		if _, tag, ok := resolvePlain(n.Value); ok && tag == "!!str" {
			return n.Value, true
		}
	}
	return "", false
}

func quotedStyle(n *yaml3.Node) bool {
	return n.Style&(yaml3.SingleQuotedStyle|yaml3.DoubleQuotedStyle|yaml3.LiteralStyle|yaml3.FoldedStyle) != 0
}

// scalarValue follows yaml.v3's encoder (a tag is dropped when the value
// resolves to it; a string that would resolve to something else is quoted)
// and decoder (a quoted scalar is a string, a plain one is resolved).
func scalarValue(n *yaml3.Node, flow bool) (any, bool) {
	if !safeString(n.Value) || n.Style&yaml3.FoldedStyle != 0 {
		return nil, false // folded scalars do not always read back the same
	}
	tag := shortTag(n.Tag)
	if tag == "!!str" {
		return n.Value, true
	}
	switch tag {
	case "", "!!int", "!!float", "!!bool", "!!null":
	default:
		return nil, false
	}
	v, rtag, ok := resolvePlain(n.Value)
	if !ok {
		return nil, false
	}
	if tag != "" && tag != rtag {
		return nil, false // the tag is written out: leave it to yaml.v3
	}
	if quotedStyle(n) || strings.Contains(n.Value, "\n") {
		return n.Value, true
	}
	if n.Value == "" && flow {
		return nil, false // written '' in a flow collection
	}
	return v, true
}

func shortTag(tag string) string {
	if t, ok := strings.CutPrefix(tag, "tag:yaml.org,2002:"); ok {
		return "!!" + t
	}
	return tag
}

// resolvePlain is what yaml.v3 reads a plain scalar as (its resolve
// function): the value, with numbers as the JSON round trip leaves them, and
// yaml.v3's tag for it. ok is false for timestamps (read as time.Time),
// merge keys, NaN and infinities, and integers beyond int64.
func resolvePlain(s string) (v any, tag string, ok bool) {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return nil, "!!null", true
	case "true", "True", "TRUE":
		return true, "!!bool", true
	case "false", "False", "FALSE":
		return false, "!!bool", true
	case "<<":
		return nil, "", false
	}
	switch c := s[0]; {
	case c == '.':
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			if strings.EqualFold(s, ".nan") || strings.EqualFold(s, ".inf") {
				return nil, "", false
			}
			return s, "!!str", true
		}
		return jsonNumber(f)
	case c == '+' || c == '-' || c >= '0' && c <= '9':
		if len(s) > 4 && s[4] == '-' && allDigits(s[:4]) {
			return nil, "", false // may be a timestamp
		}
		if strings.HasSuffix(s, ".inf") || strings.HasSuffix(s, ".Inf") || strings.HasSuffix(s, ".INF") {
			return nil, "", false
		}
		plain := strings.ReplaceAll(s, "_", "")
		if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return i, "!!int", true
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return nil, "", false
		}
		if yamlFloat(plain) {
			if f, err := strconv.ParseFloat(plain, 64); err == nil {
				return jsonNumber(f)
			}
			return nil, "", false
		}
		for _, p := range []string{"0b", "-0b", "0o", "-0o"} {
			if strings.HasPrefix(plain, p) {
				return nil, "", false
			}
		}
	}
	return s, "!!str", true
}

// jsonNumber is a float (tag !!float) as it comes out of encoding/json,
// go-yaml v2 and k8s.io/apimachinery's JSON reader: an integer when its JSON
// form has no fraction or exponent and fits int64.
func jsonNumber(f float64) (any, string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, "", false
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, "", false
	}
	if !strings.ContainsAny(string(b), ".eE") {
		if i, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return i, "!!float", true
		}
	}
	return f, "!!float", true
}

// yamlFloat matches yaml.v3's float syntax:
// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
func yamlFloat(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	} else {
		if digits() == 0 {
			return false
		}
		if i < len(s) && s[i] == '.' {
			i++
			digits()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// safeString reports whether s goes through the YAML and JSON encoders and
// back unchanged for certain: valid UTF-8 with no control characters but tab
// and newline, no C1 controls, line or paragraph separators, byte order marks
// or noncharacters.
func safeString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			continue
		}
		if c < 0x80 {
			return false
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r < 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff {
			return false
		}
		i += size - 1
	}
	return true
}
