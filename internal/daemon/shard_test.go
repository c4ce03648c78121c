package daemon

import (
	"fmt"
	"testing"
)

// Every cluster gets exactly one replica; a replica joining takes clusters
// only for itself and one leaving gives up only its own: the others keep
// theirs.
func TestRendezvous(t *testing.T) {
	var clusters []string
	for i := range 600 {
		clusters = append(clusters, fmt.Sprintf("c%03d", i))
	}
	owners := func(members []string) map[string]string {
		m := map[string]string{}
		for _, c := range clusters {
			m[c] = Rendezvous(members, c)
		}
		return m
	}
	three := owners([]string{"a", "b", "c"})
	count := map[string]int{}
	for _, o := range three {
		count[o]++
	}
	for _, m := range []string{"a", "b", "c"} {
		if n := count[m]; n < 150 || n > 250 {
			t.Errorf("replica %s got %d of 600 clusters, want about 200", m, n)
		}
	}
	four := owners([]string{"a", "b", "c", "d"})
	for _, c := range clusters {
		if four[c] != three[c] && four[c] != "d" {
			t.Errorf("%s moved from %s to %s when d joined", c, three[c], four[c])
		}
	}
	two := owners([]string{"a", "c"})
	for _, c := range clusters {
		if three[c] != "b" && two[c] != three[c] {
			t.Errorf("%s moved from %s to %s when b left", c, three[c], two[c])
		}
	}
	if got := Rendezvous(nil, "c000"); got != "" {
		t.Errorf("no replicas: got %q", got)
	}
	for _, tc := range []struct{ in, prefix string }{
		{"north", "fleetsync-cluster-north-"},
		{"Prod_EU/1", "fleetsync-cluster-prod-eu-1-"},
	} {
		if got := ClusterLeaseName(tc.in); len(got) > 63 || got[:len(tc.prefix)] != tc.prefix {
			t.Errorf("ClusterLeaseName(%q) = %q", tc.in, got)
		}
	}
}
