package daemon_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// Two replicas share a Lease on a real API server: one reconciles; when it
// stops, the standby takes over within the lease duration.
func TestLeaderElectionTakeover(t *testing.T) {
	f := testfleet.Get(t)
	ns := f.Namespace(t, "north")
	var leader atomic.Value // identity of the replica running fn
	leader.Store("")
	start := func(id string) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- daemon.RunAsLeader(ctx, daemon.LeaderOptions{
				Config: f.RESTConfig(t, "north"), Namespace: ns, Name: "fleetsync", Identity: id,
				LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond,
			}, func(ctx context.Context) {
				leader.Store(id)
				<-ctx.Done()
			})
		}()
		return cancel, done
	}
	wait := func(id string, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for leader.Load() != id {
			if time.Since(start) > limit {
				t.Fatalf("%s did not lead within %s (leader %q)", id, limit, leader.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	stopA, doneA := start("a")
	wait("a", 10*time.Second)
	stopB, doneB := start("b")
	time.Sleep(3 * time.Second) // longer than the lease: a healthy leader keeps it
	if got := leader.Load(); got != "a" {
		t.Fatalf("leader %q while a renews, want a", got)
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("a: %v", err)
	}
	took := wait("b", 5*time.Second)
	t.Logf("standby took over %s after the leader stopped (it released the lease)", took.Round(time.Millisecond))
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("b: %v", err)
	}
}
