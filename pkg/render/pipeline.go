package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// renderRun is the state of one Render call.
type renderRun struct {
	r        *Renderer
	repo     *fleet.Repo
	revision string
	match    *matcher
	snap     *snapshot
	charts   chartFetches
	// kubeVersions and apiVersions are the Selection's live facts.
	kubeVersions map[string]string
	apiVersions  map[string][]string
	scopes       map[string]map[string]bool

	mu       sync.Mutex
	flights  map[string]*flight
	fps      map[any]string         // fingerprint of each repo object
	declared map[*v1alpha1.App]bool // appDeclaresDeps of each app

	rendered, reused, cached atomic.Int64
}

// pairJob is one (cluster, app) pair being rendered.
type pairJob struct {
	cluster *v1alpha1.Cluster
	app     *v1alpha1.App
	src     *cacheEntry // shared with other pairs: copy before changing
	err     error
	waits   *flight // another pair's render, running: src and err are its
}

// flight is one render inside a Render call; pairs with the same inputs wait
// for the same flight.
type flight struct {
	done chan struct{} // closed when src and err are set
	src  *cacheEntry
	err  error
}

// renderSpec is everything a source render depends on besides the files it
// reads; its hash keys the cache.
type renderSpec struct {
	Kind        string           `json:"kind"`
	Dir         string           `json:"dir,omitempty"`
	AllowRemote bool             `json:"allowRemote,omitempty"`
	Chart       string           `json:"chart,omitempty"`
	ChartDigest string           `json:"chartDigest,omitempty"`
	Release     string           `json:"release,omitempty"`
	Namespace   string           `json:"namespace,omitempty"`
	Values      map[string]any   `json:"values,omitempty"`
	Kube        kubeInfo         `json:"kube,omitempty"`
	Patches     []v1alpha1.Patch `json:"patches,omitempty"`
	AppDir      string           `json:"appDir"`
	// Recurse reads subfolders of a plain manifest folder (Kind "manifests").
	Recurse bool `json:"recurse,omitempty"`
	// Facts are the cluster's, for a Kustomize app's substitution.
	Facts *fleet.ClusterFacts `json:"facts,omitempty"`
	// Overlay is a Kustomize overlay built over a Helm chart's output.
	Overlay string       `json:"overlay,omitempty"`
	remote  *remoteChart `json:"-"`
	// patchFields names the App field of each patch (same order as Patches).
	patchFields []string
	// Dependencies names the chart's resolved unvendored dependencies
	// (with the digests of fetched ones); depPlan is how to attach them.
	Dependencies []string   `json:"dependencies,omitempty"`
	depPlan      []*depNode `json:"-"`
}

func (s *renderSpec) key() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// renderPair renders the app's source for the cluster (before the
// per-cluster finishing steps), sharing identical renders: when another
// pair's render with the same key has started, it returns that flight,
// done or not, instead of waiting for it.
func (run *renderRun) renderPair(ctx context.Context, c *v1alpha1.Cluster, app *v1alpha1.App) (*cacheEntry, *flight, error) {
	spec, key, err := run.pairKey(ctx, c, app)
	if err != nil {
		return nil, nil, pairErr(c, app, err)
	}
	run.mu.Lock()
	f, ok := run.flights[key]
	if !ok {
		f = &flight{done: make(chan struct{})}
		run.flights[key] = f
	}
	run.mu.Unlock()
	if ok {
		run.reused.Add(1)
		return nil, f, nil
	}
	run.fly(ctx, f, key, spec, c, app)
	if f.err != nil {
		return nil, nil, pairErr(c, app, f.err)
	}
	return f.src, nil, nil
}

// fly runs a flight: from the Renderer's cache, or a render.
func (run *renderRun) fly(ctx context.Context, f *flight, key string, spec *renderSpec, c *v1alpha1.Cluster, app *v1alpha1.App) {
	defer close(f.done)
	if e, ok := run.r.cache.get(key, run.snap); ok {
		run.cached.Add(1)
		f.src = e
		return
	}
	if spec == nil {
		// the key was remembered: work the spec out to render it
		var err error
		if spec, err = run.spec(ctx, c, app); err != nil {
			f.err = err
			return
		}
	}
	d := newDeps()
	objs, err := run.renderSource(ctx, spec, d)
	if err == nil {
		err = checkObjects(objs)
	}
	run.rendered.Add(1)
	if f.err = err; err == nil {
		f.src = run.r.cache.put(key, d, objs)
	}
}

