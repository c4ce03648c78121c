package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// The cache keeps one bare mirror per credential-free URL:
//
//	<CacheDir>/<sha256(url)[:32]>       bare repository, remote "origin"
//	<CacheDir>/<sha256(url)[:32]>.lock  flock: exclusive while fetching
//
// Branches are mirrored to refs/heads/*, tags to refs/tags/*, forced (a
// force-push is adopted) and pruned. HEAD follows the remote's default
// branch. Full history is fetched: plan and rollback read older commits,
// and go-git cannot deepen a shallow clone incrementally.
var mirrorRefSpecs = []config.RefSpec{
	"+refs/heads/*:refs/heads/*",
	"+refs/tags/*:refs/tags/*",
}

const remoteName = "origin"

// objectCacheSize bounds the decoded-object cache of one opened mirror.
const objectCacheSize = 32 * cache.MiByte

// openMirror opens a bare mirror with a bounded object cache.
func openMirror(dir string) (*git.Repository, error) {
	if _, err := os.Stat(filepath.Join(dir, "config")); err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRU(objectCacheSize))
	return git.Open(st, nil)
}

// cacheKey names the cache entry of a credential-free URL.
func cacheKey(cleanURL string) string {
	sum := sha256.Sum256([]byte(cleanURL))
	return hex.EncodeToString(sum[:16])
}

// openRemote prepares the mirror of a URL and fetches it.
func (r *Repo) openRemote(ctx context.Context, raw string) error {
	rem, err := parseRemote(raw)
	if err != nil {
		return &Error{Kind: ErrOther, Op: "open", URL: RedactURL(raw), msg: err.Error(), Err: err}
	}
	r.kind, r.remote, r.loc = kindRemote, rem, RedactURL(rem.clean)
	if r.auth, err = r.opts.auth(rem); err != nil {
		return &Error{Kind: ErrAuth, Op: "open", URL: r.loc, msg: scrub(err.Error(), r.secrets()...), Err: err}
	}
	if r.opts.CAFile != "" {
		if r.ca, err = os.ReadFile(r.opts.CAFile); err != nil {
			return &Error{Kind: ErrOther, Op: "open", URL: r.loc, msg: err.Error(), Err: err}
		}
	}
	if err := r.loadKeyring(); err != nil {
		return err
	}
	if err := os.MkdirAll(r.opts.CacheDir, 0o700); err != nil {
		return &Error{Kind: ErrOther, Op: "open", URL: r.loc, msg: err.Error(), Err: err}
	}
	r.dir = filepath.Join(r.opts.CacheDir, cacheKey(rem.clean))
	return r.update(ctx)
}

// Fetch updates the mirror from the remote and resolves Options.Ref. On
// error nothing that was resolved before changes: revisions already
// returned stay readable. For a local repository it only resolves.
func (r *Repo) Fetch(ctx context.Context) (*Revision, error) {
	if r.kind == kindRemote {
		if err := r.update(ctx); err != nil {
			return nil, err
		}
	}
	return r.Open(ctx, r.opts.Ref)
}

// update fetches the remote into the cache, re-cloning a damaged cache.
func (r *Repo) update(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	lock, err := acquireLock(ctx, r.dir+".lock", true)
	if err != nil {
		return newError("fetch", r.loc, "", err)
	}
	defer func() { _ = lock.release() }()

	stats := FetchStats{}
	g, err := r.openCache()
	if err != nil {
		// Damaged: start again from an empty mirror.
		stats.Recloned = true
		if err := os.RemoveAll(r.dir); err != nil {
			return newError("fetch", r.loc, "", fmt.Errorf("remove damaged cache: %w", err))
		}
		if g, err = r.initCache(); err != nil {
			return newError("fetch", r.loc, "", err)
		}
	}
	err = r.fetchWithRetries(ctx, g, &stats)
	if err != nil && !stats.Recloned && errors.Is(err, ErrOther) {
		// An unexplained failure on an existing cache: the local side may be
		// damaged in a way the check missed. Re-clone once.
		stats.Recloned = true
		if rmErr := os.RemoveAll(r.dir); rmErr != nil {
			return err
		}
		if g, err = r.initCache(); err != nil {
			return newError("fetch", r.loc, "", err)
		}
		err = r.fetchWithRetries(ctx, g, &stats)
	}
	r.mu.Lock()
	r.last = stats
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if cur := r.store(); stats.UpToDate && !stats.Recloned && cur != nil && cur.refs == refsDigest(g) {
		return nil // nothing new: keep the instance and its caches
	}
	// Up to date but with refs the instance in use did not have: another
	// process sharing the cache fetched them (its packfiles are new to that
	// instance, whose list of packfiles is read once).
	// A fresh instance sees the new packfiles; older revisions keep theirs.
	fresh, err := openMirror(r.dir)
	if err != nil {
		return newError("fetch", r.loc, "", err)
	}
	r.setStore(fresh)
	return nil
}

