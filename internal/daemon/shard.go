package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// Labels of the shard Leases.
const (
	// LabelShardMember marks a replica's membership Lease (value: "true").
	LabelShardMember = "fleetsync.dev/shard-member"
	// LabelShardCluster marks a cluster's Lease; its value is the cluster.
	LabelShardCluster = "fleetsync.dev/shard-cluster"
)

// DefaultShardLeaseDuration is how long a replica's Leases last unrenewed.
const DefaultShardLeaseDuration = 30 * time.Second

// ShardOptions configure sharding among central replicas (run --shards auto).
type ShardOptions struct {
	// Config reaches the cluster holding the Leases.
	Config *rest.Config
	// Namespace of the Leases (default fleetsync-system).
	Namespace string
	// Identity of this replica (unique among the replicas).
	Identity string
	// LeaseDuration is how long a Lease lasts unrenewed (default 30s): a
	// replica that stops renewing loses its clusters to the others after it.
	// Leases are renewed every third of it.
	LeaseDuration time.Duration
	Logger        *slog.Logger
	// Refused, when set, is told of each write refused (metrics).
	Refused func(cluster string)
}

// Shards shares the fleet's clusters among central replicas, on Kubernetes
// itself: each replica renews a membership Lease; every cluster goes to the
// live replica with the highest rendezvous hash of (replica, cluster); a
// replica writes to a cluster only while it holds that cluster's Lease
// (fleetsync-cluster-<cluster>), which it takes only once the previous
// holder released it or let it expire. A replica handing a cluster over
// refuses new writes to it, waits for the writes in progress, then releases
// the Lease: two replicas never write to one cluster at once. Writes are
// checked at the transport (Wrap), below every code path that could write.
type Shards struct {
	o      ShardOptions
	cs     kubernetes.Interface
	leases coordclient.LeaseInterface

	mu       sync.Mutex
	idle     *sync.Cond
	clusters []string                         // in scope, set by the daemon
	members  []string                         // live replicas at the last look
	held     map[string]*coordinationv1.Lease // cluster -> our Lease as last written
	renewed  map[string]time.Time             // cluster -> when its renewal was sent
	draining map[string]bool                  // clusters being handed over
	writes   map[string]int                   // writes in progress per cluster
	changed  func()                           // the daemon's: holdings changed
	member   *coordinationv1.Lease
}

// NewShards connects to the cluster holding the Leases.
func NewShards(o ShardOptions) (*Shards, error) {
	if o.Namespace == "" {
		o.Namespace = "fleetsync-system"
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = DefaultShardLeaseDuration
	}
	if o.Identity == "" {
		return nil, errors.New("shards: a replica needs an identity")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, fmt.Errorf("shards: %w", err)
	}
	s := &Shards{o: o, cs: cs, leases: cs.CoordinationV1().Leases(o.Namespace),
		held: map[string]*coordinationv1.Lease{}, renewed: map[string]time.Time{},
		draining: map[string]bool{}, writes: map[string]int{}}
	s.idle = sync.NewCond(&s.mu)
	return s, nil
}

// Identity is this replica's.
func (s *Shards) Identity() string { return s.o.Identity }

func (s *Shards) renewEvery() time.Duration { return s.o.LeaseDuration / 3 }

// leaseSeconds is the lease duration in a Lease's whole seconds (at least 1,
// at most a day).
func (s *Shards) leaseSeconds() int32 {
	secs := min(max(s.o.LeaseDuration/time.Second, 1), 24*3600)
	return int32(secs) //nolint:gosec // bounded just above
}

// valid is how long after sending a renewal this replica still counts on
// its Lease: a renewal period short of the duration, so that it stops
// writing before another replica may take the cluster.
func (s *Shards) valid() time.Duration { return s.o.LeaseDuration - s.renewEvery() }

// SetClusters sets the clusters to share (the fleet's, each cycle).
func (s *Shards) SetClusters(names []string) {
	s.mu.Lock()
	s.clusters = slices.Clone(names)
	s.mu.Unlock()
}

