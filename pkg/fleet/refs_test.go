package fleet_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

func TestExpandString(t *testing.T) {
	repo := &fleet.Repo{Fleet: &v1alpha1.Fleet{Spec: v1alpha1.FleetSpec{Values: v1alpha1.Values{"owner": "team", "limits": map[string]any{"cpu": "1"}}}}}
	c := &v1alpha1.Cluster{
		Metadata: v1alpha1.ObjectMeta{Name: "north", Labels: map[string]string{"region": "eu", "topology.kubernetes.io/zone": "eu-1a"}},
		Spec: v1alpha1.ClusterSpec{
			Values:   v1alpha1.Values{"replicas": int64(3), "limits": map[string]any{"mem": "1Gi"}, "on": true},
			Storage:  &v1alpha1.StorageSpec{Default: "ceph", Classes: map[string]string{"fast": "ceph-rbd"}},
			Registry: &v1alpha1.RegistrySpec{Mirror: "reg.north:5000/fleet"},
		},
	}
	f := fleet.FactsOf(repo, c)
	for _, tc := range []struct {
		in      string
		want    any
		wantErr string
	}{
		{in: "plain", want: "plain"},
		{in: "${HOME}/bin", want: "${HOME}/bin"},
		{in: "${cluster.name}", want: "north"},
		{in: "${cluster.labels.region}", want: "eu"},
		{in: "${cluster.labels.topology.kubernetes.io/zone}", want: "eu-1a"},
		{in: "${cluster.values.replicas}", want: int64(3)},
		{in: "${cluster.values.on}", want: true},
		{in: "x${cluster.values.replicas}", want: "x3"},
		{in: "${cluster.values.owner}", want: "team"},
		{in: "${cluster.values.limits}", want: map[string]any{"cpu": "1", "mem": "1Gi"}},
		{in: "${cluster.storage.default}", want: "ceph"},
		{in: "${cluster.storage.classes.fast}", want: "ceph-rbd"},
		{in: "${cluster.registry.mirror}/app", want: "reg.north:5000/fleet/app"},
		{in: "${cluster.name}-${cluster.labels.region}", want: "north-eu"},
		{in: "$${cluster.name}", want: "${cluster.name}"},
		{in: "${cluster.labels.tier:=web}", want: "web"},
		{in: "${cluster.values.max:=5}", want: 5},
		{in: "n-${cluster.values.max:=5}", want: "n-5"},
		{in: "${cluster.labels.tier}", wantErr: `${cluster.labels.tier}: cluster north has no label "tier"`},
		{in: "${cluster.values.replicas.x}", wantErr: "cluster north has no spec.values.replicas.x"},
		{in: "a ${cluster.values.limits}", wantErr: "is a map: only a string that is exactly the reference can take a map or a list"},
		{in: "${cluster.kubernetesVersion}", wantErr: "cluster north has no spec.kubernetesVersion"},
		{in: "${cluster.zone}", wantErr: "unknown cluster fact"},
		{in: "${cluster.zone:=x}", wantErr: "unknown cluster fact"},
		{in: "${cluster.name", wantErr: "no closing }"},
	} {
		got, err := f.ExpandString(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, d)
		}
	}
}
