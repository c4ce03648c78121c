package plan

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

const (
	// openDiffLines: diffs up to this many lines are shown expanded.
	openDiffLines = 20
	// maxDiffLines: longer diffs are cut here (the JSON form has them whole).
	maxDiffLines = 400
	// maxDiffBytes: no more diffs are written once the output is this long
	// (GitHub refuses comments over 65536 characters).
	maxDiffBytes = 50000
	// maxTableRows: rows of the (cluster, app) table shown.
	maxTableRows = 150
)

// JSON writes the plan as indented JSON (the schema is in docs/plan.md).
func JSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("write plan as JSON: %w", err)
	}
	return nil
}

// Markdown writes the plan for a pull-request comment: a summary table,
// deletions and errors called out, one row per changed (cluster, app), then
// the diffs, where an identical change of one app on several clusters is
// shown once ("same change on north, south") and long diffs are collapsed.
func Markdown(w io.Writer, p *Plan) error {
	bw := bufio.NewWriter(w)
	md := &mdWriter{w: bw}
	md.header(p)
	md.summary(p)
	md.deletions(p)
	md.errors(p)
	md.warnings(p)
	md.table(p)
	groups := groupChanges(p)
	for i, g := range groups {
		if md.n > maxDiffBytes {
			md.printf("… %d more app changes are not shown here: the comment would be too long (see `-o json`).\n", len(groups)-i)
			break
		}
		md.group(g)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write plan as Markdown: %w", err)
	}
	return nil
}

type mdWriter struct {
	w *bufio.Writer
	n int // bytes written
}

func (m *mdWriter) printf(format string, args ...any) {
	n, _ := fmt.Fprintf(m.w, format, args...) // bufio keeps the error for Flush
	m.n += n
}

func (m *mdWriter) header(p *Plan) {
	m.printf("## fleetsync plan: `%s` → `%s`\n\n", shortRev(p.Base), shortRev(p.Head))
}

func (m *mdWriter) summary(p *Plan) {
	s := p.Summary
	if !p.HasChanges() && s.Errors == 0 {
		m.printf("**No changes.** The rendered output of every cluster is the same.\n\n")
		return
	}
	m.printf("| | |\n|---|---|\n")
	m.printf("| Clusters affected | %d%s |\n", len(s.ClustersAffected), listSuffix(s.ClustersAffected))
	m.printf("| Apps changed | %d%s |\n", len(s.AppsChanged), listSuffix(s.AppsChanged))
	m.printf("| Objects | +%d added, ~%d changed, -%d deleted |\n", s.Added, s.Changed, s.Deleted)
	m.printf("| Errors | %d |\n\n", s.Errors)
}

func (m *mdWriter) deletions(p *Plan) {
	dels := p.Summary.Deletions
	if len(dels) == 0 {
		return
	}
	m.printf("> [!WARNING]\n> **%d %s will be deleted** (apps with `prune: true`):\n", len(dels), plural(len(dels), "object", "objects"))
	for _, d := range dels {
		note := ""
		if d.PruneDisabled {
			note = " (kept: `fleetsync.dev/prune: disabled`)"
		}
		m.printf("> - `%s` of app `%s` on **%s**%s\n", d.Object, d.App, d.Cluster, note)
	}
	m.printf("\n")
}

func (m *mdWriter) errors(p *Plan) {
	if p.Summary.Errors == 0 {
		return
	}
	m.printf("> [!CAUTION]\n> **Errors**\n")
	for _, e := range p.Errors {
		m.printf("> - %s: %s\n", e.Side, inline(e.Message))
	}
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			if a.BaseError != "" {
				m.printf("> - base `%s/%s`: %s\n", c.Cluster, a.App, inline(a.BaseError))
			}
			if a.HeadError != "" {
				m.printf("> - head `%s/%s`: %s\n", c.Cluster, a.App, inline(a.HeadError))
			}
		}
	}
	m.printf("\n")
}

// warnings lists the head render's warnings of the changed pairs.
func (m *mdWriter) warnings(p *Plan) {
	first := true
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			for _, w := range a.Warnings {
				if first {
					m.printf("> [!WARNING]\n> **Render warnings**\n")
					first = false
				}
				m.printf("> - `%s/%s`: %s\n", c.Cluster, a.App, inline(w))
			}
		}
	}
	if !first {
		m.printf("\n")
	}
}

