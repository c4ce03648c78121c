package fleet

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a fleet repo.
type Problem struct {
	// File is the repo-relative, slash-separated file (or folder) the problem is in;
	// "." for problems of the repo as a whole.
	File string `json:"file"`
	// Line is the 1-based line in File, or 0 when no line applies.
	Line int `json:"line"`
	// Field is the field path inside the object, e.g. "spec.source.helm.chart";
	// empty when the problem is not about one field.
	Field string `json:"field"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// String formats the problem as "file:line: field: message" (the line and field
// parts are left out when they do not apply).
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in a fleet repo. It is the error Load returns
// when the repo is invalid; use errors.As to get at the list.
type Problems []Problem

// Error lists the problems one a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Sorted returns the problems ordered by file, line, field and message, and drops exact duplicates.
func (ps Problems) Sorted() Problems {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(out)
}
