package renderbench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsync/fleetsync/pkg/render"
)

func TestGeneratedFleetLoadsAndRenders(t *testing.T) {
	spec := Spec{Clusters: 6, Apps: 4}
	f := generateFleet(t, spec)
	if got, want := len(f.Pairs), spec.Clusters*spec.Apps; got != want {
		t.Fatalf("%d pairs, want %d", got, want)
	}
	repo := load(t, f, revision(0))
	if len(repo.Clusters) != spec.Clusters || len(repo.Apps) != spec.Apps {
		t.Fatalf("loaded %d clusters and %d apps, want %d and %d", len(repo.Clusters), len(repo.Apps), spec.Clusters, spec.Apps)
	}
	res := renderAll(t, render.New(render.Options{}), repo, len(f.Pairs))

	// Storage overlays and region values reach the output.
	c := repo.Clusters[1] // c01: region south, storage nfs
	if c.Metadata.Labels["storage"] != "nfs" || c.Metadata.Labels["region"] != "south" {
		t.Fatalf("unexpected labels of %s: %v", c.Metadata.Name, c.Metadata.Labels)
	}
	var b strings.Builder
	if err := render.Encode(&b, res.Get(c.Metadata.Name, f.KustomizeApps[0]).Objects); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"storage-kind: nfs", "storageClassName: nfs-fast", "STORAGE: nfs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("kustomize app on %s lacks %q:\n%s", c.Metadata.Name, want, b.String())
		}
	}
	b.Reset()
	if err := render.Encode(&b, res.Get(c.Metadata.Name, f.HelmApps[0]).Objects); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"region: south", "storageClassName: nfs-fast"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("helm app on %s lacks %q:\n%s", c.Metadata.Name, want, b.String())
		}
	}
}

func TestSetImageTag(t *testing.T) {
	f := generateFleet(t, Spec{Clusters: 1, Apps: 2})
	app := f.KustomizeApps[0]
	if err := f.SetImageTag(app, "v9.9.9"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.Dir, "apps", app, "base", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "image: registry.example/fleet/" + app + ":v9.9.9\n"; !strings.Contains(string(b), want) {
		t.Errorf("deployment lacks %q after SetImageTag:\n%s", want, b)
	}
	for _, bad := range []string{"missing", f.HelmApps[0], "../" + app} {
		if err := f.SetImageTag(bad, "v1"); err == nil {
			t.Errorf("SetImageTag(%q) succeeded", bad)
		}
	}
}

func TestParsePeakRSS(t *testing.T) {
	got, err := parsePeakRSS(strings.NewReader("Name:\tx\nVmPeak:\t  9 kB\nVmHWM:\t   2064 kB\nVmRSS:\t 1 kB\n"))
	if err != nil || got != 2064*1024 {
		t.Errorf("parsePeakRSS = %d, %v; want %d", got, err, 2064*1024)
	}
	if _, err := parsePeakRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("parsePeakRSS without VmHWM succeeded")
	}
}
