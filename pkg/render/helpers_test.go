package render

import (
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// loadRepo loads a fleet repo directory with the real loader.
func loadRepo(t testing.TB, dir string) *fleet.Repo {
	t.Helper()
	repo, err := fleet.Load(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return repo
}

// looseRepo decodes a fleet repo without validation, for cases the loader
// rejects on purpose (the renderer must still report them well).
func looseRepo(t testing.TB, dir string) *fleet.Repo {
	t.Helper()
	fsys := os.DirFS(dir)
	repo := &fleet.Repo{FS: fsys}
	read := func(p string, v any) {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := fs.Stat(fsys, "fleet.yaml"); err == nil {
		repo.Fleet = &v1alpha1.Fleet{}
		read("fleet.yaml", repo.Fleet)
	}
	files, _ := fs.Glob(fsys, "clusters/*.yaml")
	for _, f := range files {
		c := &v1alpha1.Cluster{}
		read(f, c)
		repo.Clusters = append(repo.Clusters, c)
	}
	files, _ = fs.Glob(fsys, "apps/*/app.yaml")
	for _, f := range files {
		a := &v1alpha1.App{}
		read(f, a)
		repo.Apps = append(repo.Apps, a)
	}
	files, _ = fs.Glob(fsys, "policies/*.yaml")
	for _, f := range files {
		p := &v1alpha1.ScalePolicy{}
		read(f, p)
		repo.ScalePolicies = append(repo.ScalePolicies, p)
	}
	sort.Slice(repo.Clusters, func(i, j int) bool { return repo.Clusters[i].Metadata.Name < repo.Clusters[j].Metadata.Name })
	sort.Slice(repo.Apps, func(i, j int) bool { return repo.Apps[i].Metadata.Name < repo.Apps[j].Metadata.Name })
	sort.Slice(repo.ScalePolicies, func(i, j int) bool {
		return repo.ScalePolicies[i].Metadata.Name < repo.ScalePolicies[j].Metadata.Name
	})
	return repo
}

// outputs turns a Result into files: <cluster>/<app>.yaml for rendered
// pairs, <cluster>/<app>.err holding the error for failed ones.
func outputs(t testing.TB, res *Result) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				out[path.Join(c.Cluster, a.App+".err")] = a.Err.Error() + "\n"
				continue
			}
			b, err := YAML(a.Objects)
			if err != nil {
				t.Fatal(err)
			}
			out[path.Join(c.Cluster, a.App+".yaml")] = string(b)
		}
	}
	return out
}

// readTree reads every file under dir, keyed by slash path relative to dir.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTree replaces dir with the given files.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for p, s := range files {
		f := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyDir copies a directory tree (regular files only).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	writeTree(t, dst, readTree(t, src))
}

// copyFile copies one file.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func hasObject(objs []object, gk, ns, name string) bool {
	for _, o := range objs {
		if gkOf(o) == gk && str(o, "metadata", "namespace") == ns && str(o, "metadata", "name") == name {
			return true
		}
	}
	return false
}
