package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateClusters(t *testing.T) {
	for _, tc := range []struct {
		names []string
		ok    bool
	}{
		{[]string{"north", "south", "east"}, true},
		{[]string{"c-1"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"North"}, false},
		{[]string{"-a"}, false},
		{[]string{"a_b"}, false},
		{[]string{"north", "north"}, false},
		{[]string{"source"}, false},
		{[]string{strings.Repeat("a", 41)}, false},
	} {
		if err := validateClusters(tc.names); (err == nil) != tc.ok {
			t.Errorf("validateClusters(%q) = %v, want ok %v", tc.names, err, tc.ok)
		}
	}
}

func TestTargetsPinVersionsAndReplaceEveryStagingModule(t *testing.T) {
	v := DefaultVersions()
	targets := v.targets()
	names := map[string]target{}
	for _, tg := range targets {
		names[tg.name] = tg
	}
	for _, n := range []string{BinEtcd, BinAPIServer, BinController, BinScheduler, BinKubectl, BinKwok, BinRegistry} {
		if _, ok := names[n]; !ok {
			t.Errorf("no build target for %s", n)
		}
	}
	api := names[BinAPIServer]
	if len(api.replaces) != len(stagingModules) {
		t.Errorf("kube-apiserver: %d replaces, want %d", len(api.replaces), len(stagingModules))
	}
	for _, want := range []string{
		"k8s.io/component-base/version.gitVersion=v1.37.2",
		"k8s.io/client-go/pkg/version.gitVersion=v1.37.2",
		"k8s.io/component-base/version.gitMinor=37",
	} {
		if !strings.Contains(api.ldflags, want) {
			t.Errorf("kube-apiserver ldflags %q lack %q", api.ldflags, want)
		}
	}
	if !strings.Contains(v.Key(), "v1.37.2") || !strings.Contains(v.Key(), "v3.7.3") {
		t.Errorf("Key() = %q, want the versions in it", v.Key())
	}
}

func TestWriteWrapper(t *testing.T) {
	dir := t.TempDir()
	tg := DefaultVersions().targets()[1] // kube-apiserver
	if err := writeWrapper(dir, "1.26.8", tg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"require k8s.io/kubernetes v1.37.2", "k8s.io/client-go => k8s.io/client-go v0.37.2", "go 1.26.8"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("wrapper go.mod lacks %q:\n%s", want, data)
		}
	}
}

func TestPortPickerPrefersStableAndNeverRepeats(t *testing.T) {
	pp := newPortPicker()
	a, err := pp.pick(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pp.pick(a) // taken by this picker: must not be handed out again
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("pick returned port %d twice", a)
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("1\n2\n3\n4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tail(p, 2); got != "    3\n    4" {
		t.Errorf("tail = %q", got)
	}
}

func TestStagesHonourNeverReady(t *testing.T) {
	s := string(kwokStages)
	for _, want := range []string{"name: pod-ready", "name: pod-never-ready", "name: node-initialize",
		`.metadata.annotations["localfleet.fleetsync.dev/never-ready"]`} {
		if !strings.Contains(s, want) {
			t.Errorf("stages.yaml lacks %q", want)
		}
	}
}
