// Package source reads the fleet repository from git.
//
// It resolves a ref (branch, tag, full or short commit SHA, HEAD, origin/x) of
// a remote repository (https, http, ssh, file) or of a local git directory to
// a [Revision]: the full commit SHA plus a read-only [io/fs.FS] served straight
// from the git objects of that commit's tree, without any worktree. The same
// [Repo] handle opens any other commit of the repository, which is what
// `plan` (base and head) and rollback need.
//
// Remote repositories are mirrored into a bare repository per URL under a
// cache directory: the first fetch clones, later fetches are incremental and
// transfer nothing when the remote did not change. Full history is kept (no
// shallow clones) so that older revisions stay readable. A cache that fails
// its consistency check is removed and cloned again; a lock file serialises
// processes sharing a cache directory.
//
// Authentication covers HTTPS basic auth and tokens, SSH keys with strict
// known_hosts checking, and custom CA bundles. OpenPGP signatures of the
// head commit or of an annotated tag can be required.
//
// Errors are classified for callers: errors.Is(err, ErrAuth), ErrNotFound,
// ErrTransient, ErrHostKey, ErrSignature. Credentials never appear in an
// error. The package does not log, render or apply anything.
package source
