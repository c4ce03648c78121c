package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

const (
	oldRev, newRev, newerRev = "r1", "r2", "r3"
	oldDig, newDig, newerDig = "sha256:old", "sha256:new", "sha256:newer"
)

var old = &Revision{Revision: oldRev, Digest: oldDig}

// on is a reachable cluster with newDig applied `applied` ago, in health h,
// healthy for `healthy` (when h is Healthy), and old as its last healthy revision.
func on(c string, h Health, applied, healthy time.Duration) Facts {
	f := Facts{Cluster: c, Reachable: true, Applied: Revision{newRev, newDig}, AppliedAt: now.Add(-applied), Health: h, LastHealthy: old}
	if h == Healthy {
		f.HealthySince = now.Add(-healthy)
	}
	return f
}

// at is a reachable cluster healthy on the old revision for long.
func at(c string) Facts {
	return Facts{Cluster: c, Reachable: true, Applied: *old, AppliedAt: now.Add(-48 * time.Hour), Health: Healthy, HealthySince: now.Add(-47 * time.Hour), LastHealthy: old}
}

func fresh(c string) Facts { return Facts{Cluster: c, Reachable: true, Health: Unknown} }

func down(f Facts) Facts { f.Reachable = false; return f }

func held(f Facts, digest string) Facts {
	f.Holds = append(f.Holds, Hold{Revision: newRev, Digest: digest, Reason: "wave 1 failed", Time: now.Add(-time.Hour)})
	return f
}

func facts(fs ...Facts) map[string]Facts {
	m := map[string]Facts{}
	for _, f := range fs {
		m[f.Cluster] = f
	}
	return m
}

func digests(d string, clusters ...string) map[string]string {
	m := map[string]string{}
	for _, c := range clusters {
		m[c] = d
	}
	return m
}

// canary: north alone (no failures tolerated), then south, east, west.
func canary(rest Wave) Strategy {
	rest.Clusters = []string{"south", "east", "west"}
	return Strategy{
		Waves:         []Wave{{Clusters: []string{"north"}}, rest},
		HealthTimeout: 5 * time.Minute,
		AutoRollback:  true,
	}
}

var all4 = digests(newDig, "north", "south", "east", "west")

func states(p Plan) string {
	var out []string
	for _, c := range p.Clusters {
		out = append(out, c.Cluster+"="+string(c.State))
	}
	return strings.Join(out, " ")
}

