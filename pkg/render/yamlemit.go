package render

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The output of fleetsync is what sigs.k8s.io/yaml.Marshal writes: the
// object as JSON, read back by go-yaml v2 and written by it (keys in
// go-yaml's order, its choice of scalar style, lines folded after column 80).
// appendYAMLDoc writes the same bytes directly from the object, several
// times faster and without the intermediate copies. It covers what rendered
// manifests hold: maps, lists, ASCII strings, booleans, integers, floats and
// nulls; for anything else (non-ASCII or control characters, keys longer
// than go-yaml's simple keys, unusual Go types, huge numbers) it gives up
// and the object is encoded by sigs.k8s.io/yaml. yamlemit_test.go compares
// the two on the golden outputs and on generated values.

// yamlWidth is go-yaml v2's preferred line width: plain and quoted scalars
// are folded at a space once a line is longer.
const yamlWidth = 80

// maxSimpleKey is the longest key go-yaml v2 writes as "key:" rather than
// "? key".
const maxSimpleKey = 128

// emitter appends one YAML document to buf.
type emitter struct {
	buf []byte
}

// appendYAMLDoc appends the YAML of o to buf; ok is false (and buf is
// returned as it was) when o holds something the emitter does not reproduce.
func appendYAMLDoc(buf []byte, o map[string]any) (out []byte, ok bool) {
	e := emitter{buf: buf}
	if len(o) == 0 {
		e.buf = append(e.buf, "{}\n"...)
		return e.buf, true
	}
	if !e.mapping(o, 0, false) {
		return buf, false
	}
	return e.buf, true
}

// column is the number of characters on the current line (the emitter
// writes ASCII only).
func (e *emitter) column() int {
	for i := len(e.buf) - 1; i >= 0; i-- {
		if e.buf[i] == '\n' {
			return len(e.buf) - i - 1
		}
	}
	return len(e.buf)
}

func (e *emitter) indent(n int) {
	for range n {
		e.buf = append(e.buf, ' ')
	}
}

// mapping writes the entries of m, keys at column indent; when inline, the
// first key continues the current line (a list item's "- ").
func (e *emitter) mapping(m map[string]any, indent int, inline bool) bool {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for i, k := range keys {
		if i > 0 || !inline {
			e.indent(indent)
		}
		if !e.scalarString(k, indent+2, true) {
			return false
		}
		e.buf = append(e.buf, ':')
		switch v := m[k].(type) {
		case map[string]any:
			if len(v) == 0 {
				e.buf = append(e.buf, " {}\n"...)
				continue
			}
			e.buf = append(e.buf, '\n')
			if !e.mapping(v, indent+2, false) {
				return false
			}
		case []any:
			if len(v) == 0 {
				e.buf = append(e.buf, " []\n"...)
				continue
			}
			e.buf = append(e.buf, '\n')
			// go-yaml v2 does not indent a list under a mapping key.
			if !e.sequence(v, indent, false) {
				return false
			}
		default:
			e.buf = append(e.buf, ' ')
			if !e.scalar(v, indent+2) {
				return false
			}
		}
	}
	return true
}

// sequence writes the items of l, dashes at column indent; when inline, the
// first dash continues the current line (an item of an outer list).
func (e *emitter) sequence(l []any, indent int, inline bool) bool {
	for i, it := range l {
		if i > 0 || !inline {
			e.indent(indent)
		}
		e.buf = append(e.buf, '-')
		switch v := it.(type) {
		case map[string]any:
			if len(v) == 0 {
				e.buf = append(e.buf, " {}\n"...)
				continue
			}
			e.buf = append(e.buf, ' ')
			if !e.mapping(v, indent+2, true) {
				return false
			}
		case []any:
			if len(v) == 0 {
				e.buf = append(e.buf, " []\n"...)
				continue
			}
			e.buf = append(e.buf, ' ')
			if !e.sequence(v, indent+2, true) {
				return false
			}
		default:
			e.buf = append(e.buf, ' ')
			if !e.scalar(v, indent+2) {
				return false
			}
		}
	}
	return true
}

// scalar writes a value and ends the line; indent is where folded lines
// continue.
func (e *emitter) scalar(v any, indent int) bool {
	switch v := v.(type) {
	case string:
		if !e.scalarString(v, indent, false) {
			return false
		}
		if !strings.HasSuffix(v, "\n") {
			e.buf = append(e.buf, '\n')
		}
		return true
	case bool:
		e.buf = strconv.AppendBool(e.buf, v)
	case nil:
		e.buf = append(e.buf, "null"...)
	case int64:
		e.buf = strconv.AppendInt(e.buf, v, 10)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int32:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case float64:
		// JSON writes an integral float as an integer (its shortest digits,
		// then zeros), which go-yaml reads back as an int; other floats come
		// back as the same float64.
		switch {
		case math.IsInf(v, 0) || math.IsNaN(v):
			return false // not JSON: yaml.Marshal reports the error
		case v == math.Trunc(v):
			if math.Abs(v) >= 1e18 {
				return false // may come back as a uint64 or a float
			}
			if v == 0 {
				v = 0 // not "-0"
			}
			e.buf = strconv.AppendFloat(e.buf, v, 'f', -1, 64)
		default:
			e.buf = strconv.AppendFloat(e.buf, v, 'g', -1, 64)
		}
	default:
		return false
	}
	e.buf = append(e.buf, '\n')
	return true
}

