package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fleetsync/fleetsync/internal/daemon"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// do serves one request through h and returns the response and its body.
func do(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res, string(b)
}

func TestEndpoints(t *testing.T) {
	now := time.Now()
	ready := false
	var hooked string
	h := New(Options{
		Status: func() daemon.Status { return threeClusters(now) },
		Ready:  func() bool { return ready },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = io.WriteString(w, "fleetsync_up 1\n")
		}),
		Hooks: map[string]http.Handler{
			"github": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hooked = r.URL.Path
				w.WriteHeader(http.StatusAccepted)
			}),
		},
	})

	tests := []struct {
		method, target string
		code           int
		ctype          string // prefix
		body           string // substring
		noStore        bool
	}{
		{"GET", "/healthz", 200, "text/plain", "ok", true},
		{"HEAD", "/healthz", 200, "text/plain", "", true},
		{"GET", "/readyz", 503, "text/plain", "not ready", true},
		{"GET", "/metrics", 200, "text/plain; version=0.0.4", "fleetsync_up 1", false},
		{"GET", "/api/v1/status", 200, "application/json", `"clusters":[`, true},
		{"GET", "/api/v1/clusters/north", 200, "application/json", `"name":"north"`, true},
		{"GET", "/api/v1/clusters/nowhere", 404, "application/json", `{"error":"cluster \"nowhere\" not found"}`, true},
		{"GET", "/api/v2/status", 404, "application/json", `"error":"GET /api/v2/status: no such endpoint"`, true},
		{"POST", "/api/v1/status", 405, "", "", true},
		{"POST", "/hooks/github", 202, "", "", false},
		{"POST", "/hooks/gitlab", 404, "application/json", `{"error":"webhook \"gitlab\" is not configured"}`, false},
		{"GET", "/hooks/github", 405, "", "", false},
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="assets/app.js" defer></script>`, false},
		{"GET", "/assets/app.js", 200, "text/javascript", "api/v1/status", false},
		{"GET", "/assets/style.css", 200, "text/css", ".matrix", false},
		{"GET", "/assets/favicon.svg", 200, "image/svg+xml", "<svg", false},
		{"GET", "/assets/", 404, "", "", false},
		{"GET", "/index.html", 404, "", "", false},
		{"POST", "/", 405, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			res, body := do(t, h, tc.method, tc.target)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (body %q)", res.StatusCode, tc.code, body)
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body %q does not contain %q", body, tc.body)
			}
			if got := res.Header.Get("Cache-Control") == "no-store"; got != tc.noStore {
				t.Errorf("Cache-Control %q, want no-store: %v", res.Header.Get("Cache-Control"), tc.noStore)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if got := res.Header.Get("Content-Security-Policy"); got != contentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", got)
			}
		})
	}
	if hooked != "/hooks/github" {
		t.Errorf("the github hook got %q", hooked)
	}
	ready = true
	if res, body := do(t, h, "GET", "/readyz"); res.StatusCode != 200 || body != "ok" {
		t.Errorf("readyz when ready: %d %q", res.StatusCode, body)
	}
	if res, body := do(t, h, "GET", "/healthz"); body != "ok" {
		t.Errorf("healthz: %d %q", res.StatusCode, body)
	}
}

// TestCSPAllowsOnlySelf checks the policy and that the page needs nothing
// it forbids: no inline script or style, nothing from another origin.
func TestCSPAllowsOnlySelf(t *testing.T) {
	for _, d := range strings.Split(contentSecurityPolicy, "; ") {
		name, sources, _ := strings.Cut(d, " ")
		if sources != "'self'" && sources != "'none'" {
			t.Errorf("directive %s allows %s", name, sources)
		}
	}
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(contentSecurityPolicy, want) {
			t.Errorf("policy lacks %s", want)
		}
	}
	page := string(indexHTML)
	for _, m := range regexp.MustCompile(`<script[^>]*>([^<]*)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[0], ` src="`) || strings.TrimSpace(m[1]) != "" {
			t.Errorf("index.html has an inline script: %q", m[0])
		}
	}
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("index.html has %d scripts, want 1 (assets/app.js)", n)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html has %q, which the policy blocks or which leaves the origin", m)
		}
	}
	for name, body := range map[string][]byte{"app.js": appJS, "style.css": styleCSS} {
		if m := regexp.MustCompile(`https?://|@import|url\(`).Find(body); m != nil {
			t.Errorf("%s loads %q", name, m)
		}
	}
	if strings.Contains(string(appJS), "innerHTML") {
		t.Error("app.js uses innerHTML: status values must go in as text")
	}
}

func TestStatusJSON(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	want := threeClusters(now)
	h := New(Options{Status: func() daemon.Status { return want }})

	_, body := do(t, h, "GET", "/api/v1/status")
	var got daemon.Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	// The JSON field names are the contract of docs/daemon.md.
	var shape map[string]any
	if err := json.Unmarshal([]byte(body), &shape); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "source", "clusters", "rollouts", "lastReconcile", "reconcileSeconds"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("status has no %q: %s", k, body)
		}
	}
	c := shape["clusters"].([]any)[1].(map[string]any)
	for _, k := range []string{"name", "up", "version", "nodesReady", "nodes", "lastSeen", "apps"} {
		if _, ok := c[k]; !ok {
			t.Errorf("cluster has no %q: %v", k, c)
		}
	}
	a := c["apps"].([]any)[3].(map[string]any)
	for _, k := range []string{"name", "revision", "sync", "health", "drifted", "error", "lastApplied"} {
		if _, ok := a[k]; !ok {
			t.Errorf("app has no %q: %v", k, a)
		}
	}
	r := shape["rollouts"].([]any)[3].(map[string]any)
	for _, k := range []string{"app", "target", "phase", "wave", "waves", "reason", "clusters"} {
		if _, ok := r[k]; !ok {
			t.Errorf("rollout has no %q: %v", k, r)
		}
	}

	_, body = do(t, h, "GET", "/api/v1/clusters/north")
	var north daemon.ClusterStatus
	if err := json.Unmarshal([]byte(body), &north); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*want.Cluster("north"), north); diff != "" {
		t.Errorf("cluster north (-want +got):\n%s", diff)
	}
}

// TestEmptyListsAreArrays: a daemon that knows nothing yet serves [] where
// there is nothing, never null, and the caller's Status is not changed.
func TestEmptyListsAreArrays(t *testing.T) {
	st := daemon.Status{Clusters: []daemon.ClusterStatus{{Name: "north"}}}
	for name, h := range map[string]http.Handler{
		"nil Status": New(Options{}),
		"empty":      New(Options{Status: func() daemon.Status { return st }}),
	} {
		_, body := do(t, h, "GET", "/api/v1/status")
		if strings.Contains(body, "null") {
			t.Errorf("%s: %s", name, body)
		}
		if !strings.Contains(body, `"rollouts":[]`) {
			t.Errorf("%s: no empty rollouts: %s", name, body)
		}
	}
	if st.Clusters[0].Apps != nil {
		t.Error("the handler changed the daemon's Status")
	}
	if res, _ := do(t, New(Options{}), "GET", "/metrics"); res.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics without a handler: %d", res.StatusCode)
	}
	if res, _ := do(t, New(Options{}), "GET", "/readyz"); res.StatusCode != http.StatusOK {
		t.Errorf("/readyz without Ready: %d", res.StatusCode)
	}
}
