package source

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// VerifyMode selects which OpenPGP signature a revision must carry.
type VerifyMode string

// Verification modes.
const (
	VerifyOff  VerifyMode = "off"  // no verification (default)
	VerifyHead VerifyMode = "head" // the resolved commit must be signed by a trusted key
	VerifyTag  VerifyMode = "tag"  // the ref must be an annotated tag signed by a trusted key
)

// ParseVerifyMode parses "off", "head" or "tag" ("" means off).
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch m := VerifyMode(s); m {
	case "", VerifyOff:
		return VerifyOff, nil
	case VerifyHead, VerifyTag:
		return m, nil
	}
	return "", fmt.Errorf("invalid signature verification mode %q: want off, head or tag", s)
}

// Defaults applied to zero Options fields.
const (
	DefaultTimeout      = 2 * time.Minute
	DefaultRetries      = 3
	DefaultRetryBackoff = time.Second
	maxRetryBackoff     = 30 * time.Second
)

// Options configure access to a repository. The zero value reads a public
// repository's default branch with the defaults below.
type Options struct {
	// Ref is the ref Fetch resolves: branch, tag, commit SHA (full or short),
	// HEAD. Empty means the remote's default branch.
	Ref string
	// CacheDir holds the bare mirrors; default os.UserCacheDir()/fleetsync/git.
	CacheDir string

	// Username and Password authenticate over HTTP(S) (basic auth; a token
	// goes in Password, Username then defaults to "git"). They take
	// precedence over userinfo in the URL. Password is never printed.
	Username string
	Password string

	// SSHKeyFile is the private key for ssh:// and scp-style URLs.
	// SSHKeyPassphrase decrypts it if needed.
	SSHKeyFile       string
	SSHKeyPassphrase string
	// KnownHostsFile lists the trusted SSH host keys. Host keys are always
	// checked strictly; when empty, $SSH_KNOWN_HOSTS or ~/.ssh/known_hosts is used.
	KnownHostsFile string

	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
	// InsecureSkipTLSVerify disables HTTPS certificate verification.
	InsecureSkipTLSVerify bool

	// Verify selects signature verification; KeyringFiles are armored
	// OpenPGP public key files holding the trusted keys.
	Verify       VerifyMode
	KeyringFiles []string

	// Timeout bounds one network attempt (default DefaultTimeout).
	Timeout time.Duration
	// Retries is the number of extra attempts after a transient error
	// (0 means DefaultRetries, negative means none). Auth, not-found and
	// host-key errors are never retried.
	Retries int
	// RetryBackoff is the first wait between attempts, doubled each time up
	// to 30s (default DefaultRetryBackoff).
	RetryBackoff time.Duration
}

// String prints the options with the password and passphrase masked.
func (o Options) String() string {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return fmt.Sprintf("{Ref:%q CacheDir:%q Username:%q Password:%s SSHKeyFile:%q KnownHostsFile:%q CAFile:%q InsecureSkipTLSVerify:%t Verify:%q KeyringFiles:%q Timeout:%s Retries:%d}",
		o.Ref, o.CacheDir, o.Username, mask(o.Password), o.SSHKeyFile, o.KnownHostsFile, o.CAFile,
		o.InsecureSkipTLSVerify, o.Verify, o.KeyringFiles, o.Timeout, o.Retries)
}

// GoString masks the secrets for %#v as String does for %v.
func (o Options) GoString() string { return "source.Options" + o.String() }

// withDefaults fills zero fields.
func (o Options) withDefaults() (Options, error) {
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("git cache dir: %w", err)
		}
		o.CacheDir = filepath.Join(base, "fleetsync", "git")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	mode, err := ParseVerifyMode(string(o.Verify))
	if err != nil {
		return o, err
	}
	o.Verify = mode
	if o.Verify != VerifyOff && len(o.KeyringFiles) == 0 {
		return o, fmt.Errorf("signature verification %q needs at least one keyring file", o.Verify)
	}
	return o, nil
}

// secrets returns the values to scrub from messages.
func (o Options) secrets() []string { return []string{o.Password, o.SSHKeyPassphrase} }

