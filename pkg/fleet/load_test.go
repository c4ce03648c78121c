package fleet_test

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*/want.txt from the loader's output")

// TestLoadInvalid loads every repo under testdata/invalid and compares the
// problems with the case's want.txt, one problem a line.
func TestLoadInvalid(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "invalid", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 20 {
		t.Fatalf("found %d invalid cases, want at least 20", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			repo, err := fleet.Load(context.Background(), os.DirFS(dir))
			if err == nil {
				t.Fatalf("Load succeeded with %d clusters, want problems", len(repo.Clusters))
			}
			var probs fleet.Problems
			if !errors.As(err, &probs) {
				t.Fatalf("Load error %v is not Problems", err)
			}
			got := err.Error() + "\n"
			wantFile := filepath.Join(dir, "want.txt")
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadValid(t *testing.T) {
	repo, err := fleet.Load(context.Background(), os.DirFS(filepath.Join("testdata", "valid")))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	names := func(n int, name func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = name(i)
		}
		return out
	}
	got := map[string][]string{
		"clusters": names(len(repo.Clusters), func(i int) string { return repo.Clusters[i].Metadata.Name }),
		"apps":     names(len(repo.Apps), func(i int) string { return repo.Apps[i].Metadata.Name }),
		"policies": names(len(repo.ScalePolicies), func(i int) string { return repo.ScalePolicies[i].Metadata.Name }),
	}
	want := map[string][]string{
		"clusters": {"north", "south"},
		"apps":     {"api", "metrics", "web"},
		"policies": {"promo-scale-policy"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if repo.Fleet == nil || repo.Fleet.Spec.HealthTimeout.String() != "3m0s" || repo.Fleet.Spec.Values["org"] != "example" {
		t.Errorf("fleet.yaml decoded as %+v", repo.Fleet)
	}
	web := repo.App("web")
	if got := web.Spec.Customizations[1].Patches[0].Patch; !strings.Contains(got, "value: 5") {
		t.Errorf("web patch = %q", got)
	}
	if got := web.Spec.Rollout.HealthTimeout.String(); got != "5m0s" {
		t.Errorf("web healthTimeout = %s", got)
	}
	if got := repo.ScalePolicies[0].Spec.Trigger.Threshold; got != 70 {
		t.Errorf("threshold = %d", got)
	}
	if got := repo.Cluster("north").Spec.Values["replicas"]; got != int64(3) {
		t.Errorf("north values.replicas = %#v, want 3", got)
	}
	if got := repo.TargetClusters(repo.App("metrics")); len(got) != 2 {
		t.Errorf("metrics targets %d clusters, want 2", len(got))
	}
}

func TestLoadExampleFleet(t *testing.T) {
	repo, err := fleet.Load(context.Background(), os.DirFS(filepath.Join("..", "..", "examples", "fleet-repo")))
	if err != nil {
		t.Fatalf("Load examples/fleet-repo: %v", err)
	}
	if len(repo.Clusters) < 3 || len(repo.Apps) < 3 || len(repo.ScalePolicies) < 1 {
		t.Errorf("example fleet: %d clusters, %d apps, %d policies", len(repo.Clusters), len(repo.Apps), len(repo.ScalePolicies))
	}
}

// TestLoadFS covers what testdata on disk cannot hold portably: symlinks in an
// in-memory FS, and a cancelled context.
func TestLoadFS(t *testing.T) {
	valid := archiveFS(t, filepath.Join("testdata", "valid"))
	tests := []struct {
		name   string
		change func(fstest.MapFS)
		want   string
	}{
		{
			name: "symlink inside the repo",
			change: func(m fstest.MapFS) {
				m["shared/base/kustomization.yaml"] = m["apps/web/base/kustomization.yaml"]
				m["shared/base/deployment.yaml"] = m["apps/web/base/deployment.yaml"]
				delete(m, "apps/web/base/kustomization.yaml")
				delete(m, "apps/web/base/deployment.yaml")
				m["apps/web/base"] = &fstest.MapFile{Data: []byte("../../shared/base"), Mode: fs.ModeSymlink}
			},
		},
		{
			name: "chained symlinks leaving the repo",
			change: func(m fstest.MapFS) {
				m["apps/api/values-prod.yaml"] = &fstest.MapFile{Data: []byte("../../link"), Mode: fs.ModeSymlink}
				m["link"] = &fstest.MapFile{Data: []byte("../secret.yaml"), Mode: fs.ModeSymlink}
			},
			want: `apps/api/app.yaml:11: spec.source.helm.valuesFiles[0]: "values-prod.yaml": symlink link -> ../secret.yaml leaves the repo`,
		},
		{
			name: "cluster file symlinked out of the repo",
			change: func(m fstest.MapFS) {
				m["clusters/east.yaml"] = &fstest.MapFile{Data: []byte("../../etc/east.yaml"), Mode: fs.ModeSymlink}
			},
			want: `clusters/east.yaml: symlink clusters/east.yaml -> ../../etc/east.yaml leaves the repo`,
		},
		{
			name: "symlink loop",
			change: func(m fstest.MapFS) {
				m["clusters/south.yaml"] = &fstest.MapFile{Data: []byte("south.yaml"), Mode: fs.ModeSymlink}
			},
			want: `clusters/south.yaml: too many levels of symbolic links at clusters/south.yaml`,
		},
		{
			name: "absolute symlink",
			change: func(m fstest.MapFS) {
				m["apps/api/chart"] = &fstest.MapFile{Data: []byte("/charts/api"), Mode: fs.ModeSymlink}
			},
			want: `apps/api/app.yaml:9: spec.source.helm.chart: "./chart": symlink apps/api/chart -> /charts/api leaves the repo`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fstest.MapFS{}
			for k, v := range valid {
				m[k] = v
			}
			tt.change(m)
			_, err := fleet.Load(context.Background(), m)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Load error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fleet.Load(ctx, valid); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    fleet.Problem
		want string
	}{
		{fleet.Problem{File: "apps/mes/app.yaml", Line: 14, Field: "spec.source", Message: "exactly one of kustomize or helm must be set"},
			"apps/mes/app.yaml:14: spec.source: exactly one of kustomize or helm must be set"},
		{fleet.Problem{File: "clusters/a.yml", Message: "rename it"}, "clusters/a.yml: rename it"},
		{fleet.Problem{File: "x.yaml", Line: 2, Message: "invalid YAML"}, "x.yaml:2: invalid YAML"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// archiveFS reads a directory into a MapFS (regular files only).
func archiveFS(t testing.TB, dir string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		m[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPosition(t *testing.T) {
	repo, err := fleet.Load(context.Background(), os.DirFS(filepath.Join("testdata", "valid")))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		obj      any
		field    string
		wantFile string
		wantLine int
	}{
		{repo.App("api"), "spec.source.helm.valuesFiles[0]", "apps/api/app.yaml", 11},
		{repo.App("api"), "spec.source.helm.nothere", "apps/api/app.yaml", 8},
		{repo.App("web"), "", "apps/web/app.yaml", 1},
		{repo.Cluster("north"), "spec.nodePools[0].machineDeployment", "clusters/north.yaml", 20},
		{repo.ScalePolicies[0], "spec.workloads[0].maxReplicas", "policies/promo.yaml", 9},
		{repo.Fleet, "spec.healthTimeout", "fleet.yaml", 7},
	}
	for _, tt := range tests {
		file, line := repo.Position(tt.obj, tt.field)
		if file != tt.wantFile || line != tt.wantLine {
			t.Errorf("Position(%s) = %s:%d, want %s:%d", tt.field, file, line, tt.wantFile, tt.wantLine)
		}
	}
	var empty fleet.Repo
	if file, line := empty.Position(repo.App("web"), "spec"); file != "apps/web/app.yaml" || line != 0 {
		t.Errorf("Position on a Repo not from Load = %s:%d", file, line)
	}
}