// Scalar styles, as go-yaml v2 picks them.
const (
	stylePlain = iota
	styleSingle
	styleDouble
	styleLiteral
)

// scalarString writes s in go-yaml v2's style (a key when key is set:
// never folded, never a block scalar). A literal block ends with its
// newline; other styles leave the line open.
func (e *emitter) scalarString(s string, indent int, key bool) bool {
	a, ok := analyzeScalar(s)
	if !ok {
		return false
	}
	var style int
	switch {
	case a.lineBreaks:
		if key || !a.blockAllowed {
			return false // "? key", or double-quoted with escapes
		}
		style = styleLiteral
	case !resolvesToString(s):
		style = styleDouble
	case a.blockPlainAllowed:
		style = stylePlain
	case a.singleAllowed:
		style = styleSingle
	default:
		style = styleDouble
	}
	if key && len(s) > maxSimpleKey {
		return false
	}
	switch style {
	case stylePlain:
		e.plain(s, indent, !key)
	case styleSingle:
		e.singleQuoted(s, indent, !key)
	case styleDouble:
		e.doubleQuoted(s, indent, !key)
	case styleLiteral:
		return e.literal(s, indent)
	}
	return true
}

func (e *emitter) plain(s string, indent int, breaks bool) {
	if !breaks || !strings.Contains(s, " ") {
		e.buf = append(e.buf, s...)
		return
	}
	col := e.column()
	spaces := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' {
			if !spaces && col > yamlWidth && i+1 < len(s) && s[i+1] != ' ' {
				e.buf = append(e.buf, '\n')
				e.indent(indent)
				col = indent
			} else {
				e.buf = append(e.buf, ' ')
				col++
			}
			spaces = true
			continue
		}
		e.buf = append(e.buf, c)
		col++
		spaces = false
	}
}

func (e *emitter) singleQuoted(s string, indent int, breaks bool) {
	e.buf = append(e.buf, '\'')
	col := e.column()
	spaces := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' {
			if breaks && !spaces && col > yamlWidth && i > 0 && i < len(s)-1 && s[i+1] != ' ' {
				e.buf = append(e.buf, '\n')
				e.indent(indent)
				col = indent
			} else {
				e.buf = append(e.buf, ' ')
				col++
			}
			spaces = true
			continue
		}
		if c == '\'' {
			e.buf = append(e.buf, '\'')
			col++
		}
		e.buf = append(e.buf, c)
		col++
		spaces = false
	}
	e.buf = append(e.buf, '\'')
}

func (e *emitter) doubleQuoted(s string, indent int, breaks bool) {
	e.buf = append(e.buf, '"')
	col := e.column()
	spaces := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
			col += 2
			spaces = false
		case ' ':
			if breaks && !spaces && col > yamlWidth && i > 0 && i < len(s)-1 {
				e.buf = append(e.buf, '\n')
				e.indent(indent)
				col = indent
				if s[i+1] == ' ' {
					e.buf = append(e.buf, '\\')
					col++
				}
			} else {
				e.buf = append(e.buf, ' ')
				col++
			}
			spaces = true
		default:
			e.buf = append(e.buf, c)
			col++
			spaces = false
		}
	}
	e.buf = append(e.buf, '"')
}

// literal writes a "|" block scalar (after the space the caller wrote),
// lines at column indent.
func (e *emitter) literal(s string, indent int) bool {
	e.buf = append(e.buf, '|')
	if s[0] == ' ' {
		e.buf = append(e.buf, '2') // indentation indicator: go-yaml's indent
	}
	switch n := len(s); {
	case s[n-1] != '\n':
		e.buf = append(e.buf, '-')
	case n == 1 || s[n-2] == '\n':
		return false // "|+": go-yaml then marks the document open-ended
	}
	e.buf = append(e.buf, '\n')
	lineStart := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			e.buf = append(e.buf, '\n')
			lineStart = true
			continue
		}
		if lineStart {
			e.indent(indent)
			lineStart = false
		}
		e.buf = append(e.buf, c)
	}
	return true
}

// scalarAnalysis is what go-yaml v2's emitter works out about a scalar
// (yaml_emitter_analyze_scalar) to choose its style.
type scalarAnalysis struct {
	lineBreaks        bool
	blockPlainAllowed bool
	singleAllowed     bool
	blockAllowed      bool
}

