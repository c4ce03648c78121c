package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRefs(t *testing.T) {
	w := newWorkRepo(t, t.TempDir(), "fleet")
	first := w.commit("first", map[string]string{"v.txt": "1"})
	w.git("tag", "light")
	w.git("tag", "-a", "v1", "-m", "release 1")
	second := w.commit("second", map[string]string{"v.txt": "2"})
	w.git("branch", "feature", first)
	w.git("tag", "-a", "nested", "-m", "tag of a tag", "v1")

	repo := mustOpen(t, "file://"+w.dir, testOptions(t))
	cases := []struct {
		ref, commit, name string
	}{
		{"", second, "refs/heads/main"},
		{"HEAD", second, "refs/heads/main"},
		{"main", second, "refs/heads/main"},
		{"origin/main", second, "refs/heads/main"},
		{"refs/heads/main", second, "refs/heads/main"},
		{"feature", first, "refs/heads/feature"},
		{"light", first, "refs/tags/light"},
		{"v1", first, "refs/tags/v1"},
		{"nested", first, "refs/tags/nested"},
		{first, first, first},
		{second[:8], second, second[:8]},
		{"main~1", first, "main~1"},
	}
	for _, c := range cases {
		rev, err := repo.Open(context.Background(), c.ref)
		if err != nil {
			t.Errorf("Open(%q): %v", c.ref, err)
			continue
		}
		if rev.Commit != c.commit || rev.Ref != c.name {
			t.Errorf("Open(%q) = %s %s, want %s %s", c.ref, rev.Commit, rev.Ref, c.commit, c.name)
		}
		want := map[string]string{first: "1", second: "2"}[c.commit]
		if got := readString(t, rev, "v.txt"); got != want {
			t.Errorf("Open(%q): v.txt = %q, want %q", c.ref, got, want)
		}
	}
	for _, ref := range []string{"nope", "refs/heads/nope", strings.Repeat("a", 40), "deadbeef"} {
		_, err := repo.Open(context.Background(), ref)
		var nf *RefNotFoundError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &nf) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Open(%q) error = %v, want ref-not-found naming the ref", ref, err)
		}
		t.Logf("error: %v", err)
	}
}

