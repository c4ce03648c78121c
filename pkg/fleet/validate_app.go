package fleet

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// maxReleaseName is Helm's limit on release names.
const maxReleaseName = 53

func (l *loader) validateApp(repo *Repo, a *v1alpha1.App) {
	c := l.checker(a)
	c.validateMeta(a.Metadata)
	if c.doc != nil && a.Metadata.Name != "" {
		if folder := path.Base(path.Dir(c.doc.file)); folder != a.Metadata.Name {
			c.add("metadata.name", "%q does not match the app's folder %s (want %q)", a.Metadata.Name, path.Dir(c.doc.file), folder)
		}
	}
	appDir := AppDir(a.Metadata.Name)
	if c.doc != nil {
		appDir = path.Dir(c.doc.file)
	}
	s := a.Spec
	if s.Namespace != "" {
		c.dnsLabel("spec.namespace", s.Namespace)
	}
	switch src := s.Source; {
	case (src.Kustomize == nil) == (src.Helm == nil):
		c.add("spec.source", "exactly one of kustomize or helm must be set")
	case src.Kustomize != nil:
		if msg := checkPath(repo.FS, appDir, src.Kustomize.Path, pathKustomization); msg != "" {
			c.add("spec.source.kustomize.path", "%s", msg)
		}
	default:
		c.validateHelm(repo, appDir, src.Helm)
		c.validateRefs(repo, appDir, a)
	}
	c.selector("spec.targets.clusterSelector", s.Targets.ClusterSelector, "an app without a clusterSelector runs nowhere (use {} for every cluster)")
	for i, cu := range s.Customizations {
		c.validateCustomization(repo, appDir, fmt.Sprintf("spec.customizations[%d]", i), s.Source, cu)
	}
	if s.Rollout != nil {
		c.validateRollout(a)
	}
	switch s.Drift {
	case "", v1alpha1.DriftReport, v1alpha1.DriftCorrect:
	default:
		c.add("spec.drift", "unknown drift mode %q: want report or correct", s.Drift)
	}
}