// Owns reports whether this replica may write to the cluster now: it holds
// the cluster's Lease, renewed recently enough, and is not handing it over.
func (s *Shards) Owns(cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owns(cluster)
}

func (s *Shards) owns(cluster string) bool {
	t, ok := s.renewed[cluster]
	return ok && !s.draining[cluster] && time.Since(t) < s.valid()
}

// Owned lists the clusters this replica holds, sorted.
func (s *Shards) Owned() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for c := range s.held {
		if s.owns(c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// Members lists the live replicas at the last look, sorted.
func (s *Shards) Members() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members)
}

// NotOwnedError is a write refused because another replica holds the
// cluster (or this one is handing it over).
type NotOwnedError struct{ Cluster, Identity string }

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("cluster %s is not held by replica %s (sharded): write refused", e.Cluster, e.Identity)
}

// Wrap guards a cluster's transport: a request that may write (any method
// but GET and HEAD) is sent only while this replica owns the cluster, and
// counted until its response, so that a hand-over waits for it.
func (s *Shards) Wrap(cluster string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet || req.Method == http.MethodHead {
				return rt.RoundTrip(req)
			}
			s.mu.Lock()
			if !s.owns(cluster) {
				s.mu.Unlock()
				if s.o.Refused != nil {
					s.o.Refused(cluster)
				}
				return nil, &NotOwnedError{Cluster: cluster, Identity: s.o.Identity}
			}
			s.writes[cluster]++
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				s.writes[cluster]--
				s.idle.Broadcast()
				s.mu.Unlock()
			}()
			return rt.RoundTrip(req)
		})
	}
}

// Run keeps the Leases until ctx ends, then releases them. changed is
// called whenever the clusters this replica holds change.
func (s *Shards) Run(ctx context.Context, changed func()) {
	s.mu.Lock()
	s.changed = changed
	s.mu.Unlock()
	t := time.NewTicker(s.renewEvery())
	defer t.Stop()
	for {
		s.step(ctx)
		select {
		case <-ctx.Done():
			s.releaseAll(ctx)
			return
		case <-t.C:
		}
	}
}

// step renews membership, reads the live replicas, hands over the clusters
// that are no longer this replica's and takes (or renews) the others.
func (s *Shards) step(ctx context.Context) {
	now := time.Now()
	if err := s.renewMember(ctx, now); err != nil && ctx.Err() == nil {
		s.o.Logger.Warn("shards: renew membership", "error", err)
	}
	members, err := s.liveMembers(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Logger.Warn("shards: read the replicas", "error", err)
		}
		return // keep what is held until it expires by itself
	}
	s.mu.Lock()
	before := s.membersChanged(members)
	clusters := slices.Clone(s.clusters)
	s.mu.Unlock()
	if before {
		s.o.Logger.Info("shards: replicas", "live", strings.Join(members, ","))
	}
	mine := map[string]bool{}
	for _, c := range clusters {
		if Rendezvous(members, c) == s.o.Identity {
			mine[c] = true
		}
	}
	changed := false
	s.mu.Lock()
	var leaving []string
	for c := range s.held {
		if !mine[c] {
			leaving = append(leaving, c)
		}
	}
	s.mu.Unlock()
	for _, c := range leaving {
		s.handOver(ctx, c)
		changed = true
	}
	for _, c := range clusters {
		if !mine[c] || ctx.Err() != nil {
			continue
		}
		got, err := s.hold(ctx, c)
		if err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("shards: hold the cluster's Lease", "cluster", c, "error", err)
		}
		changed = changed || got
	}
	s.mu.Lock()
	fn := s.changed
	s.mu.Unlock()
	if changed && fn != nil {
		fn()
	}
}

// membersChanged records the live replicas; under mu.
func (s *Shards) membersChanged(members []string) bool {
	same := slices.Equal(s.members, members)
	s.members = members
	return !same
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// leaseName makes a valid object name of a prefix and a free-form value.
func leaseName(prefix, v string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(v), "-"), "-")
	if len(n) > 40 {
		n = n[:40]
	}
	h := sha256.Sum256([]byte(v))
	return fmt.Sprintf("%s-%s-%x", prefix, n, h[:4])
}