func (m *mdWriter) table(p *Plan) {
	if len(p.Clusters) == 0 {
		return
	}
	m.printf("| Cluster | App | Status | + | ~ | - |\n|---|---|---|--:|--:|--:|\n")
	rows := 0
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			rows++
			if rows > maxTableRows {
				continue
			}
			add, chg, del := counts(a.Objects)
			m.printf("| %s | %s | %s | %d | %d | %d |\n", c.Cluster, a.App, a.Status, add, chg, del)
		}
	}
	if rows > maxTableRows {
		m.printf("| … | %d more | | | | |\n", rows-maxTableRows)
	}
	m.printf("\n")
}

func (m *mdWriter) group(g changeGroup) {
	a := g.app
	m.printf("### `%s` on %s\n\n", a.App, strings.Join(g.clusters, ", "))
	if len(g.clusters) > 1 {
		m.printf("Same change on %s.\n\n", strings.Join(g.clusters, ", "))
	}
	switch a.Status {
	case AppAdded:
		m.printf("The app newly targets %s.\n\n", plural(len(g.clusters), "this cluster", "these clusters"))
	case AppRemoved:
		m.printf("The app no longer targets %s: its objects leave the desired set.\n\n", plural(len(g.clusters), "this cluster", "these clusters"))
	case AppError:
		if a.BaseError != "" && a.HeadError == "" {
			m.printf("Base failed to render; head renders (no object diff).\n\n")
		} else {
			m.printf("Head failed to render (no object diff).\n\n")
		}
	}
	for _, o := range a.Objects {
		m.object(o)
	}
}

func (m *mdWriter) object(o ObjectChange) {
	sign := map[Action]string{Add: "+", Change: "~", Delete: "-"}[o.Action]
	lines := strings.Split(strings.TrimSuffix(o.Diff, "\n"), "\n")
	open := ""
	if len(lines) <= openDiffLines {
		open = " open"
	}
	m.printf("<details%s><summary><code>%s %s</code>", open, sign, htmlEscape(o.Object.String()))
	if len(o.SecretKeys) > 0 {
		m.printf(" (Secret keys changed: %s; values hidden)", htmlEscape(strings.Join(o.SecretKeys, ", ")))
	}
	if o.PruneDisabled {
		m.printf(" (kept on the cluster: prune disabled)")
	}
	m.printf("</summary>\n\n")
	cut := 0
	if len(lines) > maxDiffLines {
		cut = len(lines) - maxDiffLines
		lines = lines[:maxDiffLines]
	}
	body := strings.Join(lines, "\n")
	fence := codeFence(body)
	m.printf("%sdiff\n%s\n%s\n", fence, body, fence)
	if cut > 0 {
		m.printf("\n… %d more lines (see `-o json` for the whole diff)\n", cut)
	}
	m.printf("\n</details>\n\n")
}

// changeGroup is one app change shared by several clusters.
type changeGroup struct {
	app      AppPlan
	clusters []string
}

// groupChanges groups identical app plans across clusters, in order of first
// appearance (cluster order, then app order).
func groupChanges(p *Plan) []changeGroup {
	var groups []changeGroup
	bySig := map[string]int{}
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			sig, err := json.Marshal(a)
			if err != nil {
				sig = nil // cannot happen for plain strings; never group then
			}
			if i, ok := bySig[string(sig)]; ok && sig != nil {
				groups[i].clusters = append(groups[i].clusters, c.Cluster)
				continue
			}
			bySig[string(sig)] = len(groups)
			groups = append(groups, changeGroup{app: a, clusters: []string{c.Cluster}})
		}
	}
	return groups
}

func counts(objs []ObjectChange) (add, chg, del int) {
	for _, o := range objs {
		switch o.Action {
		case Add:
			add++
		case Change:
			chg++
		case Delete:
			del++
		}
	}
	return add, chg, del
}

// codeFence returns a backtick fence longer than any backtick run in s.
func codeFence(s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// inline makes a possibly multi-line message safe inside a list item.
func inline(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return "`" + strings.ReplaceAll(s, "`", "'") + "`"
	}
	fence := codeFence(s)
	return "\n>   " + fence + "text\n>   " + strings.ReplaceAll(s, "\n", "\n>   ") + "\n>   " + fence
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func shortRev(rev string) string {
	switch {
	case rev == "":
		return "(unknown)"
	case len(rev) > 12:
		return rev[:12]
	}
	return rev
}

func listSuffix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
