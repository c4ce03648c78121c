package render

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// snapshot is a read-only copy of the repo's files, symlinks resolved. Links
// that leave the repo are kept as errors, reported when a render reads them.
type snapshot struct {
	files    map[string][]byte // clean repo-relative path -> content
	dirs     map[string][]string
	badLinks map[string]string // path -> why it is refused (a symlink out of the repo, a file over fleet.MaxFileBytes)

	mu      sync.Mutex
	digests map[string]string
	values  map[string]parsedValues

	memOnce sync.Once
	mem     filesys.FileSystem
	memErr  error

	openAPIOnce sync.Once
	openAPI     bool // a kustomization has an `openapi` field

	// hashes are the object ids of the files and folders read from a file
	// system that names them (git trees, see objectHasher), by path; linked
	// are the folders with a symlink somewhere below. A later snapshot
	// reuses what an earlier one read under an unchanged id (reuse).
	hashes map[string]string
	linked map[string]bool
	reused int // files taken from the earlier snapshot
}

// objectHasher is a directory entry that knows the id of its contents
// (source.TreeFS's entries: git object ids).
type objectHasher interface{ ObjectHash() string }

// maxLinkHops bounds symlink chains, as the kernel does.
const maxLinkHops = 40

// errOutsideRepo marks a path or symlink that leaves the repo.
var errOutsideRepo = errors.New("leaves the repo")

// takeSnapshot copies the repo. With prev, the snapshot of an earlier
// revision, files and symlink-free folders whose object id is unchanged are
// taken from prev instead of read (with their digests): a commit that
// changes one app reads that app's files only.
func takeSnapshot(fsys fs.FS, prev *snapshot) (*snapshot, error) {
	if fsys == nil {
		return nil, errors.New("the repo has no file system")
	}
	s := &snapshot{
		files:    map[string][]byte{},
		dirs:     map[string][]string{".": nil},
		badLinks: map[string]string{},
		digests:  map[string]string{},
		hashes:   map[string]string{},
		linked:   map[string]bool{},
	}
	if prev != nil && len(prev.hashes) > 0 {
		prev.mu.Lock()
		defer prev.mu.Unlock()
	} else {
		prev = nil
	}
	if _, err := s.copyDir(fsys, ".", ".", 0, prev); err != nil {
		return nil, err
	}
	for d := range s.dirs {
		sort.Strings(s.dirs[d])
	}
	return s, nil
}

// copyDir copies the source folder src of fsys to dst in the snapshot and
// reports whether it holds a symlink (then dst is marked linked). prev, held
// locked, is the snapshot to reuse from; nil under a symlink, where a path's
// contents are not those of its object id.
func (s *snapshot) copyDir(fsys fs.FS, src, dst string, depth int, prev *snapshot) (bool, error) {
	entries, err := fs.ReadDir(fsys, src)
	if err != nil {
		return false, err
	}
	links := false
	for _, e := range entries {
		name := e.Name()
		if name == ".git" && src == "." {
			continue
		}
		sp, dp := path.Join(src, name), path.Join(dst, name)
		s.dirs[dst] = append(s.dirs[dst], name)
		if e.Type()&fs.ModeSymlink != 0 {
			links = true
			if err := s.copyLink(fsys, sp, dp, depth); err != nil {
				return false, err
			}
			continue
		}
		h := ""
		if oh, ok := e.(objectHasher); ok && src == dst {
			h = oh.ObjectHash()
			s.hashes[dp] = h
		}
		if e.IsDir() {
			if prev != nil && h != "" && prev.hashes[dp] == h && !prev.linked[dp] {
				s.reuse(prev, dp)
				continue
			}
			s.dirs[dp] = nil
			sub, err := s.copyDir(fsys, sp, dp, depth, prev)
			if err != nil {
				return false, err
			}
			links = links || sub
			continue
		}
		if prev != nil && h != "" && prev.hashes[dp] == h {
			if b, ok := prev.files[dp]; ok {
				s.reuseFile(prev, dp, b)
				continue
			}
		}
		if fi, err := e.Info(); err == nil && fi.Size() > fleet.MaxFileBytes {
			s.badLinks[dp] = fleet.TooLarge(sp, fi.Size())
			continue
		}
		b, err := fs.ReadFile(fsys, sp)
		if err != nil {
			return false, err
		}
		if why := aliasBomb(sp, b); why != "" {
			s.badLinks[dp] = why
			continue
		}
		s.files[dp] = b
	}
	if links {
		s.linked[dst] = true
	}
	return links, nil
}

// reuse copies the folder p, symlink-free and unchanged, from prev.
func (s *snapshot) reuse(prev *snapshot, p string) {
	s.dirs[p] = prev.dirs[p]
	for _, name := range prev.dirs[p] {
		c := path.Join(p, name)
		if h, ok := prev.hashes[c]; ok {
			s.hashes[c] = h
		}
		if _, isDir := prev.dirs[c]; isDir {
			s.reuse(prev, c)
			continue
		}
		s.reuseFile(prev, c, prev.files[c])
	}
}

func (s *snapshot) reuseFile(prev *snapshot, p string, b []byte) {
	s.files[p] = b
	if d, ok := prev.digests[p]; ok {
		s.digests[p] = d
	}
	s.reused++
}

