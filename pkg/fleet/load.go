package fleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Files and folders of a fleet repo.
const (
	FleetFile      = "fleet.yaml"
	ClustersDir    = "clusters"
	PoliciesDir    = "policies"
	AppFile        = "app.yaml"
	yamlExt        = ".yaml"
	maxSymlinkHops = 40
)

// MaxFileBytes bounds every file fleetsync reads from a fleet repo (fleet
// files, manifests, chart files, values files): a larger file is refused
// before it is read, with its name, so that a stray 100 MB file costs
// nothing (docs/security.md). Kubernetes objects are far smaller (the API
// server takes at most about 1.5 MiB per object); CRD bundles, the largest
// manifests in common use, are a few MiB.
const MaxFileBytes = 16 << 20

// TooLarge is the message for a file over MaxFileBytes.
func TooLarge(file string, size int64) string {
	return fmt.Sprintf("%s: %d bytes, over the %d MiB limit of a file in the fleet repo: refused without reading it", file, size, MaxFileBytes>>20)
}

// Load reads the fleet repo rooted at fsys and validates it. When anything is
// wrong it returns a nil Repo and Problems listing every problem found (sorted by
// file and line); other errors (a cancelled ctx, an unreadable folder) are
// returned as they are. The returned Repo's Revision is empty: the caller that
// knows the commit sets it.
func Load(ctx context.Context, fsys fs.FS) (*Repo, error) {
	l := &loader{ctx: ctx, fsys: fsys, docs: map[any]*document{}}
	repo, err := l.load()
	if err != nil {
		return nil, err
	}
	if len(l.probs) > 0 {
		return nil, l.probs.Sorted()
	}
	return repo, nil
}

// loader holds the state of one Load.
type loader struct {
	ctx   context.Context
	fsys  fs.FS
	probs Problems
	// docs maps each decoded object (a pointer) to the document it came from.
	docs map[any]*document
	// sels answers which clusters a selector selects.
	sels selectorCache
}

func (l *loader) load() (*Repo, error) {
	repo := &Repo{FS: l.fsys}
	found := false
	if ok, err := l.exists(FleetFile); err != nil {
		return nil, err
	} else if ok {
		found = true
		var f v1alpha1.Fleet
		if l.decodeFile(FleetFile, v1alpha1.KindFleet, &f) {
			repo.Fleet = &f
		}
	}
	clusterFiles, okC, err := l.yamlFiles(ClustersDir)
	if err != nil {
		return nil, err
	}
	repo.Clusters = decodeAll[v1alpha1.Cluster](l, clusterFiles, v1alpha1.KindCluster)
	appFiles, okA, err := l.appFiles()
	if err != nil {
		return nil, err
	}
	repo.Apps = decodeAll[v1alpha1.App](l, appFiles, v1alpha1.KindApp)
	policyFiles, okP, err := l.yamlFiles(PoliciesDir)
	if err != nil {
		return nil, err
	}
	repo.ScalePolicies = decodeAll[v1alpha1.ScalePolicy](l, policyFiles, v1alpha1.KindScalePolicy)
	if !found && !okC && !okA && !okP {
		l.probs = append(l.probs, Problem{File: ".", Message: "not a fleet repo: no fleet.yaml, clusters/, apps/ or policies/"})
		return repo, nil
	}
	slices.SortStableFunc(repo.Clusters, func(a, b *v1alpha1.Cluster) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	slices.SortStableFunc(repo.Apps, func(a, b *v1alpha1.App) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	slices.SortStableFunc(repo.ScalePolicies, func(a, b *v1alpha1.ScalePolicy) int {
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
	if err := l.ctx.Err(); err != nil {
		return nil, fmt.Errorf("load fleet repo: %w", err)
	}
	l.validate(repo)
	repo.positions = l.docs
	return repo, nil
}

// exists reports whether name exists (following symlinks the way Open does).
func (l *loader) exists(name string) (bool, error) {
	_, err := fs.Stat(l.fsys, name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("load fleet repo: %s: %w", name, err)
	}
}

// readDir lists a folder; a missing folder is empty and reported as absent.
func (l *loader) readDir(dir string) ([]fs.DirEntry, bool, error) {
	if err := l.ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("load fleet repo: %w", err)
	}
	if fi, err := fs.Stat(l.fsys, dir); err == nil && !fi.IsDir() {
		l.probs = append(l.probs, Problem{File: dir, Message: "must be a folder"})
		return nil, true, nil
	}
	entries, err := fs.ReadDir(l.fsys, dir)
	switch {
	case err == nil:
		return entries, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("load fleet repo: read %s: %w", dir, err)
	}
}

// yamlFiles lists the *.yaml files of a folder. *.yml files are reported (the
// format names .yaml only); anything else (README.md, sub-folders, dot files) is ignored.
func (l *loader) yamlFiles(dir string) ([]string, bool, error) {
	entries, ok, err := l.readDir(dir)
	if err != nil {
		return nil, false, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		file := path.Join(dir, name)
		switch {
		case e.IsDir():
		case strings.HasSuffix(name, yamlExt):
			files = append(files, file)
		case strings.HasSuffix(name, ".yml"):
			l.probs = append(l.probs, Problem{File: file, Message: "fleet files end in .yaml: rename it to " + strings.TrimSuffix(name, ".yml") + yamlExt})
		}
	}
	return files, ok, nil
}

// appFiles lists apps/<app>/app.yaml for every folder under apps/ (dot folders
// excepted); a folder without app.yaml is a problem.
func (l *loader) appFiles() ([]string, bool, error) {
	entries, ok, err := l.readDir(AppsDir)
	if err != nil {
		return nil, false, err
	}
	var files []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := path.Join(AppsDir, e.Name())
		if fi, err := fs.Stat(l.fsys, dir); err != nil || !fi.IsDir() {
			continue
		}
		file := path.Join(dir, AppFile)
		found, err := l.exists(file)
		if err != nil {
			return nil, false, err
		}
		if !found {
			l.probs = append(l.probs, Problem{File: dir, Message: "an app folder needs an app.yaml"})
			continue
		}
		files = append(files, file)
	}
	return files, ok, nil
}

// decodeAll decodes each file as an object of kind (T is its Go type) and
// returns the objects that were filled, in file order.
//
// Files are decoded in parallel (a fleet of a thousand clusters has as many
// files); problems and objects come out in the order of files.
func decodeAll[T any](l *loader, files []string, kind string) []*T {
	type decoded struct {
		sub loader
		obj *T
		ok  bool
	}
	res := make([]decoded, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				d := &res[i]
				d.sub = loader{ctx: l.ctx, fsys: l.fsys, docs: map[any]*document{}}
				d.obj = new(T)
				d.ok = d.sub.decodeFile(files[i], kind, d.obj)
			}
		})
	}
	wg.Wait()
	var out []*T
	for i := range res {
		d := &res[i]
		l.probs = append(l.probs, d.sub.probs...)
		maps.Copy(l.docs, d.sub.docs)
		if d.ok {
			out = append(out, d.obj)
		}
	}
	return out
}

