package source

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// fastImport adds n commits on main to w with git fast-import, each
// changing one of 50 files in 5 directories.
func fastImport(b *testing.B, w *workRepo, n int) {
	b.Helper()
	var s bytes.Buffer
	for i := 1; i <= n; i++ {
		msg := fmt.Sprintf("commit %d", i)
		content := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  n: %q\n", i%50, fmt.Sprint(i))
		fmt.Fprintf(&s, "commit refs/heads/main\nmark :%d\ncommitter Test <test@example.com> %d +0000\ndata %d\n%s\n",
			i, 1767225600+i, len(msg), msg)
		if i > 1 {
			fmt.Fprintf(&s, "from :%d\n", i-1)
		}
		fmt.Fprintf(&s, "M 100644 inline apps/app%d/cm%d.yaml\ndata %d\n%s\n", i%5, i%50, len(content), content)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir, cmd.Env, cmd.Stdin = w.dir, gitEnv(w.dir), &s
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git fast-import: %v: %s", err, out)
	}
	w.git("reset", "-q", "--hard", "main")
}

// BenchmarkFetch measures, against one smart-HTTP server and a repository
// of 5,000 commits: a full clone into an empty cache, an incremental fetch
// after one new commit (and its ratio to the clone), and what a fetch of an
// unchanged remote transfers (expected: nothing).
func BenchmarkFetch(b *testing.B) {
	ctx := context.Background()
	root := b.TempDir()
	w := newWorkRepo(b, root, "fleet")
	fastImport(b, w, 5000)
	if got := w.git("rev-list", "--count", "main"); strings.TrimSpace(got) != "5000" {
		b.Fatalf("repository has %s commits", got)
	}
	srv := newGitHTTPServer(b, root, "", "", false)
	url := srv.URL + "/fleet"

	var full, incr time.Duration
	var cloneObjects, incrObjects, unchangedObjects, unchangedPack, unchangedWire int64
	n := 0
	for b.Loop() {
		opts := Options{CacheDir: b.TempDir()}
		start := time.Now()
		repo, err := Open(ctx, url, opts)
		if err != nil {
			b.Fatal(err)
		}
		full += time.Since(start)
		cloneObjects += repo.LastFetch().Objects

		want := w.commit(fmt.Sprintf("bench %d", n), map[string]string{"bench.txt": fmt.Sprint(n)})
		start = time.Now()
		rev, err := repo.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		incr += time.Since(start)
		if rev.Commit != want {
			b.Fatalf("incremental fetch got %s, want %s", rev.Commit, want)
		}
		incrObjects += repo.LastFetch().Objects

		wire := srv.packBytes.Load()
		if _, err := repo.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
		st := repo.LastFetch()
		unchangedObjects += st.Objects
		unchangedPack += st.PackBytes
		unchangedWire += srv.packBytes.Load() - wire
		repo.Close()
		n++
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(per(full), "clone-ms")
	b.ReportMetric(per(incr), "incremental-ms")
	b.ReportMetric(float64(incr)/float64(full), "incremental/clone")
	b.ReportMetric(float64(cloneObjects)/float64(n), "clone-objects")
	b.ReportMetric(float64(incrObjects)/float64(n), "incremental-objects")
	b.ReportMetric(float64(unchangedObjects)/float64(n), "unchanged-objects")
	b.ReportMetric(float64(unchangedPack)/float64(n), "unchanged-pack-bytes")
	b.ReportMetric(float64(unchangedWire)/float64(n), "unchanged-wire-bytes")
}
