package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// fetchOnce makes one attempt: list the remote refs, and download only
// when they differ from the mirror's.
func (r *Repo) fetchOnce(ctx context.Context, g *git.Repository, stats *FetchStats) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	rem, err := g.Remote(remoteName)
	if err != nil {
		return err
	}
	advertised, err := rem.ListContext(ctx, &git.ListOptions{
		Auth: r.auth, CABundle: r.ca, InsecureSkipTLS: r.opts.InsecureSkipTLSVerify,
		PeelingOption: git.IgnorePeeled,
	})
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return fmt.Errorf("%w: the repository is empty", ErrNotFound)
		}
		return err
	}
	same, err := sameRefs(g, advertised)
	if err != nil {
		return err
	}
	stats.UpToDate = same
	if !same {
		before, err := packSet(g)
		if err != nil {
			return err
		}
		err = rem.FetchContext(ctx, &git.FetchOptions{
			RemoteName: remoteName, RefSpecs: mirrorRefSpecs, Auth: r.auth,
			CABundle: r.ca, InsecureSkipTLS: r.opts.InsecureSkipTLSVerify,
			Tags: git.NoTags, Force: true, Prune: true,
		})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return err
		}
		if err := r.countNewPacks(g, before, stats); err != nil {
			return err
		}
	}
	return setHead(g, advertised)
}

// sameRefs reports whether the mirror's branches and tags equal the
// advertised ones.
func sameRefs(g *git.Repository, advertised []*plumbing.Reference) (bool, error) {
	want := map[plumbing.ReferenceName]plumbing.Hash{}
	for _, ref := range advertised {
		if (ref.Name().IsBranch() || ref.Name().IsTag()) && ref.Type() == plumbing.HashReference {
			want[ref.Name()] = ref.Hash()
		}
	}
	refs, err := g.Storer.IterReferences()
	if err != nil {
		return false, err
	}
	defer refs.Close()
	have := 0
	same := true
	err = refs.ForEach(func(ref *plumbing.Reference) error {
		if !ref.Name().IsBranch() && !ref.Name().IsTag() {
			return nil
		}
		have++
		if h, ok := want[ref.Name()]; !ok || h != ref.Hash() {
			same = false
		}
		return nil
	})
	return same && have == len(want), err
}

// setHead points the mirror's HEAD at the remote's default branch.
func setHead(g *git.Repository, advertised []*plumbing.Reference) error {
	var target plumbing.ReferenceName
	var headHash plumbing.Hash
	for _, ref := range advertised {
		if ref.Name() != plumbing.HEAD {
			continue
		}
		if ref.Type() == plumbing.SymbolicReference {
			target = ref.Target()
		} else {
			headHash = ref.Hash()
		}
	}
	if target == "" && !headHash.IsZero() {
		// No symref advertised: pick a branch at HEAD's commit, preferring main/master.
		for _, ref := range advertised {
			if ref.Name().IsBranch() && ref.Hash() == headHash {
				if target == "" || ref.Name() == "refs/heads/main" || ref.Name() == "refs/heads/master" {
					target = ref.Name()
				}
			}
		}
	}
	if target == "" {
		return nil
	}
	cur, err := g.Storer.Reference(plumbing.HEAD)
	if err == nil && cur.Type() == plumbing.SymbolicReference && cur.Target() == target {
		return nil
	}
	return g.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, target))
}

// packSet lists the mirror's packfiles.
func packSet(g *git.Repository) (map[plumbing.Hash]bool, error) {
	lister, ok := g.Storer.(interface {
		ObjectPacks() ([]plumbing.Hash, error)
	})
	if !ok {
		return nil, nil
	}
	packs, err := lister.ObjectPacks()
	if err != nil {
		return nil, err
	}
	set := map[plumbing.Hash]bool{}
	for _, h := range packs {
		set[h] = true
	}
	return set, nil
}

// countNewPacks adds the objects and bytes of packfiles that appeared
// since before to stats.
func (r *Repo) countNewPacks(g *git.Repository, before map[plumbing.Hash]bool, stats *FetchStats) error {
	after, err := packSet(g)
	if err != nil {
		return err
	}
	for h := range after {
		if before[h] {
			continue
		}
		base := filepath.Join(r.dir, "objects", "pack", "pack-"+h.String())
		if st, err := os.Stat(base + ".pack"); err == nil {
			stats.PackBytes += st.Size()
		}
		n, err := idxCount(base + ".idx")
		if err != nil {
			return err
		}
		stats.Objects += n
	}
	return nil
}

func idxCount(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return idx.Count()
}

// isExtraRef says whether ref names a ref outside the mirrored branches and
// tags (refs/pull/1/head, refs/merge-requests/1/head, refs/changes/...):
// such refs are fetched on demand, every time they are opened.
func isExtraRef(ref string) bool {
	return strings.HasPrefix(ref, "refs/") && !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/")
}

// shaRef is where a commit fetched by SHA is kept in the mirror.
func shaRef(sha string) string { return "refs/fleetsync/commits/" + sha }

// fetchExtraRef fetches one ref (or a full commit SHA, when the server
// allows it) outside the mirror refspecs into dst in the cache.
func (r *Repo) fetchExtraRef(ctx context.Context, ref, dst string) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	lock, err := acquireLock(ctx, r.dir+".lock", true)
	if err != nil {
		return newError("fetch", r.loc, ref, err)
	}
	defer func() { _ = lock.release() }()
	g, err := openMirror(r.dir)
	if err != nil {
		return newError("fetch", r.loc, ref, err)
	}
	rem, err := g.Remote(remoteName)
	if err != nil {
		return newError("fetch", r.loc, ref, err)
	}
	spec := config.RefSpec("+" + ref + ":" + dst)
	if err := spec.Validate(); err != nil {
		return newError("fetch", r.loc, ref, &RefNotFoundError{Ref: ref})
	}
	var stats FetchStats
	err = r.retry(ctx, &stats, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
		err := rem.FetchContext(ctx, &git.FetchOptions{
			RemoteName: remoteName, RefSpecs: []config.RefSpec{spec}, Auth: r.auth,
			CABundle: r.ca, InsecureSkipTLS: r.opts.InsecureSkipTLSVerify, Tags: git.NoTags, Force: true,
		})
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil
		}
		if errors.Is(err, git.NoMatchingRefSpecError{}) || errors.Is(err, git.ErrExactSHA1NotSupported) {
			return &RefNotFoundError{Ref: ref}
		}
		return err
	})
	if err != nil {
		return newError("fetch", r.loc, ref, err)
	}
	fresh, err := openMirror(r.dir)
	if err != nil {
		return newError("fetch", r.loc, ref, err)
	}
	r.setStore(fresh)
	return nil
}