// decodeFile reads, parses and strictly decodes one file into obj (a pointer to
// a kind's type) after checking its apiVersion and kind. It reports whether obj
// was filled (possibly with problems in some fields).
func (l *loader) decodeFile(file, kind string, obj any) bool {
	data, ok := l.readFile(file)
	if !ok {
		return false
	}
	doc, probs := parseDocument(file, data)
	l.probs = append(l.probs, probs...)
	if doc == nil {
		return false
	}
	if !l.checkTypeMeta(doc, file, kind) {
		return false
	}
	l.probs = append(l.probs, doc.decodeInto(obj)...)
	l.docs[obj] = doc
	return true
}

// readFile reads a fleet file, refusing symlinks that leave the repo.
func (l *loader) readFile(file string) ([]byte, bool) {
	resolved, err := resolve(l.fsys, file)
	if err != nil {
		l.probs = append(l.probs, Problem{File: file, Message: err.Error()})
		return nil, false
	}
	if fi, err := fs.Stat(l.fsys, resolved); err == nil && fi.Size() > MaxFileBytes {
		l.probs = append(l.probs, Problem{File: file, Message: TooLarge(file, fi.Size())})
		return nil, false
	}
	data, err := fs.ReadFile(l.fsys, resolved)
	if err != nil {
		l.probs = append(l.probs, Problem{File: file, Message: "cannot read: " + err.Error()})
		return nil, false
	}
	return data, true
}

// kindPlace says where the files of a kind live; "" for an unknown kind.
func kindPlace(kind string) string {
	switch kind {
	case v1alpha1.KindFleet:
		return FleetFile
	case v1alpha1.KindCluster:
		return ClustersDir + "/<name>.yaml"
	case v1alpha1.KindApp:
		return AppsDir + "/<app>/" + AppFile
	case v1alpha1.KindScalePolicy:
		return PoliciesDir + "/*.yaml"
	}
	return ""
}

// checkTypeMeta checks apiVersion and kind, and that the kind belongs where the file is.
func (l *loader) checkTypeMeta(doc *document, file, want string) bool {
	ok := true
	apiVersion, line, found := doc.topString("apiVersion")
	switch {
	case !found:
		l.probs = append(l.probs, Problem{File: file, Line: line, Field: "apiVersion", Message: "required: want " + v1alpha1.GroupVersion})
		ok = false
	case apiVersion != v1alpha1.GroupVersion:
		l.probs = append(l.probs, Problem{File: file, Line: line, Field: "apiVersion", Message: fmt.Sprintf("unknown apiVersion %q: want %s", apiVersion, v1alpha1.GroupVersion)})
		ok = false
	}
	kind, line, found := doc.topString("kind")
	place := kindPlace(kind)
	switch {
	case !found:
		l.probs = append(l.probs, Problem{File: file, Line: line, Field: "kind", Message: "required: want " + want})
		ok = false
	case place == "":
		l.probs = append(l.probs, Problem{File: file, Line: line, Field: "kind", Message: fmt.Sprintf("unknown kind %q: want one of App, Cluster, Fleet, ScalePolicy", kind)})
		ok = false
	case kind != want:
		l.probs = append(l.probs, Problem{File: file, Line: line, Field: "kind", Message: fmt.Sprintf("%s belongs in %s, not in %s (want kind %s here)", kind, place, file, want)})
		ok = false
	}
	return ok
}