// pairKey returns the render key of the pair and, unless the key was
// remembered from an earlier pair with the same inputs, its spec.
func (run *renderRun) pairKey(ctx context.Context, c *v1alpha1.Cluster, app *v1alpha1.App) (*renderSpec, string, error) {
	inputs, memo := run.specInputs(c, app)
	if memo {
		if key, ok := run.r.keys.get(inputs); ok {
			return nil, key, nil
		}
	}
	spec, err := run.spec(ctx, c, app)
	if err != nil {
		return nil, "", err
	}
	key, err := spec.key()
	if err != nil {
		return nil, "", err
	}
	if memo {
		run.r.keys.put(inputs, key)
	}
	return spec, key, nil
}

// specInputs fingerprints everything spec reads for the pair: the app, the
// cluster, fleet.yaml and the values files (the Renderer's options do not
// change). Pairs of remote charts are not fingerprinted (memo is false): their
// spec depends on the chart repository too. Nor are those of local charts
// declaring dependencies, which may be remote (chartdeps.go).
func (run *renderRun) specInputs(c *v1alpha1.Cluster, app *v1alpha1.App) (inputs string, memo bool) {
	src := app.Spec.Source
	if src.Helm != nil && isRemoteChart(src.Helm) {
		return "", false
	}
	if src.Helm != nil && run.appDeclaresDeps(app) {
		return "", false
	}
	af, aerr := run.fingerprint(app)
	cf, cerr := run.fingerprint(c)
	ff, ferr := run.fingerprint(run.repo.Fleet)
	if aerr != nil || cerr != nil || ferr != nil {
		return "", false
	}
	var b strings.Builder
	b.WriteString(af)
	b.WriteString(cf)
	b.WriteString(ff)
	if src.Helm != nil {
		appDir := fleet.AppDir(app.Metadata.Name)
		files := src.Helm.ValuesFiles
		for _, cu := range app.Spec.Customizations {
			files = append(files[:len(files):len(files)], cu.ValuesFiles...)
		}
		for _, f := range files {
			p, err := relPath(appDir, f)
			if err != nil {
				return "", false
			}
			b.WriteString("\x00")
			b.WriteString(run.snap.digest(p))
		}
	}
	return b.String(), true
}

// appDeclaresDeps is localChartDeclaresDeps, once per app and Render.
func (run *renderRun) appDeclaresDeps(app *v1alpha1.App) bool {
	run.mu.Lock()
	has, ok := run.declared[app]
	run.mu.Unlock()
	if ok {
		return has
	}
	has = run.localChartDeclaresDeps(app)
	run.mu.Lock()
	if run.declared == nil {
		run.declared = map[*v1alpha1.App]bool{}
	}
	run.declared[app] = has
	run.mu.Unlock()
	return has
}

// fingerprint hashes the JSON of a decoded repo object (an *App, *Cluster,
// *ClusterSpec or *Fleet), once per object and Render.
func (run *renderRun) fingerprint(v any) (string, error) {
	run.mu.Lock()
	fp, ok := run.fps[v]
	run.mu.Unlock()
	if ok {
		return fp, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	fp = hex.EncodeToString(h[:])
	run.mu.Lock()
	if run.fps == nil {
		run.fps = map[any]string{}
	}
	run.fps[v] = fp
	run.mu.Unlock()
	return fp, nil
}

// keyMemo remembers the render key of each fingerprint of a pair's inputs
// across Render calls, so that an unchanged pair skips working out its spec
// (merging Helm values) and hashing it.
type keyMemo struct {
	mu sync.Mutex
	m  map[string]string
}

func newKeyMemo() *keyMemo { return &keyMemo{m: map[string]string{}} }

func (k *keyMemo) get(inputs string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.m[inputs]
	return key, ok
}

func (k *keyMemo) put(inputs, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) >= maxCacheKeys {
		k.m = map[string]string{}
	}
	k.m[inputs] = key
}

func pairErr(c *v1alpha1.Cluster, app *v1alpha1.App, err error) error {
	return fmt.Errorf("%s/%s: %w", c.Metadata.Name, app.Metadata.Name, err)
}

