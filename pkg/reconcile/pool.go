package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

// Dialer makes a cluster's Manager (it may not contact the cluster).
type Dialer func(ctx context.Context, cluster string) (*apply.Manager, error)

// DialWith returns a Dialer that finds credentials as cluster.Connect does and
// builds Managers with the given options.
func DialWith(co cluster.ConnectOptions, mo apply.Options) Dialer {
	return func(ctx context.Context, name string) (*apply.Manager, error) {
		c, err := cluster.Connect(ctx, name, co)
		if err != nil {
			return nil, err
		}
		return apply.NewManager(c, mo), nil
	}
}

// PoolOptions say how hard a Pool tries to reach a cluster.
type PoolOptions struct {
	// Attempts per Get for a cluster that does not answer (default 3).
	Attempts int
	// Backoff before the second attempt, doubled after each (default 500ms,
	// at most MaxBackoff, default 5s).
	Backoff, MaxBackoff time.Duration
	// ProbeTimeout bounds each reachability probe (default 10s).
	ProbeTimeout time.Duration
}

func (o PoolOptions) withDefaults() PoolOptions {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 10 * time.Second
	}
	return o
}

// Pool holds one connection per cluster. A connection is kept only once the
// cluster answered (its /version); a failure is never remembered, so the next
// Get tries again: a cluster that was down at the first connection is
// reconciled as soon as it is back. Safe for concurrent use.
type Pool struct {
	dial Dialer
	opts PoolOptions
	mu   sync.Mutex
	live map[string]*conn
}

type conn struct {
	m       *apply.Manager
	version string
}

// NewPool returns a Pool dialling with dial.
func NewPool(dial Dialer, opts PoolOptions) *Pool {
	return &Pool{dial: dial, opts: opts.withDefaults(), live: map[string]*conn{}}
}

// ClusterError says a cluster could not be reached or connected to. Its kind
// (apply.KindOf) is the cause's: transient when unreachable, needs a person when
// no credentials exist.
type ClusterError struct {
	Cluster  string
	Attempts int
	Err      error
}

// Error is the cause's message (cluster.Connect and the probe name the
// cluster already), with the attempts made.
func (e *ClusterError) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("%v (not reachable after %d attempts)", e.Err, e.Attempts)
	}
	return e.Err.Error()
}

func (e *ClusterError) Unwrap() error { return e.Err }

// Get returns the cluster's Manager. A cluster not yet connected is dialled and
// probed, with up to Attempts tries and backoff while the failure is transient.
func (p *Pool) Get(ctx context.Context, name string) (*apply.Manager, error) {
	p.mu.Lock()
	c := p.live[name]
	p.mu.Unlock()
	if c != nil {
		return c.m, nil
	}
	backoff := p.opts.Backoff
	var last error
	attempts := 0
	for attempts < p.opts.Attempts {
		attempts++
		m, v, err := p.connect(ctx, name)
		if err == nil {
			p.mu.Lock()
			if cur := p.live[name]; cur != nil {
				m = cur.m // another caller won the race: one connection per cluster
			} else {
				p.live[name] = &conn{m: m, version: v}
			}
			p.mu.Unlock()
			return m, nil
		}
		last = err
		if apply.KindOf(err) != apply.ErrTransient || attempts == p.opts.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, &ClusterError{Cluster: name, Attempts: attempts, Err: errors.Join(last, context.Cause(ctx))}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
	var ce *ClusterError
	if errors.As(last, &ce) {
		return nil, last
	}
	return nil, &ClusterError{Cluster: name, Attempts: attempts, Err: last}
}

func (p *Pool) connect(ctx context.Context, name string) (*apply.Manager, string, error) {
	m, err := p.dial(ctx, name)
	if err != nil {
		return nil, "", &ClusterError{Cluster: name, Attempts: 1, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, p.opts.ProbeTimeout)
	defer cancel()
	v, err := m.Cluster().ServerVersion(pctx)
	if err != nil {
		return nil, "", err
	}
	return m, v, nil
}

// Version is the Kubernetes version the cluster reported when it was connected
// ("" when it is not connected).
func (p *Pool) Version(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.live[name]; c != nil {
		return c.version
	}
	return ""
}

// Forget drops a cluster's connection (e.g. after its heartbeat failed), so the
// next Get dials and probes it again.
func (p *Pool) Forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.live, name)
}
