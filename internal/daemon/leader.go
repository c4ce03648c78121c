package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderOptions configure leader election among central replicas: the
// replica holding the coordination.k8s.io Lease reconciles, the others wait.
type LeaderOptions struct {
	// Config reaches the cluster holding the Lease (in-cluster, or a kubeconfig).
	Config *rest.Config
	// Namespace and Name of the Lease (default fleetsync-system/fleetsync).
	Namespace, Name string
	// Identity of this replica (default: the host name and a random suffix,
	// set by the caller).
	Identity string
	// LeaseDuration, RenewDeadline, RetryPeriod: client-go's (defaults 15s,
	// 10s, 2s). A standby takes over within LeaseDuration of a leader's loss;
	// a leader that cannot renew within RenewDeadline stops reconciling.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// RunAsLeader runs fn while this replica holds the Lease, and returns when
// ctx ends. When the Lease is lost, fn's context is cancelled (the reconcile
// in flight stops at its next object: nothing half-written, no rollback) and
// RunAsLeader returns an error so the process exits and restarts as a
// standby (the way controllers built on client-go do).
func RunAsLeader(ctx context.Context, o LeaderOptions, fn func(ctx context.Context)) error {
	if o.Namespace == "" {
		o.Namespace = "fleetsync-system"
	}
	if o.Name == "" {
		o.Name = "fleetsync"
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 15 * time.Second
	}
	if o.RenewDeadline <= 0 {
		o.RenewDeadline = 10 * time.Second
	}
	if o.RetryPeriod <= 0 {
		o.RetryPeriod = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
	}
	lost := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            o.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				o.Logger.Info("leading", "lease", o.Namespace+"/"+o.Name, "identity", o.Identity)
				fn(ctx)
			},
			OnStoppedLeading: func() {
				close(lost)
			},
			OnNewLeader: func(id string) {
				if id != o.Identity {
					o.Logger.Info("standby", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx) // returns when ctx ends or the lease is lost
	select {
	case <-lost:
		if ctx.Err() == nil {
			return fmt.Errorf("leader election: lost the lease %s/%s", o.Namespace, o.Name)
		}
	default:
	}
	return nil
}
