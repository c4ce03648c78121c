package source

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gssh "github.com/gliderlabs/ssh"
)

// freeAddr returns a 127.0.0.1 address where nothing listens.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestServerDownIsRetriedThenReported(t *testing.T) {
	opts := testOptions(t)
	opts.Retries, opts.RetryBackoff = 2, time.Millisecond

	_, err := Open(context.Background(), "http://"+freeAddr(t)+"/fleet", opts)
	if !errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("connection refused: error = %v, want ErrTransient after 3 attempts", err)
	}
	t.Logf("error: %v", err)

	// A server that accepts and hangs up: count the attempts it sees.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, err = Open(context.Background(), "http://"+ln.Addr().String()+"/fleet", opts)
	if !errors.Is(err, ErrTransient) {
		t.Errorf("hang-up: error = %v, want ErrTransient", err)
	}
	// net/http may retry an idempotent GET once on a fresh connection by itself.
	if n := accepted.Load(); n < 3 {
		t.Errorf("server saw %d connections, want at least 3 (1 + 2 retries)", n)
	}
}

func TestTransientServerErrorsAreRetried(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"a.txt": "1"})
	srv := newGitHTTPServer(t, root, "", "", false)
	srv.failFirst.Store(2)
	opts := testOptions(t)
	opts.Retries, opts.RetryBackoff = 3, time.Millisecond

	rev, repo, err := Resolve(context.Background(), srv.URL+"/fleet", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if st := repo.LastFetch(); st.Attempts != 3 || rev.Commit != head {
		t.Errorf("attempts = %d (want 3), head %s (want %s)", st.Attempts, rev.Commit, head)
	}

	// Server gone: Fetch reports a transient error, the mirror keeps the
	// last good revision.
	srv.Close()
	if _, err := repo.Fetch(context.Background()); !errors.Is(err, ErrTransient) {
		t.Errorf("Fetch from a stopped server: error = %v, want ErrTransient", err)
	}
	if rev := mustRev(t, repo, ""); rev.Commit != head || readString(t, rev, "a.txt") != "1" {
		t.Errorf("after failed fetch head = %s, want %s", rev.Commit, head)
	}
}

// hangingServer accepts git requests and never answers until the client
// goes away; started receives one value per request.
func hangingServer(t *testing.T) (url string, started chan struct{}) {
	started = make(chan struct{}, 16)
	done := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL + "/fleet", started
}

func TestContextCancelStopsFetch(t *testing.T) {
	url, started := hangingServer(t)
	opts := testOptions(t)
	opts.Retries = 5
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Open(ctx, url, opts)
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if len(started) != 0 {
		t.Errorf("%d more requests after cancel, want none", len(started))
	}
}

func TestTimeoutIsTransientAndRetried(t *testing.T) {
	url, started := hangingServer(t)
	opts := testOptions(t)
	opts.Timeout, opts.Retries, opts.RetryBackoff = 200*time.Millisecond, 1, time.Millisecond
	_, err := Open(context.Background(), url, opts)
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("error = %v, want a transient deadline error after 2 attempts", err)
	}
	if len(started) == 0 {
		t.Error("the server saw no request")
	}
}

func TestContextCancelStopsSSHFetch(t *testing.T) {
	started := make(chan struct{}, 16)
	srv := startSSHServer(t, t.TempDir(), func(s gssh.Session) {
		started <- struct{}{}
		<-s.Context().Done() // never answers
	})
	opts := testOptions(t)
	opts.SSHKeyFile, opts.KnownHostsFile, opts.Retries = srv.clientKey, srv.knownHosts, 5
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Open(ctx, "ssh://git@"+srv.addr+"/fleet", opts)
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestMissingAndEmptyRepositories(t *testing.T) {
	root := t.TempDir()
	newWorkRepo(t, root, "empty")
	srv := newGitHTTPServer(t, root, "", "", false)
	for _, name := range []string{"missing", "empty"} {
		_, err := Open(context.Background(), srv.URL+"/"+name, testOptions(t))
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), srv.URL+"/"+name) {
			t.Errorf("%s repository: error = %v, want ErrNotFound naming the URL", name, err)
		}
		t.Logf("error: %v", err)
	}
}