// spec works out what to render for the pair.
func (run *renderRun) spec(ctx context.Context, c *v1alpha1.Cluster, app *v1alpha1.App) (*renderSpec, error) {
	appDir := fleet.AppDir(app.Metadata.Name)
	s := &renderSpec{AppDir: appDir}
	for i, cu := range app.Spec.Customizations {
		if run.match.matches(cu.ClusterSelector, c) {
			s.Patches = append(s.Patches, cu.Patches...)
			for j := range cu.Patches {
				s.patchFields = append(s.patchFields, fmt.Sprintf("spec.customizations[%d].patches[%d]", i, j))
			}
		}
	}
	src := app.Spec.Source
	switch {
	case src.Kustomize != nil && src.Helm != nil:
		return nil, errors.New("source has both kustomize and helm")
	case src.Kustomize != nil:
		k := src.Kustomize
		for _, cu := range app.Spec.Customizations {
			if cu.Kustomize != nil && run.match.matches(cu.ClusterSelector, c) {
				k = cu.Kustomize
			}
		}
		dir, err := relPath(appDir, k.Path)
		if err != nil {
			return nil, fmt.Errorf("kustomize path: %w", err)
		}
		s.Kind, s.Dir, s.AllowRemote = "kustomize", dir, run.r.opts.AllowRemoteBases
		if !run.snap.hasKustomization(dir) {
			s.Kind, s.Recurse, s.AllowRemote = "manifests", k.Recurse, false
		}
		if src.Kustomize.Substitute || k.Substitute {
			s.Facts = fleet.FactsOf(run.repo, c)
		}
	case src.Helm != nil:
		h := src.Helm
		s.Kind = "helm"
		s.Release = h.ReleaseName
		if s.Release == "" {
			s.Release = app.Metadata.Name
		}
		s.Namespace = app.Spec.Namespace
		if s.Namespace == "" {
			s.Namespace = "default"
		}
		vals, err := helmValues(run.snap, run.repo, c, app, run.match)
		if err != nil {
			return nil, err
		}
		s.Values = vals
		s.Kube = run.kube(c)
		for _, cu := range app.Spec.Customizations {
			if cu.Kustomize != nil && run.match.matches(cu.ClusterSelector, c) {
				if s.Overlay, err = relPath(appDir, cu.Kustomize.Path); err != nil {
					return nil, fmt.Errorf("overlay path: %w", err)
				}
			}
		}
		if isRemoteChart(h) {
			rc, err := run.charts.get(ctx, run.r.charts, h)
			if err != nil {
				return nil, err
			}
			s.Chart, s.ChartDigest, s.remote = chartName(h)+"@"+h.Version, rc.digest, rc
		} else {
			s.Chart = h.Chart
		}
		if err := run.resolveChartDeps(ctx, s); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("source names neither kustomize nor helm")
	}
	return s, nil
}

// kube is the version and API versions Helm renders the cluster with.
func (run *renderRun) kube(c *v1alpha1.Cluster) kubeInfo {
	name := c.Metadata.Name
	k := kubeInfo{Version: run.r.opts.DefaultKubeVersion}
	if run.repo.Fleet != nil && run.repo.Fleet.Spec.KubernetesVersion != "" {
		k.Version = run.repo.Fleet.Spec.KubernetesVersion
	}
	if c.Spec.KubernetesVersion != "" {
		k.Version = c.Spec.KubernetesVersion
	}
	if v := run.r.opts.KubeVersions[name]; v != "" {
		k.Version = v
	}
	if v := run.kubeVersions[name]; v != "" {
		k.Version = v
	}
	if k.Version != "" && !strings.HasPrefix(k.Version, "v") {
		k.Version = "v" + k.Version // written without the "v" in the repo
	}
	apis := append(append([]string(nil), run.r.opts.APIVersions[name]...), c.Spec.APIVersions...)
	if live, ok := run.apiVersions[name]; ok {
		apis = append(append([]string(nil), run.r.opts.APIVersions[name]...), live...)
	}
	k.APIVersions = sortedCopy(apis)
	return k
}

// renderSource runs Kustomize or Helm, then the patches.
func (run *renderRun) renderSource(ctx context.Context, s *renderSpec, d *deps) ([]object, error) {
	var objs []object
	switch s.Kind {
	case "kustomize":
		var err error
		if objs, err = kustomizeBuild(run.snap, s.Dir, d, s.AllowRemote); err != nil {
			return nil, err
		}
	case "manifests":
		var err error
		if objs, err = readManifests(run.snap, s.Dir, s.Recurse, d); err != nil {
			return nil, err
		}
	case "helm":
		var err error
		if objs, err = run.renderHelm(ctx, s, d); err != nil {
			return nil, err
		}
		if s.Overlay != "" {
			if objs, err = overlayBuild(run.snap, s.Overlay, objs, d); err != nil {
				return nil, err
			}
		}
	}
	if len(s.Patches) > 0 && len(objs) > 0 {
		in, err := encodeYAML(objs)
		if err != nil {
			return nil, err
		}
		m, err := patchResMap(in, s.Patches)
		var out []byte
		if err == nil {
			var ok bool
			if objs, ok = resMapObjects(m, "patched output"); !ok {
				out, err = m.AsYaml()
			}
		}
		if err != nil {
			return nil, blamePatch(in, s.Patches, s.patchFields, err)
		}
		if out != nil {
			if objs, err = decodeObjects(out, "patched output"); err != nil {
				return nil, err
			}
		}
	}
	if s.Facts != nil {
		if err := substitute(objs, s.Facts); err != nil {
			return nil, err
		}
	}
	if len(objs) == 0 {
		d.warn("renders no objects: check the source (templates gated by values or .Capabilities, an empty folder)")
	}
	return objs, nil
}

