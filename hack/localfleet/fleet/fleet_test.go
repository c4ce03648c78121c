package fleet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
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
	a, err := pp.pick(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pp.pick(context.Background(), a) // taken by this picker: must not be handed out again
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
		`.metadata.annotations["localfleet.fleetsync.dev/never-ready"]`,
		"name: pod-complete", "name: pod-fail", `.metadata.annotations["localfleet.fleetsync.dev/fail"]`} {
		if !strings.Contains(s, want) {
			t.Errorf("stages.yaml lacks %q", want)
		}
	}
}

func TestProcessDyingDuringStartIsReportedWithLogTail(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if real, err := filepath.EvalSymlinks(sh); err == nil {
		sh = real
	}
	dir := t.TempDir()
	p := &Process{Name: "dies", Component: "test", Address: "127.0.0.1:1", Bin: sh}
	if err := spawn(dir, p, true, nil, "-c", "echo cannot bind 127.0.0.1:1 >&2; exit 3"); err != nil {
		t.Fatal(err)
	}
	err = waitFor(context.Background(), p, "readiness", func(context.Context) error { return errNotReady })
	if err == nil {
		t.Fatal("waitFor succeeded for a process that exited")
	}
	for _, want := range []string{"dies", "exited", "127.0.0.1:1", "cannot bind", filepath.Join(dir, "logs", "dies.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The pid file was written and Down cleans it without error.
	if _, err := os.Stat(pidFile(dir, "dies")); err != nil {
		t.Errorf("pid file: %v", err)
	}
	if err := Down(context.Background(), dir, nil); err != nil {
		t.Errorf("Down: %v", err)
	}
	if _, err := os.Stat(pidDir(dir)); !os.IsNotExist(err) {
		t.Errorf("Down left %s: %v", pidDir(dir), err)
	}
}

func TestStopTiered(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if real, err := filepath.EvalSymlinks(sleep); err == nil {
		sleep = real
	}
	dir := t.TempDir()
	var entries []pidEntry
	for _, n := range []string{"etcd", "north-kube-apiserver", "north-kwok"} {
		p := &Process{Name: n, Bin: sleep}
		if err := spawn(dir, p, true, nil, "60"); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, pidEntry{Name: n, PID: p.PID, Bin: sleep, done: p.done})
	}
	if errs := stopTiered(context.Background(), entries, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, e := range entries {
		if alive(e.PID, e.Bin) {
			t.Errorf("%s (pid %d) still runs", e.Name, e.PID)
		}
	}
}

func TestBuildFailureNamesModuleAndShowsLog(t *testing.T) {
	// Offline: no proxy and an empty module cache make the build fail at once.
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOFLAGS", "")
	base := t.TempDir()
	bins := Binaries{Dir: filepath.Join(base, "bin")}
	if err := os.MkdirAll(bins.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tg := target{name: BinKwok, module: "sigs.k8s.io/kwok", version: "v0.8.0", pkg: "sigs.k8s.io/kwok/cmd/kwok", wrapper: "kwok", ldflags: "-s -w"}
	var progress bytes.Buffer
	err := buildTarget(context.Background(), base, "1.26", tg, bins, &progress)
	if err == nil {
		t.Fatal("build succeeded with GOPROXY=off and an empty module cache")
	}
	for _, want := range []string{"kwok (sigs.k8s.io/kwok v0.8.0)", "GOPROXY=off", filepath.Join(base, "logs", "kwok.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(progress.String(), "building kwok") {
		t.Errorf("no progress line: %q", progress.String())
	}
	if fileExists(bins.Path(BinKwok)) {
		t.Error("a failed build left a binary")
	}
}
