package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Revision is one commit of the repository with its file tree.
type Revision struct {
	// Commit is the full commit SHA; "" for a plain directory.
	Commit string
	// Ref is what was resolved: a full ref name (refs/heads/main,
	// refs/tags/v1) or the SHA that was asked for; "" for a plain directory.
	Ref string
	// SignedBy names the key that verified the revision (fingerprint and
	// identity) when signature verification is on.
	SignedBy string
	// FS is the commit's tree, read-only. It implements fs.ReadFileFS,
	// fs.ReadDirFS, fs.StatFS and fs.ReadLinkFS.
	FS fs.FS
}

type repoKind int

const (
	kindRemote repoKind = iota // URL mirrored into the cache
	kindLocal                  // local git repository, read from its objects
	kindPlain                  // plain directory, served as is
)

// Repo is a handle on one repository: a remote mirrored into the cache, a
// local git repository, or a plain directory. Open reads any ref of it.
// A Repo is safe for concurrent use; Close it when done.
type Repo struct {
	opts Options
	kind repoKind
	loc  string // credential-free URL or directory, for messages
	dir  string // cache entry, git directory or plain directory

	remote remote
	auth   transport.AuthMethod
	ca     []byte
	ring   openpgp.EntityList

	fetchMu sync.Mutex // serialises fetches in this process
	mu      sync.Mutex // guards cur and last
	cur     *objStore  // replaced after each fetch
	root    *os.Root   // kindPlain
	last    FetchStats
}

// objStore is one opened instance of a repository's object store. go-git's
// storage is not safe for concurrent use, so every read goes through mu.
// A fetch writes through a fresh instance and then replaces Repo.cur;
// revisions opened before keep reading from their own instance (objects are
// immutable and never garbage collected here).
type objStore struct {
	mu  sync.Mutex
	git *git.Repository
	// refs is a digest of the mirror's refs when the instance was opened
	// (refsDigest): another process sharing the cache may have fetched new
	// packfiles since, which this instance does not see.
	refs string
}

func (r *Repo) store() *objStore {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *Repo) setStore(g *git.Repository) {
	refs := refsDigest(g)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = &objStore{git: g, refs: refs}
}

// FetchStats describes the last fetch from the remote.
type FetchStats struct {
	// UpToDate is true when the remote refs equalled the cached ones and
	// nothing was downloaded.
	UpToDate bool
	// Objects and PackBytes count what the fetch downloaded (objects in,
	// and size of, the received packfiles).
	Objects   int64
	PackBytes int64
	// Attempts is the number of network attempts made.
	Attempts int
	// Recloned is true when a damaged cache was removed and cloned again.
	Recloned bool
}

// Open returns a handle on repoArg: an https/http/ssh/file URL or scp-style
// address (mirrored into the cache and fetched now), a directory inside a
// git repository (read from its objects), or a plain directory.
func Open(ctx context.Context, repoArg string, opts Options) (*Repo, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, &Error{Kind: ErrOther, Op: "open", URL: RedactURL(repoArg), msg: err.Error(), Err: err}
	}
	r := &Repo{opts: opts}
	isURL := strings.Contains(repoArg, "://") || scpLike.MatchString(repoArg)
	st, statErr := os.Stat(repoArg) //nolint:gosec // --repo is the user's own choice
	switch {
	case statErr == nil && st.IsDir():
		err = r.openDir(repoArg)
	case isURL:
		err = r.openRemote(ctx, repoArg)
	default:
		msg := "not a directory or a repository URL"
		if statErr != nil {
			msg = "no such directory, and not a repository URL"
		}
		return nil, &Error{Kind: ErrNotFound, Op: "open", URL: RedactURL(repoArg), msg: msg}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Resolve is the one-call entry point of the CLI: it opens repoArg and
// resolves ref (empty: Options.Ref, else the default branch; for a plain
// directory, empty is required). The returned Repo opens more refs; Close it.
func Resolve(ctx context.Context, repoArg, ref string, opts Options) (*Revision, *Repo, error) {
	r, err := Open(ctx, repoArg, opts)
	if err != nil {
		return nil, nil, err
	}
	if ref == "" {
		ref = r.opts.Ref
	}
	rev, err := r.Open(ctx, ref)
	if err != nil {
		_ = r.Close()
		return nil, nil, err
	}
	return rev, r, nil
}

// openDir sets up a local directory: a git repository when one contains
// it, else a plain directory.
func (r *Repo) openDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	r.loc, r.dir = abs, abs
	g, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	switch {
	case err == nil:
		r.kind = kindLocal
		r.setStore(g)
	case errors.Is(err, git.ErrRepositoryNotExists):
		r.kind = kindPlain
	default:
		return &Error{Kind: ErrOther, Op: "open", URL: abs, msg: err.Error(), Err: err}
	}
	if r.root, err = os.OpenRoot(abs); err != nil {
		return &Error{Kind: ErrOther, Op: "open", URL: abs, msg: err.Error(), Err: err}
	}
	return r.loadKeyring()
}

