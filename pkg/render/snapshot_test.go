package render

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// TestSnapshotReusesUnchangedObjects takes snapshots of two commits of a
// real git repository: the second reads only the files whose object id
// changed, and is identical to a snapshot taken from scratch; a folder with
// a symlink to a changed file is read again although its own tree is the
// same.
func TestSnapshotReusesUnchangedObjects(t *testing.T) {
	gittest.SkipWithoutGit(t)
	dir := t.TempDir()
	gittest.Init(t, dir)
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("fleet.yaml", "fleet\n")
	write("apps/a/base/deployment.yaml", "image: a:v1\n")
	write("apps/a/base/kustomization.yaml", "resources: [deployment.yaml]\n")
	write("apps/b/base/deployment.yaml", "image: b:v1\n")
	write("shared/settings", "one\n")
	if err := os.Symlink("../../shared/settings", filepath.Join(dir, "apps/b/settings")); err != nil {
		t.Fatal(err)
	}
	first := gittest.CommitAll(t, dir, "one")
	write("apps/a/base/deployment.yaml", "image: a:v2\n")
	write("shared/settings", "two\n")
	second := gittest.CommitAll(t, dir, "two")

	ctx := context.Background()
	src, err := source.Open(ctx, dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	snapshotAt := func(ref string, prev *snapshot) *snapshot {
		t.Helper()
		rev, err := src.Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		s, err := takeSnapshot(rev.FS, prev)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	one := snapshotAt(first, nil)
	if one.reused != 0 {
		t.Fatalf("a snapshot without a previous one reused %d files", one.reused)
	}
	_ = one.digest("apps/b/base/deployment.yaml")
	two := snapshotAt(second, one)
	fresh := snapshotAt(second, nil)
	if !maps.EqualFunc(two.files, fresh.files, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("reusing snapshot differs from a fresh one:\n%v\n%v", two.files, fresh.files)
	}
	if !maps.EqualFunc(two.dirs, fresh.dirs, slices.Equal) {
		t.Fatalf("folders differ: %v vs %v", two.dirs, fresh.dirs)
	}
	if got := string(two.files["apps/b/settings"]); got != "two\n" {
		t.Fatalf("the symlinked file reads %q from the old snapshot, want the new content", got)
	}
	// Reused: fleet.yaml, a's kustomization.yaml and b's deployment.yaml;
	// read: a's deployment.yaml, shared/settings and b's symlink.
	if two.reused != 3 {
		t.Fatalf("reused %d files, want 3", two.reused)
	}
	if d, ok := two.digests["apps/b/base/deployment.yaml"]; !ok || d != one.digest("apps/b/base/deployment.yaml") {
		t.Fatalf("the digest of an unchanged file was not carried over")
	}
	if two.digest("apps/a/base/deployment.yaml") == one.digest("apps/a/base/deployment.yaml") {
		t.Fatal("a changed file kept its old digest")
	}
}
