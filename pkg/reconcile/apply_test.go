package reconcile_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/internal/testtree"
	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/cluster"
	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

const neverReady = `apiVersion: apps/v1
kind: Deployment
metadata: {name: NAME, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: NAME}}
  template:
    metadata:
      labels: {app: NAME}
      annotations: {localfleet.fleetsync.dev/never-ready: "true"}
    spec: {containers: [{name: c, image: example.invalid/never:1}]}
`

func TestApplySkipsFailedRender(t *testing.T) {
	// A pair whose render failed is neither applied nor pruned, its dependents
	// wait (with the reason), and other pairs go on.
	e := newEnv(t)
	repo := fleetRepo("f", app("good", e.ns, true), app("bad", e.ns, true), app("needs-bad", e.ns, false, "bad"))
	e.mustApply(t, "north", apply.Request{App: "bad", Fleet: "f", Objects: configMaps(t, e.ns, "cm-0", "cm-1"), Prune: true})
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {
		{App: "bad", Err: errors.New("north/bad: kustomize build: boom")},
		{App: "good", Objects: configMaps(t, e.ns, "good")},
		{App: "needs-bad", Objects: configMaps(t, e.ns, "needs-bad")},
	}})
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	if res.OK() {
		t.Fatal("OK with a failed render")
	}
	if p := outcome(t, res, "north", "bad"); p.Err == nil || p.ChangeSet != nil || !strings.Contains(p.Err.Error(), "boom") {
		t.Fatalf("bad: %+v", p)
	}
	if p := outcome(t, res, "north", "good"); p.Err != nil || !p.Healthy {
		t.Fatalf("good: %+v", p)
	}
	if p := outcome(t, res, "north", "needs-bad"); p.Err == nil || p.ChangeSet != nil {
		t.Fatalf("needs-bad: %+v", p)
	}
	for _, n := range []string{"cm-0", "cm-1"} {
		if !e.exists(t, "north", n) {
			t.Fatalf("%s of the failed pair was pruned", n)
		}
	}
}

func TestApplyWaveStopsAtFailingCanary(t *testing.T) {
	e := newEnv(t)
	a := app("canary", e.ns, false)
	a.Spec.Rollout = &v1alpha1.Rollout{Waves: []v1alpha1.Wave{
		{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "north"}}},
		{ClusterSelector: &metav1.LabelSelector{}},
	}}
	repo := fleetRepo("f", a)
	bad := objs(t, e.ns, "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: %[1]s}\nspec: {ports: [{port: 70000}]}\n")
	d := desired(repo, []string{"north", "south"}, map[string][]render.AppResult{
		"north": {{App: "canary", Objects: bad}}, "south": {{App: "canary", Objects: bad}},
	})
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	if n := outcome(t, res, "north", "canary"); n.Wave != 0 || n.ChangeSet == nil || n.ErrorKind != apply.ErrPermanent {
		t.Fatalf("north: %+v", n)
	}
	s := outcome(t, res, "south", "canary")
	var re *reconcile.RolloutError
	if s.Wave != 1 || s.ChangeSet != nil || !errors.As(s.Err, &re) || re.State != rollout.StateHeld || !strings.Contains(s.Error, "wave 1 failed") {
		t.Fatalf("south: %+v", s)
	}
	if len(res.Rollouts) != 1 || res.Rollouts[0].Phase != rollout.PhaseHalted {
		t.Fatalf("rollout: %+v", res.Rollouts)
	}
}

