package rollout

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limit is a number of clusters, absolute or a percentage of a wave.
type Limit struct {
	Count   int
	Percent int
}

// ParseLimit reads "3" or "25%"; "" is no limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Limit{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 100 {
			return Limit{}, fmt.Errorf("%q: want a percentage from 1%% to 100%%", s)
		}
		return Limit{Percent: n}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return Limit{}, fmt.Errorf("%q: want a positive count or a percentage", s)
	}
	return Limit{Count: n}, nil
}

// Of is the limit for a wave of n clusters: at least 1, at most n (a zero
// Limit is n: everything at once). Percentages round down.
func (l Limit) Of(n int) int {
	k := n
	switch {
	case l.Count > 0:
		k = l.Count
	case l.Percent > 0:
		k = n * l.Percent / 100
	}
	return max(1, min(k, n))
}

// Wave is one step of a rollout, resolved against the fleet.
type Wave struct {
	// Clusters of the wave (a cluster is in the first wave that selects it;
	// the caller puts clusters no wave selects in a last wave).
	Clusters []string
	// MaxConcurrent clusters are updated at once (zero: all).
	MaxConcurrent Limit
	// MaxFailures unhealthy or unreachable clusters are tolerated; one more
	// halts the rollout. Zero for a canary.
	MaxFailures int
	// SoakTime every cluster of the wave stays healthy on the target before the
	// next wave starts.
	SoakTime time.Duration
}

// Strategy is an app's rollout.
type Strategy struct {
	Waves []Wave
	// HealthTimeout is each cluster's deadline, from the apply of the target; a
	// cluster not healthy by then has failed.
	HealthTimeout time.Duration
	// AutoRollback rolls the clusters that received a failing target back to
	// their last healthy revision and holds the target.
	AutoRollback bool
}

// Revision is one revision of an app's rendered output on one cluster.
type Revision struct {
	Revision string `json:"revision"`
	Digest   string `json:"digest"`
}

// Health of the applied revision on a cluster.
type Health string

// Health values.
const (
	Healthy     Health = "Healthy"
	Progressing Health = "Progressing" // not healthy yet, not failed
	Failed      Health = "Failed"      // kstatus Failed: no need to wait for the deadline
	Unknown     Health = "Unknown"
)

