package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// errOutside is wrapped by resolve's errors when a symlink leads out of the repo.
var errOutside = errors.New("leaves the repo")

// resolve returns name (a clean, slash-separated, repo-relative path) with every
// symlink along it resolved, checking that no link leads outside the repo. On a
// filesystem without symlink support (no fs.ReadLinkFS) it returns name as it is.
// A missing path is not an error here: the caller's Stat reports it.
func resolve(fsys fs.FS, name string) (string, error) {
	if _, ok := fsys.(fs.ReadLinkFS); !ok {
		return name, nil
	}
	rest := strings.Split(name, "/")
	cur := "."
	hops := 0
	for len(rest) > 0 {
		elem := rest[0]
		rest = rest[1:]
		if elem == "" || elem == "." {
			continue
		}
		next := path.Join(cur, elem)
		fi, err := fs.Lstat(fsys, next)
		if err != nil {
			// Missing (or unreadable): nothing more to resolve.
			return path.Join(append([]string{next}, rest...)...), nil
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		hops++
		if hops > maxSymlinkHops {
			return "", fmt.Errorf("too many levels of symbolic links at %s", next)
		}
		target, err := fs.ReadLink(fsys, next)
		if err != nil {
			return "", fmt.Errorf("read symlink %s: %w", next, err)
		}
		if path.IsAbs(target) || strings.HasPrefix(target, `\`) {
			return "", fmt.Errorf("symlink %s -> %s %w", next, target, errOutside)
		}
		joined := path.Join(cur, target)
		if escapes(joined) {
			return "", fmt.Errorf("symlink %s -> %s %w", next, target, errOutside)
		}
		rest = append(strings.Split(joined, "/"), rest...)
		cur = "."
	}
	return cur, nil
}

// escapes reports whether a cleaned, repo-relative path leaves the repo.
func escapes(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../")
}

// pathKind says what a path named in an App must be.
type pathKind int

const (
	pathKustomization pathKind = iota // a folder holding a kustomization file, or plain manifests
	pathOverlay                       // a folder holding a kustomization file
	pathChart                         // a folder holding Chart.yaml
	pathFile                          // a regular file
)

// checkPath checks a path named by an app (relative to its folder appDir): it
// stays inside the repo after cleaning and symlink resolution, exists and is
// what it must be. It returns the problem message, or "".
func checkPath(fsys fs.FS, appDir, rel string, kind pathKind) string {
	if rel == "" {
		return "required"
	}
	if path.IsAbs(rel) || strings.HasPrefix(rel, `\`) {
		return fmt.Sprintf("%q must be relative to the app's folder", rel)
	}
	joined := path.Join(appDir, rel)
	if escapes(joined) {
		return fmt.Sprintf("%q leaves the repo", rel)
	}
	resolved, err := resolve(fsys, joined)
	if err != nil {
		return fmt.Sprintf("%q: %v", rel, err)
	}
	fi, err := fs.Stat(fsys, resolved)
	if err != nil {
		return fmt.Sprintf("%q: %s does not exist", rel, joined)
	}
	switch kind {
	case pathFile:
		if fi.IsDir() {
			return fmt.Sprintf("%q: %s is a folder, want a file", rel, joined)
		}
		return ""
	case pathChart:
		if !fi.IsDir() {
			return fmt.Sprintf("%q: %s is not a folder (packaged .tgz charts are not supported; unpack the chart)", rel, joined)
		}
		if !hasFile(fsys, resolved, "Chart.yaml") {
			return fmt.Sprintf("%q: %s has no Chart.yaml", rel, joined)
		}
	default:
		if !fi.IsDir() {
			return fmt.Sprintf("%q: %s is not a folder", rel, joined)
		}
		if hasFile(fsys, resolved, "kustomization.yaml", "kustomization.yml", "Kustomization") {
			return ""
		}
		if kind == pathOverlay {
			return fmt.Sprintf("%q: %s has no kustomization.yaml", rel, joined)
		}
		if !hasManifests(fsys, resolved) {
			return fmt.Sprintf("%q: %s has neither a kustomization.yaml nor manifests (.yaml, .yml, .json files)", rel, joined)
		}
	}
	return ""
}

// hasFile reports whether dir holds one of the named files, inside the repo.
func hasFile(fsys fs.FS, dir string, names ...string) bool {
	for _, n := range names {
		resolved, err := resolve(fsys, path.Join(dir, n))
		if err != nil {
			continue
		}
		if fi, err := fs.Stat(fsys, resolved); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// hasManifests reports whether a folder (or one below it) holds a manifest file.
func hasManifests(fsys fs.FS, dir string) bool {
	found := false
	_ = fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return fs.SkipAll
		}
		if !d.IsDir() && IsManifestFile(p) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// IsManifestFile reports whether a file of a plain manifest folder is read
// as manifests: .yaml, .yml and .json files.
func IsManifestFile(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
