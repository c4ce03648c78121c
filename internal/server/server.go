package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

// Options are what the server serves. Every field may be nil.
type Options struct {
	// Status returns the daemon's current view; it is called once per API
	// request and must be safe for concurrent use. Nil serves an empty Status.
	Status func() daemon.Status
	// Ready reports whether the daemon can serve (GET /readyz); nil is ready.
	Ready func() bool
	// Metrics serves GET /metrics (Prometheus); nil answers 404.
	Metrics http.Handler
	// Hooks are the webhook receivers by name ("github", "gitlab"), mounted at
	// POST /hooks/<name>; a name not in the map answers 404. They check the
	// request's signature or token themselves.
	Hooks map[string]http.Handler
}

// contentSecurityPolicy allows the page to load only its own files and to
// fetch only from its own origin: no inline script or style, no frames.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// New returns the handler of every endpoint (see docs/daemon.md).
func New(opts Options) http.Handler {
	s := &server{opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/clusters/{name}", s.cluster)
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint", r.Method, r.URL.Path))
	})
	mux.HandleFunc("POST /hooks/{name}", s.hook)
	registerDashboard(mux)
	return headers(mux)
}

type server struct {
	opts Options
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil && !s.opts.Ready() {
		writeText(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	writeText(w, http.StatusOK, "ok")
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		http.NotFound(w, r)
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

func (s *server) hook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h, ok := s.opts.Hooks[name]
	if !ok || h == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("webhook %q is not configured", name))
		return
	}
	h.ServeHTTP(w, r)
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	st := s.current()
	writeJSON(w, http.StatusOK, &st)
}

func (s *server) cluster(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st := s.current()
	c := st.Cluster(name)
	if c == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("cluster %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// current is the daemon's Status with every list non-nil, so that the JSON
// has [] where there is nothing, never null. The caller's slices are copied
// before any is replaced: the daemon may share them with other readers.
func (s *server) current() daemon.Status {
	var st daemon.Status
	if s.opts.Status != nil {
		st = s.opts.Status()
	}
	clusters := make([]daemon.ClusterStatus, len(st.Clusters))
	copy(clusters, st.Clusters)
	for i := range clusters {
		if clusters[i].Apps == nil {
			clusters[i].Apps = []daemon.AppStatus{}
		}
	}
	st.Clusters = clusters
	rollouts := make([]reconcile.AppRollout, len(st.Rollouts))
	copy(rollouts, st.Rollouts)
	for i := range rollouts {
		if rollouts[i].Clusters == nil {
			rollouts[i].Clusters = []rollout.ClusterStatus{}
		}
	}
	st.Rollouts = rollouts
	if st.InFlight == nil {
		st.InFlight = []string{}
	}
	return st
}

// headers sets what every response carries; the API is never cached.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// errorBody is the JSON of every API error.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: "encode status: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
