package daemon

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// Metrics are the daemon's Prometheus metrics, all prefixed fleetsync_. A nil
// *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	clusterUp         *prometheus.GaugeVec
	nodesReady        *prometheus.GaugeVec
	drifted           *prometheus.GaugeVec
	rolloutWave       *prometheus.GaugeVec
	rolloutState      *prometheus.GaugeVec
	applied           *prometheus.CounterVec
	revision          *prometheus.GaugeVec
	errors            *prometheus.CounterVec
	webhooks          *prometheus.CounterVec
	requests          *prometheus.CounterVec
	refused           *prometheus.CounterVec
}

// NewMetrics registers the metrics (and the Go and process collectors) in a
// registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fleetsync_reconcile_duration_seconds", Help: "Time of one reconcile cycle (render, apply, rollouts), by cluster.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
	}, []string{"cluster"})
	m.clusterUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_cluster_up", Help: "1 when the cluster's last heartbeat succeeded."}, []string{"cluster"})
	m.nodesReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_cluster_nodes_ready", Help: "Ready nodes at the last heartbeat."}, []string{"cluster"})
	m.drifted = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_drifted_objects", Help: "Objects that differ from the desired state at the last drift check."}, []string{"cluster", "app"})
	m.rolloutWave = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_rollout_wave", Help: "The wave (from 0) an app's rollout is in."}, []string{"app"})
	m.rolloutState = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_rollout_phase", Help: "1 for the phase an app's rollout is in."}, []string{"app", "phase"})
	m.applied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetsync_applied_objects_total", Help: "Objects handled by applies, by action (created, configured, unchanged, pruned, ...)."}, []string{"cluster", "action"})
	m.revision = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetsync_source_revision_info", Help: "1 for the fleet repo revision in force."}, []string{"url", "revision"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetsync_errors_total", Help: "Errors by stage (fetch, load, render, apply, remove, health)."}, []string{"stage"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetsync_webhook_requests_total", Help: "Webhook requests by provider and result."}, []string{"provider", "result"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetsync_shard_writes_refused_total", Help: "Writes to a cluster refused because this replica did not hold its Lease (sharded replicas)."}, []string{"cluster"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetsync_kube_requests_total", Help: "API requests sent to each cluster, by kind (read: GET and HEAD; write: the rest)."}, []string{"cluster", "kind"})
	m.reg.MustRegister(m.reconcileDuration, m.clusterUp, m.nodesReady, m.drifted, m.rolloutWave, m.rolloutState,
		m.applied, m.revision, m.errors, m.webhooks, m.requests, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ShardRefused counts a write refused by the shard guard (ShardOptions.Refused).
func (m *Metrics) ShardRefused(cluster string) {
	if m != nil {
		m.refused.WithLabelValues(cluster).Inc()
	}
}

// CountRequests wraps a cluster's transport so that its API requests are
// counted in fleetsync_kube_requests_total (for cluster.ConnectOptions.Wrap).
func (m *Metrics) CountRequests(cluster string) func(http.RoundTripper) http.RoundTripper {
	reads, writes := m.requests.WithLabelValues(cluster, "read"), m.requests.WithLabelValues(cluster, "write")
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet || req.Method == http.MethodHead {
				reads.Inc()
			} else {
				writes.Inc()
			}
			return rt.RoundTrip(req)
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) observeFetch(err error) {
	if m != nil && err != nil {
		m.errors.WithLabelValues("fetch").Inc()
	}
}

func (m *Metrics) stageError(stage string) {
	if m != nil {
		m.errors.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) setRevision(url, rev string) {
	if m == nil {
		return
	}
	m.revision.Reset()
	m.revision.WithLabelValues(url, rev).Set(1)
}

func (m *Metrics) observeHeartbeat(cluster string, up bool, ready int) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
		m.nodesReady.WithLabelValues(cluster).Set(float64(ready))
	}
	m.clusterUp.WithLabelValues(cluster).Set(v)
}

// observeChange counts an object handled by an apply, as it happens.
func (m *Metrics) observeChange(c apply.Change) {
	if m != nil {
		m.applied.WithLabelValues(c.Cluster, string(c.Action)).Inc()
	}
}

func (m *Metrics) observePair(p reconcile.PairOutcome) {
	if m == nil {
		return
	}
	if p.Err != nil {
		stage := "apply"
		if p.Removed {
			stage = "remove"
		}
		m.errors.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) observeCycle(took time.Duration, clusters []string) {
	if m == nil {
		return
	}
	for _, c := range clusters {
		m.reconcileDuration.WithLabelValues(c).Observe(took.Seconds())
	}
}

func (m *Metrics) observeDrift(cluster, app string, n int) {
	if m != nil {
		m.drifted.WithLabelValues(cluster, app).Set(float64(n))
	}
}

func (m *Metrics) observeRollouts(rs []reconcile.AppRollout) {
	if m == nil {
		return
	}
	m.rolloutState.Reset()
	for _, r := range rs {
		m.rolloutWave.WithLabelValues(r.App).Set(float64(r.Wave))
		m.rolloutState.WithLabelValues(r.App, string(r.Phase)).Set(1)
	}
}

func (m *Metrics) webhook(provider, result string) {
	if m != nil {
		m.webhooks.WithLabelValues(provider, result).Inc()
	}
}
