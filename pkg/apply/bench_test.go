package apply_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

// benchObjects is n objects: half ConfigMaps, half Deployments (0 replicas, so
// the measure is the apply path, not the scheduler).
func benchObjects(n int) string {
	var b strings.Builder
	for i := range n / 2 {
		fmt.Fprintf(&b, `apiVersion: v1
kind: ConfigMap
metadata: {name: cm-%[1]d, namespace: %%[1]s, labels: {fleetsync.dev/app: bench}}
data: {index: "%[1]d", payload: "some configuration value %[1]d"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: deploy-%[1]d, namespace: %%[1]s, labels: {fleetsync.dev/app: bench}}
spec:
  replicas: 0
  selector: {matchLabels: {app: deploy-%[1]d}}
  template:
    metadata: {labels: {app: deploy-%[1]d}}
    spec:
      containers:
      - name: app
        image: registry.example/app:v1
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 10m, memory: 16Mi}}
---
`, i)
	}
	return b.String()
}

// BenchmarkApply1000 applies 1,000 objects to one local cluster and re-applies
// them unchanged, with fleetsync's Manager and with kubectl apply --server-side
// (the baseline, same files, same run), and reports times, request counts and
// the ratios fleetsync/kubectl. Run with -benchtime=1x.
func BenchmarkApply1000(b *testing.B) {
	const n = 1000
	f := testfleet.Get(b)
	lf, err := fleet.Load(f.Dir)
	if err != nil {
		b.Fatal(err)
	}
	kubectl := filepath.Join(lf.BinDir, fleet.BinKubectl)
	for range b.N {
		// fleetsync
		e := newEnvQPS(b, cluster.DefaultQPS, cluster.DefaultBurst) // fleetsync's defaults
		desired := objs(b, e.ns, benchObjects(n))
		req := apply.Request{App: "bench", Revision: "r1", Objects: desired}
		e.cnt.reset()
		start := time.Now()
		cs, err := e.m.Apply(ctxT(b), req)
		first := time.Since(start)
		if err != nil || cs.Count(apply.Created) != n {
			b.Fatalf("first apply: %d created, %v", cs.Count(apply.Created), err)
		}
		firstReq, firstWrites := e.cnt.total.Load(), e.cnt.writes.Load()
		e.cnt.reset()
		start = time.Now()
		cs, err = e.m.Apply(ctxT(b), req)
		noop := time.Since(start)
		if err != nil || cs.Count(apply.Unchanged) != n {
			b.Fatalf("no-op apply: %d unchanged, %v", cs.Count(apply.Unchanged), err)
		}
		noopReq, noopWrites := e.cnt.total.Load(), e.cnt.writes.Load()

		// kubectl, same objects in a namespace of its own
		kns := f.Namespace(b, "north")
		file := filepath.Join(b.TempDir(), "objects.yaml")
		if err := os.WriteFile(file, []byte(fmt.Sprintf(benchObjects(n), kns)), 0o644); err != nil {
			b.Fatal(err)
		}
		run := func() time.Duration {
			cmd := exec.CommandContext(ctxT(b), kubectl, "--kubeconfig", f.Kubeconfig("north"), "apply", "--server-side", "--field-manager", "kubectl-bench", "-f", file)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("kubectl: %v\n%s", err, out)
			}
			return time.Since(start)
		}
		kFirst := run()
		kNoop := run()

		b.ReportMetric(first.Seconds(), "first-s")
		b.ReportMetric(noop.Seconds(), "noop-s")
		b.ReportMetric(kFirst.Seconds(), "kubectl-first-s")
		b.ReportMetric(kNoop.Seconds(), "kubectl-noop-s")
		b.ReportMetric(first.Seconds()/kFirst.Seconds(), "first/kubectl")
		b.ReportMetric(noop.Seconds()/kNoop.Seconds(), "noop/kubectl")
		b.ReportMetric(float64(firstReq), "first-requests")
		b.ReportMetric(float64(firstWrites), "first-writes")
		b.ReportMetric(float64(noopReq), "noop-requests")
		b.ReportMetric(float64(noopWrites), "noop-writes")
		if noopWrites != 0 {
			b.Errorf("no-op re-apply made %d writes", noopWrites)
		}
	}
}
