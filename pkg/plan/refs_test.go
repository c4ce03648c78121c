package plan

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsync/fleetsync/internal/gittest"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// exampleHistory commits the example fleet, then a commit scaling mes from 5
// to 7 replicas, then one that only edits the README.
func exampleHistory(t *testing.T) (dir, initial, scaled, docs string) {
	t.Helper()
	dir, initial, scaled = gittest.ExampleFleet(t)
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("only docs changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	docs = gittest.CommitAll(t, dir, "docs")
	return dir, initial, scaled, docs
}

func TestFromRefsExampleFleet(t *testing.T) {
	ctx := context.Background()
	dir, initial, scaled, docs := exampleHistory(t)
	// An uncommitted edit must not be seen: plan reads git objects only.
	gittest.Replace(t, dir, "apps/mes/base/deployment.yaml", "replicas: 7", "replicas: 9")

	src, err := source.Open(ctx, dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r := render.New(render.Options{})

	p, err := FromRefs(ctx, src, initial, scaled, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("plan errors: %v", err)
	}
	if p.Base != initial || p.Head != scaled {
		t.Errorf("plan compares %s..%s, want %s..%s", p.Base, p.Head, initial, scaled)
	}
	if got := p.Summary.AppsChanged; len(got) != 1 || got[0] != "mes" {
		t.Errorf("apps changed = %v, want [mes]", got)
	}
	if got := strings.Join(p.Summary.ClustersAffected, ","); got != "east,north,south" {
		t.Errorf("clusters affected = %s", got)
	}
	if s := p.Summary; s.Added != 0 || s.Changed != 3 || s.Deleted != 0 {
		t.Errorf("summary +%d ~%d -%d, want +0 ~3 -0", s.Added, s.Changed, s.Deleted)
	}
	var md bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{"-  replicas: 5", "+  replicas: 7", "<code>~ Deployment/mes/mes-deployment</code>", "Same change on east, north, south."} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "replicas: 9") {
		t.Errorf("the plan read the work tree:\n%s", out)
	}

	// A commit that changes no rendered output plans no change, although
	// every object's revision annotation differs.
	p, err = FromRefs(ctx, src, scaled, docs, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.HasChanges() || p.Err() != nil {
		t.Errorf("docs-only commit: HasChanges %v, Err %v, clusters %+v", p.HasChanges(), p.Err(), p.Clusters)
	}

	// Git revision expressions work as refs.
	p, err = FromRefs(ctx, src, "main~2", "main~1", r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Base != initial || p.Head != scaled || p.Summary.Changed != 3 {
		t.Errorf("main~2..main~1 planned %s..%s with %d changes", p.Base, p.Head, p.Summary.Changed)
	}

	if _, err := FromRefs(ctx, src, initial, "no-such-branch", r); err == nil {
		t.Error("an unknown head ref planned without error")
	}
}

// TestFromRefsURL reads the repository through a URL, as for a remote: the
// repository is mirrored into a cache and both refs are read from the mirror.
func TestFromRefsURL(t *testing.T) {
	ctx := context.Background()
	dir, initial, scaled, _ := exampleHistory(t)
	src, err := source.Open(ctx, "file://"+filepath.ToSlash(dir), source.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p, err := FromRefs(ctx, src, initial, "main~1", render.New(render.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Err() != nil || p.Head != scaled || p.Summary.Changed != 3 {
		t.Errorf("plan over file:// = %s..%s, %d changes, Err %v", p.Base, p.Head, p.Summary.Changed, p.Err())
	}
}

func TestFromRefsBrokenHead(t *testing.T) {
	ctx := context.Background()
	dir, _, scaled, _ := exampleHistory(t)
	gittest.Replace(t, dir, "apps/mes/app.yaml", "  prune: true\n", "  prune: true\n  notAField: 1\n")
	unloadable := gittest.CommitAll(t, dir, "break the app")
	gittest.Run(t, dir, "revert", "--no-edit", "HEAD")
	gittest.Replace(t, dir, "apps/mes/overlays/nfs/kustomization.yaml", "  - ../../base\n", "  - ../../base\n  - missing.yaml\n")
	unrenderable := gittest.CommitAll(t, dir, "name a missing resource")

	src, err := source.Open(ctx, dir, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r := render.New(render.Options{})

	p, err := FromRefs(ctx, src, scaled, unloadable, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Err() == nil || len(p.Errors) != 1 || p.Errors[0].Side != "head" || !strings.Contains(p.Errors[0].Message, "notAField") {
		t.Errorf("unloadable head: errors %+v, Err %v", p.Errors, p.Err())
	}

	p, err = FromRefs(ctx, src, scaled, unrenderable, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Err() == nil {
		t.Fatal("a head render error is not a plan error")
	}
	var failed []string
	for _, c := range p.Clusters {
		for _, a := range c.Apps {
			if a.HeadError != "" {
				failed = append(failed, c.Cluster+"/"+a.App)
			}
		}
	}
	if strings.Join(failed, ",") != "south/mes" {
		t.Errorf("failed pairs = %v, want [south/mes] (the nfs cluster); plan %+v", failed, p.Clusters)
	}
	var md bytes.Buffer
	if err := Markdown(&md, p); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "head `south/mes`:") {
		t.Errorf("markdown does not report the render error:\n%s", md.String())
	}
}
