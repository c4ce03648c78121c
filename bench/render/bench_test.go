package renderbench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/plan"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// Targets of issues 4 and 12, reported next to the measurements (never asserted).
const (
	targetSpeedup      = 80.0  // full render vs the process-per-render baseline
	targetSpeedupE2E   = 150.0 // `fleetsync render --out` as a process vs the baseline
	targetPeakRSSMB    = 200.0 // peak RSS of a full render
	targetRerenderPerc = 5.0   // re-render after one app change, % of a full render
	targetPlanRatio    = 2.5   // `fleetsync plan` of a one-app commit vs one full render
)

// fleetsyncBin is the fleetsync binary the end-to-end benchmarks run,
// built once per test process into binDir (removed by TestMain).
var (
	binDir       string
	fleetsyncBin = sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "fleetsync-bench-bin-")
		if err != nil {
			return "", err
		}
		binDir = dir
		return BuildFleetsync(context.Background(), dir)
	})
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary returns the fleetsync binary, or skips the benchmark.
func binary(b *testing.B) string {
	b.Helper()
	bin, err := fleetsyncBin()
	if err != nil {
		b.Skipf("no fleetsync binary: %v", err)
	}
	return bin
}

// commandStats sums the runs of a command over a benchmark's iterations.
type commandStats struct {
	n        int
	cpu, sys time.Duration
	maxRSS   int64
}

func (s *commandStats) add(p ProcessStats) {
	s.n++
	s.cpu += p.CPU
	s.sys += p.System
	s.maxRSS = max(s.maxRSS, p.MaxRSS)
}

func (s *commandStats) cpuPerOp() time.Duration { return s.cpu / time.Duration(max(s.n, 1)) }

// report adds the command's CPU time and peak RSS to the benchmark's metrics.
func (s *commandStats) report(b *testing.B) {
	b.ReportMetric(s.cpuPerOp().Seconds(), "cpu-s/op")
	b.ReportMetric((s.sys / time.Duration(max(s.n, 1))).Seconds(), "sys-s/op")
	if s.maxRSS > 0 {
		b.ReportMetric(mb(s.maxRSS), "peak-RSS-MB")
	}
}

// runCommand runs one fleetsync command and fails the benchmark on an error.
func runCommand(b *testing.B, dir, bin string, s *commandStats, args ...string) {
	b.Helper()
	p, err := RunProcess(b.Context(), dir, bin, args...)
	if err != nil {
		b.Fatal(err)
	}
	s.add(p)
}