func (s *Shards) memberName() string { return leaseName("fleetsync-shard", s.o.Identity) }

// ClusterLeaseName is the name of a cluster's shard Lease.
func ClusterLeaseName(cluster string) string { return leaseName("fleetsync-cluster", cluster) }

func (s *Shards) renewMember(ctx context.Context, now time.Time) error {
	l := s.member
	if l == nil {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: s.memberName(), Namespace: s.o.Namespace,
			Labels: map[string]string{LabelShardMember: "true", "app.kubernetes.io/managed-by": "fleetsync"}}}
	} else {
		l = l.DeepCopy()
	}
	l.Spec.HolderIdentity = ptr.To(s.o.Identity)
	l.Spec.LeaseDurationSeconds = ptr.To(s.leaseSeconds())
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	var out *coordinationv1.Lease
	var err error
	if s.member == nil {
		out, err = s.leases.Create(ctx, l, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) {
			// The namespace is missing (deploy/ creates it): create it when
			// allowed, else say what is wrong.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.o.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "fleetsync"}}}
			if _, nerr := s.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); nerr != nil && !apierrors.IsAlreadyExists(nerr) {
				return fmt.Errorf("namespace %s of the shard Leases does not exist and cannot be created: %w", s.o.Namespace, nerr)
			}
			out, err = s.leases.Create(ctx, l, metav1.CreateOptions{})
		}
		if apierrors.IsAlreadyExists(err) {
			if cur, gerr := s.leases.Get(ctx, l.Name, metav1.GetOptions{}); gerr == nil {
				l.ResourceVersion = cur.ResourceVersion
				out, err = s.leases.Update(ctx, l, metav1.UpdateOptions{})
			}
		}
	} else {
		out, err = s.leases.Update(ctx, l, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			s.member = nil
		}
	}
	if err != nil {
		return err
	}
	s.member = out
	return nil
}

// liveMembers lists the replicas whose membership Lease is unexpired.
func (s *Shards) liveMembers(ctx context.Context, now time.Time) ([]string, error) {
	list, err := s.leases.List(ctx, metav1.ListOptions{LabelSelector: LabelShardMember + "=true"})
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range list.Items {
		l := &list.Items[i]
		if l.Spec.HolderIdentity != nil && !expired(l, now) {
			out = append(out, *l.Spec.HolderIdentity)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return now.After(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second))
}

// hold takes or renews the cluster's Lease; got reports a newly taken one.
func (s *Shards) hold(ctx context.Context, c string) (got bool, err error) {
	s.mu.Lock()
	l := s.held[c]
	s.mu.Unlock()
	sent := time.Now()
	if l != nil {
		l = l.DeepCopy()
		l.Spec.RenewTime = &metav1.MicroTime{Time: sent}
		out, err := s.leases.Update(ctx, l, metav1.UpdateOptions{})
		if err == nil {
			s.mu.Lock()
			s.held[c], s.renewed[c] = out, sent
			s.mu.Unlock()
			return false, nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return false, err // still ours until valid() runs out
		}
		// Someone changed it: read it again below.
		s.mu.Lock()
		delete(s.held, c)
		delete(s.renewed, c)
		s.mu.Unlock()
		s.o.Logger.Warn("shards: the cluster's Lease changed under this replica", "cluster", c)
	}
	cur, err := s.leases.Get(ctx, ClusterLeaseName(c), metav1.GetOptions{})
	fresh := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ClusterLeaseName(c), Namespace: s.o.Namespace,
		Labels: map[string]string{LabelShardCluster: leaseLabelValue(c), "app.kubernetes.io/managed-by": "fleetsync"}}}
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return false, err
	}
	now := time.Now()
	if cur != nil {
		holder := ptr.Deref(cur.Spec.HolderIdentity, "")
		if holder != "" && holder != s.o.Identity && !expired(cur, now) {
			return false, nil // the previous holder has not let go yet
		}
		fresh = cur.DeepCopy()
	}
	fresh.Spec.HolderIdentity = ptr.To(s.o.Identity)
	fresh.Spec.LeaseDurationSeconds = ptr.To(s.leaseSeconds())
	fresh.Spec.AcquireTime = &metav1.MicroTime{Time: now}
	fresh.Spec.RenewTime = &metav1.MicroTime{Time: now}
	if fresh.Spec.LeaseTransitions == nil {
		fresh.Spec.LeaseTransitions = ptr.To(int32(0))
	}
	if cur != nil && ptr.Deref(cur.Spec.HolderIdentity, "") != s.o.Identity {
		*fresh.Spec.LeaseTransitions++
	}
	var out *coordinationv1.Lease
	if cur == nil {
		out, err = s.leases.Create(ctx, fresh, metav1.CreateOptions{})
	} else {
		out, err = s.leases.Update(ctx, fresh, metav1.UpdateOptions{})
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		return false, nil // another replica was faster: look again next time
	}
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.held[c], s.renewed[c] = out, now
	delete(s.draining, c)
	s.mu.Unlock()
	s.o.Logger.Info("shards: holding the cluster", "cluster", c)
	return true, nil
}