func (s *snapshot) copyLink(fsys fs.FS, sp, dp string, depth int) error {
	target, err := resolveLink(fsys, sp)
	if err != nil {
		if errors.Is(err, errOutsideRepo) {
			s.badLinks[dp] = err.Error()
			return nil
		}
		return err
	}
	fi, err := fs.Stat(fsys, target)
	if err != nil {
		s.badLinks[dp] = fmt.Sprintf("symlink %s: %v", sp, err)
		return nil
	}
	if fi.IsDir() {
		if depth >= maxLinkHops {
			s.badLinks[dp] = fmt.Sprintf("symlink %s: too many levels of symbolic links", sp)
			return nil
		}
		s.dirs[dp] = nil
		s.linked[dp] = true
		_, err := s.copyDir(fsys, target, dp, depth+1, nil)
		return err
	}
	if fi.Size() > fleet.MaxFileBytes {
		s.badLinks[dp] = fleet.TooLarge(sp, fi.Size())
		return nil
	}
	b, err := fs.ReadFile(fsys, target)
	if err != nil {
		return err
	}
	s.files[dp] = b
	return nil
}

// resolveLink follows the symlink p (and any link it leads to, component by
// component) to a repo-relative path, or fails with errOutsideRepo.
func resolveLink(fsys fs.FS, p string) (string, error) {
	rl, ok := fsys.(fs.ReadLinkFS)
	if !ok {
		return p, nil // the FS resolves links itself (e.g. git trees)
	}
	parts := strings.Split(p, "/")
	cur := "."
	for hops := 0; len(parts) > 0; {
		next := path.Join(cur, parts[0])
		parts = parts[1:]
		fi, err := fs.Lstat(fsys, next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", fmt.Errorf("symlink %s: too many levels of symbolic links", p)
		}
		t, err := rl.ReadLink(next)
		if err != nil {
			return "", fmt.Errorf("symlink %s: %w", next, err)
		}
		if path.IsAbs(t) {
			return "", fmt.Errorf("symlink %s -> %s: absolute target %w", p, t, errOutsideRepo)
		}
		j := path.Join(cur, t)
		if j == ".." || strings.HasPrefix(j, "../") {
			return "", fmt.Errorf("symlink %s -> %s %w", p, t, errOutsideRepo)
		}
		// restart from the target, then the remaining components
		parts = append(strings.Split(j, "/"), parts...)
		cur = "."
	}
	return cur, nil
}

// relPath checks a path given in the fleet repo (relative to base) and
// returns it repo-relative.
func relPath(base, p string) (string, error) {
	if path.IsAbs(p) {
		return "", fmt.Errorf("path %q is absolute: paths are relative to the app's folder", p)
	}
	j := path.Join(base, p)
	if j == ".." || strings.HasPrefix(j, "../") {
		return "", fmt.Errorf("path %q %w", p, errOutsideRepo)
	}
	return j, nil
}

// readFile reads a repo-relative file.
func (s *snapshot) readFile(p string) ([]byte, error) {
	if why, ok := s.badLink(p); ok {
		return nil, errors.New(why)
	}
	b, ok := s.files[p]
	if !ok {
		if _, isDir := s.dirs[p]; isDir {
			return nil, errors.New("is a directory")
		}
		return nil, fmt.Errorf("not found in the repo: %w", fs.ErrNotExist)
	}
	return b, nil
}

// badLink reports whether p or a parent is a refused symlink.
func (s *snapshot) badLink(p string) (string, bool) {
	for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
		if why, ok := s.badLinks[q]; ok {
			return why, true
		}
	}
	return "", false
}

// digest returns a stable fingerprint of what is at p: a file's content
// hash, a folder's listing, or absence.
func (s *snapshot) digest(p string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.digests[p]; ok {
		return d
	}
	var d string
	if b, ok := s.files[p]; ok {
		h := sha256.Sum256(b)
		d = "f" + hex.EncodeToString(h[:])
	} else if names, ok := s.dirs[p]; ok {
		h := sha256.Sum256([]byte(strings.Join(names, "\x00")))
		d = "d" + hex.EncodeToString(h[:])
	} else if why, ok := s.badLinks[p]; ok {
		d = "x" + why
	} else {
		d = "-"
	}
	s.digests[p] = d
	return d
}

// deps records the repo paths a render looked at, with their digests, so a
// cached render can be reused when none of them changed.
type deps struct {
	mu   sync.Mutex
	seen map[string]string
	// volatile marks a render that read something outside the repo (a
	// remote kustomize resource): it is shared within a Render call but not
	// cached across calls.
	volatile atomic.Bool
	// warnings are what the render found doubtful, in order, without repeats.
	warnings []string
}

// warn records a warning of the render once.
func (d *deps) warn(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.warnings, msg) {
		d.warnings = append(d.warnings, msg)
	}
}

func newDeps() *deps { return &deps{seen: map[string]string{}} }

func (d *deps) add(s *snapshot, p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[p]; !ok {
		d.seen[p] = s.digest(p)
	}
}

// addTree records every file and folder under dir.
func (d *deps) addTree(s *snapshot, dir string) {
	d.add(s, dir)
	for _, n := range s.dirs[dir] {
		p := path.Join(dir, n)
		if _, ok := s.dirs[p]; ok {
			d.addTree(s, p)
			continue
		}
		d.add(s, p)
	}
}

// inputs digests a render key with every path the render read and its
// digest: the same digest means the same render inputs, whatever the output.
func (d *deps) inputs(key string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	paths := make([]string, 0, len(d.seen))
	for p := range d.seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	h.Write([]byte(key))
	for _, p := range paths {
		h.Write([]byte("\x00" + p + "\x00" + d.seen[p]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// valid reports whether every recorded path still has the same digest in s.
func (d *deps) valid(s *snapshot) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, dg := range d.seen {
		if s.digest(p) != dg {
			return false
		}
	}
	return true
}