// countFiles counts the regular files under dir.
func countFiles(tb testing.TB, dir string) int {
	tb.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// revision returns a fake commit sha, distinct per n.
func revision(n int) string { return fmt.Sprintf("%040x", n+1) }

// generateFleet writes the benchmark fleet into a temporary directory.
func generateFleet(tb testing.TB, spec Spec) *Fleet {
	tb.Helper()
	f, err := Generate(tb.TempDir(), spec)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// load reads the generated repo as revision rev.
func load(tb testing.TB, f *Fleet, rev string) *fleet.Repo {
	tb.Helper()
	repo, err := fleet.Load(context.Background(), os.DirFS(f.Dir))
	if err != nil {
		tb.Fatalf("load generated fleet: %v", err)
	}
	repo.Revision = rev
	return repo
}

// renderAll renders the whole fleet and fails on any pair error or a missing pair.
func renderAll(tb testing.TB, r *render.Renderer, repo *fleet.Repo, wantPairs int) *render.Result {
	tb.Helper()
	res := r.Render(context.Background(), repo, render.Selection{})
	if err := res.Err(); err != nil {
		tb.Fatalf("render: %v", err)
	}
	pairs := 0
	for _, c := range res.Clusters {
		pairs += len(c.Apps)
	}
	if pairs != wantPairs {
		tb.Fatalf("rendered %d pairs, want %d", pairs, wantPairs)
	}
	return res
}

func perOp(b *testing.B) time.Duration { return b.Elapsed() / time.Duration(max(b.N, 1)) }

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// BenchmarkRenderFleet renders the 60 x 20 fleet with a fresh Renderer and,
// in the same run, with one CLI process per (cluster, app) pair.
func BenchmarkRenderFleet(b *testing.B) {
	ctx := context.Background()
	f := generateFleet(b, DefaultSpec())
	repo := load(b, f, revision(0))

	var baseline, baselineCPU time.Duration
	b.Run("baseline=process-per-render", func(b *testing.B) {
		binDir, err := DefaultBinDir()
		if err != nil {
			b.Skip(err)
		}
		tools, err := BuildTools(ctx, binDir, Tools())
		if err != nil {
			b.Skipf("baseline CLIs unavailable: %v", err)
		}
		b.ResetTimer()
		var stats BaselineStats
		for range b.N {
			if stats, err = RunBaseline(ctx, f, tools, runtime.GOMAXPROCS(0)); err != nil {
				b.Fatal(err)
			}
		}
		baseline = perOp(b)
		baselineCPU = stats.CPU
		b.ReportMetric(float64(stats.Processes), "processes/op")
		b.ReportMetric(stats.CPU.Seconds(), "cpu-s/op")
		b.ReportMetric(mb(stats.MaxChildRSS), "max-child-RSS-MB")
	})

	var full, fullCPU time.Duration
	var peak int64
	b.Run("fleetsync", func(b *testing.B) {
		resetErr := ResetPeakRSS()
		var stats render.Stats
		cpu0, cpuErr := SelfCPU()
		for range b.N {
			stats = renderAll(b, render.New(render.Options{}), repo, len(f.Pairs)).Stats
		}
		full = perOp(b)
		if cpu1, err := SelfCPU(); err == nil && cpuErr == nil {
			fullCPU = (cpu1 - cpu0) / time.Duration(b.N)
			b.ReportMetric(fullCPU.Seconds(), "cpu-s/op")
		}
		b.ReportMetric(float64(stats.Rendered), "renders/op")
		if resetErr != nil {
			b.Logf("peak RSS includes the setup: %v", resetErr)
		}
		var err error
		if peak, err = PeakRSS(); err == nil {
			b.ReportMetric(mb(peak), "peak-RSS-MB")
		}
		if baseline > 0 {
			b.ReportMetric(float64(baseline)/float64(full), "x-faster-than-baseline")
		}
		if baselineCPU > 0 && fullCPU > 0 {
			b.ReportMetric(float64(baselineCPU)/float64(fullCPU), "x-less-cpu-than-baseline")
		}
	})

	// The whole command as a user runs it: start, load, render, serialise,
	// write OUT/<cluster>/<app>.yaml, exit. Each run writes a new directory
	// (removing the previous one would have the filesystem reclaim it while
	// the next run writes).
	var e2e, files time.Duration
	var e2eStats commandStats
	b.Run("command=render", func(b *testing.B) {
		bin := binary(b)
		outs := b.TempDir()
		var last string
		b.ResetTimer()
		for i := range b.N {
			last = filepath.Join(outs, strconv.Itoa(i))
			runCommand(b, f.Dir, bin, &e2eStats, "render", "--repo", f.Dir, "--out", last)
		}
		e2e = perOp(b)
		b.StopTimer()
		if got := countFiles(b, last); got != len(f.Pairs) {
			b.Fatalf("render --out wrote %d files, want %d", got, len(f.Pairs))
		}
		e2eStats.report(b)
		// The filesystem's share, measured right after: creating as many
		// empty files in as many new folders.
		if d, err := CreateFiles(filepath.Join(outs, "empty"), DefaultSpec().Clusters, DefaultSpec().Apps); err == nil {
			files = d
			b.ReportMetric(d.Seconds(), "create-empty-files-s")
		}
		if baseline > 0 {
			b.ReportMetric(float64(baseline)/float64(e2e), "x-vs-cli-e2e")
		}
		if baselineCPU > 0 {
			b.ReportMetric(float64(baselineCPU)/float64(e2eStats.cpuPerOp()), "x-less-cpu-than-baseline")
		}
	})
	// What any command costs before it does anything: starting the binary
	// (the init of the Helm, Kustomize and client-go packages).
	var help time.Duration
	b.Run("command=help", func(b *testing.B) {
		bin := binary(b)
		var st commandStats
		b.ResetTimer()
		for range b.N {
			runCommand(b, f.Dir, bin, &st, "--help")
		}
		help = perOp(b)
		st.report(b)
	})

	if full > 0 {
		msg := fmt.Sprintf("fleet %d clusters x %d apps = %d pairs; fleetsync full render %v, peak RSS %.0f MB (target < %.0f MB)",
			DefaultSpec().Clusters, DefaultSpec().Apps, len(f.Pairs), full.Round(time.Millisecond), mb(peak), targetPeakRSSMB)
		if baseline > 0 {
			msg += fmt.Sprintf("; baseline %v: %.1fx faster (target >= %.0fx)",
				baseline.Round(time.Millisecond), float64(baseline)/float64(full), targetSpeedup)
		}
		if baselineCPU > 0 && fullCPU > 0 {
			msg += fmt.Sprintf("; CPU time %v vs baseline %v: %.1fx less",
				fullCPU.Round(time.Millisecond), baselineCPU.Round(time.Millisecond), float64(baselineCPU)/float64(fullCPU))
		}
		// b.Log of a parent benchmark is not shown; this line is the summary.
		fmt.Println("SUMMARY", msg)
	}
	if e2e > 0 {
		msg := fmt.Sprintf("`fleetsync render --out` as a process: %v, CPU %v (system %v), peak RSS %.0f MB (target < %.0f MB); creating %d empty files %v; `fleetsync --help` %v",
			e2e.Round(time.Millisecond), e2eStats.cpuPerOp().Round(time.Millisecond), (e2eStats.sys / time.Duration(max(e2eStats.n, 1))).Round(time.Millisecond),
			mb(e2eStats.maxRSS), targetPeakRSSMB, len(f.Pairs), files.Round(time.Millisecond), help.Round(time.Millisecond))
		if baseline > 0 {
			msg += fmt.Sprintf("; baseline %v: %.1fx faster end to end (target >= %.0fx)",
				baseline.Round(time.Millisecond), float64(baseline)/float64(e2e), targetSpeedupE2E)
		}
		fmt.Println("SUMMARY", msg)
	}
}

// BenchmarkRerenderOneApp measures a full render, then a render with the
// same (warm) Renderer after one app changed, and reports the ratio. Both
// read the fleet from commits of a git repository, as the daemon does (a
// warm Renderer is the daemon's: one-shot commands start afresh).
func BenchmarkRerenderOneApp(b *testing.B) {
	gittest.SkipWithoutGit(b)
	f := generateFleet(b, DefaultSpec())
	gittest.Init(b, f.Dir)
	head := gittest.CommitAll(b, f.Dir, "fleet")
	src, err := source.Open(context.Background(), f.Dir, source.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	app := f.KustomizeApps[0]

	var full time.Duration
	b.Run("full", func(b *testing.B) {
		repo := loadCommit(b, src, head, revision(0))
		var cpu cpuMeter
		b.ResetTimer()
		for range b.N {
			cpu.start()
			renderAll(b, render.New(render.Options{}), repo, len(f.Pairs))
			cpu.stop()
		}
		full = perOp(b)
		cpu.report(b)
	})

	// The floor of any re-render: rendering just the changed app, on every
	// cluster, with a new Renderer (its three Kustomize builds, nothing
	// cached).
	var alone time.Duration
	b.Run("changed-app-alone", func(b *testing.B) {
		repo := loadCommit(b, src, head, revision(0))
		sel := render.Selection{Apps: []string{app}}
		b.ResetTimer()
		var stats render.Stats
		for range b.N {
			res := render.New(render.Options{}).Render(context.Background(), repo, sel)
			if err := res.Err(); err != nil {
				b.Fatal(err)
			}
			stats = res.Stats
		}
		alone = perOp(b)
		b.ReportMetric(float64(stats.Rendered), "renders/op")
		if full > 0 {
			b.ReportMetric(100*float64(alone)/float64(full), "%-of-full-render")
		}
	})

	var one, same time.Duration
	b.Run("one-app-changed", func(b *testing.B) {
		one = rerenderOneApp(b, f, src, app, "v9", revision, full)
	})
	// The same change with the revision kept (e.g. a render of a working
	// tree): the unchanged pairs need not even be re-stamped.
	b.Run("one-app-changed-same-revision", func(b *testing.B) {
		same = rerenderOneApp(b, f, src, app, "v8", func(int) string { return revision(0) }, full)
	})

	if full > 0 && same > 0 {
		fmt.Printf("SUMMARY re-render after changing %s, same revision: %v vs full render %v = %.1f%%\n",
			app, same.Round(time.Microsecond), full.Round(time.Millisecond), 100*float64(same)/float64(full))
	}
	if full > 0 && one > 0 {
		fmt.Printf("SUMMARY re-render after a commit changing %s: %v vs full render %v = %.1f%% (target <= %.0f%%); rendering %s alone from scratch (the floor) %v = %.1f%%\n",
			app, one.Round(time.Microsecond), full.Round(time.Millisecond), 100*float64(one)/float64(full), targetRerenderPerc,
			app, alone.Round(time.Microsecond), 100*float64(alone)/float64(full))
	}
}

// loadCommit reads the fleet at commit ref of src, as revision rev.
func loadCommit(tb testing.TB, src *source.Repo, ref, rev string) *fleet.Repo {
	tb.Helper()
	r, err := src.Open(context.Background(), ref)
	if err != nil {
		tb.Fatal(err)
	}
	repo, err := fleet.Load(context.Background(), r.FS)
	if err != nil {
		tb.Fatalf("load generated fleet at %s: %v", ref, err)
	}
	repo.Revision = rev
	return repo
}

// rerenderOneApp commits a change of one app's image tag per iteration and
// times the re-render of the whole fleet at that commit with a Renderer that
// has rendered the fleet before; rev gives the revision of iteration i+1 (0
// is the first render's).
func rerenderOneApp(b *testing.B, f *Fleet, src *source.Repo, app, tagPrefix string, rev func(int) string, full time.Duration) time.Duration {
	r := render.New(render.Options{})
	renderAll(b, r, loadCommit(b, src, gittest.Run(b, f.Dir, "rev-parse", "HEAD"), rev(0)), len(f.Pairs))
	var cpu cpuMeter
	var stats render.Stats
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		tag := fmt.Sprintf("%s.%d.0", tagPrefix, i)
		if err := f.SetImageTag(app, tag); err != nil {
			b.Fatal(err)
		}
		repo := loadCommit(b, src, gittest.CommitAll(b, f.Dir, tag), rev(i+1))
		b.StartTimer()
		cpu.start()
		res := renderAll(b, r, repo, len(f.Pairs))
		cpu.stop()
		b.StopTimer()
		checkImageTag(b, res, app, tag)
		stats = res.Stats
		b.StartTimer()
	}
	d := perOp(b)
	cpu.report(b)
	b.ReportMetric(float64(stats.Rendered), "renders/op")
	b.ReportMetric(float64(stats.Cached), "cached/op")
	b.ReportMetric(float64(stats.FilesRead), "files-read/op")
	if full > 0 {
		b.ReportMetric(100*float64(d)/float64(full), "%-of-full-render")
	}
	return d
}

// cpuMeter sums the CPU time of the process over the measured calls (less
// sensitive than wall time to what else the machine runs).
type cpuMeter struct {
	t0, sum time.Duration
	n       int
	err     error
}

func (m *cpuMeter) start() {
	var err error
	if m.t0, err = SelfCPU(); err != nil {
		m.err = err
	}
}

func (m *cpuMeter) stop() {
	t, err := SelfCPU()
	if err != nil {
		m.err = err
	}
	m.sum += t - m.t0
	m.n++
}

func (m *cpuMeter) report(b *testing.B) {
	if m.err == nil && m.n > 0 {
		b.ReportMetric(float64(m.sum.Microseconds())/1000/float64(m.n), "cpu-ms/op")
	}
}

// checkImageTag makes sure the changed app was rendered anew on every cluster
// (a stale cache entry would keep the old image).
func checkImageTag(tb testing.TB, res *render.Result, app, tag string) {
	tb.Helper()
	for _, c := range res.Clusters {
		ar := res.Get(c.Cluster, app)
		if ar == nil {
			tb.Fatalf("%s/%s not rendered", c.Cluster, app)
		}
		found := false
		for _, o := range ar.Objects {
			if o.GetKind() != "Deployment" {
				continue
			}
			found = true
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			want := fmt.Sprintf("registry.example/fleet/%s:%s", app, tag)
			if len(containers) == 0 || containers[0].(map[string]any)["image"] != want {
				tb.Fatalf("%s/%s: stale render, containers = %v, want image %s", c.Cluster, app, containers, want)
			}
		}
		if !found {
			tb.Fatalf("%s/%s: no Deployment rendered", c.Cluster, app)
		}
	}
}

// BenchmarkPlanOneAppChange plans a commit that changes one app of the
// generated fleet, reading both commits from a real git repository: with
// plan.FromRefs in-process (two loads, two renders with one Renderer, the
// diff) and as `fleetsync plan` processes, each against one full render
// measured the same way in the same run.
func BenchmarkPlanOneAppChange(b *testing.B) {
	gittest.SkipWithoutGit(b)
	ctx := context.Background()
	f := generateFleet(b, DefaultSpec())
	gittest.Init(b, f.Dir)
	gittest.CommitAll(b, f.Dir, "fleet")
	if err := f.SetImageTag(f.KustomizeApps[0], "v9.0.0"); err != nil {
		b.Fatal(err)
	}
	gittest.CommitAll(b, f.Dir, "one app")

	var render1, plan1 time.Duration
	b.Run("in-process/render", func(b *testing.B) {
		repo := load(b, f, revision(0))
		b.ResetTimer()
		for range b.N {
			renderAll(b, render.New(render.Options{}), repo, len(f.Pairs))
		}
		render1 = perOp(b)
	})
	b.Run("in-process/plan", func(b *testing.B) {
		src, err := source.Open(ctx, f.Dir, source.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer src.Close()
		var p *plan.Plan
		b.ResetTimer()
		for range b.N {
			if p, err = plan.FromRefs(ctx, src, "main~1", "main", render.New(render.Options{})); err != nil {
				b.Fatal(err)
			}
		}
		plan1 = perOp(b)
		b.StopTimer()
		if err := p.Err(); err != nil {
			b.Fatal(err)
		}
		if got, want := p.Summary.Changed, DefaultSpec().Clusters; got != want || len(p.Summary.AppsChanged) != 1 {
			b.Fatalf("plan changes %d objects of apps %v, want %d of one app", got, p.Summary.AppsChanged, want)
		}
		if render1 > 0 {
			b.ReportMetric(float64(plan1)/float64(render1), "x-full-render")
		}
	})

	var renderCmd, planCmd time.Duration
	var planStats commandStats
	b.Run("command=render", func(b *testing.B) {
		bin := binary(b)
		outs := b.TempDir()
		var st commandStats
		b.ResetTimer()
		for i := range b.N {
			runCommand(b, f.Dir, bin, &st, "render", "--repo", f.Dir, "--out", filepath.Join(outs, strconv.Itoa(i)))
		}
		renderCmd = perOp(b)
		st.report(b)
	})
	b.Run("command=plan", func(b *testing.B) {
		bin := binary(b)
		b.ResetTimer()
		for range b.N {
			runCommand(b, f.Dir, bin, &planStats, "plan", "--repo", f.Dir, "--base", "main~1", "--head", "main", "-o", "json")
		}
		planCmd = perOp(b)
		planStats.report(b)
		if renderCmd > 0 {
			b.ReportMetric(float64(planCmd)/float64(renderCmd), "x-full-render")
		}
	})

	if plan1 > 0 && render1 > 0 {
		fmt.Printf("SUMMARY plan of a one-app commit over %d pairs, in-process: %v = %.2fx a full render (%v; target <= %.1fx)\n",
			len(f.Pairs), plan1.Round(time.Millisecond), float64(plan1)/float64(render1), render1.Round(time.Millisecond), targetPlanRatio)
	}
	if planCmd > 0 && renderCmd > 0 {
		fmt.Printf("SUMMARY `fleetsync plan` of a one-app commit over %d pairs as a process: %v, peak RSS %.0f MB = %.2fx `fleetsync render --out` (%v; target <= %.1fx)\n",
			len(f.Pairs), planCmd.Round(time.Millisecond), mb(planStats.maxRSS), float64(planCmd)/float64(renderCmd), renderCmd.Round(time.Millisecond), targetPlanRatio)
	}
}
