package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// krustyLock orders krusty builds around the one piece of process-global
// state a build touches, kyaml's OpenAPI schema (sigs.k8s.io/kustomize/kyaml/openapi):
// it is parsed lazily by the first build that needs it, which races with
// builds reading it (kustomize issues 4824 and 5805), and a kustomization's
// `openapi` field replaces it for the rest of the process. So the built-in
// schema is parsed once before any build (krustyInit); builds that leave it
// alone share the lock and run in parallel, and a build that may set a
// schema of its own (one of the snapshot's kustomizations has an `openapi`
// field) holds the lock alone, starts from no schema as a kustomize process
// does, and puts the built-in schema back after. Everything else a build
// uses is its own (loader, plugin and resource factories, transformer
// configs copied from a sync.Once default), or read-only: the snapshot's
// in-memory filesystem is only read (repoFS.Open hands out a copy).
// TestKrustyParallel runs builds side by side under -race.
var (
	krustyLock sync.RWMutex
	krustyInit = sync.OnceFunc(func() { _ = openapi.Schema() })
)

// fsRoot is where the repo sits inside the in-memory filesystem; nothing
// outside it is readable.
const fsRoot = "/repo"

// memFS returns the snapshot copied into a kyaml in-memory filesystem, built
// once per snapshot.
func (s *snapshot) memFS() (filesys.FileSystem, error) {
	s.memOnce.Do(func() {
		m := filesys.MakeFsInMemory()
		for d := range s.dirs {
			if err := m.MkdirAll(path.Join(fsRoot, d)); err != nil {
				s.memErr = err
				return
			}
		}
		for p, b := range s.files {
			if err := m.WriteFile(path.Join(fsRoot, p), b); err != nil {
				s.memErr = err
				return
			}
		}
		s.mem = m
	})
	return s.mem, s.memErr
}

// repoFS is the filesystem krusty sees: the in-memory repo, read-only,
// recording what the build reads, refusing symlinks that leave the repo and
// (unless allowed) kustomizations with remote resources.
type repoFS struct {
	filesys.FileSystem
	snap        *snapshot
	deps        *deps
	allowRemote bool
	// refused is the first remote resource refused: krusty turns the read
	// error into a vaguer one, so the build reports this instead.
	refused error
}

var errReadOnly = errors.New("the repo is read-only during a render")

// rel maps an absolute in-memory path to a repo-relative one.
func (f *repoFS) rel(p string) (string, error) {
	if !filepath.IsAbs(p) {
		p = path.Join(fsRoot, p)
	}
	p = path.Clean(filepath.ToSlash(p))
	if p == fsRoot {
		return ".", nil
	}
	if !strings.HasPrefix(p, fsRoot+"/") {
		return "", fmt.Errorf("path %s (from the repo root) %w", "../"+strings.TrimPrefix(p, "/"), errOutsideRepo)
	}
	r := strings.TrimPrefix(p, fsRoot+"/")
	f.deps.add(f.snap, r)
	if why, bad := f.snap.badLink(r); bad {
		return "", errors.New(why)
	}
	return r, nil
}

func (f *repoFS) Create(string) (filesys.File, error) { return nil, errReadOnly }
func (f *repoFS) Mkdir(string) error                  { return errReadOnly }
func (f *repoFS) MkdirAll(string) error               { return errReadOnly }
func (f *repoFS) RemoveAll(string) error              { return errReadOnly }
func (f *repoFS) WriteFile(string, []byte) error      { return errReadOnly }

// Open hands out a copy of the file: opening a file of the shared in-memory
// filesystem marks its node open, which builds running side by side would race on.
func (f *repoFS) Open(p string) (filesys.File, error) {
	b, err := f.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := filesys.MakeFsInMemory()
	if err := m.WriteFile(p, b); err != nil {
		return nil, err
	}
	return m.Open(p)
}

func (f *repoFS) IsDir(p string) bool {
	if _, err := f.rel(p); err != nil {
		return false
	}
	return f.FileSystem.IsDir(p)
}

func (f *repoFS) Exists(p string) bool {
	if _, err := f.rel(p); err != nil {
		return false
	}
	return f.FileSystem.Exists(p)
}

func (f *repoFS) ReadDir(p string) ([]string, error) {
	if _, err := f.rel(p); err != nil {
		return nil, err
	}
	return f.FileSystem.ReadDir(p)
}

func (f *repoFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if _, err := f.rel(p); err != nil {
		return "", "", err
	}
	return f.FileSystem.CleanedAbs(p)
}