func (c checker) validateHelm(repo *Repo, appDir string, h *v1alpha1.HelmSource) {
	const field = "spec.source.helm"
	remote := true
	switch {
	case h.Chart == "":
		c.add(field+".chart", "required: a chart folder (./chart), an oci:// reference, or a chart name with repo")
		return
	case strings.HasPrefix(h.Chart, "oci://"):
		if h.Repo != "" {
			c.add(field+".repo", "must be empty for an oci:// chart")
		}
		if _, err := name.NewRepository(strings.TrimPrefix(h.Chart, "oci://"), name.StrictValidation); err != nil {
			c.add(field+".chart", "%q is not a valid OCI chart reference (write oci://REGISTRY/PATH without a tag; the tag is version): %v", h.Chart, err)
		}
	case h.Repo != "":
		if strings.Contains(h.Chart, "/") || strings.Contains(h.Chart, ":") {
			c.add(field+".chart", "%q: with repo, chart is the chart's name in that repository", h.Chart)
		}
		if msg := checkChartRepo(h.Repo); msg != "" {
			c.add(field+".repo", "%s", msg)
		}
	case strings.HasPrefix(h.Chart, "https://") || strings.HasPrefix(h.Chart, "http://"):
		if h.Repo != "" {
			c.add(field+".repo", "must be empty for a chart URL")
		}
		if msg := checkChartRepo(h.Chart); msg != "" {
			c.add(field+".chart", "%s", strings.Replace(msg, "chart repository", "chart archive URL", 1))
		}
		if !sha256Hex.MatchString(h.SHA256) {
			c.add(field+".sha256", "required for a chart URL: the archive's SHA-256 as 64 hex digits (sha256sum CHART.tgz)")
		}
		if h.Version != "" {
			c.add(field+".version", "applies to oci:// and repo charts; a chart URL names one archive, pinned by sha256")
		}
		remote = false
	case strings.Contains(h.Chart, "://"):
		c.add(field+".chart", "%q: a chart is a folder in the repo, an oci:// reference, a name in an https repo, or an https URL of a .tgz", h.Chart)
		return
	default:
		remote = false
		if msg := checkPath(repo.FS, appDir, h.Chart, pathChart); msg != "" {
			c.add(field+".chart", "%s", msg)
		}
		if h.Version != "" {
			c.add(field+".version", "applies only to remote charts (oci:// or repo); a chart in the repo is versioned by the commit")
		}
	}
	if remote {
		if h.Version == "" {
			c.add(field+".version", "required for a remote chart (renders must be reproducible)")
		} else if _, err := version.ParseSemantic(h.Version); err != nil {
			c.add(field+".version", "%q is not an exact semantic version such as 1.2.3 (ranges are not allowed)", h.Version)
		}
	}
	if h.ReleaseName != "" {
		if errs := validation.IsDNS1123Label(h.ReleaseName); len(errs) > 0 || len(h.ReleaseName) > maxReleaseName {
			c.add(field+".releaseName", "%q is not a valid Helm release name: a DNS-1123 label of at most %d characters", h.ReleaseName, maxReleaseName)
		}
	}
	for i, vf := range h.ValuesFiles {
		if msg := checkPath(repo.FS, appDir, vf, pathFile); msg != "" {
			c.add(fmt.Sprintf("%s.valuesFiles[%d]", field, i), "%s", msg)
		}
	}
	if h.SHA256 != "" && !strings.HasPrefix(h.Chart, "https://") && !strings.HasPrefix(h.Chart, "http://") {
		c.add(field+".sha256", "applies only to a chart given by an https URL")
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkChartRepo checks a Helm repository URL: https, or plain http only to a
// loopback host (a local test registry). It returns the problem message, or "".
func checkChartRepo(repo string) string {
	u, err := url.Parse(repo)
	switch {
	case strings.Contains(repo, "@") || (err == nil && u.User != nil):
		// Not echoed: it may hold a password.
		return "must not hold credentials (credentials never live in the fleet repo)"
	case err != nil || u.Host == "":
		return fmt.Sprintf("%q is not a URL: want https://HOST/PATH", repo)
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.") {
			return ""
		}
		return fmt.Sprintf("%q: plain http is allowed only for localhost; use https", repo)
	default:
		return fmt.Sprintf("%q: want an https:// chart repository (or oci:// in chart)", repo)
	}
}

func (c checker) validateCustomization(repo *Repo, appDir, field string, src v1alpha1.AppSource, cu v1alpha1.Customization) {
	c.selector(field+".clusterSelector", cu.ClusterSelector, "a customization selects the clusters it changes (use {} for all targets)")
	if cu.Kustomize == nil && len(cu.Values) == 0 && len(cu.ValuesFiles) == 0 && len(cu.Patches) == 0 {
		c.add(field, "a customization needs at least one of kustomize, valuesFiles, values or patches")
	}
	if cu.Kustomize != nil {
		kind := pathKustomization
		if src.Helm != nil {
			kind = pathOverlay // an overlay over the chart: it must have a kustomization
		}
		if msg := checkPath(repo.FS, appDir, cu.Kustomize.Path, kind); msg != "" {
			c.add(field+".kustomize.path", "%s", msg)
		}
		if src.Helm != nil && (cu.Kustomize.Recurse || cu.Kustomize.Substitute) {
			c.add(field+".kustomize", "recurse and substitute apply to a Kustomize source; an overlay over a chart takes only path (use ${cluster.*} in the chart's values)")
		}
	}
	if len(cu.Values) > 0 && src.Helm == nil {
		c.add(field+".values", "applies only to apps whose source is helm")
	}
	if len(cu.ValuesFiles) > 0 && src.Helm == nil {
		c.add(field+".valuesFiles", "applies only to apps whose source is helm")
	}
	for i, vf := range cu.ValuesFiles {
		if msg := checkPath(repo.FS, appDir, vf, pathFile); msg != "" {
			c.add(fmt.Sprintf("%s.valuesFiles[%d]", field, i), "%s", msg)
		}
	}
	for i, p := range cu.Patches {
		c.validatePatch(fmt.Sprintf("%s.patches[%d]", field, i), p)
	}
}

func (c checker) validatePatch(field string, p v1alpha1.Patch) {
	if strings.TrimSpace(p.Patch) == "" {
		c.add(field+".patch", "required: the patch text (a strategic merge patch or a JSON 6902 operation list)")
	} else {
		var v any
		if err := yaml.Unmarshal([]byte(p.Patch), &v); err != nil {
			c.add(field+".patch", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		} else if _, ok := v.(map[string]any); !ok {
			if _, ok := v.([]any); !ok {
				c.add(field+".patch", "want a strategic merge patch (an object) or a JSON 6902 operation list")
			}
		}
	}
	if p.Target == nil {
		return
	}
	if p.Target.Name != "" {
		if _, err := regexp.Compile(p.Target.Name); err != nil {
			c.add(field+".target.name", "invalid regular expression: %v", err)
		}
	}
	for _, sel := range []struct{ field, value string }{
		{"labelSelector", p.Target.LabelSelector},
		{"annotationSelector", p.Target.AnnotationSelector},
	} {
		if sel.value == "" {
			continue
		}
		if _, err := labels.Parse(sel.value); err != nil {
			c.add(field+".target."+sel.field, "invalid selector: %v", err)
		}
	}
}

// validateDependencies checks dependsOn: known apps, not the app itself, no cycle.
func (l *loader) validateDependencies(repo *Repo) {
	graph := map[string][]string{}
	for _, a := range repo.Apps {
		c := l.checker(a)
		seen := map[string]bool{}
		for i, d := range a.Spec.DependsOn {
			field := fmt.Sprintf("spec.dependsOn[%d]", i)
			switch {
			case d == a.Metadata.Name:
				c.add(field, "an app cannot depend on itself")
			case repo.App(d) == nil:
				c.add(field, "unknown app %q", d)
			case seen[d]:
				c.add(field, "%q is listed twice", d)
			default:
				graph[a.Metadata.Name] = append(graph[a.Metadata.Name], d)
			}
			seen[d] = true
		}
	}
	for _, cycle := range findCycles(repo.Apps, graph) {
		a := repo.App(cycle[0])
		idx := slices.Index(a.Spec.DependsOn, cycle[1])
		l.checker(a).add(fmt.Sprintf("spec.dependsOn[%d]", idx), "dependsOn cycle: %s", strings.Join(cycle, " -> "))
	}
}

// findCycles returns the dependency cycles found by a depth-first search, each
// rotated to start at its smallest name and closed (a -> b -> a), each once.
func findCycles(apps []*v1alpha1.App, graph map[string][]string) [][]string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := map[string]int{}
	var stack []string
	var cycles [][]string
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		state[n] = onStack
		stack = append(stack, n)
		for _, d := range graph[n] {
			switch state[d] {
			case unvisited:
				visit(d)
			case onStack:
				cyc := slices.Clone(stack[slices.Index(stack, d):])
				start := slices.Index(cyc, slices.Min(cyc))
				cyc = append(cyc[start:], cyc[:start]...)
				cyc = append(cyc, cyc[0])
				if key := strings.Join(cyc, "\x00"); !seen[key] {
					seen[key] = true
					cycles = append(cycles, cyc)
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
	}
	for _, a := range apps {
		if state[a.Metadata.Name] == unvisited {
			visit(a.Metadata.Name)
		}
	}
	return cycles
}

// validateRollout checks the waves select clusters and that every target
// cluster is in some wave (a cluster in no wave would never be rolled out to).
func (c checker) validateRollout(a *v1alpha1.App) {
	r := a.Spec.Rollout
	valid := true
	for i, w := range r.Waves {
		if !c.selector(fmt.Sprintf("spec.rollout.waves[%d].clusterSelector", i), w.ClusterSelector, "a wave selects its clusters (use {} for every remaining cluster)") {
			valid = false
		}
	}
	for i, w := range r.Waves {
		if w.MaxFailures != nil && *w.MaxFailures < 0 {
			c.add(fmt.Sprintf("spec.rollout.waves[%d].maxFailures", i), "must be 0 or more, found %d", *w.MaxFailures)
		}
		c.duration(fmt.Sprintf("spec.rollout.waves[%d].soakTime", i), w.SoakTime)
	}
	c.duration("spec.rollout.healthTimeout", r.HealthTimeout)
	if !valid || len(r.Waves) == 0 {
		return
	}
	var missed []*v1alpha1.Cluster
	for _, cl := range c.l.sels.selectClusters(a.Spec.Targets.ClusterSelector) {
		if !slices.ContainsFunc(r.Waves, func(w v1alpha1.Wave) bool { return c.l.sels.selects(w.ClusterSelector, cl) }) {
			missed = append(missed, cl)
		}
	}
	if len(missed) > 0 {
		c.add("spec.rollout.waves", "targeted clusters %s are in no wave and would never be rolled out to (end with a wave whose clusterSelector is {})", clusterNames(missed))
	}
}
