package rollout

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// FuzzDecide drives Decide with arbitrary facts for a two-wave rollout of
// four clusters and checks what must hold whatever the clusters say: no
// panic; a cluster is never both applied and rolled back; nothing of wave 2
// is applied before every wave-1 cluster is healthy on the target (past its
// soak); a cluster holding the target is never applied it again; a rollback
// goes to a revision other than the target; every cluster has one status.
func FuzzDecide(f *testing.F) {
	f.Add(uint64(0), uint64(0), uint8(0), true, uint16(30))
	f.Add(uint64(0x0123456789abcdef), uint64(0xfedcba9876543210), uint8(3), false, uint16(0))
	f.Add(^uint64(0), uint64(42), uint8(255), true, uint16(600))
	f.Fuzz(func(t *testing.T, a, b uint64, soak uint8, autoRollback bool, timeout uint16) {
		now := time.Unix(1_800_000_000, 0)
		clusters := []string{"c1", "c2", "c3", "c4"}
		in := Input{
			App: "app", Target: "t",
			Strategy: Strategy{
				Waves:         []Wave{{Clusters: clusters[:1], SoakTime: time.Duration(soak) * time.Second}, {Clusters: clusters[1:], MaxFailures: int(b % 3), MaxConcurrent: Limit{Count: int(b>>8) % 4}}},
				HealthTimeout: time.Duration(timeout) * time.Second,
				AutoRollback:  autoRollback,
			},
			Digests: map[string]string{},
			Facts:   map[string]Facts{},
			Now:     now,
		}
		healths := []Health{Healthy, Progressing, Failed, Unknown}
		for i, c := range clusters {
			bits := a >> (16 * i)
			in.Digests[c] = "d-" + c
			fc := Facts{Cluster: c, Reachable: bits&1 == 0, Blocked: bits&2 != 0, Health: healths[(bits>>2)&3]}
			switch (bits >> 4) & 3 {
			case 0: // never applied
			case 1:
				fc.Applied = Revision{Revision: "t", Digest: in.Digests[c]}
			case 2:
				fc.Applied = Revision{Revision: "old", Digest: "d-old-" + c}
			case 3:
				fc.Applied = Revision{Revision: "other", Digest: "d-other"}
			}
			fc.AppliedAt = now.Add(-time.Duration((bits>>6)&0xff) * time.Second)
			fc.HealthySince = now.Add(-time.Duration((bits>>14)&0x3) * 20 * time.Second)
			if bits&(1<<7) != 0 {
				fc.LastHealthy = &Revision{Revision: "old", Digest: "d-old-" + c}
			}
			if (b>>uint(i))&1 != 0 {
				fc.Holds = []Hold{{Revision: "t", Digest: in.Digests[c], Reason: "failed before", Time: now.Add(-time.Hour)}}
			}
			in.Facts[c] = fc
		}
		p := Decide(in)
		if len(p.Clusters) != len(clusters) {
			t.Fatalf("%d statuses for %d clusters: %+v", len(p.Clusters), len(clusters), p.Clusters)
		}
		rolled := map[string]bool{}
		for _, rb := range p.RollBack {
			rolled[rb.Cluster] = true
			if rb.To.Digest == in.Digests[rb.Cluster] {
				t.Fatalf("rollback of %s to the target itself: %+v", rb.Cluster, rb)
			}
		}
		for _, c := range p.Apply {
			if rolled[c] {
				t.Fatalf("%s both applied and rolled back: %+v", c, p)
			}
			if fc := in.Facts[c]; !fc.Reachable {
				t.Fatalf("applied on unreachable %s: %+v", c, p)
			}
			for _, h := range in.Facts[c].Holds {
				if h.Digest == in.Digests[c] {
					t.Fatalf("applied %s the target it holds: %+v", c, p)
				}
			}
		}
		wave1 := in.Facts["c1"]
		wave1Done := wave1.Reachable && wave1.Applied.Digest == in.Digests["c1"] && wave1.Health == Healthy &&
			!now.Before(wave1.HealthySince.Add(in.Strategy.Waves[0].SoakTime))
		for _, c := range p.Apply {
			if slices.Contains(clusters[1:], c) && !wave1Done {
				t.Fatalf("wave 2 (%s) applied before the canary passed: facts %s, plan %+v", c, fmt.Sprint(wave1), p)
			}
		}
	})
}
