package imagesync_test

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
)

// faultyProxy fronts a registry; fault decides, per request, to answer an
// error status (>0), drop the connection (-1) or pass it on (0).
func faultyProxy(t *testing.T, registry string, fault func(r *http.Request, n int64) int) string {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch code := fault(r, n.Add(1)); {
		case code > 0:
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected"}]}`, code)
		case code < 0:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Server errors and dropped connections during a copy are retried.
func TestCopySurvives500AndDroppedConnections(t *testing.T) {
	f := testfleet.Get(t)
	ref, want := push(t, f.Registries.Source, "flaky", true)
	var injected atomic.Int64
	proxy := faultyProxy(t, f.Registries.Mirrors["north"], func(r *http.Request, _ int64) int {
		// The first uploads of blobs and manifests fail: 500, dropped, 503, dropped.
		if r.Method == http.MethodHead || r.Method == http.MethodGet || injected.Load() >= 4 {
			return 0
		}
		switch injected.Add(1) {
		case 1:
			return http.StatusInternalServerError
		case 3:
			return http.StatusServiceUnavailable
		}
		return -1
	})
	s := syncer(f.Registries.Source, proxy)
	res, err := s.Copy(ctx(t), ref, want, proxy+"/fleet")
	if err != nil || res.Present {
		t.Fatalf("copy through a flaky registry: %+v %v", res, err)
	}
	if injected.Load() == 0 {
		t.Fatal("no fault was injected")
	}
	if res, err := syncer(f.Registries.Source, f.Registries.Mirrors["north"]).Copy(ctx(t), ref, want, f.Registries.Mirrors["north"]+"/fleet"); err != nil || !res.Present {
		t.Fatalf("the mirror does not have the copy: %+v %v", res, err)
	}
}

// A copy interrupted after its blobs were sent (every manifest push fails)
// resumes: the next copy sends no blob again.
func TestInterruptedCopyResumes(t *testing.T) {
	f := testfleet.Get(t)
	ref, want := push(t, f.Registries.Source, "resume", false)
	proxy := faultyProxy(t, f.Registries.Mirrors["south"], func(r *http.Request, _ int64) int {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			return -1
		}
		return 0
	})
	first := syncer(f.Registries.Source, proxy)
	if _, err := first.Copy(ctx(t), ref, want, proxy+"/fleet"); err == nil {
		t.Fatal("the copy succeeded although every manifest push was dropped")
	}
	sentBefore := first.Stats().BytesSent
	again := syncer(f.Registries.Source, f.Registries.Mirrors["south"])
	res, err := again.Copy(ctx(t), ref, want, f.Registries.Mirrors["south"]+"/fleet")
	if err != nil || res.Present {
		t.Fatalf("resumed copy: %+v %v", res, err)
	}
	if sent := again.Stats().BytesSent; sent >= 2048 || sentBefore < 3*2048 {
		t.Fatalf("the resumed copy sent %d bytes (the interrupted one %d): blobs were sent again", sent, sentBefore)
	}
}

// An authenticated mirror (htpasswd): refused without credentials, with an
// error that never shows a password; accepted with a Docker config file.
func TestAuthenticatedMirror(t *testing.T) {
	f := testfleet.Get(t)
	const user, pass = "fleet", "s3cret-Pa55word"
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %q}}\nhttp: {addr: %q}\nauth: {htpasswd: {realm: fleetsync-test, path: %q}}\n",
		filepath.Join(dir, "data"), addr, filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(f.Binary(t, fleet.BinRegistry), "serve", filepath.Join(dir, "config.yml"))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/") //nolint:noctx // a readiness probe in a test
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("the authenticated registry did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ref, want := push(t, f.Registries.Source, "private", false)

	anon := imagesync.New(imagesync.Options{Insecure: map[string]bool{f.Registries.Source: true, addr: true}})
	if _, err := anon.Copy(ctx(t), ref, want, addr+"/fleet"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("copy without credentials: %v", err)
	}
	write := func(password string) string {
		p := filepath.Join(t.TempDir(), "config.json")
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		if err := os.WriteFile(p, []byte(`{"auths":{"`+addr+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad, err := imagesync.KeychainFromFile(write("wrong-" + pass))
	if err != nil {
		t.Fatal(err)
	}
	_, err = imagesync.New(imagesync.Options{Keychain: bad, Insecure: map[string]bool{f.Registries.Source: true, addr: true}}).Copy(ctx(t), ref, want, addr+"/fleet")
	if err == nil || strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(user+":wrong-"+pass))) {
		t.Fatalf("copy with a wrong password: %v", err)
	}
	good, err := imagesync.KeychainFromFile(write(pass))
	if err != nil {
		t.Fatal(err)
	}
	res, err := imagesync.New(imagesync.Options{Keychain: good, Insecure: map[string]bool{f.Registries.Source: true, addr: true}}).Copy(ctx(t), ref, want, addr+"/fleet")
	if err != nil || res.Present {
		t.Fatalf("copy with credentials: %+v %v", res, err)
	}
}
