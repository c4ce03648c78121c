package daemon_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/gittest"
)

// requests counts the API requests of every cluster connection, by cluster
// and by whether they write.
type requests struct {
	mu            sync.Mutex
	reads, writes map[string]int
}

func newRequests() *requests {
	return &requests{reads: map[string]int{}, writes: map[string]int{}}
}

func (r *requests) wrap(cluster string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			r.mu.Lock()
			switch req.Method {
			case http.MethodGet, http.MethodHead:
				r.reads[cluster]++
			default:
				r.writes[cluster]++
			}
			r.mu.Unlock()
			if tracing {
				t0 := time.Now()
				resp, err := rt.RoundTrip(req)
				trace("req %s %s %s %s %v", cluster, req.Method, req.URL.Path, req.URL.RawQuery, time.Since(t0).Round(time.Millisecond))
				return resp, err
			}
			return rt.RoundTrip(req)
		})
	}
}

// snapshot returns the reads and writes counted so far.
func (r *requests) snapshot() (reads, writes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.reads {
		reads += n
	}
	for _, n := range r.writes {
		writes += n
	}
	return reads, writes
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMB is the process's peak resident set (VmHWM), in MB.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkDaemon measures the daemon as a platform team meets it, on the
// 3 local clusters with 20 apps, the fleet repo on a real git server:
// webhook -> the new commit applied on every cluster (and then healthy), a
// no-op cycle's requests and writes, CPU of an idle minute, peak RSS. It
// runs once whatever b.N (`make bench`: -benchtime 1x); no figure is asserted.
func BenchmarkDaemon(b *testing.B) {
	const apps = 20
	count := newRequests()
	w := newWorldWith(b, worldOptions{apps: apps, count: count})
	pairs := apps * len(clusters)
	start := time.Now()
	w.eventually(5*time.Minute, "first convergence", func() bool { return w.synced(pairs, "") })
	b.ReportMetric(time.Since(start).Seconds(), "s-first-convergence")

	w.write("v2", false)
	v2 := gittest.CommitAll(b, w.work, "v2")
	w.mu.Lock()
	w.applied, w.writes, w.gates = nil, nil, nil
	w.mu.Unlock()
	start = time.Now()
	if code := w.webhook(w.secret); code != http.StatusAccepted {
		b.Fatalf("webhook: %d", code)
	}
	w.eventually(5*time.Minute, "v2 written everywhere", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.writes) >= pairs
	})
	applied := time.Since(start)
	w.eventually(5*time.Minute, "v2 healthy everywhere", func() bool { return w.synced(pairs, v2) })
	healthy := time.Since(start)
	// The parts: fleetsync's (webhook -> every app written on north, the
	// canary wave; an app's gate opened -> written on the next wave) and the
	// apps' own (written on north -> healthy there, the gate).
	w.mu.Lock()
	canary, gateWait, nextWave := splitRollout(start, w.writes, w.gates)
	w.mu.Unlock()
	b.ReportMetric(canary.Seconds(), "s-webhook-to-canary-applied")
	b.ReportMetric(gateWait.Seconds(), "s-canary-health-gate")
	b.ReportMetric(nextWave.Seconds(), "s-gate-to-next-wave-applied")
	b.ReportMetric((canary + nextWave).Seconds(), "s-fleetsync-part")
	b.ReportMetric(applied.Seconds(), "s-webhook-to-applied")
	b.ReportMetric((healthy - applied).Seconds(), "s-then-healthy")

	// A no-op cycle: nothing new in git, nothing changed on the clusters.
	before := w.d.Status().LastReconcile
	r0, w0 := count.snapshot()
	w.d.Trigger()
	w.eventually(time.Minute, "a no-op cycle", func() bool {
		s := w.d.Status()
		return s.LastReconcile.After(before) && len(s.InFlight) == 0
	})
	r1, w1 := count.snapshot()
	b.ReportMetric(float64(w1-w0), "noop-writes")
	b.ReportMetric(float64(r1-r0)/float64(pairs), "noop-reads/pair")

	// An idle minute's CPU, from 15 s idle with heartbeats every second (30
	// times the default rate): an upper bound of the default's.
	cpu0 := cpuTime()
	time.Sleep(15 * time.Second)
	b.ReportMetric((cpuTime()-cpu0).Seconds()*4, "cpu-s/idle-min-1s-heartbeats")
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB-with-test")
	fmt.Fprintf(os.Stderr, "daemon bench: %d apps x %d clusters; statuses %d\n", apps, len(clusters), len(w.d.Status().Clusters))
}

// synced reports whether n pairs are Synced and Healthy (at revision rev
// when given).
func (w *world) synced(n int, rev string) bool {
	got := 0
	for _, c := range w.d.Status().Clusters {
		for _, a := range c.Apps {
			if a.Sync == daemon.SyncSynced && a.Health == daemon.HealthHealthy && (rev == "" || a.Revision == rev) {
				got++
			}
		}
	}
	return got >= n
}

// splitRollout divides a two-wave rollout of every app: webhook -> the last
// app written on north; the longest an app waited from its north write to its
// gate (north healthy); the longest from an app's gate to its last write on
// the next wave.
func splitRollout(start time.Time, writes, gates []timed) (canary, gateWait, nextWave time.Duration) {
	north := map[string]time.Time{}
	last := map[string]time.Time{}
	for _, w := range writes {
		if w.cluster == "north" {
			north[w.app] = w.at
			canary = max(canary, w.at.Sub(start))
		} else if w.at.After(last[w.app]) {
			last[w.app] = w.at
		}
	}
	for _, g := range gates {
		gateWait = max(gateWait, g.at.Sub(north[g.app]))
		if l, ok := last[g.app]; ok {
			nextWave = max(nextWave, l.Sub(g.at))
		}
	}
	return canary, gateWait, nextWave
}