// Hold records, on a cluster, a target that failed and was rolled back: the
// target is not applied again anywhere until a commit changes the app's
// output on that cluster (anti-flap).
type Hold struct {
	Revision string    `json:"revision"`
	Digest   string    `json:"digest"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
}

// Facts is what is observed on one cluster for the app.
type Facts struct {
	Cluster string
	// Reachable is false when the cluster cannot take part now; Problem says
	// why, and Blocked is set when the cluster answers but the app cannot go
	// there (its render or image sync failed, a dependency is not healthy).
	Reachable bool
	Blocked   bool
	Problem   string
	// Applied is the revision in the app's inventory ("" when never applied);
	// AppliedAt is when that digest was first applied there.
	Applied   Revision
	AppliedAt time.Time
	// Health of Applied, and since when it is Healthy without interruption
	// (the caller resets it when the cluster is seen unhealthy).
	Health       Health
	HealthySince time.Time
	// LastHealthy is the newest healthy revision other than the target, the one
	// a rollback re-applies (nil: none).
	LastHealthy *Revision
	// Holds recorded on the cluster.
	Holds []Hold
}

// Input is everything Decide looks at.
type Input struct {
	App      string
	Strategy Strategy
	// Target is the revision to roll out; Digests has each cluster's digest of
	// the target's rendered output (a cluster that renders nothing is not in it).
	Target  string
	Digests map[string]string
	Facts   map[string]Facts
	Now     time.Time
}

// Phase of a rollout.
type Phase string

// Phases.
const (
	PhaseProgressing Phase = "Progressing"
	PhaseDone        Phase = "Done"
	PhaseHalted      Phase = "Halted"      // a wave failed, no rollback (or nothing to roll back to)
	PhaseRollingBack Phase = "RollingBack" // rollbacks are being applied
	PhaseRolledBack  Phase = "RolledBack"  // the target is held, clusters are back
)

// State of one cluster in the rollout.
type State string

// States.
const (
	StatePending     State = "Pending"     // not on the target, its wave has not reached it
	StateProgressing State = "Progressing" // on the target, not healthy yet, before the deadline
	StateSoaking     State = "Soaking"     // healthy on the target, for less than the soak time
	StateHealthy     State = "Healthy"     // healthy on the target for the soak time
	StateFailed      State = "Failed"      // on the target, Failed or past the deadline
	StateUnreachable State = "Unreachable"
	StateBlocked     State = "Blocked"    // the cluster answers, the app cannot go there (Facts.Blocked)
	StateRolledBack  State = "RolledBack" // back on its last healthy revision after the target failed
	StateHeld        State = "Held"       // never got the target: the rollout was halted before
)

// RollBack re-applies a cluster's last healthy revision.
type RollBack struct {
	Cluster string   `json:"cluster"`
	To      Revision `json:"to"`
}

// ClusterStatus is one cluster's place in the rollout.
type ClusterStatus struct {
	Cluster string `json:"cluster"`
	Wave    int    `json:"wave"`
	State   State  `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// Plan is Decide's answer.
type Plan struct {
	Phase Phase `json:"phase"`
	// Wave is the wave in progress (from 0), or the one that failed.
	Wave int `json:"wave"`
	// Apply lists the clusters to apply the target on now.
	Apply []string `json:"apply,omitempty"`
	// RollBack lists the clusters to roll back now.
	RollBack []RollBack `json:"rollBack,omitempty"`
	// Hold is set when the target failed under autoRollback: record it (with
	// that cluster's digest) on every cluster that received the target, before
	// rolling it back, so the target is never retried and a restart resumes
	// the rollback.
	Hold *Hold `json:"hold,omitempty"`
	// Reason explains a halt, a rollback or a wait.
	Reason string `json:"reason,omitempty"`
	// Recheck is when looking again can change the answer (a soak ending, a
	// deadline passing); zero when only new facts can.
	Recheck  time.Duration   `json:"recheck,omitempty"`
	Clusters []ClusterStatus `json:"clusters"`
}

// Decide returns what to do now for the app's rollout of the target.
func Decide(in Input) Plan {
	d := &decider{in: in, wave: map[string]int{}}
	for i, w := range in.Strategy.Waves {
		for _, c := range w.Clusters {
			if _, ok := in.Digests[c]; ok {
				if _, seen := d.wave[c]; !seen {
					d.wave[c] = i
				}
			}
		}
	}
	if h := d.held(); h != nil {
		return d.heldPlan(h)
	}
	plan := Plan{Phase: PhaseDone}
	states := map[string]ClusterStatus{}
	for i, w := range in.Strategy.Waves {
		clusters := d.clustersOf(i, w)
		if len(clusters) == 0 {
			continue
		}
		var pending, inFlight, failed []string
		for _, c := range clusters {
			st := d.state(c, i, w)
			states[c] = st
			switch st.State {
			case StatePending:
				pending = append(pending, c)
			case StateProgressing:
				inFlight = append(inFlight, c)
				d.recheck(d.deadline(c))
			case StateSoaking:
				d.recheck(d.in.Facts[c].HealthySince.Add(w.SoakTime))
			case StateFailed, StateUnreachable, StateBlocked:
				failed = append(failed, c)
			}
		}
		plan.Wave = i
		if len(failed) > w.MaxFailures {
			return d.failPlan(i, failed, states)
		}
		if len(pending) > 0 {
			free := w.MaxConcurrent.Of(len(clusters)) - len(inFlight)
			for _, c := range pending {
				if free <= 0 {
					break
				}
				plan.Apply = append(plan.Apply, c)
				free--
			}
		}
		if len(pending) > 0 || len(inFlight) > 0 || d.soaking(states, clusters) {
			plan.Phase = PhaseProgressing
			plan.Reason = d.waitReason(i, pending, inFlight, states, clusters)
			d.fill(&plan, states)
			return plan
		}
	}
	d.fill(&plan, states)
	return plan
}

type decider struct {
	in        Input
	wave      map[string]int
	recheckAt time.Time
}

// clustersOf are the clusters of wave i that render the app, sorted.
func (d *decider) clustersOf(i int, _ Wave) []string {
	var out []string
	for c, w := range d.wave {
		if w == i {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

func (d *decider) deadline(c string) time.Time {
	return d.in.Facts[c].AppliedAt.Add(d.in.Strategy.HealthTimeout)
}

func (d *decider) recheck(t time.Time) {
	if t.After(d.in.Now) && (d.recheckAt.IsZero() || t.Before(d.recheckAt)) {
		d.recheckAt = t
	}
}

// state classifies a cluster against the target.
func (d *decider) state(c string, wave int, w Wave) ClusterStatus {
	f := d.in.Facts[c]
	st := ClusterStatus{Cluster: c, Wave: wave}
	onTarget := f.Applied.Digest != "" && f.Applied.Digest == d.in.Digests[c]
	switch {
	case !f.Reachable && f.Blocked:
		st.State, st.Reason = StateBlocked, f.Problem
	case !f.Reachable:
		st.State, st.Reason = StateUnreachable, "cluster unreachable"
		if f.Problem != "" {
			st.Reason = f.Problem
		}
	case !onTarget:
		st.State = StatePending
	case f.Health == Healthy && !d.in.Now.Before(f.HealthySince.Add(w.SoakTime)):
		st.State = StateHealthy
	case f.Health == Healthy:
		st.State = StateSoaking
		st.Reason = fmt.Sprintf("healthy for %s of %s", d.in.Now.Sub(f.HealthySince).Truncate(time.Second), w.SoakTime)
	case f.Health == Failed:
		st.State, st.Reason = StateFailed, "health check failed"
	case d.in.Strategy.HealthTimeout > 0 && !d.in.Now.Before(d.deadline(c)):
		st.State, st.Reason = StateFailed, fmt.Sprintf("not healthy %s after the apply (healthTimeout)", d.in.Strategy.HealthTimeout)
	default:
		st.State = StateProgressing
	}
	return st
}

func (d *decider) soaking(states map[string]ClusterStatus, clusters []string) bool {
	for _, c := range clusters {
		if states[c].State == StateSoaking {
			return true
		}
	}
	return false
}

func (d *decider) waitReason(i int, pending, inFlight []string, states map[string]ClusterStatus, clusters []string) string {
	var parts []string
	if len(pending) > 0 {
		parts = append(parts, fmt.Sprintf("%d to update", len(pending)))
	}
	if len(inFlight) > 0 {
		parts = append(parts, "waiting for "+strings.Join(inFlight, ", ")+" to be healthy")
	}
	var soak []string
	for _, c := range clusters {
		if states[c].State == StateSoaking {
			soak = append(soak, c)
		}
	}
	if len(soak) > 0 {
		parts = append(parts, "soaking on "+strings.Join(soak, ", "))
	}
	return fmt.Sprintf("wave %d: %s", i+1, strings.Join(parts, "; "))
}

// fill completes the plan: every cluster's status (as observed where the
// walk did not reach), the recheck time, sorted.
func (d *decider) fill(p *Plan, states map[string]ClusterStatus) {
	for c, w := range d.wave {
		st, ok := states[c]
		if !ok {
			st = d.state(c, w, d.in.Strategy.Waves[w])
		}
		p.Clusters = append(p.Clusters, st)
	}
	sort.Slice(p.Clusters, func(i, j int) bool {
		if p.Clusters[i].Wave != p.Clusters[j].Wave {
			return p.Clusters[i].Wave < p.Clusters[j].Wave
		}
		return p.Clusters[i].Cluster < p.Clusters[j].Cluster
	})
	if !d.recheckAt.IsZero() {
		p.Recheck = d.recheckAt.Sub(d.in.Now)
	}
}

// failPlan halts the rollout at wave i; with autoRollback, when the target
// failed on a cluster (not only: some were unreachable), every cluster that
// received it goes back to its last healthy revision and the target is held.
// A halt for unreachable clusters only lifts itself when they answer.
func (d *decider) failPlan(i int, failed []string, states map[string]ClusterStatus) Plan {
	var why []string
	for _, c := range failed {
		why = append(why, c+": "+states[c].Reason)
	}
	reason := fmt.Sprintf("wave %d failed (%d failed, %d tolerated): %s", i+1, len(failed), d.in.Strategy.Waves[i].MaxFailures, strings.Join(why, "; "))
	p := Plan{Phase: PhaseHalted, Wave: i, Reason: reason}
	revisionFailed := false // not only unreachable clusters: the target itself failed somewhere
	for _, c := range failed {
		revisionFailed = revisionFailed || states[c].State == StateFailed
	}
	if d.in.Strategy.AutoRollback && revisionFailed {
		p.Hold = &Hold{Revision: d.in.Target, Reason: reason, Time: d.in.Now}
		p.RollBack, states = d.rollbacks(states)
		if len(p.RollBack) > 0 {
			p.Phase = PhaseRollingBack
		}
	}
	if revisionFailed {
		for c, w := range d.wave {
			st, ok := states[c]
			if !ok {
				st = d.state(c, w, d.in.Strategy.Waves[w])
			}
			if st.State == StatePending {
				st.State, st.Reason = StateHeld, "never got the failing revision"
			}
			states[c] = st
		}
	}
	d.fill(&p, states)
	return p
}

// rollbacks are the reachable clusters on the target that have a healthy
// revision to return to; the others are reported (never emptied).
func (d *decider) rollbacks(states map[string]ClusterStatus) ([]RollBack, map[string]ClusterStatus) {
	var out []RollBack
	names := make([]string, 0, len(d.wave))
	for c := range d.wave {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		f := d.in.Facts[c]
		st, ok := states[c]
		if !ok {
			st = d.state(c, d.wave[c], d.in.Strategy.Waves[d.wave[c]])
		}
		onTarget := f.Applied.Digest != "" && f.Applied.Digest == d.in.Digests[c]
		switch {
		case !onTarget:
			if st.State == StatePending {
				st.State, st.Reason = StateHeld, "never got the failing revision"
			}
		case !f.Reachable:
			st.Reason = "unreachable: rolled back when it answers"
		case f.LastHealthy == nil || f.LastHealthy.Digest == d.in.Digests[c]:
			st.Reason = "no healthy revision to return to: left as it is"
		default:
			out = append(out, RollBack{Cluster: c, To: *f.LastHealthy})
		}
		states[c] = st
	}
	return out, states
}

// held returns the hold that stops the target: a cluster recorded that the
// target's output there failed and was rolled back.
func (d *decider) held() *Hold {
	names := make([]string, 0, len(d.in.Facts))
	for c := range d.in.Facts {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		want, ok := d.in.Digests[c]
		if !ok {
			continue
		}
		for _, h := range d.in.Facts[c].Holds {
			if h.Digest == want {
				h := h
				return &h
			}
		}
	}
	return nil
}

// heldPlan: the target failed before. Clusters still on it are rolled back
// (a restart between the hold and the rollback), the others stay.
func (d *decider) heldPlan(h *Hold) Plan {
	reason := fmt.Sprintf("revision %s failed and is held until a commit changes the app: %s", short(h.Revision), h.Reason)
	p := Plan{Phase: PhaseHalted, Reason: reason, Wave: -1}
	states := map[string]ClusterStatus{}
	if d.in.Strategy.AutoRollback {
		p.RollBack, states = d.rollbacks(states)
	}
	rolledBack := false
	for c, w := range d.wave {
		st, ok := states[c]
		if !ok {
			st = d.state(c, w, d.in.Strategy.Waves[w])
		}
		f := d.in.Facts[c]
		onTarget := f.Applied.Digest != "" && f.Applied.Digest == d.in.Digests[c]
		if hasHold(f.Holds, d.in.Digests[c]) && (p.Wave < 0 || w < p.Wave) {
			p.Wave = w
		}
		switch {
		case onTarget && st.State != StateUnreachable && f.Health != Healthy:
			st.State = StateFailed
		case !onTarget && f.Reachable && hasHold(f.Holds, d.in.Digests[c]):
			st.State, st.Reason = StateRolledBack, "back on "+short(f.Applied.Revision)
			rolledBack = true
		case !onTarget && st.State == StatePending:
			st.State, st.Reason = StateHeld, "never got the failing revision"
		}
		states[c] = st
	}
	p.Wave = max(p.Wave, 0)
	switch {
	case len(p.RollBack) > 0:
		p.Phase, p.Hold = PhaseRollingBack, h
	case rolledBack:
		p.Phase = PhaseRolledBack
	}
	d.fill(&p, states)
	return p
}

func hasHold(hs []Hold, digest string) bool {
	for _, h := range hs {
		if h.Digest == digest {
			return true
		}
	}
	return false
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
