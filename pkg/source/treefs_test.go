package source

import (
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"
)

func TestTreeFS(t *testing.T) {
	w := newWorkRepo(t, t.TempDir(), "fleet")
	w.commit("one", map[string]string{
		"fleet.yaml":              "kind: Fleet\n",
		"clusters/north.yaml":     "kind: Cluster\n",
		"apps/mes/app.yaml":       "kind: App\n",
		"apps/mes/base/k.yaml":    "resources: []\n",
		"apps/mes/link.yaml":      "@link:app.yaml",
		"apps/mes/baselink":       "@link:base",
		"apps/web/shared.yaml":    "@link:../mes/app.yaml",
		"apps/web/chain.yaml":     "@link:shared.yaml",
		"apps/evil/escape.yaml":   "@link:../../../etc/passwd",
		"apps/evil/absolute.yaml": "@link:/etc/passwd",
		"apps/evil/loop":          "@link:loop",
	})
	w.git("update-index", "--chmod=+x", "fleet.yaml")
	w.git("commit", "-q", "-m", "exec bit")
	head := w.head()

	repo := mustOpen(t, "file://"+w.dir, testOptions(t))
	rev := mustRev(t, repo, "main")
	if rev.Commit != head {
		t.Fatalf("Commit = %s, want %s", rev.Commit, head)
	}
	fsys := rev.FS.(*TreeFS)

	// The well-behaved part passes the standard fs conformance test.
	sub, err := fs.Sub(fsys, "apps/mes")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "app.yaml", "base/k.yaml", "link.yaml"); err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string]string{
		"fleet.yaml":               "kind: Fleet\n",
		"apps/mes/link.yaml":       "kind: App\n",
		"apps/web/shared.yaml":     "kind: App\n",
		"apps/web/chain.yaml":      "kind: App\n",
		"apps/mes/baselink/k.yaml": "resources: []\n",
	} {
		if got := readString(t, rev, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	target, err := fs.ReadLink(fsys, "apps/web/shared.yaml")
	if err != nil || target != "../mes/app.yaml" {
		t.Errorf("ReadLink = %q, %v", target, err)
	}
	if _, err := fs.ReadLink(fsys, "fleet.yaml"); err == nil {
		t.Error("ReadLink of a regular file succeeded")
	}
	li, err := fs.Lstat(fsys, "apps/evil/escape.yaml")
	if err != nil || li.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat escape.yaml = %v, %v; want a symlink", li, err)
	}
	for _, name := range []string{"apps/evil/escape.yaml", "apps/evil/absolute.yaml"} {
		if _, err := fs.ReadFile(fsys, name); !errors.Is(err, ErrSymlinkEscape) {
			t.Errorf("ReadFile(%s) error = %v, want ErrSymlinkEscape", name, err)
		}
		if _, err := fsys.Open(name); !errors.Is(err, ErrSymlinkEscape) {
			t.Errorf("Open(%s) error = %v, want ErrSymlinkEscape", name, err)
		}
	}
	if _, err := fs.ReadFile(fsys, "apps/evil/loop"); err == nil {
		t.Error("symlink loop read succeeded")
	}
	if _, err := fs.Stat(fsys, "nope.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(nope) error = %v, want ErrNotExist", err)
	}
	if _, err := fsys.Open("../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(../x) error = %v, want ErrInvalid", err)
	}

	st, err := fs.Stat(fsys, "fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o755 || st.Size() != int64(len("kind: Fleet\n")) {
		t.Errorf("fleet.yaml mode %v size %d", st.Mode(), st.Size())
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !st.ModTime().Equal(want) {
		t.Errorf("ModTime = %v, want commit time %v", st.ModTime(), want)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := names, []string{"apps", "clusters", "fleet.yaml"}; !equalStrings(got, want) {
		t.Errorf("ReadDir(.) = %v, want %v", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