func TestLocalDirectories(t *testing.T) {
	ctx := context.Background()
	w := newWorkRepo(t, t.TempDir(), "fleet")
	base := w.commit("base", map[string]string{"fleet.yaml": "base\n"})
	head := w.commit("head", map[string]string{"fleet.yaml": "head\n", "sub/x.yaml": "x\n"})
	// Uncommitted change: only the working tree shows it.
	if err := os.WriteFile(filepath.Join(w.dir, "fleet.yaml"), []byte("dirty\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	rev, repo, err := Resolve(ctx, w.dir, "main~1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if rev.Commit != base || readString(t, rev, "fleet.yaml") != "base\n" {
		t.Errorf("main~1 = %s %q", rev.Commit, readString(t, rev, "fleet.yaml"))
	}
	headRev := mustRev(t, repo, "HEAD")
	if headRev.Commit != head || readString(t, headRev, "fleet.yaml") != "head\n" {
		t.Errorf("HEAD = %s %q", headRev.Commit, readString(t, headRev, "fleet.yaml"))
	}
	// A subdirectory of the repository finds the repository.
	if _, _, err := Resolve(ctx, filepath.Join(w.dir, "sub"), "HEAD", Options{}); err != nil {
		t.Errorf("Resolve from a subdirectory: %v", err)
	}
	work := mustRev(t, repo, "")
	if work.Commit != "" || readString(t, work, "fleet.yaml") != "dirty\n" {
		t.Errorf("working tree = %q %q", work.Commit, readString(t, work, "fleet.yaml"))
	}

	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "fleet.yaml"), []byte("plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(plain, "escape.yaml")); err != nil {
		t.Fatal(err)
	}
	prev, prepo, err := Resolve(ctx, plain, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer prepo.Close()
	if prev.Commit != "" || readString(t, prev, "fleet.yaml") != "plain\n" {
		t.Errorf("plain dir = %q", prev.Commit)
	}
	if _, err := fs.ReadFile(prev.FS, "escape.yaml"); err == nil {
		t.Error("plain dir: symlink out of the directory was followed")
	}
	if target, err := fs.ReadLink(prev.FS, "escape.yaml"); err != nil || target != "/etc/passwd" {
		t.Errorf("plain dir ReadLink = %q, %v", target, err)
	}
	if _, _, err := Resolve(ctx, filepath.Join(plain, "missing"), "", Options{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing directory: error = %v, want ErrNotFound", err)
	}
	if _, _, err := Resolve(ctx, plain, "main", Options{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"main"`) {
		t.Errorf("plain dir with a ref: error = %v", err)
	}
}

func TestIncrementalFetchAndForcePush(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	c1 := w.commit("c1", map[string]string{"a.txt": "1"})
	c2 := w.commit("c2", map[string]string{"a.txt": "2"})
	srv := newGitHTTPServer(t, root, "", "", false)
	url := srv.URL + "/fleet"
	opts := testOptions(t)

	repo := mustOpen(t, url, opts)
	if st := repo.LastFetch(); st.UpToDate || st.Objects == 0 {
		t.Errorf("first fetch stats = %+v, want objects downloaded", st)
	}
	rev, err := repo.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := repo.LastFetch(); !st.UpToDate || st.Objects != 0 || st.PackBytes != 0 {
		t.Errorf("unchanged fetch stats = %+v, want up to date and nothing downloaded", st)
	}
	if rev.Commit != c2 {
		t.Fatalf("head = %s, want %s", rev.Commit, c2)
	}

	c3 := w.commit("c3", map[string]string{"b.txt": "3"})
	rev3, err := repo.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := repo.LastFetch(); rev3.Commit != c3 || st.UpToDate || st.Objects == 0 || st.Objects > 10 {
		t.Errorf("after one commit: head %s (want %s), stats %+v: want a small incremental fetch", rev3.Commit, c3, st)
	}

	// Force-push: history rewritten from c1.
	w.git("reset", "-q", "--hard", c1)
	c4 := w.commit("c4 rewritten", map[string]string{"a.txt": "4"})
	rev4, err := repo.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch after force-push: %v", err)
	}
	if rev4.Commit != c4 || readString(t, rev4, "a.txt") != "4" {
		t.Errorf("after force-push head = %s, want %s", rev4.Commit, c4)
	}
	// Revisions opened before stay readable, and so do the old commits.
	if readString(t, rev3, "b.txt") != "3" || readString(t, mustRev(t, repo, c3), "b.txt") != "3" {
		t.Error("old revision unreadable after force-push")
	}

	// A second handle on the same cache sees the same mirror without cloning.
	again := mustOpen(t, url, opts)
	if st := again.LastFetch(); !st.UpToDate {
		t.Errorf("second handle stats = %+v, want up to date", st)
	}
}

func TestCorruptCacheIsRecloned(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"a.txt": "1"})
	srv := newGitHTTPServer(t, root, "", "", false)
	opts := testOptions(t)
	url := srv.URL + "/fleet"
	first := mustOpen(t, url, opts)

	packs, err := filepath.Glob(filepath.Join(first.dir, "objects", "pack", "*"))
	if err != nil || len(packs) == 0 {
		t.Fatalf("no packfiles in the cache: %v", err)
	}
	for _, p := range packs {
		if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := mustOpen(t, url, opts)
	if st := repo.LastFetch(); !st.Recloned {
		t.Errorf("stats = %+v, want Recloned", st)
	}
	if rev := mustRev(t, repo, ""); rev.Commit != head || readString(t, rev, "a.txt") != "1" {
		t.Errorf("after re-clone head = %s", rev.Commit)
	}
}

func TestConcurrentUsersOfOneCache(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	head := w.commit("c1", map[string]string{"a.txt": "1"})
	srv := newGitHTTPServer(t, root, "", "", false)
	opts := testOptions(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			rev, repo, err := Resolve(context.Background(), srv.URL+"/fleet", "", opts)
			if err == nil {
				defer repo.Close()
				if rev.Commit != head {
					err = errors.New("wrong head " + rev.Commit)
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Two daemons sharing one cache directory (two replicas on one machine):
// when one has fetched a new commit, the other's fetch finds the remote up
// to date, and must still read the commit from the packfile the first one
// wrote (its opened store had listed the packfiles before).
func TestUserOfSharedCacheSeesOthersFetch(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	w.commit("c1", map[string]string{"a.txt": "1"})
	srv := newGitHTTPServer(t, root, "", "", false)
	opts := testOptions(t)
	a, b := mustOpen(t, srv.URL+"/fleet", opts), mustOpen(t, srv.URL+"/fleet", opts)
	for _, r := range []*Repo{a, b} {
		if _, err := r.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c2 := w.commit("c2", map[string]string{"a.txt": "2"})
	if rev, err := a.Fetch(ctx); err != nil || rev.Commit != c2 {
		t.Fatalf("first user: %v, %+v", err, rev)
	}
	rev, err := b.Fetch(ctx)
	if err != nil || rev.Commit != c2 {
		t.Fatalf("second user after the first fetched %s: %v, %+v", c2, err, rev)
	}
	if got := readString(t, rev, "a.txt"); got != "2" {
		t.Errorf("second user reads a.txt = %q at %s, want 2", got, c2)
	}
	if st := b.LastFetch(); !st.UpToDate {
		t.Errorf("second user's fetch stats = %+v: want up to date (the first one fetched)", st)
	}
}

func TestLockWaitsForOtherUser(t *testing.T) {
	dir := t.TempDir()
	held, err := acquireLock(context.Background(), filepath.Join(dir, "x.lock"), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := acquireLock(ctx, filepath.Join(dir, "x.lock"), false)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("lock while held: error = %v, want context.Canceled", err)
	}
	if err := held.release(); err != nil {
		t.Fatal(err)
	}
	l, err := acquireLock(context.Background(), filepath.Join(dir, "x.lock"), false)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = l.release()
}

func TestRefsFetchedOnDemand(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	base := w.commit("base", map[string]string{"a.txt": "base"})
	w.git("checkout", "-q", "-b", "pr")
	pr1 := w.commit("pr", map[string]string{"a.txt": "pr1"})
	w.git("update-ref", "refs/pull/1/head", pr1)
	w.git("checkout", "-q", "main")
	w.git("branch", "-D", "pr")
	srv := newGitHTTPServer(t, root, "", "", false)
	repo := mustOpen(t, srv.URL+"/fleet", testOptions(t))

	if rev := mustRev(t, repo, "refs/pull/1/head"); rev.Commit != pr1 || readString(t, rev, "a.txt") != "pr1" {
		t.Errorf("refs/pull/1/head = %s, want %s", rev.Commit, pr1)
	}
	w.git("checkout", "-q", "--detach", pr1)
	pr2 := w.commit("pr update", map[string]string{"a.txt": "pr2"})
	w.git("update-ref", "refs/pull/1/head", pr2)
	w.git("checkout", "-q", "main")
	if rev := mustRev(t, repo, "refs/pull/1/head"); rev.Commit != pr2 {
		t.Errorf("updated refs/pull/1/head = %s, want %s", rev.Commit, pr2)
	}
	if rev := mustRev(t, repo, "main"); rev.Commit != base {
		t.Errorf("main = %s, want %s", rev.Commit, base)
	}
	_, err := repo.Open(context.Background(), "refs/pull/2/head")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "refs/pull/2/head") {
		t.Errorf("missing PR ref: error = %v, want not found naming it", err)
	}

	// A commit on no ref at all, by SHA: refused unless the server allows it.
	w.git("checkout", "-q", "--detach", pr2)
	loose := w.commit("unreferenced", map[string]string{"a.txt": "loose"})
	w.git("checkout", "-q", "main")
	w.git("update-ref", "refs/keep/loose", loose) // kept by the server, outside the mirrored refs
	if _, err := repo.Open(context.Background(), loose); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), loose) {
		t.Errorf("SHA not allowed by the server: error = %v, want not found naming it", err)
	}
	w.git("config", "uploadpack.allowAnySHA1InWant", "true")
	if rev := mustRev(t, repo, loose); rev.Commit != loose || readString(t, rev, "a.txt") != "loose" {
		t.Errorf("SHA fetched on demand = %s, want %s", rev.Commit, loose)
	}
}

func TestConcurrentReadsDuringFetch(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	w.commit("c1", map[string]string{"a/x.yaml": "x", "a/y.yaml": "y", "b.yaml": "b"})
	srv := newGitHTTPServer(t, root, "", "", false)
	repo := mustOpen(t, srv.URL+"/fleet", testOptions(t))
	rev := mustRev(t, repo, "main")
	next := w.commit("c2", map[string]string{"b.yaml": "b2"})

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if err := fs.WalkDir(rev.FS, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					_, err = fs.ReadFile(rev.FS, p)
					return err
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		got, err := repo.Fetch(context.Background())
		if err == nil && got.Commit != next {
			err = errors.New("fetch got " + got.Commit)
		}
		if err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHelperProcessFetch is not a test: TestTwoProcessesShareCache runs the
// test binary with it to fetch from a second process.
func TestHelperProcessFetch(t *testing.T) {
	url, cache := os.Getenv("FLEETSYNC_SOURCE_HELPER_URL"), os.Getenv("FLEETSYNC_SOURCE_HELPER_CACHE")
	if url == "" {
		t.Skip("helper process only")
	}
	rev, repo, err := Resolve(context.Background(), url, "", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	fmt.Println("HEAD=" + rev.Commit + "=" + readString(t, rev, "a.txt"))
}

func TestTwoProcessesShareCache(t *testing.T) {
	root := t.TempDir()
	w := newWorkRepo(t, root, "fleet")
	for i := range 20 {
		w.commit(fmt.Sprint(i), map[string]string{"a.txt": fmt.Sprint(i), fmt.Sprintf("f%d.txt", i): "x"})
	}
	head := w.head()
	srv := newGitHTTPServer(t, root, "", "", false)
	cache := t.TempDir()
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessFetch$", "-test.v")
			cmd.Env = append(os.Environ(), "FLEETSYNC_SOURCE_HELPER_URL="+srv.URL+"/fleet", "FLEETSYNC_SOURCE_HELPER_CACHE="+cache)
			outs[i], errs[i] = cmd.CombinedOutput()
		})
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !strings.Contains(string(outs[i]), "HEAD="+head+"=19") {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	// Both used one mirror.
	entries, err := filepath.Glob(filepath.Join(cache, "*"))
	if err != nil || len(entries) != 2 { // the mirror and its lock file
		t.Errorf("cache holds %v, want one mirror and its lock", entries)
	}
}
