package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// Environment variables read by sourceFlags.options; flags take precedence.
const (
	envGitUsername      = "FLEETSYNC_GIT_USERNAME"
	envGitPassword      = "FLEETSYNC_GIT_PASSWORD"       //nolint:gosec // the variable's name, not a credential
	envSSHKeyPassphrase = "FLEETSYNC_SSH_KEY_PASSPHRASE" //nolint:gosec // the variable's name, not a credential
)

// sourceFlags are the flags that say how to read the fleet repo from git.
// Secrets are never flag values: the password comes from a file or the
// environment.
type sourceFlags struct {
	ref                   string
	gitUsername           string
	gitPasswordFile       string
	sshKeyFile            string
	knownHostsFile        string
	caFile                string
	insecureSkipTLSVerify bool
	verifySignatures      string
	keyrings              []string
	cacheDir              string
}

// BindFlags adds --ref and the git access flags.
func (f *sourceFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.ref, "ref", "", "git ref to read: branch, tag, commit SHA (default: the remote's default branch; for a local directory, its working tree)")
	f.BindAccessFlags(fs)
}

// BindAccessFlags adds the git access flags without --ref (for commands
// that name their refs otherwise, like plan's --base and --head).
func (f *sourceFlags) BindAccessFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.gitUsername, "git-username", "", "username for HTTPS git (env "+envGitUsername+")")
	fs.StringVar(&f.gitPasswordFile, "git-password-file", "", "file holding the HTTPS git password or token (env "+envGitPassword+")")
	fs.StringVar(&f.sshKeyFile, "ssh-key-file", "", "SSH private key for ssh:// and git@host:path repositories (passphrase in env "+envSSHKeyPassphrase+")")
	fs.StringVar(&f.knownHostsFile, "known-hosts-file", "", "known_hosts file with the trusted SSH host keys (default $SSH_KNOWN_HOSTS or ~/.ssh/known_hosts); host keys are always checked")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM bundle of CA certificates trusted for HTTPS git, in addition to the system roots")
	fs.BoolVar(&f.insecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not verify the HTTPS git server's certificate (insecure)")
	fs.StringVar(&f.verifySignatures, "verify-signatures", "off", "OpenPGP signature verification: off, head (the commit) or tag (the annotated tag)")
	fs.StringArrayVar(&f.keyrings, "keyring", nil, "armored OpenPGP public key file trusted for --verify-signatures (repeatable)")
	fs.StringVar(&f.cacheDir, "git-cache-dir", "", "directory of the git mirror cache (default <user cache dir>/fleetsync/git)")
}

// options turns the flags and environment into source.Options.
func (f *sourceFlags) options() (source.Options, error) {
	mode, err := source.ParseVerifyMode(f.verifySignatures)
	if err != nil {
		return source.Options{}, fmt.Errorf("--verify-signatures: %w", err)
	}
	opts := source.Options{
		Ref:                   f.ref,
		CacheDir:              f.cacheDir,
		Username:              f.gitUsername,
		SSHKeyFile:            f.sshKeyFile,
		SSHKeyPassphrase:      os.Getenv(envSSHKeyPassphrase),
		KnownHostsFile:        f.knownHostsFile,
		CAFile:                f.caFile,
		InsecureSkipTLSVerify: f.insecureSkipTLSVerify,
		Verify:                mode,
		KeyringFiles:          f.keyrings,
	}
	if opts.Username == "" {
		opts.Username = os.Getenv(envGitUsername)
	}
	switch {
	case f.gitPasswordFile != "":
		b, err := os.ReadFile(f.gitPasswordFile)
		if err != nil {
			return source.Options{}, fmt.Errorf("--git-password-file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
		if opts.Password == "" {
			return source.Options{}, fmt.Errorf("--git-password-file %s is empty", f.gitPasswordFile)
		}
	default:
		opts.Password = os.Getenv(envGitPassword)
	}
	if mode != source.VerifyOff && len(f.keyrings) == 0 {
		return source.Options{}, fmt.Errorf("--verify-signatures %s needs at least one --keyring", mode)
	}
	return opts, nil
}

// open returns a handle on --repo (URL or directory) to read any ref of it,
// as plan does for --base and --head. Close it when done.
func (f *sourceFlags) open(ctx context.Context, repoArg string) (*source.Repo, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	return source.Open(ctx, repoArg, opts)
}

// resolve reads --repo at --ref. Close the returned Repo when done.
func (f *sourceFlags) resolve(ctx context.Context, repoArg string) (*source.Revision, *source.Repo, error) {
	opts, err := f.options()
	if err != nil {
		return nil, nil, err
	}
	return source.Resolve(ctx, repoArg, f.ref, opts)
}

// load reads --repo at --ref and loads the fleet model, with repo.Revision set to
// the commit. The repo's files stay readable (render reads them) until close is
// called; on error nothing is left open. A load failure is returned as is, so
// callers can errors.As it into fleet.Problems.
func (f *sourceFlags) load(ctx context.Context, repoArg string) (repo *fleet.Repo, closeFn func(), err error) {
	repo, _, closeFn, err = f.loadWithHistory(ctx, repoArg)
	return repo, closeFn, err
}

// loadWithHistory is load, plus a loader of other commits of the same repo
// (for rollbacks); the loader is nil when --repo is a directory read as a
// working tree (no commit, no history).
func (f *sourceFlags) loadWithHistory(ctx context.Context, repoArg string) (repo *fleet.Repo, revisions reconcile.RevisionLoader, closeFn func(), err error) {
	rev, src, err := f.resolve(ctx, repoArg)
	if err != nil {
		return nil, nil, nil, err
	}
	closeFn = func() { _ = src.Close() }
	repo, err = fleet.Load(ctx, rev.FS)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	repo.Revision = rev.Commit
	if rev.Commit != "" {
		revisions = reconcile.SourceRevisions(src)
	}
	return repo, revisions, closeFn, nil
}
