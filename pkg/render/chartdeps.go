package render

// Chart dependencies: the dependencies a chart's Chart.yaml declares but
// charts/ does not hold are resolved in-process before the render, as `helm
// dependency build` would fetch them (docs/render.md, "Chart dependencies").

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/registry"
	helmrepo "helm.sh/helm/v3/pkg/repo"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// maxDepDepth bounds chains of resolved dependencies (a file:// cycle would
// otherwise never end).
const maxDepDepth = 10

// depNode is one resolved dependency: a chart folder of the repo or a
// fetched archive, with its own resolved dependencies. Nodes are shared by
// the pairs of one Render call and never changed once built.
type depNode struct {
	label  string       // how errors name it: "redis 18.x from https://host/charts"
	local  string       // repo path of a file:// chart folder
	remote *remoteChart // a fetched archive (https, oci)
	deps   []*depNode
}

// depPlan is how the unvendored dependencies of one chart are resolved.
type depPlan struct {
	nodes []*depNode
	// keys name every resolved chart (path, version, remote digest) for
	// the render key: a changed dependency is a new render.
	keys []string
}

// depMemo memoizes, for one Render call, the dependency plans of charts,
// repository indexes and OCI tag lists, so each is worked out once.
type depMemo struct {
	mu sync.Mutex
	m  map[string]*depOnce
}

type depOnce struct {
	once sync.Once
	v    any
	err  error
}

func (m *depMemo) do(key string, f func() (any, error)) (any, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*depOnce{}
	}
	e, ok := m.m[key]
	if !ok {
		e = &depOnce{}
		m.m[key] = e
	}
	m.mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	return e.v, e.err
}

// resolveChartDeps resolves the chart's unvendored dependencies (once per
// chart and Render call) into s: the plan renderHelm attaches, and its keys.
func (run *renderRun) resolveChartDeps(ctx context.Context, s *renderSpec) error {
	var key string
	if s.remote != nil {
		key = "remote\x00" + s.Chart + "\x00" + s.ChartDigest
	} else {
		p, err := relPath(s.AppDir, s.Chart)
		if err != nil || !run.declaresDeps(p) {
			return nil // a bad path is reported by loadLocalChart
		}
		key = "local\x00" + p
	}
	v, err := run.charts.deps.do(key, func() (any, error) {
		var ch *chart.Chart
		name, base := s.Chart, ""
		if s.remote != nil {
			c, err := s.remote.load()
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", s.Chart, err)
			}
			ch = c
		} else {
			c, p, err := loadLocalChart(run.snap, s.AppDir, s.Chart, newDeps())
			if err != nil {
				return nil, err
			}
			ch, name = c, p
			if _, ok := run.snap.dirs[p]; ok {
				base = p
			}
		}
		plan := &depPlan{}
		nodes, err := run.resolveDeps(ctx, ch, base, 0, plan, "")
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		}
		plan.nodes = nodes
		return plan, nil
	})
	if err != nil {
		return err
	}
	plan := v.(*depPlan)
	s.Dependencies, s.depPlan = plan.keys, plan.nodes
	return nil
}

// declaresDeps reports whether the local chart at p may declare dependencies:
// a folder whose Chart.yaml mentions them (or with a requirements.yaml), or a
// .tgz whose Chart.yaml lists some. Such charts are resolved on every Render
// (their dependencies may live outside the repo); others skip it.
func (run *renderRun) declaresDeps(p string) bool {
	if _, ok := run.snap.dirs[p]; ok {
		_, req := run.snap.files[path.Join(p, "requirements.yaml")]
		return req || bytes.Contains(run.snap.files[path.Join(p, chartutil.ChartfileName)], []byte("dependencies"))
	}
	b, ok := run.snap.files[p]
	if !ok {
		return false
	}
	dg := run.snap.digest(p)
	if v, ok := run.r.charts.declared.Load(dg); ok {
		return v.(bool)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(b))
	has := err != nil || len(ch.Metadata.Dependencies) > 0
	run.r.charts.declared.Store(dg, has)
	return has
}

