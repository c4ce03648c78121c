package render

import (
	"fmt"
	"path"
	"sort"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// chartOutputFile is the resource fleetsync adds to an overlay over a Helm
// chart: the chart's rendered objects.
const chartOutputFile = "fleetsync-chart-output.yaml"

// hasKustomization reports whether a repo folder holds a kustomization file.
func (s *snapshot) hasKustomization(dir string) bool {
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, ok := s.files[path.Join(dir, n)]; ok {
			return true
		}
	}
	return false
}

// readManifests reads a folder of plain manifests (what a generated
// kustomization listing every .yaml, .yml and .json file would build), in
// path order; subfolders too with recurse.
func readManifests(snap *snapshot, dir string, recurse bool, d *deps) ([]object, error) {
	d.add(snap, dir)
	if _, ok := snap.dirs[dir]; !ok {
		return nil, fmt.Errorf("%s: not a folder in the repo", dir)
	}
	var files []string
	var walk func(dir string)
	walk = func(dir string) {
		d.add(snap, dir)
		for _, n := range snap.dirs[dir] {
			p := path.Join(dir, n)
			if _, isDir := snap.dirs[p]; isDir {
				if recurse {
					walk(p)
				}
				continue
			}
			if fleet.IsManifestFile(p) {
				files = append(files, p)
			}
		}
	}
	walk(dir)
	sort.Strings(files)
	var out []object
	for _, p := range files {
		if why, bad := snap.badLink(p); bad {
			return nil, fmt.Errorf("%s: %s", p, why)
		}
		b, err := snap.readFile(p)
		if err != nil {
			return nil, err
		}
		d.add(snap, p)
		objs, err := decodeObjects(b, p)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// substitute replaces the ${cluster.*} references in the objects' string
// values (a Kustomize app's opt-in post-build substitution), except in objects
// annotated fleetsync.dev/substitute: disabled. It changes objs in place.
func substitute(objs []object, facts *fleet.ClusterFacts) error {
	for i, o := range objs {
		if str(o, "metadata", "annotations", v1alpha1.AnnotationSubstitute) == "disabled" {
			continue
		}
		v, err := facts.Expand(o)
		if err != nil {
			return fmt.Errorf("substitute in %s %s: %w", str(o, "kind"), str(o, "metadata", "name"), err)
		}
		objs[i] = v.(map[string]any)
	}
	return nil
}

// overlayBuild builds a Kustomize overlay over a Helm chart's output: the
// overlay's kustomization with the chart's objects added as its first
// resource (chartOutputFile, which fleetsync writes beside it).
func overlayBuild(snap *snapshot, dir string, chartObjs []object, d *deps) ([]object, error) {
	var kfile string
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, ok := snap.files[path.Join(dir, n)]; ok {
			kfile = path.Join(dir, n)
			break
		}
	}
	d.add(snap, dir)
	if kfile == "" {
		return nil, fmt.Errorf("overlay %s: no kustomization.yaml", dir)
	}
	kb, err := snap.readFile(kfile)
	if err != nil {
		return nil, err
	}
	d.add(snap, kfile)
	var k map[string]any
	if err := yaml.Unmarshal(kb, &k); err != nil {
		return nil, fmt.Errorf("overlay %s: %w", kfile, err)
	}
	if k == nil {
		k = map[string]any{}
	}
	res, _ := k["resources"].([]any)
	k["resources"] = append([]any{chartOutputFile}, res...)
	nb, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	chart, err := encodeYAML(chartObjs)
	if err != nil {
		return nil, err
	}
	mem, err := snap.memFS()
	if err != nil {
		return nil, fmt.Errorf("copy repo to memory: %w", err)
	}
	virtual := map[string][]byte{
		path.Join(fsRoot, kfile):                nb,
		path.Join(fsRoot, dir, chartOutputFile): chart,
	}
	fsys := &repoFS{FileSystem: &virtualFS{FileSystem: mem, files: virtual}, snap: snap, deps: d}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	m, err := runKrusty(opts, fsys, path.Join(fsRoot, dir), snap.setsOpenAPI())
	if fsys.refused != nil {
		return nil, fmt.Errorf("overlay %s: %w", dir, fsys.refused)
	}
	if err != nil {
		return nil, fmt.Errorf("overlay %s (built over the chart's output, which fleetsync adds as resource %s): %w", dir, chartOutputFile, stripRoot(err))
	}
	return krustyObjects(m, "overlay "+dir)
}

// virtualFS is a filesystem with some files replaced or added, for one
// build; everything else reads through.
type virtualFS struct {
	filesys.FileSystem
	files map[string][]byte
}

func (v *virtualFS) ReadFile(p string) ([]byte, error) {
	if b, ok := v.files[path.Clean(p)]; ok {
		return b, nil
	}
	return v.FileSystem.ReadFile(p)
}

func (v *virtualFS) Exists(p string) bool {
	if _, ok := v.files[path.Clean(p)]; ok {
		return true
	}
	return v.FileSystem.Exists(p)
}

func (v *virtualFS) IsDir(p string) bool {
	if _, ok := v.files[path.Clean(p)]; ok {
		return false
	}
	return v.FileSystem.IsDir(p)
}

func (v *virtualFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	if _, ok := v.files[path.Clean(p)]; ok {
		return filesys.ConfirmedDir(path.Dir(path.Clean(p))), path.Base(p), nil
	}
	return v.FileSystem.CleanedAbs(p)
}