func (f *repoFS) Glob(pattern string) ([]string, error) {
	if _, err := f.rel(path.Dir(pattern)); err != nil {
		return nil, err
	}
	m, err := f.FileSystem.Glob(pattern)
	for _, p := range m {
		_, _ = f.rel(p)
	}
	return m, err
}

func (f *repoFS) Walk(p string, fn filepath.WalkFunc) error {
	if _, err := f.rel(p); err != nil {
		return err
	}
	return f.FileSystem.Walk(p, func(q string, info fs.FileInfo, err error) error {
		if _, rerr := f.rel(q); rerr != nil {
			return rerr
		}
		return fn(q, info, err)
	})
}

func (f *repoFS) ReadFile(p string) ([]byte, error) {
	r, err := f.rel(p)
	if err != nil {
		return nil, err
	}
	b, err := f.FileSystem.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if isKustomizationFile(r) {
		b = f.fixDeprecated(r, b)
		if remote := f.remoteResource(r, b); remote != "" {
			if f.allowRemote {
				f.deps.volatile.Store(true) // its content can change without the repo changing
			} else {
				err := fmt.Errorf("%s: remote resource %q refused (remote bases are disabled; allow them with --allow-remote-bases)", r, remote)
				if f.refused == nil {
					f.refused = err
				}
				return nil, err
			}
		}
	}
	return b, nil
}

// fixDeprecated captures Kustomize's deprecation warnings for a
// kustomization file as the render's warnings, and hands krusty the file
// with the deprecated fields moved to their replacements the way `kustomize
// edit fix` does (so that krusty, which prints these warnings straight to
// stderr, has nothing to print). 'vars' has no replacement: it is kept.
//
//nolint:staticcheck // SA1019: moving the deprecated fields is the point.
func (f *repoFS) fixDeprecated(file string, b []byte) []byte {
	var k types.Kustomization
	if err := k.Unmarshal(b); err != nil {
		return b // krusty reports the syntax error
	}
	msgs := k.CheckDeprecatedFields()
	if msgs == nil || len(*msgs) == 0 {
		return b
	}
	for _, m := range *msgs {
		f.deps.warn(file + ": " + strings.TrimPrefix(m, "# Warning: "))
	}
	if k.Vars != nil {
		return b
	}
	k.FixKustomization()
	k.Patches = append(k.Patches, k.PatchesJson6902...)
	k.PatchesJson6902 = nil
	for _, p := range k.PatchesStrategicMerge {
		if _, isFile := f.snap.files[path.Join(path.Dir(file), string(p))]; isFile {
			k.Patches = append(k.Patches, types.Patch{Path: string(p)})
		} else {
			k.Patches = append(k.Patches, types.Patch{Patch: string(p)})
		}
	}
	k.PatchesStrategicMerge = nil
	if len(k.CommonLabels) > 0 {
		for _, l := range k.Labels {
			for name := range l.Pairs {
				if _, dup := k.CommonLabels[name]; dup {
					return b // krusty reports the conflict
				}
			}
		}
		k.Labels = append([]types.Label{{Pairs: k.CommonLabels, IncludeSelectors: true}}, k.Labels...)
		k.CommonLabels = nil
	}
	out, err := yaml.Marshal(k)
	if err != nil {
		return b
	}
	return out
}

