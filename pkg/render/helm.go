package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/ignore"
	"helm.sh/helm/v3/pkg/release"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// kubeInfo is the cluster version Helm renders .Capabilities with.
type kubeInfo struct {
	Version     string   `json:"version,omitempty"`
	APIVersions []string `json:"apiVersions,omitempty"`
}

// isRemoteChart reports whether a Helm source names a chart outside the repo.
func isRemoteChart(src *v1alpha1.HelmSource) bool {
	return src.Repo != "" || strings.HasPrefix(src.Chart, "oci://") || isChartURL(src.Chart)
}

// loadLocalChart loads a chart folder (with vendored charts/) or a .tgz from
// the repo snapshot, recording what it read.
func loadLocalChart(snap *snapshot, appDir, ref string, d *deps) (*chart.Chart, string, error) {
	p, err := relPath(appDir, ref)
	if err != nil {
		return nil, "", fmt.Errorf("chart %s: %w", ref, err)
	}
	d.add(snap, p)
	if why, bad := snap.badLink(p); bad {
		return nil, p, fmt.Errorf("chart %s: %s", p, why)
	}
	if b, ok := snap.files[p]; ok {
		c, err := loader.LoadArchive(bytes.NewReader(b))
		if err != nil {
			return nil, p, fmt.Errorf("chart %s: %w", p, err)
		}
		return c, p, nil
	}
	if _, ok := snap.dirs[p]; !ok {
		return nil, p, fmt.Errorf("chart %s: not found in the repo", p)
	}
	d.addTree(snap, p)
	rules := ignore.Empty()
	if b, ok := snap.files[path.Join(p, ignore.HelmIgnore)]; ok {
		if rules, err = ignore.Parse(bytes.NewReader(b)); err != nil {
			return nil, p, fmt.Errorf("chart %s: %s: %w", p, ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()
	var files []*loader.BufferedFile
	var bad []string
	var walk func(dir string)
	walk = func(dir string) {
		for _, n := range snap.dirs[dir] {
			q := path.Join(dir, n)
			rel := strings.TrimPrefix(q, p+"/")
			if why, isBad := snap.badLinks[q]; isBad {
				bad = append(bad, why)
				continue
			}
			if _, isDir := snap.dirs[q]; isDir {
				if !rules.Ignore(rel, fileInfo{name: n, dir: true}) {
					walk(q)
				}
				continue
			}
			if rules.Ignore(rel, fileInfo{name: n, size: int64(len(snap.files[q]))}) {
				continue
			}
			data := bytes.TrimPrefix(snap.files[q], []byte("\xEF\xBB\xBF"))
			files = append(files, &loader.BufferedFile{Name: rel, Data: data})
		}
	}
	walk(p)
	if len(bad) > 0 {
		return nil, p, fmt.Errorf("chart %s: %s", p, strings.Join(bad, "; "))
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, p, fmt.Errorf("chart %s: %w", p, err)
	}
	return c, p, nil
}

// helmValues computes the effective values, lowest precedence first: (chart
// defaults, applied by Helm,) valuesFiles, values, then each matching
// customization's valuesFiles and values; then the ${cluster.*} references
// are substituted with the cluster's facts. Nothing is injected.
func helmValues(snap *snapshot, repo *fleet.Repo, c *v1alpha1.Cluster, app *v1alpha1.App, m *matcher) (map[string]any, error) {
	return helmValuesWith(snap.valuesFile, repo, c, app, m)
}

func helmValuesWith(read func(string) (map[string]any, error), repo *fleet.Repo, c *v1alpha1.Cluster, app *v1alpha1.App, m *matcher) (map[string]any, error) {
	src := app.Spec.Source.Helm
	appDir := fleet.AppDir(app.Metadata.Name)
	vals := map[string]any{}
	addFiles := func(files []string) error {
		for _, f := range files {
			p, err := relPath(appDir, f)
			if err != nil {
				return fmt.Errorf("values file %s: %w", f, err)
			}
			v, err := read(p)
			if err != nil {
				return fmt.Errorf("values file %s: %w", p, err)
			}
			vals = fleet.MergeValues(vals, v)
		}
		return nil
	}
	if err := addFiles(src.ValuesFiles); err != nil {
		return nil, err
	}
	vals = fleet.MergeValues(vals, src.Values)
	for _, cu := range app.Spec.Customizations {
		if m.matches(cu.ClusterSelector, c) {
			if err := addFiles(cu.ValuesFiles); err != nil {
				return nil, err
			}
			vals = fleet.MergeValues(vals, cu.Values)
		}
	}
	out, err := fleet.FactsOf(repo, c).Expand(vals)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return helmNumbers(out.(map[string]any))
}

// helmNumbers gives values the types Helm gives a values file (`helm
// template -f`): every number a float64, as JSON decodes it, so templates see
// what they see with the CLI (kindOf, large numbers printed as 1e+06).
func helmNumbers(vals map[string]any) (map[string]any, error) {
	b, err := json.Marshal(vals)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return out, nil
}

// helmTemplateWithin is helmTemplate bounded by timeout: Go templates take
// no context, so a template that does not end is abandoned (it runs on
// until the process ends) and the pair fails with an error that says so.
func helmTemplateWithin(ctx context.Context, timeout time.Duration, ch *chart.Chart, release, namespace string, vals map[string]any, kube kubeInfo) (string, error) {
	type result struct {
		manifest string
		err      error
	}
	done := make(chan result, 1)
	go func() {
		m, err := helmTemplate(ctx, ch, release, namespace, vals, kube)
		done <- result{m, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.manifest, r.err
	case <-t.C:
		return "", fmt.Errorf("its templates did not finish within %s (a loop that does not end?): render abandoned (--render-timeout)", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// helmTemplate renders a chart client-only, like `helm template
// --include-crds --skip-tests`, and returns the manifest stream: the
// release's objects, then its hooks (test hooks left out: they never run).
// Hooks keep their helm.sh/hook annotations; pkg/apply runs them in their
// phases (see docs/render.md).
func helmTemplate(ctx context.Context, ch *chart.Chart, release, namespace string, vals map[string]any, kube kubeInfo) (manifest string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("helm template: internal error: %v", p)
		}
	}()
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.ClientOnly = true
	inst.DryRun = true
	inst.DryRunOption = "client"
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = release
	inst.Namespace = namespace
	if kube.Version != "" {
		kv, err := chartutil.ParseKubeVersion(kube.Version)
		if err != nil {
			return "", fmt.Errorf("kubernetes version %q: %w", kube.Version, err)
		}
		inst.KubeVersion = kv
	}
	inst.APIVersions = chartutil.VersionSet(kube.APIVersions)
	rel, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		return "", err
	}
	if rel == nil {
		return "", errors.New("helm template: no release")
	}
	var b strings.Builder
	b.WriteString(rel.Manifest)
	for _, h := range rel.Hooks {
		if isTestHook(h) {
			continue
		}
		b.WriteString("\n---\n# Source: ")
		b.WriteString(h.Path)
		b.WriteString("\n")
		b.WriteString(h.Manifest)
	}
	return b.String(), nil
}

// isTestHook reports whether a hook runs only on `helm test`.
func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// sortedCopy returns a sorted copy of a string list.
func sortedCopy(l []string) []string {
	c := append([]string(nil), l...)
	sort.Strings(c)
	return c
}

// valuesFile parses a values file of the snapshot once; callers must not
// change the map (mergeValues copies).
func (s *snapshot) valuesFile(p string) (map[string]any, error) {
	s.mu.Lock()
	if v, ok := s.values[p]; ok {
		s.mu.Unlock()
		return v.vals, v.err
	}
	s.mu.Unlock()
	var v parsedValues
	b, err := s.readFile(p)
	if err == nil {
		err = yaml.Unmarshal(b, &v.vals)
	}
	v.err = err
	s.mu.Lock()
	if s.values == nil {
		s.values = map[string]parsedValues{}
	}
	s.values[p] = v
	s.mu.Unlock()
	return v.vals, v.err
}

type parsedValues struct {
	vals map[string]any
	err  error
}

// fileInfo is the little of fs.FileInfo that .helmignore rules look at.
type fileInfo struct {
	name string
	size int64
	dir  bool
}

func (f fileInfo) Name() string { return f.name }
func (f fileInfo) Size() int64  { return f.size }
func (f fileInfo) Mode() fs.FileMode {
	if f.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return f.dir }
func (f fileInfo) Sys() any           { return nil }

// valueWarnings reports the given values Helm would drop or that replace a
// chart default of another shape: Helm only logs these ("skipped value for
// x: Not a table"), so a chart silently gets its default.
func valueWarnings(defaults, given map[string]any, at string) []string {
	var out []string
	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, p := given[k], k
		if at != "" {
			p = at + "." + k
		}
		dv, ok := defaults[k]
		if !ok || dv == nil || v == nil {
			continue
		}
		dm, dIsMap := fleet.ValuesMap(dv)
		gm, gIsMap := fleet.ValuesMap(v)
		switch {
		case dIsMap && gIsMap:
			out = append(out, valueWarnings(dm, gm, p)...)
		case dIsMap && !gIsMap:
			out = append(out, fmt.Sprintf("values: %s: the chart's default is a map; Helm skips the given %T %v and keeps the default (\"Not a table\")", p, v, v))
		case !dIsMap && gIsMap:
			out = append(out, fmt.Sprintf("values: %s: a map replaces the chart's default %T %v", p, dv, dv))
		}
	}
	return out
}
