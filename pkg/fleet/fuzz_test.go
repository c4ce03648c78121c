package fleet_test

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// FuzzLoad feeds archives of fleet repos (see parseArchive) to Load: whatever
// the input, Load must not panic, and must return either a Repo or Problems.
func FuzzLoad(f *testing.F) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "invalid", "*"))
	if err != nil {
		f.Fatal(err)
	}
	dirs = append(dirs, filepath.Join("testdata", "valid"))
	for _, dir := range dirs {
		f.Add(formatArchive(archiveFS(f, dir)))
	}
	f.Add([]byte("-- apps/a/base -> ../../apps/a/base --\n-- apps/a/app.yaml --\napiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: a}\nspec: {source: {kustomize: {path: base}}, targets: {clusterSelector: {}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		repo, err := fleet.Load(context.Background(), parseArchive(data))
		var probs fleet.Problems
		switch {
		case err == nil && repo == nil:
			t.Fatal("Load returned neither a Repo nor an error")
		case err != nil && !errors.As(err, &probs):
			t.Fatalf("Load error is not Problems: %v", err)
		case err != nil && len(probs) == 0:
			t.Fatal("Load returned empty Problems")
		}
	})
}

// formatArchive writes a MapFS as an archive: each file is a "-- name --" line
// followed by its content; a symlink is "-- name -> target --" with no content.
func formatArchive(m fstest.MapFS) []byte {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		if m[name].Mode&fs.ModeSymlink != 0 {
			b.WriteString("-- " + name + " -> " + string(m[name].Data) + " --\n")
			continue
		}
		b.WriteString("-- " + name + " --\n")
		b.Write(m[name].Data)
	}
	return []byte(b.String())
}

// parseArchive reads what formatArchive writes; invalid names are skipped.
func parseArchive(data []byte) fstest.MapFS {
	m := fstest.MapFS{}
	var cur *fstest.MapFile
	for line := range strings.Lines(string(data)) {
		header := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(header, "-- ") && strings.HasSuffix(header, " --") && len(header) >= 6 {
			name := header[3 : len(header)-3]
			cur = nil
			if name, target, ok := strings.Cut(name, " -> "); ok {
				if fs.ValidPath(name) && name != "." {
					m[name] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink}
				}
				continue
			}
			if fs.ValidPath(name) && name != "." && path.Clean(name) == name {
				cur = &fstest.MapFile{}
				m[name] = cur
			}
			continue
		}
		if cur != nil {
			cur.Data = append(cur.Data, line...)
		}
	}
	return m
}

func TestArchiveRoundTrip(t *testing.T) {
	want := archiveFS(t, filepath.Join("testdata", "valid"))
	want["apps/web/link"] = &fstest.MapFile{Data: []byte("base"), Mode: fs.ModeSymlink}
	got := parseArchive(formatArchive(want))
	if len(got) != len(want) {
		t.Fatalf("round trip: %d files, want %d", len(got), len(want))
	}
	for name, w := range want {
		if g := got[name]; g == nil || string(g.Data) != string(w.Data) || g.Mode != w.Mode {
			t.Errorf("round trip of %s: got %+v, want %+v", name, g, w)
		}
	}
	if _, err := fleet.Load(context.Background(), got); err != nil {
		t.Errorf("Load of the round-tripped valid repo: %v", err)
	}
}