// Removing one app of three from the repo uninstalls it; an app that does not
// prune is forgotten with its objects left; another fleet's app is untouched.
func TestRemovedAppIsUninstalled(t *testing.T) {
	e := newEnv(t)
	e.mustApply(t, "north", apply.Request{App: "old", Fleet: "f", Objects: configMaps(t, e.ns, "old-0", "old-1"), Prune: true})
	e.mustApply(t, "north", apply.Request{App: "kept", Fleet: "f", Objects: configMaps(t, e.ns, "kept")})
	e.mustApply(t, "north", apply.Request{App: "cur", Fleet: "f", Objects: configMaps(t, e.ns, "cur")})
	e.mustApply(t, "north", apply.Request{App: "stays", Fleet: "f", Objects: configMaps(t, e.ns, "stays")})
	e.mustApply(t, "north", apply.Request{App: "foreign", Fleet: "another-fleet", Prune: true, Objects: configMaps(t, e.ns, "foreign")})
	repo := fleetRepo("f", app("cur", e.ns, false), app("stays", e.ns, false))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {
		{App: "cur", Objects: configMaps(t, e.ns, "cur")}, {App: "stays", Objects: configMaps(t, e.ns, "stays")},
	}})

	// diff first: it says what apply will do.
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
	var sawOld bool
	for _, p := range diff.Pairs {
		if p.App == "old" {
			sawOld = true
			if !p.Removed || p.Report.Count(drift.Extra) != 2 || !p.Report.Objects[0].Prune {
				t.Fatalf("diff of the removed app: %+v", p.Report)
			}
		}
		if p.App == "foreign" {
			t.Fatalf("diff lists another fleet's app: %+v", p)
		}
	}
	if !sawOld || !diff.Drifted() {
		t.Fatalf("diff does not show the removed app: %+v", diff.Pairs)
	}

	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	if !res.OK() {
		t.Fatalf("not OK: %+v", res.Pairs)
	}
	if o := outcome(t, res, "north", "old"); !o.Removed || o.ChangeSet.Count(apply.Pruned) != 2 {
		t.Fatalf("old: %+v", o)
	}
	if e.exists(t, "north", "old-0") || e.exists(t, "north", "old-1") {
		t.Fatal("objects of the removed app are still there")
	}
	if o := outcome(t, res, "north", "kept"); o.ChangeSet.Count(apply.Skipped) != 1 || !e.exists(t, "north", "kept") {
		t.Fatalf("kept (no prune): %+v", o)
	}
	for _, a := range []string{"old", "kept"} {
		if inv, err := e.m["north"].Inventory(ctxT(t), a); err != nil || inv != nil {
			t.Fatalf("inventory of %s: %+v %v", a, inv, err)
		}
	}
	if !e.exists(t, "north", "foreign") {
		t.Fatal("another fleet's object deleted")
	}
	if diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{}); diff.Drifted() || diff.Failed() {
		t.Fatalf("diff after apply: %+v", diff.Pairs)
	}
}

// More than half of a cluster's apps gone at once (a truncated repo) is refused
// as a whole, and diff says so; --allow-mass-prune removes them.
func TestMassRemovalRefused(t *testing.T) {
	e := newEnv(t)
	for _, a := range []string{"a", "b", "c"} {
		e.mustApply(t, "north", apply.Request{App: a, Fleet: "f", Objects: configMaps(t, e.ns, a), Prune: true})
	}
	repo := fleetRepo("f", app("a", e.ns, true))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {{App: "a", Objects: configMaps(t, e.ns, "a")}}})
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
	for _, p := range diff.Pairs {
		if p.Removed && (p.Note == "" || p.Report.Objects[0].Prune) {
			t.Fatalf("diff of a refused removal: %+v", p)
		}
	}
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	var mre *reconcile.MassRemovalError
	if o := outcome(t, res, "north", "b"); !errors.As(o.Err, &mre) || o.ErrorKind != apply.ErrPermanent {
		t.Fatalf("b: %+v", o)
	}
	if !e.exists(t, "north", "b") || !e.exists(t, "north", "c") {
		t.Fatal("a refused removal deleted objects")
	}
	res = e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute, AllowMassPrune: true})
	if !res.OK() || e.exists(t, "north", "b") || e.exists(t, "north", "c") {
		t.Fatalf("with AllowMassPrune: %+v", res.Pairs)
	}
}

// An app that stays but loses more than half of its objects is refused.
func TestAppLosingMostObjectsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustApply(t, "north", apply.Request{App: "a", Fleet: "f", Objects: configMaps(t, e.ns, "a0", "a1", "a2"), Prune: true})
	repo := fleetRepo("f", app("a", e.ns, true))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {{App: "a", Objects: configMaps(t, e.ns, "a0")}}})
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	var mpe *apply.MassPruneError
	if o := outcome(t, res, "north", "a"); !errors.As(o.Err, &mpe) {
		t.Fatalf("a: %+v", o)
	}
	if !e.exists(t, "north", "a1") || !e.exists(t, "north", "a2") {
		t.Fatal("mass prune happened")
	}
}

// Nothing is pruned or removed on a cluster where any pair failed to render:
// an object moving to the app that failed would otherwise be lost.
func TestNoPruneOrRemovalOnClusterWithRenderFailure(t *testing.T) {
	e := newEnv(t)
	e.mustApply(t, "north", apply.Request{App: "a", Fleet: "f", Objects: configMaps(t, e.ns, "a0", "moving"), Prune: true})
	e.mustApply(t, "north", apply.Request{App: "gone", Fleet: "f", Objects: configMaps(t, e.ns, "gone"), Prune: true})
	repo := fleetRepo("f", app("a", e.ns, true), app("b", e.ns, true))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {
		{App: "a", Objects: configMaps(t, e.ns, "a0")},
		{App: "b", Err: errors.New("north/b: render failed on purpose")},
	}})
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
	for _, p := range diff.Pairs {
		if p.App == "gone" {
			t.Fatalf("diff lists a removal on a cluster with a render failure: %+v", p)
		}
		if p.App == "a" && (p.Report.Count(drift.Extra) != 1 || p.Report.Objects[1].Prune || p.Note == "") {
			t.Fatalf("diff of a: %+v %+v", p, p.Report)
		}
	}
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute, AllowMassPrune: true})
	if res.OK() {
		t.Fatal("OK although b failed to render")
	}
	if !e.exists(t, "north", "moving") || !e.exists(t, "north", "gone") {
		t.Fatal("pruned or removed on a cluster where a pair failed to render")
	}
}