// refsDigest digests every ref of the mirror (name and target), read from
// disk; "" when they cannot be read (the instance is then replaced).
func refsDigest(g *git.Repository) string {
	refs, err := g.References()
	if err != nil {
		return ""
	}
	defer refs.Close()
	var lines []string
	if err := refs.ForEach(func(ref *plumbing.Reference) error {
		lines = append(lines, ref.Strings()[0]+" "+ref.Strings()[1])
		return nil
	}); err != nil {
		return ""
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

// openCache opens the existing mirror and checks it; a missing mirror is
// created. An error means the mirror is damaged.
func (r *Repo) openCache() (*git.Repository, error) {
	if _, err := os.Stat(r.dir); errors.Is(err, os.ErrNotExist) {
		return r.initCache()
	}
	g, err := openMirror(r.dir)
	if err != nil {
		return nil, err
	}
	if err := checkMirror(g, r.remote.clean); err != nil {
		return nil, err
	}
	return g, nil
}

// checkMirror verifies the remote and that every branch's commit and root
// tree can be read (tags are not walked: there may be thousands).
func checkMirror(g *git.Repository, url string) error {
	rc, err := g.Remote(remoteName)
	if err != nil {
		return err
	}
	if urls := rc.Config().URLs; len(urls) != 1 || urls[0] != url {
		return errors.New("cache belongs to another URL")
	}
	refs, err := g.References()
	if err != nil {
		return err
	}
	defer refs.Close()
	return refs.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() != plumbing.HashReference || !ref.Name().IsBranch() {
			return nil
		}
		res, err := peel(g, ref.Hash())
		if err != nil {
			return err
		}
		c, err := object.GetCommit(g.Storer, res.commit)
		if err != nil {
			return err
		}
		_, err = c.Tree()
		return err
	})
}

// initCache creates an empty bare mirror.
func (r *Repo) initCache() (*git.Repository, error) {
	tmp, err := os.MkdirTemp(r.opts.CacheDir, filepath.Base(r.dir)+".new-")
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	g, err := git.PlainInit(tmp, true)
	if err == nil {
		_, err = g.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{r.remote.clean}, Fetch: mirrorRefSpecs})
	}
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	if err := os.Rename(tmp, r.dir); err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	return openMirror(r.dir)
}

// fetchWithRetries runs fetchOnce, retrying transient errors with
// exponential backoff.
func (r *Repo) fetchWithRetries(ctx context.Context, g *git.Repository, stats *FetchStats) error {
	return r.retry(ctx, stats, func(ctx context.Context) error { return r.fetchOnce(ctx, g, stats) })
}

// retry runs one network operation, retrying transient errors with
// exponential backoff.
func (r *Repo) retry(ctx context.Context, stats *FetchStats, op func(context.Context) error) error {
	backoff := r.opts.RetryBackoff
	for attempt := 0; ; attempt++ {
		stats.Attempts++
		err := op(ctx)
		if err == nil {
			return nil
		}
		err = newError("fetch", r.loc, "", err, r.secrets()...)
		if ctx.Err() != nil {
			return newError("fetch", r.loc, "", fmt.Errorf("%w (after %d attempts)", ctx.Err(), stats.Attempts))
		}
		if !retryable(err) || attempt >= r.opts.Retries {
			if attempt > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, stats.Attempts)
			}
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return newError("fetch", r.loc, "", fmt.Errorf("%w (after %d attempts)", ctx.Err(), stats.Attempts))
		case <-t.C:
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
}
