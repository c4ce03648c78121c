package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrSymlinkEscape is returned (inside an *fs.PathError) when a symbolic link
// in a git tree points outside the repository, or is absolute.
const ErrSymlinkEscape ErrorKind = "symbolic link points outside the repository"

// maxSymlinkHops bounds symlink chains (as Linux does).
const maxSymlinkHops = 40

// TreeFS is a read-only file system over one git tree, read straight from
// the object store. Symbolic links (mode 120000) are visible through Lstat
// and ReadLink; Open, Stat and ReadFile follow them only while the target
// stays inside the tree. Modification times are the commit time. It is safe
// for concurrent use.
type TreeFS struct {
	mu    *sync.Mutex // serialises object store reads, shared with the Repo
	store storer.EncodedObjectStorer
	root  plumbing.Hash
	mtime time.Time
	trees map[plumbing.Hash]*object.Tree // guarded by mu
}

var (
	_ fs.ReadFileFS = (*TreeFS)(nil)
	_ fs.ReadDirFS  = (*TreeFS)(nil)
	_ fs.StatFS     = (*TreeFS)(nil)
	_ fs.ReadLinkFS = (*TreeFS)(nil)
)

func newTreeFS(mu *sync.Mutex, store storer.EncodedObjectStorer, root plumbing.Hash, mtime time.Time) *TreeFS {
	return &TreeFS{mu: mu, store: store, root: root, mtime: mtime, trees: map[plumbing.Hash]*object.Tree{}}
}

// node is one resolved tree entry.
type node struct {
	name string
	mode filemode.FileMode
	hash plumbing.Hash
}

func (n node) isDir() bool { return n.mode == filemode.Dir }

// tree loads a tree object; callers hold mu.
func (f *TreeFS) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := f.trees[h]; ok {
		return t, nil
	}
	t, err := object.GetTree(f.store, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	f.trees[h] = t
	return t, nil
}

// blob reads a whole blob; callers hold mu.
func (f *TreeFS) blob(h plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(f.store, h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	return data, nil
}

// splitPath turns a valid fs path into its elements ("." is none).
func splitPath(name string) []string {
	if name == "." || name == "" {
		return nil
	}
	return strings.Split(name, "/")
}

// resolve walks name from the root, following symlinks in every element
// but the last, and the last too when followLast. Callers hold mu.
func (f *TreeFS) resolve(op, name string, followLast bool) (node, error) {
	if !fs.ValidPath(name) {
		return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	parts := splitPath(name)
	cur := node{name: ".", mode: filemode.Dir, hash: f.root}
	curPath := ""
	hops := 0
	for i := 0; i < len(parts); i++ {
		if !cur.isDir() {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s is not a directory: %w", curPath, fs.ErrNotExist)}
		}
		t, err := f.tree(cur.hash)
		if err != nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		e := findEntry(t, parts[i])
		if e == nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		last := i == len(parts)-1
		if e.Mode == filemode.Symlink && (!last || followLast) {
			hops++
			if hops > maxSymlinkHops {
				return node{}, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
			}
			target, err := f.blob(e.Hash)
			if err != nil {
				return node{}, &fs.PathError{Op: op, Path: name, Err: err}
			}
			resolved, ok := symlinkTarget(curPath, string(target))
			if !ok {
				return node{}, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%s -> %s: %w", path.Join(curPath, parts[i]), target, ErrSymlinkEscape)}
			}
			parts = append(splitPath(resolved), parts[i+1:]...)
			i = -1
			cur = node{name: ".", mode: filemode.Dir, hash: f.root}
			curPath = ""
			continue
		}
		cur = node{name: e.Name, mode: e.Mode, hash: e.Hash}
		curPath = path.Join(curPath, e.Name)
	}
	return cur, nil
}

// symlinkTarget resolves a link target relative to the link's directory;
// ok is false when it is absolute or leaves the tree.
func symlinkTarget(dir, target string) (string, bool) {
	if target == "" || strings.HasPrefix(target, "/") {
		return "", false
	}
	p := path.Clean(path.Join(dir, target))
	if !fs.ValidPath(p) {
		return "", false // leaves the tree, or is not UTF-8
	}
	return p, true
}

func findEntry(t *object.Tree, name string) *object.TreeEntry {
	for i := range t.Entries {
		if t.Entries[i].Name == name {
			return &t.Entries[i]
		}
	}
	return nil
}

// info describes a node; callers hold mu.
func (f *TreeFS) info(n node) (*fileInfo, error) {
	fi := &fileInfo{name: n.name, mode: toFSMode(n.mode), mtime: f.mtime}
	if n.mode.IsFile() || n.mode == filemode.Symlink {
		// The size alone when the storage can tell it (a loose object's
		// header, a pack's entry) without inflating the blob.
		if st, ok := f.store.(interface {
			EncodedObjectSize(plumbing.Hash) (int64, error)
		}); ok {
			if size, err := st.EncodedObjectSize(n.hash); err == nil {
				fi.size = size
				return fi, nil
			}
		}
		obj, err := f.store.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return nil, fmt.Errorf("read blob %s: %w", n.hash, err)
		}
		fi.size = obj.Size()
	}
	return fi, nil
}

func toFSMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Submodule:
		return fs.ModeIrregular
	}
	return 0o644
}

