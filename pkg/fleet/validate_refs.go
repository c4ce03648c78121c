package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// validateRefs checks every ${cluster.*} reference in a Helm app's values
// (app.yaml and values files) against each cluster that receives them, and
// reports the ones that cannot be resolved at their file:line.
func (c checker) validateRefs(repo *Repo, appDir string, a *v1alpha1.App) {
	h := a.Spec.Source.Helm
	if h == nil {
		return
	}
	targets := c.l.sels.selectClusters(a.Spec.Targets.ClusterSelector)
	c.checkValueRefs(repo, "spec.source.helm.values", targets)
	c.checkFileRefs(repo, appDir, h.ValuesFiles, targets)
	for i, cu := range a.Spec.Customizations {
		var sel []*v1alpha1.Cluster
		for _, t := range targets {
			if c.l.sels.selects(cu.ClusterSelector, t) {
				sel = append(sel, t)
			}
		}
		field := fmt.Sprintf("spec.customizations[%d]", i)
		c.checkValueRefs(repo, field+".values", sel)
		c.checkFileRefs(repo, appDir, cu.ValuesFiles, sel)
	}
}

// checkValueRefs checks the references under a field of the app's document.
func (c checker) checkValueRefs(repo *Repo, field string, clusters []*v1alpha1.Cluster) {
	if c.doc == nil {
		return
	}
	n := nodeAt(c.doc.root, field)
	if n == nil {
		return
	}
	for _, r := range ScanRefs(n) {
		if msg := refProblem(repo, r.Text, clusters); msg != "" {
			p := Problem{File: c.doc.file, Line: r.Line, Field: joinPath(field, r.Path), Message: msg}
			c.l.probs = append(c.l.probs, p)
		}
	}
}

// checkFileRefs checks the references in values files (paths already
// checked by validateHelm; unreadable ones are reported there).
func (c checker) checkFileRefs(repo *Repo, appDir string, files []string, clusters []*v1alpha1.Cluster) {
	for _, f := range files {
		p := path.Join(appDir, f)
		if escapes(p) {
			continue
		}
		b, err := fs.ReadFile(repo.FS, p)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			c.l.probs = append(c.l.probs, yamlProblem(p, err))
			continue
		}
		for _, r := range ScanRefs(&doc) {
			if msg := refProblem(repo, r.Text, clusters); msg != "" {
				c.l.probs = append(c.l.probs, Problem{File: p, Line: r.Line, Field: r.Path, Message: msg})
			}
		}
	}
}

// refProblem says why a string's references do not resolve on some of the
// clusters, or "". With no clusters, only the syntax is checked.
func refProblem(repo *Repo, s string, clusters []*v1alpha1.Cluster) string {
	// Syntax first: reported once, whatever the clusters.
	_, err := (&ClusterFacts{}).ExpandString(s)
	var re *RefError
	if errors.As(err, &re) && re.syntax() {
		return err.Error()
	}
	if len(clusters) == 0 {
		return ""
	}
	var first error
	var others []string
	for _, cl := range clusters {
		if _, err := FactsOf(repo, cl).ExpandString(s); err != nil {
			if first == nil {
				first = err
			} else {
				others = append(others, cl.Metadata.Name)
			}
		}
	}
	if first == nil {
		return ""
	}
	msg := first.Error()
	if len(others) > 0 {
		msg += fmt.Sprintf(" (and on %d more: %s)", len(others), strings.Join(others, ", "))
	}
	return msg
}

// nodeAt finds the node of a field path ("spec.customizations[1].values").
func nodeAt(n *yaml.Node, field string) *yaml.Node {
	for _, part := range strings.Split(field, ".") {
		name, idx, _ := strings.Cut(part, "[")
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				next = n.Content[i+1]
			}
		}
		n = next
		if idx != "" {
			k, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil || n == nil || n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return nil
			}
			n = n.Content[k]
		}
	}
	return n
}