// secrets returns the values to scrub from messages: the options' and the
// password (or token) given in the URL.
func (r *Repo) secrets() []string { return append(r.opts.secrets(), r.remote.password) }

// remote is a parsed repository URL.
type remote struct {
	clean    string // credential-free URL, given to go-git and shown in messages
	scheme   string // http, https, ssh, file
	host     string
	user     string // from the URL
	password string // from the URL (http only)
}

var scpLike = regexp.MustCompile(`^(?:([^@/]+)@)?([^:/]+):(.*)$`)

// parseRemote parses an http(s), ssh, file URL or scp-style address.
func parseRemote(raw string) (remote, error) {
	if m := scpLike.FindStringSubmatch(raw); m != nil && !strings.Contains(raw, "://") {
		// SSH authenticates with keys: a password (user:pass@host:path) is dropped.
		user, _, _ := strings.Cut(m[1], ":")
		return remote{clean: RedactURL(raw), scheme: "ssh", host: m[2], user: user}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return remote{}, fmt.Errorf("invalid repository URL %q", RedactURL(raw))
	}
	r := remote{scheme: u.Scheme, host: u.Host}
	switch u.Scheme {
	case "http", "https":
		if u.User != nil {
			r.user = u.User.Username()
			r.password, _ = u.User.Password()
			if r.password == "" && r.user != "" {
				// https://TOKEN@host: the token is the secret.
				r.password, r.user = r.user, ""
			}
			u.User = nil
		}
	case "ssh":
		if u.User != nil {
			r.user = u.User.Username()
			u.User = url.User(r.user)
		}
	case "file":
		u.User = nil
	default:
		return remote{}, fmt.Errorf("unsupported repository URL %q: want https, http, ssh or file", RedactURL(raw))
	}
	r.clean = u.String()
	return r, nil
}

// RedactURL removes credentials from a repository URL for display: the
// userinfo of http(s) URLs is dropped entirely (it may hold a token), a
// password in any other URL or in an scp-style address (user:pass@host:path)
// is dropped. Other text is returned unchanged.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		if m := scpLike.FindStringSubmatch(raw); m != nil {
			if user, _, hasPassword := strings.Cut(m[1], ":"); hasPassword {
				return user + "@" + m[2] + ":" + m[3]
			}
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Not a proper URL: cut everything between "://" and the last "@" of the authority.
		i := strings.Index(raw, "://") + 3
		rest := raw[i:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return raw[:i] + rest[at+1:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		u.User = nil
	} else {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// auth builds the go-git auth method for the remote.
func (o Options) auth(r remote) (transport.AuthMethod, error) {
	switch r.scheme {
	case "http", "https":
		user, pass := r.user, r.password
		if o.Username != "" {
			user = o.Username
		}
		if o.Password != "" {
			pass = o.Password
		}
		if user == "" && pass == "" {
			return nil, nil
		}
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	case "ssh":
		return o.sshAuth(r)
	}
	return nil, nil
}

func (o Options) sshAuth(r remote) (transport.AuthMethod, error) {
	if o.SSHKeyFile == "" {
		return nil, fmt.Errorf("ssh repository %s needs an SSH key file", r.clean)
	}
	user := r.user
	if user == "" {
		user = "git"
	}
	pem, err := os.ReadFile(o.SSHKeyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	keys, err := gitssh.NewPublicKeys(user, pem, o.SSHKeyPassphrase)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", o.SSHKeyFile, err)
	}
	var files []string
	if o.KnownHostsFile != "" {
		files = append(files, o.KnownHostsFile)
	}
	db, err := gitssh.NewKnownHostsDb(files...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	host := r.host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "22")
	}
	keys.HostKeyCallback = db.HostKeyCallback()
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(host)
	return &sshTimeoutAuth{PublicKeys: keys, timeout: o.Timeout}, nil
}

// sshTimeoutAuth bounds the SSH dial and handshake, which go-git does not
// tie to the context.
type sshTimeoutAuth struct {
	*gitssh.PublicKeys
	timeout time.Duration
}

func (a *sshTimeoutAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = a.timeout
	return cfg, nil
}