// blamePatch finds the first patch that fails when the patches are applied
// one more at a time, and names its field in the App; err is the failure of
// all of them together.
func blamePatch(in []byte, patches []v1alpha1.Patch, fields []string, err error) error {
	for n := 1; n <= len(patches) && n <= len(fields); n++ {
		if _, perr := applyPatches(in, patches[:n]); perr != nil {
			return &FieldError{Field: fields[n-1], Err: perr}
		}
	}
	return err
}

func (run *renderRun) renderHelm(ctx context.Context, s *renderSpec, d *deps) ([]object, error) {
	if s.remote != nil {
		ch, err := s.remote.load()
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", s.Chart, err)
		}
		if err := attachDeps(run.snap, ch, s.depPlan, d); err != nil {
			return nil, fmt.Errorf("chart %s: %w", s.Chart, err)
		}
		for _, w := range valueWarnings(ch.Values, s.Values, "") {
			d.warn(w)
		}
		m, err := helmTemplateWithin(ctx, run.r.opts.RenderTimeout, ch, s.Release, s.Namespace, s.Values, s.Kube)
		if err != nil {
			return nil, fmt.Errorf("helm template %s: %w", s.Chart, err)
		}
		return decodeObjects([]byte(m), "chart "+s.Chart)
	}
	ch, p, err := loadLocalChart(run.snap, s.AppDir, s.Chart, d)
	if err != nil {
		return nil, err
	}
	if err := attachDeps(run.snap, ch, s.depPlan, d); err != nil {
		return nil, fmt.Errorf("chart %s: %w", p, err)
	}
	for _, w := range valueWarnings(ch.Values, s.Values, "") {
		d.warn(w)
	}
	m, err := helmTemplateWithin(ctx, run.r.opts.RenderTimeout, ch, s.Release, s.Namespace, s.Values, s.Kube)
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w", p, err)
	}
	return decodeObjects([]byte(m), "chart "+p)
}

func (run *renderRun) stats(pairs int) Stats {
	return Stats{
		Pairs:    pairs,
		Rendered: int(run.rendered.Load()),
		Reused:   int(run.reused.Load()),
		Cached:   int(run.cached.Load()),

		FilesRead:   len(run.snap.files) - run.snap.reused,
		FilesReused: run.snap.reused,
	}
}

// renderCache keeps source renders across Render calls, keyed by the
// renderSpec hash and validated by the digests of the files they read.
type renderCache struct {
	mu     sync.Mutex
	m      map[string][]*cacheEntry
	lastID uint64
}

// cacheEntry is one source render: its objects (never changed once
// stored), the paths it read, and what the per-cluster steps need from it.
type cacheEntry struct {
	id         uint64
	deps       *deps
	objs       []object
	namespaces []string        // Namespace objects it renders
	warnings   []string        // the render's warnings
	inputs     string          // digest of the render key and of every path the render read
	crdScopes  map[string]bool // group/kind of its CRDs -> cluster-scoped
}

// Cache bounds: a few variants per key (e.g. the base and head of a plan),
// and a cap on keys after which the cache starts afresh.
const (
	maxEntriesPerKey = 4
	maxCacheKeys     = 20000
)

func newRenderCache() *renderCache { return &renderCache{m: map[string][]*cacheEntry{}} }

func (c *renderCache) get(key string, snap *snapshot) (*cacheEntry, bool) {
	c.mu.Lock()
	entries := append([]*cacheEntry(nil), c.m[key]...)
	c.mu.Unlock()
	for _, e := range entries {
		if e.deps.valid(snap) {
			return e, true
		}
	}
	return nil, false
}

func (c *renderCache) put(key string, d *deps, objs []object) *cacheEntry {
	return c.store(key, d, objs, !d.volatile.Load())
}

// store makes the cache entry of a render, and keeps it when keep is set.
func (c *renderCache) store(key string, d *deps, objs []object, keep bool) *cacheEntry {
	e := &cacheEntry{deps: d, objs: objs, crdScopes: map[string]bool{}, warnings: d.warnings, inputs: d.inputs(key)}
	for _, o := range objs {
		switch gkOf(o) {
		case "/Namespace":
			e.namespaces = append(e.namespaces, str(o, "metadata", "name"))
		case "apiextensions.k8s.io/CustomResourceDefinition":
			e.crdScopes[str(o, "spec", "group")+"/"+str(o, "spec", "names", "kind")] = str(o, "spec", "scope") == "Cluster"
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastID++
	e.id = c.lastID
	if !keep {
		return e
	}
	if len(c.m) >= maxCacheKeys {
		c.m = map[string][]*cacheEntry{}
	}
	l := append([]*cacheEntry{e}, c.m[key]...)
	if len(l) > maxEntriesPerKey {
		l = l[:maxEntriesPerKey]
	}
	c.m[key] = l
	return e
}
