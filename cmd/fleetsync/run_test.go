package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startDaemon runs `fleetsync run` as a process of its own (the test binary
// running main) and returns it; it is killed at the end of the test.
func startDaemon(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return startVerb(t, "run", args...)
}

// startVerb runs `fleetsync VERB args...` as a process of its own and
// returns it; it is killed at the end of the test, and its output shown when
// the test failed.
func startVerb(t *testing.T, verb string, args ...string) *exec.Cmd {
	t.Helper()
	return startVerbLogged(t, verb, filepath.Join(t.TempDir(), verb+".log"), args...)
}

// startVerbLogged is startVerb with the process's output in logFile.
func startVerbLogged(t *testing.T, verb, logFile string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{verb}, args...)...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", verb, b)
		}
	})
	return cmd
}

func getStatus(addr string) (*daemon.Status, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s daemon.Status
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

func appOn(s *daemon.Status, cluster, app string) daemon.AppStatus {
	if c := s.Cluster(cluster); c != nil {
		for _, a := range c.Apps {
			if a.Name == app {
				return a
			}
		}
	}
	return daemon.AppStatus{}
}

// `fleetsync run` SIGKILLed in the middle of a rollout (during the canary's
// soak) and started again resumes from what the clusters say: the canary is
// not applied again, the later wave gets the revision once the soak is over,
// and `fleetsync status` shows it.
func TestRunKilledMidRolloutResumes(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r := newRolloutRepo(t)
	spec := `  targets: {clusterSelector: {matchLabels: {env: prod}}}
  rollout:
    waves:
      - clusterSelector: {matchLabels: {region: north}}
        soakTime: 8s
      - clusterSelector: {}
    healthTimeout: 1m
    autoRollback: true
`
	app := r.app(t, "daemon", spec, "")
	v1 := r.commit(t, "v1")
	addr := freeAddr(t)
	args := []string{"--repo", serveRepo(t, r.dir), "--branch", "main",
		"--kubeconfig-dir", f.Dir, "--kubeconfig", filepath.Join(r.dir, ".absent-kubeconfig"),
		"--listen", addr, "--interval", "1s", "--heartbeat-interval", "1s", "--log-format", "json",
		"--git-cache-dir", t.TempDir()}
	wait := func(what string, limit time.Duration, cond func(*daemon.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			s, err := getStatus(addr)
			if err == nil && cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %s (last status %+v, err %v)", what, limit, s, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	d := startDaemon(t, args...)
	wait("v1 everywhere", 90*time.Second, func(s *daemon.Status) bool {
		for _, c := range []string{"north", "south", "east"} {
			if a := appOn(s, c, app); a.Revision != v1 || a.Health != daemon.HealthHealthy {
				return false
			}
		}
		return true
	})
	out, _, code := execute(t, newStatusCmd(), "--server", "http://"+addr)
	if code != 0 || !strings.Contains(out, app) || !strings.Contains(out, v1[:7]) {
		t.Fatalf("fleetsync status: exit %d\n%s", code, out)
	}
	// The process's metrics count its API requests and the objects it wrote.
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, series := range []string{`fleetsync_kube_requests_total{cluster="north",kind="read"} `, `fleetsync_kube_requests_total{cluster="east",kind="write"} `, `fleetsync_applied_objects_total{action="created",cluster="south"} `} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics has no %s", series)
		}
	}

	r.app(t, "daemon", spec, "version: \"2\"")
	v2 := r.commit(t, "v2")
	// North gets v2 and soaks; kill the daemon then.
	deadline := time.Now().Add(60 * time.Second)
	for inventory(t, f, "north", app).Revision != v2 {
		if time.Now().After(deadline) {
			t.Fatal("north never got v2")
		}
		time.Sleep(100 * time.Millisecond)
	}
	northApplied := inventory(t, f, "north", app).AppliedAt
	if err := d.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = d.Wait()
	if inv := inventory(t, f, "south", app); inv.Revision == v2 {
		t.Fatal("south got v2 before the canary's soak ended")
	}

	startDaemon(t, args...)
	wait("v2 everywhere after the restart", 90*time.Second, func(s *daemon.Status) bool {
		for _, c := range []string{"north", "south", "east"} {
			if inventory(t, f, c, app).Revision != v2 {
				return false
			}
		}
		return s.Source.Revision == v2
	})
	if inv := inventory(t, f, "north", app); !inv.AppliedAt.Equal(northApplied) || len(inv.Holds) != 0 {
		t.Fatalf("north after the restart: applied at %s (was %s), holds %v: the canary was applied again", inv.AppliedAt, northApplied, inv.Holds)
	}
}