// A repo without fleet.yaml owns the inventories it wrote without a fleet
// name: diff lists a removed app and apply removes it (they used to disagree).
func TestUnnamedFleetRemovesItsApps(t *testing.T) {
	e := newEnv(t)
	e.mustApply(t, "north", apply.Request{App: "x", Objects: configMaps(t, e.ns, "cm-x"), Prune: true})
	e.mustApply(t, "north", apply.Request{App: "y", Objects: configMaps(t, e.ns, "cm-y"), Prune: true})
	e.mustApply(t, "north", apply.Request{App: "named", Fleet: "f", Objects: configMaps(t, e.ns, "named"), Prune: true})
	repo := fleetRepo("", app("y", e.ns, true))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {{App: "y", Objects: configMaps(t, e.ns, "cm-y")}}})
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
	var listed []string
	for _, p := range diff.Pairs {
		if p.Removed {
			listed = append(listed, p.App)
		}
	}
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	var removed []string
	for _, p := range res.Pairs {
		if p.Removed && p.Err == nil {
			removed = append(removed, p.App)
		}
	}
	if strings.Join(listed, ",") != "x" || strings.Join(removed, ",") != "x" {
		t.Fatalf("diff lists %v as removed, apply removed %v; want x for both", listed, removed)
	}
	if e.exists(t, "north", "cm-x") || !e.exists(t, "north", "named") {
		t.Fatal("wrong objects removed")
	}
}

// Drift correction goes through the same request as apply: the inventory
// keeps its fleet name and prune setting, so the app can still be uninstalled.
func TestDriftCorrectionKeepsTheInventory(t *testing.T) {
	e := newEnv(t)
	a, other := app("fix", e.ns, true), app("other", e.ns, true)
	a.Spec.Drift = v1alpha1.DriftCorrect
	repo := fleetRepo("f", a, other)
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {
		{App: "fix", Objects: configMaps(t, e.ns, "fix")}, {App: "other", Objects: configMaps(t, e.ns, "other")},
	}})
	if res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute}); !res.OK() {
		t.Fatalf("apply: %+v", res.Pairs)
	}
	patch := []byte(`{"data":{"k":"changed"}}`)
	if _, err := e.dyn["north"].Resource(cmGVR).Namespace(e.ns).Patch(ctxT(t), "fix", "application/merge-patch+json", patch, metav1.PatchOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{Correct: true})
	var corrected bool
	for _, p := range diff.Pairs {
		if p.App == "fix" {
			corrected = p.Corrected != nil && p.Corrected.Count(apply.Configured) == 1
		}
	}
	if !corrected {
		t.Fatalf("not corrected: %+v", diff.Pairs)
	}
	inv, err := e.m["north"].Inventory(ctxT(t), "fix")
	if err != nil || inv.Fleet != "f" || !inv.Prune || inv.Revision != "r1" {
		t.Fatalf("inventory after correction: %+v %v", inv, err)
	}
	d2 := desired(fleetRepo("f", other), []string{"north"}, map[string][]render.AppResult{"north": {{App: "other", Objects: configMaps(t, e.ns, "other")}}})
	if res := e.rec.Apply(ctxT(t), d2, reconcile.RequestOptions{Timeout: time.Minute}); !res.OK() || e.exists(t, "north", "fix") {
		t.Fatalf("the corrected app could not be uninstalled: %+v", res.Pairs)
	}
}

// A cancelled run is cancelled, never unhealthy; a dependency's reason is kept.
func TestCancelIsNotUnhealthyAndDependencyReasonKept(t *testing.T) {
	e := newEnv(t)
	repo := fleetRepo("f", app("slow", e.ns, false), app("after", e.ns, false, "slow"))
	d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {
		{App: "slow", Objects: objs(t, e.ns, strings.ReplaceAll(neverReady, "NAME", "slow"))},
		{App: "after", Objects: configMaps(t, e.ns, "after")},
	}})
	res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: 2 * time.Second, TimeoutOverrides: true})
	slow, after := outcome(t, res, "north", "slow"), outcome(t, res, "north", "after")
	if slow.ErrorKind != apply.ErrUnhealthy || !errors.Is(slow.Err, apply.ErrUnhealthy) {
		t.Fatalf("slow: %+v", slow)
	}
	if !strings.Contains(after.Error, "dependency slow") || !strings.Contains(after.Error, "not healthy after 2s") || !strings.Contains(after.Error, "Deployment/") {
		t.Fatalf("after lost the dependency's reason: %s", after.Error)
	}

	ctx, cancel := context.WithCancel(ctxT(t))
	time.AfterFunc(2*time.Second, cancel)
	res = e.rec.Apply(ctx, d, reconcile.RequestOptions{Timeout: time.Minute, TimeoutOverrides: true})
	slow, after = outcome(t, res, "north", "slow"), outcome(t, res, "north", "after")
	if slow.ErrorKind != apply.ErrCanceled || errors.Is(slow.Err, apply.ErrUnhealthy) {
		t.Fatalf("cancelled wait reads as %s: %v", slow.ErrorKind, slow.Err)
	}
	if after.ErrorKind != apply.ErrCanceled {
		t.Fatalf("dependent of a cancelled app: %s: %v", after.ErrorKind, after.Err)
	}
}