// Open opens a file or directory, following symlinks that stay in the tree.
func (f *TreeFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if name != "." {
		fi.name = path.Base(name)
	}
	switch {
	case n.isDir():
		entries, err := f.readDir(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{info: fi, entries: entries}, nil
	case n.mode.IsFile():
		data, err := f.blob(n.hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &file{info: fi, Reader: bytes.NewReader(data)}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("git submodules are not supported: %w", fs.ErrInvalid)}
}

// ReadFile reads a whole file, following symlinks that stay in the tree.
func (f *TreeFS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if !n.mode.IsFile() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("not a regular file")}
	}
	data, err := f.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return data, nil
}

// ReadDir lists a directory sorted by name.
func (f *TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := f.readDir(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// readDir builds the entries of a directory node; callers hold mu.
func (f *TreeFS) readDir(n node) ([]fs.DirEntry, error) {
	t, err := f.tree(n.hash)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for _, e := range t.Entries {
		out = append(out, &dirEntry{fsys: f, n: node{name: e.Name, mode: e.Mode, hash: e.Hash}})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Stat describes a file, following symlinks that stay in the tree.
func (f *TreeFS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name, true) }

// Lstat describes a file without following a final symbolic link.
func (f *TreeFS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name, false) }

func (f *TreeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve(op, name, follow)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(n)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if name != "." {
		fi.name = path.Base(name)
	}
	return fi, nil
}

// ReadLink returns the target of a symbolic link as stored in git.
func (f *TreeFS) ReadLink(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := f.blob(n.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(target), nil
}

type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.mode }
func (i *fileInfo) ModTime() time.Time { return i.mtime }
func (i *fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fileInfo) Sys() any           { return nil }

type dirEntry struct {
	fsys *TreeFS
	n    node
}

func (d *dirEntry) Name() string      { return d.n.name }
func (d *dirEntry) IsDir() bool       { return d.n.isDir() }
func (d *dirEntry) Type() fs.FileMode { return toFSMode(d.n.mode).Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	d.fsys.mu.Lock()
	defer d.fsys.mu.Unlock()
	return d.fsys.info(d.n)
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// ObjectHash is the git object id of the entry (a tree for a folder, a blob
// for a file or symlink): equal ids mean equal contents, so a reader that
// kept what it read of an earlier tree can reuse it (the renderer's repo
// snapshot does).
func (d *dirEntry) ObjectHash() string { return d.n.hash.String() }

// file is an open regular file; its content is in memory.
type file struct {
	info *fileInfo
	*bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

// dirFile is an open directory.
type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}