func TestDecide(t *testing.T) {
	type want struct {
		phase    Phase
		wave     int
		apply    []string
		rollback []string
		hold     bool
		states   string // optional: cluster=State ... in wave then name order
		reason   string // optional substring
		recheck  time.Duration
	}
	cases := []struct {
		name string
		in   Input
		want want
	}{
		{"fresh rollout starts with the canary only",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(at("north"), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, apply: []string{"north"}, states: "north=Pending east=Pending south=Pending west=Pending"}},
		{"first install on clusters that never had the app",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(fresh("north"), fresh("south"), fresh("east"), fresh("west"))},
			want{phase: PhaseProgressing, apply: []string{"north"}}},
		{"canary progressing: wait, nothing else applied, recheck at its deadline",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(on("north", Progressing, time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, reason: "waiting for north", recheck: 4 * time.Minute, states: "north=Progressing east=Pending south=Pending west=Pending"}},
		{"canary healthy (no soak): the next wave goes all at once",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(on("north", Healthy, 2*time.Minute, time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east", "south", "west"}}},
		{"canary soaking: wait for the soak time",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.Waves[0].SoakTime = 10 * time.Minute; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 6*time.Minute, 4*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 0, reason: "soaking on north", recheck: 6 * time.Minute, states: "north=Soaking east=Pending south=Pending west=Pending"}},
		{"canary soaked: the next wave starts",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.Waves[0].SoakTime = 10 * time.Minute; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 12*time.Minute, 10*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east", "south", "west"}}},
		{"soak interrupted before the deadline: progressing again, no next wave",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.Waves[0].SoakTime = 10 * time.Minute; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Progressing, 3*time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 0, apply: nil}},
		{"soak interrupted after the deadline: the canary failed, rolled back",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.Waves[0].SoakTime = 10 * time.Minute; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Progressing, 8*time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseRollingBack, rollback: []string{"north"}, hold: true, reason: "healthTimeout"}},
		{"canary fails (kstatus Failed): halt and roll back, later waves never get it",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(on("north", Failed, time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseRollingBack, rollback: []string{"north"}, hold: true, reason: "wave 1 failed",
				states: "north=Failed east=Held south=Held west=Held"}},
		{"canary fails without autoRollback: halt, nothing applied",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.AutoRollback = false; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Failed, time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseHalted, reason: "wave 1 failed"}},
		{"canary past its deadline counts as failed",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(on("north", Progressing, 6*time.Minute, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseRollingBack, rollback: []string{"north"}, hold: true, reason: "not healthy 5m0s after the apply"}},
		{"canary unreachable: a failure of a wave that tolerates none",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4, Facts: facts(down(at("north")), at("south"), at("east"), at("west"))},
			want{phase: PhaseHalted, reason: "north: cluster unreachable", states: "north=Unreachable east=Pending south=Pending west=Pending"}},
		{"maxFailures 1 tolerates one failed cluster: done",
			Input{Strategy: canary(Wave{MaxFailures: 1}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Failed, time.Minute, 0), on("east", Healthy, 2*time.Minute, time.Minute), on("west", Healthy, 2*time.Minute, time.Minute))},
			want{phase: PhaseDone, wave: 1}},
		{"maxFailures 1 exceeded: every cluster that got it is rolled back, the canary too",
			Input{Strategy: canary(Wave{MaxFailures: 1}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Failed, time.Minute, 0), on("east", Failed, 2*time.Minute, 0), at("west"))},
			want{phase: PhaseRollingBack, wave: 1, rollback: []string{"east", "north", "south"}, hold: true, reason: "wave 2 failed (2 failed, 1 tolerated)"}},
		{"an unreachable cluster counts against maxFailures but does not hold the others",
			Input{Strategy: canary(Wave{MaxFailures: 1}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), down(at("south")), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east", "west"}}},
		{"a tolerated unreachable cluster: done when the others are healthy",
			Input{Strategy: canary(Wave{MaxFailures: 1}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), down(at("south")), on("east", Healthy, 2*time.Minute, time.Minute), on("west", Healthy, 2*time.Minute, time.Minute))},
			want{phase: PhaseDone, wave: 1, states: "north=Healthy east=Healthy south=Unreachable west=Healthy"}},
		{"maxConcurrent 1: one cluster at a time",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Count: 1}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east"}}},
		{"maxConcurrent 1 with one in flight: wait",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Count: 1}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), on("east", Progressing, time.Minute, 0), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: nil, reason: "waiting for east"}},
		{"maxConcurrent 1 after one is healthy: the next one",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Count: 1}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), on("east", Healthy, 2*time.Minute, time.Minute), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"south"}}},
		{"maxConcurrent 67% of 3: two at once",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Percent: 67}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east", "south"}}},
		{"maxConcurrent 25% of 3 rounds down but is at least one",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Percent: 25}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east"}}},
		{"all waves healthy: done, nothing to do",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Healthy, 3*time.Minute, 2*time.Minute), on("east", Healthy, 3*time.Minute, 2*time.Minute), on("west", Healthy, 3*time.Minute, 2*time.Minute))},
			want{phase: PhaseDone, wave: 1, states: "north=Healthy east=Healthy south=Healthy west=Healthy"}},
		{"superseded by a commit that changes the app: restarts at wave 1",
			Input{Strategy: canary(Wave{}), Target: newerRev, Digests: digests(newerDig, "north", "south", "east", "west"),
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Progressing, time.Minute, 0), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 0, apply: []string{"north"}}},
		{"a commit that does not change the app does not restart the rollout",
			Input{Strategy: canary(Wave{}), Target: newerRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Progressing, time.Minute, 0), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"east", "west"}}},
		{"resumed after a restart in wave 2: what is in flight is not applied again",
			Input{Strategy: canary(Wave{MaxConcurrent: Limit{Count: 2}}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Progressing, time.Minute, 0), on("east", Healthy, 2*time.Minute, time.Minute), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"west"}}},
		{"resumed after a restart between the hold and the rollback: rolls back",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4,
				Facts: facts(held(on("north", Failed, 7*time.Minute, 0), newDig), at("south"), at("east"), at("west"))},
			want{phase: PhaseRollingBack, rollback: []string{"north"}, hold: true, states: "north=Failed east=Held south=Held west=Held"}},
		{"resumed after the rollback: rolled back, nothing to do",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4,
				Facts: facts(held(at("north"), newDig), at("south"), at("east"), at("west"))},
			want{phase: PhaseRolledBack, reason: "held until a commit changes the app", states: "north=RolledBack east=Held south=Held west=Held"}},
		{"anti-flap: a newer commit that does not change the app stays held",
			Input{Strategy: canary(Wave{}), Target: newerRev, Digests: all4,
				Facts: facts(held(at("north"), newDig), at("south"), at("east"), at("west"))},
			want{phase: PhaseRolledBack, apply: nil}},
		{"anti-flap lifted by a commit that changes the app",
			Input{Strategy: canary(Wave{}), Target: newerRev, Digests: digests(newerDig, "north", "south", "east", "west"),
				Facts: facts(held(at("north"), newDig), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, apply: []string{"north"}}},
		{"no healthy revision to return to: left as it is, reported, halted",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4,
				Facts: facts(func() Facts { f := on("north", Failed, time.Minute, 0); f.LastHealthy = nil; return f }(), fresh("south"), fresh("east"), fresh("west"))},
			want{phase: PhaseHalted, hold: true, reason: "wave 1 failed"}},
		{"an unreachable cluster on the target halts without a rollback: the revision did not fail",
			Input{Strategy: canary(Wave{MaxFailures: 0}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), down(on("south", Progressing, time.Minute, 0)), at("east"), at("west"))},
			want{phase: PhaseHalted, wave: 1, reason: "south: cluster unreachable"}},
		{"a cluster on the failed target that is unreachable is rolled back when it answers",
			Input{Strategy: canary(Wave{MaxFailures: 0}), Target: newRev, Digests: all4,
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), on("south", Failed, time.Minute, 0), down(on("east", Progressing, time.Minute, 0)), at("west"))},
			want{phase: PhaseRollingBack, wave: 1, rollback: []string{"north", "south"}, hold: true}},
		{"... and it answers: held, so it is rolled back too",
			Input{Strategy: canary(Wave{MaxFailures: 0}), Target: newRev, Digests: all4,
				Facts: facts(held(at("north"), newDig), held(at("south"), newDig), on("east", Progressing, 3*time.Minute, 0), at("west"))},
			want{phase: PhaseRollingBack, rollback: []string{"east"}, hold: true, states: "north=RolledBack east=Failed south=RolledBack west=Held"}},
		{"a cluster that does not render the app is not part of the rollout",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: digests(newDig, "north", "south"),
				Facts: facts(on("north", Healthy, 9*time.Minute, 8*time.Minute), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"south"}, states: "north=Healthy south=Pending"}},
		{"a wave that selects no rendered cluster is skipped",
			Input{Strategy: Strategy{Waves: []Wave{{Clusters: []string{"nowhere"}}, {Clusters: []string{"north", "south"}}}, HealthTimeout: time.Minute},
				Target: newRev, Digests: digests(newDig, "north", "south"), Facts: facts(at("north"), at("south"))},
			want{phase: PhaseProgressing, wave: 1, apply: []string{"north", "south"}}},
		{"a cluster is in the first wave that selects it",
			Input{Strategy: Strategy{Waves: []Wave{{Clusters: []string{"north"}}, {Clusters: []string{"north", "south"}}}, HealthTimeout: time.Minute},
				Target: newRev, Digests: digests(newDig, "north", "south"), Facts: facts(at("north"), at("south"))},
			want{phase: PhaseProgressing, wave: 0, apply: []string{"north"}}},
		{"a cluster where the app cannot go (render or image sync failed) blocks a canary wave",
			Input{Strategy: canary(Wave{}), Target: newRev, Digests: all4,
				Facts: facts(func() Facts {
					f := at("north")
					f.Reachable, f.Blocked, f.Problem = false, true, "image sync: not found"
					return f
				}(), at("south"), at("east"), at("west"))},
			want{phase: PhaseHalted, reason: "north: image sync: not found", states: "north=Blocked east=Pending south=Pending west=Pending"}},
		{"no health timeout: never fails by time",
			Input{Strategy: func() Strategy { s := canary(Wave{}); s.HealthTimeout = 0; return s }(), Target: newRev, Digests: all4,
				Facts: facts(on("north", Progressing, 48*time.Hour, 0), at("south"), at("east"), at("west"))},
			want{phase: PhaseProgressing, wave: 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.App, tc.in.Now = "app", now
			p := Decide(tc.in)
			var rb []string
			for _, r := range p.RollBack {
				rb = append(rb, r.Cluster)
				if r.To != *old {
					t.Errorf("rollback of %s to %+v, want %+v", r.Cluster, r.To, *old)
				}
			}
			got := want{phase: p.Phase, wave: p.Wave, apply: p.Apply, rollback: rb, hold: p.Hold != nil, recheck: p.Recheck}
			w := tc.want
			if w.states != "" {
				got.states = states(p)
			}
			if w.reason != "" && strings.Contains(p.Reason, w.reason) {
				got.reason = w.reason
			}
			if w.recheck == 0 {
				got.recheck = 0
			}
			if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Fatalf("Decide (-want +got):\n%s\nreason: %s\nclusters: %s", diff, p.Reason, states(p))
			}
			// Deciding again from the same facts gives the same answer.
			if again := Decide(tc.in); cmp.Diff(p, again) != "" {
				t.Fatalf("not deterministic: %s", cmp.Diff(p, again))
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{"": {}, "3": {Count: 3}, "25%": {Percent: 25}, " 100% ": {Percent: 100}} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "-1", "0%", "101%", "x", "1.5"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		l    Limit
		n, k int
	}{{Limit{}, 4, 4}, {Limit{Count: 2}, 4, 2}, {Limit{Count: 9}, 4, 4}, {Limit{Percent: 50}, 4, 2}, {Limit{Percent: 10}, 4, 1}} {
		if got := c.l.Of(c.n); got != c.k {
			t.Errorf("%+v.Of(%d) = %d, want %d", c.l, c.n, got, c.k)
		}
	}
}
