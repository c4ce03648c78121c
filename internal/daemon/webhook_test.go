package daemon_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// localDaemon is a daemon over a plain directory holding a fleet without
// clusters: nothing to reach, so the loop's own goroutines are all there is.
func localDaemon(t testing.TB) *daemon.Daemon {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte("apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: empty}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "clusters"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(context.Background(), dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	rec := reconcile.New(reconcile.NewPool(nil, reconcile.PoolOptions{}), render.New(render.Options{}), reconcile.Options{})
	return daemon.New(daemon.Options{Source: src, Reconciler: rec, Interval: 20 * time.Millisecond, Debounce: time.Millisecond, Metrics: daemon.NewMetrics()})
}

func post(h http.Handler, body []byte, header map[string]string) int {
	req := httptest.NewRequest(http.MethodPost, "/hooks/x", bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhooks(t *testing.T) {
	d := localDaemon(t)
	body := []byte(`{"ref":"refs/heads/main"}`)
	gh := d.GitHubWebhook([]byte("key"))
	gl := d.GitLabWebhook([]byte("token"))
	for _, tc := range []struct {
		name   string
		h      http.Handler
		body   []byte
		header map[string]string
		want   int
	}{
		{"github good", gh, body, map[string]string{"X-Hub-Signature-256": sign([]byte("key"), body), "X-GitHub-Event": "push"}, http.StatusAccepted},
		{"github ping", gh, body, map[string]string{"X-Hub-Signature-256": sign([]byte("key"), body), "X-GitHub-Event": "ping"}, http.StatusNoContent},
		{"github wrong key", gh, body, map[string]string{"X-Hub-Signature-256": sign([]byte("other"), body)}, http.StatusUnauthorized},
		{"github body changed", gh, append(body, ' '), map[string]string{"X-Hub-Signature-256": sign([]byte("key"), body)}, http.StatusUnauthorized},
		{"github no signature", gh, body, nil, http.StatusUnauthorized},
		{"github not hex", gh, body, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, http.StatusUnauthorized},
		{"github too large", gh, bytes.Repeat([]byte("x"), daemon.MaxWebhookBody+1), nil, http.StatusRequestEntityTooLarge},
		{"gitlab good", gl, body, map[string]string{"X-Gitlab-Token": "token"}, http.StatusAccepted},
		{"gitlab wrong", gl, body, map[string]string{"X-Gitlab-Token": "nope"}, http.StatusUnauthorized},
		{"gitlab none", gl, body, nil, http.StatusUnauthorized},
	} {
		if got := post(tc.h, tc.body, tc.header); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// No secret configured: every request is refused.
	if got := post(d.GitHubWebhook(nil), body, map[string]string{"X-Hub-Signature-256": sign(nil, body)}); got != http.StatusUnauthorized {
		t.Errorf("empty secret: %d, want 401", got)
	}
	req := httptest.NewRequest(http.MethodGet, "/hooks/github", nil)
	rec := httptest.NewRecorder()
	gh.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", rec.Code)
	}
}

// Run stops when its context ends and leaves no goroutine behind; a local
// fleet directory is loaded and put in force.
func TestRunStopsCleanly(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := localDaemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !d.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %+v", d.Status().Source)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 20 {
		d.Trigger() // a burst: merged
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if s := d.Status(); s.Mode != "central" || s.Source.Error != "" || !strings.HasPrefix(s.Source.URL, "/") {
		t.Errorf("status %+v", s)
	}
}

// FuzzWebhooks posts arbitrary bodies and headers: the handlers never
// panic, answer only with the documented codes, and accept (202) a GitHub
// request only with the body's HMAC under the secret and a GitLab one only
// with the token.
func FuzzWebhooks(f *testing.F) {
	d := localDaemon(f)
	secret, token := []byte("key"), []byte("token")
	gh, gl := d.GitHubWebhook(secret), d.GitLabWebhook(token)
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "sha256=00", true, "push", "token")
	f.Add([]byte{}, "", false, "ping", "")
	f.Add([]byte("\xff\xfe"), "sha256=zz", true, "", "tok")
	f.Fuzz(func(t *testing.T, body []byte, sig string, signRight bool, event, tok string) {
		if signRight {
			sig = sign(secret, body)
		}
		code := post(gh, body, map[string]string{"X-Hub-Signature-256": sig, "X-GitHub-Event": event})
		valid := sig == sign(secret, body)
		switch {
		case code == http.StatusRequestEntityTooLarge && len(body) > daemon.MaxWebhookBody:
		case valid && (code == http.StatusAccepted || code == http.StatusNoContent && event == "ping"):
		case !valid && code == http.StatusUnauthorized:
		default:
			t.Fatalf("github: %d for a %d-byte body (signature valid: %v, event %q)", code, len(body), valid, event)
		}
		code = post(gl, body, map[string]string{"X-Gitlab-Token": tok})
		if want := map[bool]int{true: http.StatusAccepted, false: http.StatusUnauthorized}[tok == string(token)]; code != want {
			t.Fatalf("gitlab: %d for token %q, want %d", code, tok, want)
		}
	})
}