// A cluster down at the first connection is retried and, once back, reconciled
// by the next run with the same Pool: the failure is never remembered.
func TestClusterDownAtFirstConnectionThenBack(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // down: connection refused
	cfg := *e.cfg["south"]
	cfg.Host = "https://" + addr
	c, err := cluster.New("south", &cfg, cluster.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := apply.DefaultOptions()
	opts.InventoryNamespace = e.ns
	m := apply.NewManager(c, opts)
	dials := 0
	pool := reconcile.NewPool(func(context.Context, string) (*apply.Manager, error) { dials++; return m, nil },
		reconcile.PoolOptions{Attempts: 2, Backoff: 10 * time.Millisecond})
	rec := reconcile.New(pool, render.New(render.Options{}), reconcile.Options{})
	repo := fleetRepo("f", app("a", e.ns, false))
	d := desired(repo, []string{"south"}, map[string][]render.AppResult{"south": {{App: "a", Objects: configMaps(t, e.ns, "a")}}})
	res := rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	o := outcome(t, res, "south", "a")
	var ce *reconcile.ClusterError
	if !errors.As(o.Err, &ce) || o.ErrorKind != apply.ErrTransient || dials != 2 {
		t.Fatalf("down cluster: %+v (dials %d)", o, dials)
	}
	stop := proxy(t, addr, strings.TrimPrefix(e.cfg["south"].Host, "https://"))
	defer stop()
	res = rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: time.Minute})
	if !res.OK() || !e.exists(t, "south", "a") {
		t.Fatalf("after the cluster came back: %+v", res.Pairs)
	}
}

// proxy forwards TCP from addr to target until stopped.
func proxy(t *testing.T, addr, target string) func() {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				out, err := net.Dial("tcp", target)
				if err != nil {
					_ = in.Close()
					return
				}
				go func() { _, _ = copyConn(out, in) }()
				_, _ = copyConn(in, out)
			}()
		}
	}()
	return func() { _ = l.Close() }
}

func copyConn(dst, src net.Conn) (int64, error) {
	defer func() { _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

// Helm renders with what the connected cluster serves: an API that only a
// CRD on the cluster provides is in .Capabilities.APIVersions (offline it is not).
func TestDesiredUsesLiveAPIVersions(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	files := map[string]string{
		"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
		"apps/caps/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: caps}\nspec:\n  namespace: " + e.ns +
			"\n  source: {helm: {chart: ./chart}}\n  targets: {clusterSelector: {matchLabels: {env: prod}}}\n",
		"apps/caps/chart/Chart.yaml":          "apiVersion: v2\nname: caps\nversion: 0.1.0\n",
		"apps/caps/chart/templates/caps.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caps}\ndata:\n  machineDeployments: {{ .Capabilities.APIVersions.Has \"cluster.x-k8s.io/v1beta1/MachineDeployment\" | quote }}\n",
	}
	testtree.Write(t, dir, files)
	repo, err := fleet.Load(ctxT(t), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	value := func(res *render.Result) string {
		p := res.Get("north", "caps")
		if p == nil || p.Err != nil {
			t.Fatalf("north/caps: %+v", p)
		}
		for _, o := range p.Objects {
			if o.GetKind() == "ConfigMap" {
				v, _, _ := unstructured.NestedString(o.Object, "data", "machineDeployments")
				return v
			}
		}
		t.Fatalf("north/caps: no ConfigMap in %d objects", len(p.Objects))
		return ""
	}
	d, err := e.rec.Desired(ctxT(t), repo, []string{"north"})
	if err != nil {
		t.Fatal(err)
	}
	if got := value(d.Rendered); got != "true" {
		t.Fatalf("connected render: machineDeployments = %q, want true", got)
	}
	if got := value(render.New(render.Options{}).Render(ctxT(t), repo, render.Selection{})); got != "false" {
		t.Fatalf("offline render: machineDeployments = %q, want false", got)
	}
}