// analyzeScalar analyses s as go-yaml v2 does; ok is false when s holds a
// byte other than printable ASCII and newline.
func analyzeScalar(s string) (a scalarAnalysis, ok bool) {
	if s == "" {
		return scalarAnalysis{blockPlainAllowed: true, singleAllowed: true}, true
	}
	var blockIndicators, leadingSpace, leadingBreak, trailingSpace, trailingBreak, breakSpace, spaceBreak bool
	if strings.HasPrefix(s, "---") || strings.HasPrefix(s, "...") {
		blockIndicators = true
	}
	precededByWhitespace := true
	previousSpace, previousBreak := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\n' && (c < 0x20 || c > 0x7e) {
			return a, false
		}
		followedByWhitespace := i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == '\t'
		if i == 0 {
			switch c {
			case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
				blockIndicators = true
			case '?', ':', '-':
				if followedByWhitespace {
					blockIndicators = true
				}
			}
		} else {
			switch c {
			case ':':
				if followedByWhitespace {
					blockIndicators = true
				}
			case '#':
				if precededByWhitespace {
					blockIndicators = true
				}
			}
		}
		switch c {
		case ' ':
			if i == 0 {
				leadingSpace = true
			}
			if i == len(s)-1 {
				trailingSpace = true
			}
			if previousBreak {
				breakSpace = true
			}
			previousSpace, previousBreak = true, false
		case '\n':
			a.lineBreaks = true
			if i == 0 {
				leadingBreak = true
			}
			if i == len(s)-1 {
				trailingBreak = true
			}
			if previousSpace {
				spaceBreak = true
			}
			previousSpace, previousBreak = false, true
		default:
			previousSpace, previousBreak = false, false
		}
		precededByWhitespace = c == ' ' || c == '\n'
	}
	a.blockPlainAllowed, a.singleAllowed, a.blockAllowed = true, true, true
	if leadingSpace || leadingBreak || trailingSpace || trailingBreak || a.lineBreaks || blockIndicators {
		a.blockPlainAllowed = false
	}
	if trailingSpace {
		a.blockAllowed = false
	}
	if breakSpace {
		a.singleAllowed = false
	}
	if spaceBreak {
		a.singleAllowed, a.blockAllowed = false, false
	}
	if leadingBreak {
		return a, false // the literal's indentation indicator after a leading newline: not reproduced
	}
	return a, true
}

// resolvesToString reports whether go-yaml v2 reads s, unquoted, as a
// string (not a bool, null, number or timestamp; "<<" is a string to it
// here), and not as a
// base-60 float either, which it still quotes: only then is s written plain.
func resolvesToString(s string) bool {
	if s == "" {
		return false // null
	}
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
		"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
		"~", "null", "Null", "NULL",
		".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return false
	}
	switch c := s[0]; {
	case c == '.':
		_, err := strconv.ParseFloat(s, 64)
		return err != nil
	case c == '+' || c == '-' || c >= '0' && c <= '9':
		if isTimestamp(s) {
			return false
		}
		plain := strings.ReplaceAll(s, "_", "")
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return false
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return false
		}
		if yamlStyleFloat.MatchString(plain) {
			if _, err := strconv.ParseFloat(plain, 64); err == nil {
				return false
			}
		}
		if rest, ok := strings.CutPrefix(plain, "0b"); ok {
			if _, err := strconv.ParseInt(rest, 2, 64); err == nil {
				return false
			}
			if _, err := strconv.ParseUint(rest, 2, 64); err == nil {
				return false
			}
		} else if rest, ok := strings.CutPrefix(plain, "-0b"); ok {
			if _, err := strconv.ParseInt("-"+rest, 2, 64); err == nil {
				return false
			}
		}
		return strings.IndexByte(s, ':') < 0 || !base60Float.MatchString(s)
	}
	return true
}

// go-yaml v2's patterns for floats and base-60 floats.
var (
	yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)
	base60Float    = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)
)

// isTimestamp reports whether go-yaml v2 reads s as a timestamp.
func isTimestamp(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, layout := range []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// compareKeys orders mapping keys as go-yaml v2 does: letters before other
// characters, runs of digits by their value.
func compareKeys(a, b string) int {
	if a == b {
		return 0
	}
	if keyLess(a, b) {
		return -1
	}
	return 1
}

func keyLess(a, b string) bool {
	ar, br := []rune(a), []rune(b)
	for i := 0; i < len(ar) && i < len(br); i++ {
		if ar[i] == br[i] {
			continue
		}
		al, bl := unicode.IsLetter(ar[i]), unicode.IsLetter(br[i])
		if al && bl {
			return ar[i] < br[i]
		}
		if al || bl {
			return bl
		}
		var ai, bi int
		var an, bn int64
		if ar[i] == '0' || br[i] == '0' {
			for j := i - 1; j >= 0 && unicode.IsDigit(ar[j]); j-- {
				if ar[j] != '0' {
					an, bn = 1, 1
					break
				}
			}
		}
		for ai = i; ai < len(ar) && unicode.IsDigit(ar[ai]); ai++ {
			an = an*10 + int64(ar[ai]-'0')
		}
		for bi = i; bi < len(br) && unicode.IsDigit(br[bi]); bi++ {
			bn = bn*10 + int64(br[bi]-'0')
		}
		if an != bn {
			return an < bn
		}
		if ai != bi {
			return ai < bi
		}
		return ar[i] < br[i]
	}
	return len(ar) < len(br)
}