// resolveDeps resolves the dependencies ch declares that its charts/ does not
// hold. base is the repo folder of ch, for file:// dependencies ("" for a
// packaged chart); at is the position in the tree, for the keys.
func (run *renderRun) resolveDeps(ctx context.Context, ch *chart.Chart, base string, depth int, plan *depPlan, at string) ([]*depNode, error) {
	var missing []*chart.Dependency
	for _, r := range ch.Metadata.Dependencies {
		if r == nil {
			continue
		}
		vendored, err := isVendored(ch, r)
		if err != nil {
			return nil, err
		}
		if !vendored {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if depth >= maxDepDepth {
		return nil, fmt.Errorf("dependencies nested more than %d deep (a file:// cycle?)", maxDepDepth)
	}
	locked, err := lockedVersions(ch)
	if err != nil {
		return nil, err
	}
	var nodes []*depNode
	resolved := map[string]string{} // name -> version of the charts resolved here
	for _, r := range missing {
		if v, ok := resolved[r.Name]; ok && satisfies(r.Version, v) {
			continue // another alias of a chart already resolved
		}
		n, version, err := run.resolveDep(ctx, r, locked[r], base, depth, plan, at+"/"+r.Name)
		if err != nil {
			return nil, fmt.Errorf("dependency %s: %w", depLabel(r), err)
		}
		resolved[r.Name] = version
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// isVendored reports whether charts/ holds the dependency (its name, at a
// version satisfying the constraint). A chart of that name at another version
// is an error: Helm would render it besides the resolved one.
func isVendored(ch *chart.Chart, r *chart.Dependency) (bool, error) {
	var other []string
	for _, sub := range ch.Dependencies() {
		if sub.Name() != r.Name {
			continue
		}
		if satisfies(r.Version, sub.Metadata.Version) {
			return true, nil
		}
		other = append(other, sub.Metadata.Version)
	}
	if len(other) > 0 {
		return false, fmt.Errorf("dependency %s: charts/ holds version %s, which does not satisfy %q: remove it or vendor a matching version",
			depLabel(r), strings.Join(other, ", "), r.Version)
	}
	return false, nil
}

// satisfies reports whether version meets a Chart.yaml version constraint
// (an empty constraint takes any version), as Helm checks subcharts.
func satisfies(constraint, version string) bool {
	if constraint == "" {
		_, err := semver.NewVersion(version)
		return err == nil
	}
	return chartutil.IsCompatibleRange(constraint, version)
}

// lockedVersions checks the chart's lock file (Chart.lock, requirements.lock
// for apiVersion v1) against its dependencies, as `helm dependency build`
// does, and returns the locked version of each dependency (nil without a
// lock file).
func lockedVersions(ch *chart.Chart) (map[*chart.Dependency]string, error) {
	lock := ch.Lock
	if lock == nil {
		return nil, nil
	}
	reqs := ch.Metadata.Dependencies
	sum, err := hashDeps([2][]*chart.Dependency{reqs, lock.Dependencies})
	if err != nil || sum != lock.Digest {
		if ch.Metadata.APIVersion == chart.APIVersionV1 {
			if v2, err := hashDeps(map[string][]*chart.Dependency{"dependencies": reqs}); err != nil || v2 != lock.Digest {
				return nil, errors.New("the lock file (requirements.lock) is out of sync with the dependencies file (requirements.yaml); run helm dependency update and commit the lock file")
			}
		} else {
			return nil, errors.New("the lock file (Chart.lock) is out of sync with the dependencies file (Chart.yaml); run helm dependency update and commit Chart.lock")
		}
	}
	locked := map[*chart.Dependency]string{}
	for i, r := range reqs {
		if r == nil {
			continue
		}
		// helm writes the lock in the order of Chart.yaml; fall back to the name.
		if i < len(lock.Dependencies) && lock.Dependencies[i] != nil && lock.Dependencies[i].Name == r.Name {
			locked[r] = lock.Dependencies[i].Version
			continue
		}
		for _, l := range lock.Dependencies {
			if l != nil && l.Name == r.Name && l.Repository == r.Repository {
				locked[r] = l.Version
				break
			}
		}
	}
	return locked, nil
}

// hashDeps is Helm's digest of dependencies and lock (resolver.HashReq).
func hashDeps(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	s, err := provenance.Digest(bytes.NewReader(b))
	return "sha256:" + s, err
}

// depLabel names a dependency in errors, without credentials.
func depLabel(r *chart.Dependency) string {
	repo := safeURL(r.Repository)
	switch {
	case strings.HasPrefix(r.Repository, "file://"):
		return r.Name + " (" + repo + ")"
	case r.Repository == "":
		return r.Name
	case r.Version == "":
		return r.Name + " from " + repo
	}
	return r.Name + " " + r.Version + " from " + repo
}

// safeURL is a URL with any user info removed, even from one that does not parse.
func safeURL(s string) string {
	return userinfo.ReplaceAllString(redactURL(s), "://")
}

// resolveDep resolves one unvendored dependency, at its locked version when
// the chart has a lock file. It returns the node and the version chosen.
func (run *renderRun) resolveDep(ctx context.Context, r *chart.Dependency, locked, base string, depth int, plan *depPlan, at string) (*depNode, string, error) {
	repo := r.Repository
	switch {
	case repo == "":
		return nil, "", errors.New("not in charts/, and no repository to fetch it from")
	case strings.HasPrefix(repo, "file://"):
		return run.resolveFileDep(ctx, r, locked, base, depth, plan, at)
	case strings.HasPrefix(repo, "@") || strings.HasPrefix(repo, "alias:"):
		return nil, "", fmt.Errorf("repository %q is a name from a local helm configuration, which fleetsync does not read: give the repository's URL (https:// or oci://)", repo)
	}
	if msg := checkDepRepo(repo); msg != "" {
		return nil, "", errors.New(msg)
	}
	var rc *remoteChart
	var version string
	var err error
	if strings.HasPrefix(repo, "oci://") {
		rc, version, err = run.fetchOCIDep(ctx, r, locked)
	} else {
		rc, version, err = run.fetchRepoDep(ctx, r, locked)
	}
	if err != nil {
		return nil, "", err
	}
	ch, err := rc.load()
	if err != nil {
		return nil, "", fmt.Errorf("version %s: %w", version, err)
	}
	if ch.Name() != r.Name {
		return nil, "", fmt.Errorf("version %s: the archive holds chart %q, not %q", version, ch.Name(), r.Name)
	}
	plan.keys = append(plan.keys, at+" "+safeURL(repo)+" "+version+" "+rc.digest)
	sub, err := run.resolveDeps(ctx, ch, "", depth+1, plan, at)
	if err != nil {
		return nil, "", err
	}
	return &depNode{label: depLabel(r), remote: rc, deps: sub}, version, nil
}

// checkDepRepo refuses repository URLs that hold credentials or are not
// https (plain http only for the local machine), as the App's repo is
// checked; "" when the URL is fine. The URL is not echoed: it may hold a
// password.
func checkDepRepo(repo string) string {
	u, err := url.Parse(repo)
	switch {
	case strings.Contains(repo, "@") || (err == nil && u.User != nil):
		return "the repository URL must not hold credentials (credentials never live in the fleet repo)"
	case err != nil || u.Host == "":
		return "the repository is not a URL: want file://PATH, https://HOST/PATH or oci://HOST/PATH"
	}
	switch u.Scheme {
	case "https", "oci":
		return ""
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.") {
			return ""
		}
		return "plain http is allowed only for localhost; use https"
	}
	return "want a file://, https:// or oci:// repository"
}

// resolveFileDep resolves a file:// dependency: a chart folder of the repo,
// relative to the folder of the chart that declares it.
func (run *renderRun) resolveFileDep(ctx context.Context, r *chart.Dependency, locked, base string, depth int, plan *depPlan, at string) (*depNode, string, error) {
	if base == "" {
		return nil, "", errors.New("file:// dependencies are resolved only for chart folders in the repo, not inside a packaged chart")
	}
	p := strings.TrimPrefix(r.Repository, "file://")
	if path.IsAbs(p) {
		return nil, "", errors.New("the path is absolute: file:// paths are relative to the chart's folder and may not leave the repo")
	}
	dir, err := relPath(base, p)
	if err != nil {
		return nil, "", err
	}
	if why, bad := run.snap.badLink(dir); bad {
		return nil, "", errors.New(why)
	}
	if _, ok := run.snap.dirs[dir]; !ok {
		if _, isFile := run.snap.files[dir]; isFile {
			return nil, "", fmt.Errorf("%s is not a chart folder", dir)
		}
		return nil, "", errors.New("not found in the repo")
	}
	ch, _, err := loadLocalChart(run.snap, ".", dir, newDeps())
	if err != nil {
		return nil, "", err
	}
	if ch.Name() != r.Name {
		return nil, "", fmt.Errorf("%s holds chart %q, not %q", dir, ch.Name(), r.Name)
	}
	v := ch.Metadata.Version
	switch {
	case locked != "" && v != locked:
		return nil, "", fmt.Errorf("%s is at version %s, Chart.lock has %s; run helm dependency update and commit Chart.lock", dir, v, locked)
	case locked == "" && !satisfies(r.Version, v):
		return nil, "", fmt.Errorf("%s is at version %s, which does not satisfy %q", dir, v, r.Version)
	}
	plan.keys = append(plan.keys, at+" "+dir+" "+v)
	sub, err := run.resolveDeps(ctx, ch, dir, depth+1, plan, at)
	if err != nil {
		return nil, "", err
	}
	return &depNode{label: depLabel(r), local: dir, deps: sub}, v, nil
}

// fetchRepoDep picks the version of an https dependency from the
// repository's index (the locked one, else the highest satisfying the
// constraint) and fetches it through the chart store.
func (run *renderRun) fetchRepoDep(ctx context.Context, r *chart.Dependency, locked string) (*remoteChart, string, error) {
	type index struct {
		base *url.URL
		idx  *helmrepo.IndexFile
	}
	repoURL := strings.TrimSuffix(r.Repository, "/")
	v, err := run.charts.deps.do("index\x00"+repoURL, func() (any, error) {
		base, idx, err := run.r.charts.repoIndex(ctx, repoURL)
		if err != nil {
			return nil, err
		}
		return &index{base: base, idx: idx}, nil
	})
	if err != nil {
		return nil, "", err
	}
	ix := v.(*index)
	idx := ix.idx
	entries := idx.Entries[r.Name]
	if len(entries) == 0 {
		return nil, "", errors.New("not in the repository's index")
	}
	var have []string
	version := ""
	for _, cv := range entries { // newest first
		if cv == nil || cv.Metadata == nil || len(cv.URLs) == 0 {
			continue
		}
		have = append(have, cv.Version)
		if version != "" {
			continue
		}
		if (locked != "" && cv.Version == locked) || (locked == "" && satisfies(r.Version, cv.Version)) {
			version = cv.Version
		}
	}
	if version == "" {
		reverse(have)
		if locked != "" {
			return nil, "", fmt.Errorf("the locked version %s (Chart.lock) is not in the repository (it has %s)", locked, strings.Join(have, ", "))
		}
		return nil, "", fmt.Errorf("no version satisfies %q (the repository has %s)", r.Version, strings.Join(have, ", "))
	}
	src := &v1alpha1.HelmSource{Repo: repoURL, Chart: r.Name, Version: version}
	rc, err := run.charts.do(fetchKey(src), func() (*remoteChart, error) {
		return run.r.charts.fetchFromIndex(ctx, src, ix.base, idx)
	})
	return rc, version, err
}

// fetchOCIDep fetches an oci:// dependency (reference REPOSITORY/NAME, tag =
// version): the locked or exact version, else the highest tag satisfying the
// constraint, from the registry's tag list.
func (run *renderRun) fetchOCIDep(ctx context.Context, r *chart.Dependency, locked string) (*remoteChart, string, error) {
	ref := strings.TrimPrefix(strings.TrimSuffix(r.Repository, "/"), "oci://") + "/" + r.Name
	version := locked
	if version == "" {
		if _, err := semver.StrictNewVersion(r.Version); err == nil {
			version = r.Version
		}
	}
	if version == "" {
		v, err := run.charts.deps.do("tags\x00"+ref, func() (any, error) { return run.r.charts.ociTags(ref) })
		if err != nil {
			return nil, "", fmt.Errorf("%q is not an exact version, and the registry's tags could not be listed (%w): give an exact version", r.Version, err)
		}
		tags := v.([]string) // newest first
		for _, t := range tags {
			if satisfies(r.Version, t) {
				version = t
				break
			}
		}
		if version == "" {
			have := append([]string(nil), tags...) // tags is shared: do not reverse it
			reverse(have)
			return nil, "", fmt.Errorf("no version satisfies %q (the registry has %s)", r.Version, strings.Join(have, ", "))
		}
	}
	rc, err := run.charts.get(ctx, run.r.charts, &v1alpha1.HelmSource{Chart: "oci://" + ref, Version: version})
	return rc, version, err
}

// ociTags lists the semver tags of an OCI repository, newest first.
func (s *chartStore) ociTags(ref string) ([]string, error) {
	c, err := registry.NewClient(registry.ClientOptHTTPClient(s.client), registry.ClientOptWriter(io.Discard))
	if err != nil {
		return nil, err
	}
	tags, err := c.Tags(ref)
	if err != nil {
		return nil, redactErr(err)
	}
	return tags, nil
}

func reverse(l []string) {
	for i, j := 0, len(l)-1; i < j; i, j = i+1, j-1 {
		l[i], l[j] = l[j], l[i]
	}
}

// attachDeps loads the resolved dependencies of a plan and adds them to ch,
// recording the repo files they read in d. Helm handles condition, tags,
// alias and import-values when it renders.
func attachDeps(snap *snapshot, ch *chart.Chart, nodes []*depNode, d *deps) error {
	for _, n := range nodes {
		var sub *chart.Chart
		var err error
		if n.remote != nil {
			sub, err = n.remote.load()
		} else {
			sub, _, err = loadLocalChart(snap, ".", n.local, d)
		}
		if err != nil {
			return fmt.Errorf("dependency %s: %w", n.label, err)
		}
		if err := attachDeps(snap, sub, n.deps, d); err != nil {
			return fmt.Errorf("dependency %s: %w", n.label, err)
		}
		ch.AddDependency(sub)
	}
	return nil
}

// localChartDeclaresDeps reports whether the app's local chart may declare
// dependencies (see declaresDeps).
func (run *renderRun) localChartDeclaresDeps(app *v1alpha1.App) bool {
	p, err := relPath(fleet.AppDir(app.Metadata.Name), app.Spec.Source.Helm.Chart)
	return err == nil && run.declaresDeps(p)
}
