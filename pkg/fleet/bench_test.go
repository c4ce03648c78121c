package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// bigFleet builds a valid repo of n clusters and m kustomize apps, each app
// depending on the previous one, with one policy per app.
func bigFleet(n, m int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := range n {
		name := fmt.Sprintf("c%04d", i)
		fsys["clusters/"+name+".yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: fleetsync.dev/v1alpha1
kind: Cluster
metadata:
  name: %s
  labels: {env: prod, region: r%d, storage: ceph}
spec:
  storage: {default: ceph-rbd, classes: {fast: ceph-rbd}}
  registry: {mirror: registry.%s.example:5000/fleet}
  nodePools:
    - {name: worker-pool, machineDeployment: {namespace: default, name: %s-workers}}
`, name, i%4, name, name)}
	}
	for j := range m {
		name := fmt.Sprintf("app%03d", j)
		deps := "[]"
		if j > 0 {
			deps = fmt.Sprintf("[app%03d]", j-1)
		}
		fsys["apps/"+name+"/app.yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: %s}
spec:
  namespace: %s
  source: {kustomize: {path: base}}
  targets: {clusterSelector: {matchLabels: {env: prod}}}
  customizations:
    - clusterSelector: {matchLabels: {region: r1}}
      patches: [{target: {kind: Deployment}, patch: "- {op: replace, path: /spec/replicas, value: 3}"}]
  dependsOn: %s
  rollout:
    waves: [{clusterSelector: {matchLabels: {region: r0}}}, {clusterSelector: {}}]
`, name, name, deps)}
		fsys["apps/"+name+"/base/kustomization.yaml"] = &fstest.MapFile{Data: []byte("resources: [deployment.yaml]\n")}
		fsys["policies/"+name+".yaml"] = &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: fleetsync.dev/v1alpha1
kind: ScalePolicy
metadata: {name: %s}
spec:
  targets: {clusterSelector: {matchLabels: {region: r%d}}}
  trigger: {metric: cpu, threshold: 70, duration: 5m}
  workloads: [{app: %s, kind: Deployment, name: web, minReplicas: 2, maxReplicas: 10}]
`, name, j%4, name)}
	}
	return fsys
}

func BenchmarkLoad(b *testing.B) {
	for _, size := range []struct{ clusters, apps int }{{10, 10}, {200, 50}} {
		fsys := bigFleet(size.clusters, size.apps)
		b.Run(fmt.Sprintf("clusters=%d/apps=%d", size.clusters, size.apps), func(b *testing.B) {
			for b.Loop() {
				if _, err := fleet.Load(context.Background(), fsys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBigFleetLoads keeps the benchmark's generated fleet valid.
func TestBigFleetLoads(t *testing.T) {
	repo, err := fleet.Load(context.Background(), bigFleet(8, 5))
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Clusters) != 8 || len(repo.Apps) != 5 || len(repo.ScalePolicies) != 5 {
		t.Errorf("loaded %d clusters, %d apps, %d policies", len(repo.Clusters), len(repo.Apps), len(repo.ScalePolicies))
	}
}
