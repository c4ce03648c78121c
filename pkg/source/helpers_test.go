package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/fleetsync/fleetsync/internal/gittest"
)

// workRepo is a non-bare git repository built with the system git CLI; the
// test servers serve it directly.
type workRepo struct {
	t   testing.TB
	dir string
}

// gitEnv is the isolated environment of the git processes the tests run.
func gitEnv(home string) []string { return gittest.Env(home) }

// newWorkRepo creates root/name as a repository on branch main.
func newWorkRepo(t testing.TB, root, name string) *workRepo {
	t.Helper()
	r := &workRepo{t: t, dir: filepath.Join(root, name)}
	gittest.Init(t, r.dir)
	return r
}

func (r *workRepo) git(args ...string) string {
	r.t.Helper()
	return gittest.Run(r.t, r.dir, args...)
}

// commit writes files (a value "@link:target" makes a symlink, "" deletes)
// and commits them, returning the commit SHA.
func (r *workRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		_ = os.Remove(p)
		switch {
		case content == "":
			continue
		case strings.HasPrefix(content, "@link:"):
			if err := os.Symlink(strings.TrimPrefix(content, "@link:"), p); err != nil {
				r.t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	return gittest.CommitAll(r.t, r.dir, msg)
}

func (r *workRepo) head() string { return r.git("rev-parse", "HEAD") }

// gitHTTPServer serves the repositories under root with git http-backend.
type gitHTTPServer struct {
	*httptest.Server
	requests  atomic.Int64
	packBytes atomic.Int64 // bytes of git-upload-pack POST responses
	failFirst atomic.Int64 // answer this many requests with 503
}

// newGitHTTPServer starts a smart-HTTP server on 127.0.0.1; user and pass,
// when set, are required as basic auth. tls starts it with HTTPS.
func newGitHTTPServer(t testing.TB, root, user, pass string, useTLS bool) *gitHTTPServer {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path:   filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard, // "Not a git repository" for the tests that ask for one
	}
	s := &gitHTTPServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.requests.Add(1)
		if s.failFirst.Load() > 0 {
			s.failFirst.Add(-1)
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if user != "" || pass != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/git-upload-pack") {
			cw := &countingWriter{ResponseWriter: w}
			backend.ServeHTTP(cw, req)
			s.packBytes.Add(cw.n)
			return
		}
		backend.ServeHTTP(w, req)
	})
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Listener = ln
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// sshServer is an SSH git server on 127.0.0.1 running git-upload-pack.
type sshServer struct {
	addr       string
	knownHosts string // path of a known_hosts file trusting the host key
	clientKey  string // path of a private key the server accepts
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSSHKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func newSSHServer(t testing.TB, root string) *sshServer {
	return startSSHServer(t, root, nil)
}

// startSSHServer runs handler for every session, or git-upload-pack when nil.
func startSSHServer(t testing.TB, root string, handler gssh.Handler) *sshServer {
	t.Helper()
	hostKey, _ := newSSHKey(t)
	client, clientPEM := newSSHKey(t)
	var wg sync.WaitGroup
	if handler == nil {
		handler = func(s gssh.Session) {
			args := s.Command()
			if len(args) != 2 || args[0] != "git-upload-pack" {
				_, _ = io.WriteString(s.Stderr(), "only git-upload-pack is served\n")
				_ = s.Exit(1)
				return
			}
			dir := filepath.Join(root, filepath.Clean("/"+args[1]))
			cmd := exec.CommandContext(s.Context(), "git-upload-pack", dir)
			cmd.Env = gitEnv(root)
			cmd.Stdout, cmd.Stderr = s, s.Stderr()
			in, err := cmd.StdinPipe()
			if err == nil {
				err = cmd.Start()
			}
			if err != nil {
				_ = s.Exit(1)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(in, s)
				_ = in.Close()
			}()
			code := 0
			if err := cmd.Wait(); err != nil {
				code = 1
			}
			_ = s.Exit(code)
		}
	}
	srv := &gssh.Server{
		Handler: handler,
		PublicKeyHandler: func(_ gssh.Context, key gssh.PublicKey) bool {
			return gssh.KeysEqual(key, client.PublicKey())
		},
	}
	srv.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	dir := t.TempDir()
	addr := ln.Addr().String()
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostKey.PublicKey())
	return &sshServer{
		addr:       addr,
		knownHosts: writeFile(t, dir, "known_hosts", []byte(line+"\n")),
		clientKey:  writeFile(t, dir, "id_ed25519", clientPEM),
	}
}

// testOptions are fast-failing options with a private cache.
func testOptions(t testing.TB) Options {
	return Options{CacheDir: t.TempDir(), Retries: -1, RetryBackoff: 1}
}

func mustOpen(t testing.TB, repoArg string, opts Options) *Repo {
	t.Helper()
	r, err := Open(context.Background(), repoArg, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", repoArg, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func mustRev(t testing.TB, r *Repo, ref string) *Revision {
	t.Helper()
	rev, err := r.Open(context.Background(), ref)
	if err != nil {
		t.Fatalf("Open(%q): %v", ref, err)
	}
	return rev
}

func readString(t testing.TB, rev *Revision, name string) string {
	t.Helper()
	b, err := fs.ReadFile(rev.FS, name)
	if err != nil {
		t.Fatalf("read %s at %s: %v", name, rev.Commit, err)
	}
	return string(b)
}