func isKustomizationFile(p string) bool {
	switch path.Base(p) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// remoteResource returns the first remote resource a kustomization names.
func (f *repoFS) remoteResource(file string, b []byte) string {
	var k struct {
		Resources  []string `json:"resources"`
		Bases      []string `json:"bases"`
		Components []string `json:"components"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return "" // krusty reports the syntax error with more detail
	}
	dir := path.Dir(file)
	for _, list := range [][]string{k.Resources, k.Bases, k.Components} {
		for _, r := range list {
			if f.isRemote(dir, r) {
				return r
			}
		}
	}
	return ""
}

func (f *repoFS) isRemote(dir, r string) bool {
	if strings.Contains(r, "://") || strings.HasPrefix(r, "git@") || strings.HasPrefix(r, "git::") || strings.Contains(r, "?ref=") {
		return true
	}
	first, _, found := strings.Cut(r, "/")
	if !found || first == "." || first == ".." || !strings.Contains(first, ".") {
		return false
	}
	// host-like first segment (github.com/org/repo): remote unless it exists locally
	p := path.Join(dir, r)
	_, isFile := f.snap.files[p]
	_, isDir := f.snap.dirs[p]
	return !isFile && !isDir
}

// kustomizeBuild builds the kustomization at dir (repo-relative) and returns
// its objects.
func kustomizeBuild(snap *snapshot, dir string, d *deps, allowRemote bool) (objs []object, err error) {
	m, err := krustyBuild(snap, dir, d, allowRemote)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kustomize build %s: internal error: %v", dir, p)
		}
	}()
	// Reading the result needs no lock: it reads only this build's resources.
	return krustyObjects(m, "kustomize build "+dir)
}

// krustyBuild runs krusty on the kustomization at dir (repo-relative).
func krustyBuild(snap *snapshot, dir string, d *deps, allowRemote bool) (m resmap.ResMap, err error) {
	mem, err := snap.memFS()
	if err != nil {
		return nil, fmt.Errorf("copy repo to memory: %w", err)
	}
	fsys := &repoFS{FileSystem: mem, snap: snap, deps: d, allowRemote: allowRemote}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kustomize build %s: internal error: %v", dir, p)
		}
	}()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	m, err = runKrusty(opts, fsys, path.Join(fsRoot, dir), snap.setsOpenAPI())
	if fsys.refused != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, fsys.refused)
	}
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, stripRoot(err))
	}
	return m, nil
}

// krustyObjects returns the objects of a krusty result: straight from its
// resources (resMapObjects), else as decodeObjects reads its YAML (objects
// named after source, errors prefixed with it).
func krustyObjects(m resmap.ResMap, source string) ([]object, error) {
	if objs, ok := resMapObjects(m, source); ok {
		return objs, nil
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return decodeObjects(out, source)
}

// runKrusty runs one krusty build under krustyLock: shared, or alone when
// ownSchema says the build may set an OpenAPI schema of its own.
func runKrusty(opts *krusty.Options, fsys filesys.FileSystem, dir string, ownSchema bool) (resmap.ResMap, error) {
	krustyInit()
	if !ownSchema {
		krustyLock.RLock()
		defer krustyLock.RUnlock()
		return krusty.MakeKustomizer(opts).Run(fsys, dir)
	}
	krustyLock.Lock()
	defer krustyLock.Unlock()
	// Start from no schema, as a kustomize process does, and leave the
	// built-in one behind for the builds that follow.
	openapi.ResetOpenAPI()
	defer func() {
		openapi.ResetOpenAPI()
		_ = openapi.Schema()
	}()
	return krusty.MakeKustomizer(opts).Run(fsys, dir)
}

// setsOpenAPI reports whether a kustomization of the snapshot has an
// `openapi` field (a schema version or file of its own), once per snapshot.
func (s *snapshot) setsOpenAPI() bool {
	s.openAPIOnce.Do(func() {
		for p, b := range s.files {
			if !isKustomizationFile(p) || !bytes.Contains(b, []byte("openapi")) {
				continue
			}
			var k map[string]any
			if err := yaml.Unmarshal(b, &k); err != nil {
				s.openAPI = true // krusty reports the error; be careful meanwhile
				return
			}
			if _, ok := k["openapi"]; ok {
				s.openAPI = true
				return
			}
		}
	})
	return s.openAPI
}

// applyPatches runs Kustomize patches (strategic merge or JSON 6902, with
// optional target) over the objects through krusty, on a scratch filesystem.
func applyPatches(objs []byte, patches []v1alpha1.Patch) ([]byte, error) {
	m, err := patchResMap(objs, patches)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// patchResMap is krusty's result of applyPatches.
func patchResMap(objs []byte, patches []v1alpha1.Patch) (m resmap.ResMap, err error) {
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"objects.yaml"},
	}
	for _, p := range patches {
		kp := types.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &types.Selector{
				ResId: resid.ResId{
					Gvk:       resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
					Name:      t.Name,
					Namespace: t.Namespace,
				},
				LabelSelector:      t.LabelSelector,
				AnnotationSelector: t.AnnotationSelector,
			}
		}
		k.Patches = append(k.Patches, kp)
	}
	kb, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	fsys := filesys.MakeFsInMemory()
	if err := fsys.WriteFile("/patch/objects.yaml", objs); err != nil {
		return nil, err
	}
	if err := fsys.WriteFile("/patch/kustomization.yaml", kb); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("patch: internal error: %v", p)
		}
	}()
	if m, err = runKrusty(krusty.MakeDefaultOptions(), fsys, "/patch", false); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	return m, nil
}

// rootErr is an error whose message has the in-memory root removed.
type rootErr struct {
	msg string
	err error
}

func (e *rootErr) Error() string { return e.msg }
func (e *rootErr) Unwrap() error { return e.err }

func stripRoot(err error) error {
	msg := strings.ReplaceAll(err.Error(), fsRoot+"/", "")
	return &rootErr{msg: msg, err: err}
}