func (r *Repo) loadKeyring() error {
	if r.opts.Verify == VerifyOff {
		return nil
	}
	ring, err := loadKeyring(r.opts.KeyringFiles)
	if err != nil {
		return &Error{Kind: ErrOther, Op: "open", URL: r.loc, msg: err.Error(), Err: err}
	}
	r.ring = ring
	return nil
}

// Location is the credential-free URL or absolute directory of the repo.
func (r *Repo) Location() string { return r.loc }

// LastFetch reports on the last fetch from the remote.
func (r *Repo) LastFetch() FetchStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Close releases the repository. Revisions already opened stay readable
// for a remote or local git repository.
func (r *Repo) Close() error {
	if r.root != nil {
		return r.root.Close()
	}
	return nil
}

// Open resolves ref to a revision: a branch, tag, full or short commit SHA,
// HEAD, origin/<branch>, refs/..., or a git revision expression (main~1).
// For a URL, empty means the remote's default branch. Branches and tags are
// read from what is already fetched (call Fetch to update from the remote);
// other refs (refs/pull/1/head) are fetched from the remote each time, and
// a full SHA that no fetched ref reaches is asked of the remote by SHA.
//
// For a local directory (git repository or not), empty means the working
// tree as it is on disk, uncommitted changes included: the revision's Commit
// and Ref are "" and its FS is confined to the directory by os.Root
// (symlinks leading outside are refused). A plain directory has no refs.
// With signature verification on, empty means HEAD for a local repository
// (a working tree cannot be verified), and a plain directory is refused.
func (r *Repo) Open(ctx context.Context, ref string) (*Revision, error) {
	if err := ctx.Err(); err != nil {
		return nil, newError("open", r.loc, ref, err)
	}
	if r.kind == kindLocal && ref == "" && r.opts.Verify != VerifyOff {
		ref = "HEAD" // a working tree cannot be verified; its commit can
	}
	if r.kind != kindRemote && ref == "" {
		if r.opts.Verify != VerifyOff {
			err := &SignatureError{Object: "directory " + r.loc, Reason: "not a git repository, nothing to verify"}
			return nil, &Error{Kind: ErrSignature, Op: "open", URL: r.loc, msg: err.Error(), Err: err}
		}
		// A local directory without a ref is its working tree as is.
		return &Revision{FS: r.root.FS()}, nil
	}
	if r.kind == kindPlain {
		msg := fmt.Sprintf("%s is not a git repository, it has no ref %q", r.loc, ref)
		return nil, &Error{Kind: ErrNotFound, Op: "open", URL: r.loc, Ref: ref, msg: msg, Err: &RefNotFoundError{Ref: ref}}
	}
	if r.kind == kindRemote && isExtraRef(ref) {
		if err := r.fetchExtraRef(ctx, ref, ref); err != nil {
			return nil, err
		}
	}
	rev, err := r.openLocked(ctx, ref)
	var nf *RefNotFoundError
	if r.kind == kindRemote && plumbing.IsHash(ref) && errors.As(err, &nf) {
		// A commit on no branch or tag (a pull request's head, say): ask the
		// server for it by SHA; servers that do not allow it say not found.
		if err := r.fetchExtraRef(ctx, ref, shaRef(ref)); err != nil {
			return nil, err
		}
		rev, err = r.openLocked(ctx, ref)
	}
	return rev, err
}

// openLocked resolves ref under the shared cache lock.
func (r *Repo) openLocked(ctx context.Context, ref string) (*Revision, error) {
	if r.kind == kindRemote {
		l, err := acquireLock(ctx, r.dir+".lock", false)
		if err != nil {
			return nil, newError("open", r.loc, ref, err)
		}
		defer func() { _ = l.release() }()
	}
	rev, err := r.revision(r.store(), ref)
	if err != nil {
		return nil, newError("open", r.loc, ref, err)
	}
	return rev, nil
}

// revision resolves and verifies ref in s.
func (r *Repo) revision(s *objStore, ref string) (*Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := resolveRef(s.git, ref, r.kind == kindRemote)
	if err != nil {
		return nil, err
	}
	c, err := object.GetCommit(s.git.Storer, res.commit)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", res.commit, err)
	}
	rev := &Revision{Commit: res.commit.String(), Ref: res.name}
	switch r.opts.Verify {
	case VerifyHead:
		rev.SignedBy, err = verifyCommit(r.ring, c)
	case VerifyTag:
		if res.tag != nil {
			rev.SignedBy, err = verifyTag(r.ring, res.tag)
		} else {
			rev.SignedBy, err = verifyTagsPointingAt(r.ring, s.git.Storer, res.commit)
		}
	}
	if err != nil {
		return nil, err
	}
	rev.FS = newTreeFS(&s.mu, s.git.Storer, c.TreeHash, c.Committer.When)
	return rev, nil
}