// leaseLabelValue is a cluster name as a label value (names are DNS labels
// already; anything else is hashed).
func leaseLabelValue(c string) string {
	if len(c) <= 63 && !nonName.MatchString(c) {
		return c
	}
	h := sha256.Sum256([]byte(c))
	return fmt.Sprintf("h-%x", h[:8])
}

// handOver stops writing to the cluster, waits for the writes in progress
// (a bounded time: past it the Lease runs out anyway) and releases it.
func (s *Shards) handOver(ctx context.Context, c string) {
	s.mu.Lock()
	s.draining[c] = true
	deadline := s.renewed[c].Add(s.valid())
	for s.writes[c] > 0 && time.Now().Before(deadline) {
		s.waitIdle(deadline)
	}
	l := s.held[c]
	delete(s.held, c)
	delete(s.renewed, c)
	s.mu.Unlock()
	s.o.Logger.Info("shards: handing the cluster over", "cluster", c)
	if l != nil {
		s.release(ctx, l)
	}
}

// waitIdle waits (under mu) for a write to end, at most until deadline.
func (s *Shards) waitIdle(deadline time.Time) {
	t := time.AfterFunc(time.Until(deadline), func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	s.idle.Wait()
	t.Stop()
}

// release gives a Lease up: no holder, so the next owner takes it at once.
func (s *Shards) release(ctx context.Context, l *coordinationv1.Lease) {
	l = l.DeepCopy()
	l.Spec.HolderIdentity = nil
	l.Spec.RenewTime = nil
	l.Spec.AcquireTime = nil
	if _, err := s.leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		s.o.Logger.Warn("shards: release the cluster's Lease", "lease", l.Name, "error", err)
	}
}

// releaseAll ends this replica's part at shutdown: no new writes, the
// writes in progress waited for, every Lease released and membership ended.
func (s *Shards) releaseAll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	var cs []string
	for c := range s.held {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		s.handOver(ctx, c)
	}
	if s.member != nil {
		if err := s.leases.Delete(ctx, s.member.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			s.o.Logger.Warn("shards: end membership", "error", err)
		}
	}
}

// Rendezvous is the replica (of members) that gets the cluster: the one with
// the highest hash of (replica, cluster), ties to the smaller name. When a
// replica joins or leaves, only the clusters it gets or had move.
func Rendezvous(members []string, cluster string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		h := sha256.Sum256([]byte(m + "\x00" + cluster))
		score := binary.BigEndian.Uint64(h[:8])
		if best == "" || score > bestScore || score == bestScore && m < best {
			best, bestScore = m, score
		}
	}
	return best
}
