// Package server is the daemon's HTTP surface on one listen address: the
// probes (/healthz, /readyz), /metrics, the status API (GET /api/v1/status,
// GET /api/v1/clusters/{name}), the webhook endpoints (POST /hooks/{name}) and
// the dashboard page at /, whose HTML, CSS and JS are embedded in the binary
// and read only /api/v1/status from the same origin.
//
// It serves what it is given: it does not reconcile, fetch, collect metrics or
// check webhook signatures (the handlers in Options do), and it does not start
// a listener (the caller owns the http.Server and its timeouts). See
// docs/daemon.md for the endpoints and the JSON.
package server
