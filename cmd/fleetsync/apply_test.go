package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// runApplyOrDiff runs `fleetsync apply|diff ARGS` and returns stdout, the error
// message (if any) and the exit status.
func runApplyOrDiff(t *testing.T, verb string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newApplyCmd()
	if verb == "diff" {
		cmd = newDiffCmd()
	}
	out, errOut, code := execute(t, cmd, args...)
	return out, strings.TrimSpace(strings.TrimPrefix(errOut, "Error: ")), code
}

var applyExample = filepath.Join("..", "..", "examples", "fleet-repo")

// noCredentials points every credential lookup at nothing.
func noCredentials(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("KUBECONFIG", filepath.Join(dir, "absent"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	return []string{"--kubeconfig-dir", dir}
}

func TestApplyUnreachableClusterFails(t *testing.T) {
	args := append([]string{"--repo", applyExample, "--cluster", "south", "-o", "json"}, noCredentials(t)...)
	out, _, code := runApplyOrDiff(t, "apply", args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	var res struct {
		Pairs []struct {
			Cluster, App, Error string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if len(res.Pairs) == 0 {
		t.Fatal("no pairs")
	}
	for _, p := range res.Pairs {
		if p.Cluster != "south" || !strings.Contains(p.Error, "cluster south: no credentials found") {
			t.Errorf("pair %+v", p)
		}
	}
}

func TestDiffUnreachableClusterIsAnError(t *testing.T) {
	args := append([]string{"--repo", applyExample, "--cluster", "east"}, noCredentials(t)...)
	out, msg, code := runApplyOrDiff(t, "diff", args...)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	if !strings.Contains(out, "east/") || !strings.Contains(out, "no credentials found") || msg == "" {
		t.Fatalf("output:\n%s\nerror: %s", out, msg)
	}
}

func TestApplyUnknownCluster(t *testing.T) {
	_, msg, code := runApplyOrDiff(t, "apply", "--repo", applyExample, "--cluster", "nowhere")
	if code != 1 || !strings.Contains(msg, "--cluster nowhere: no such cluster") {
		t.Fatalf("exit %d: %s", code, msg)
	}
	_, msg, code = runApplyOrDiff(t, "diff", "--repo", applyExample, "--cluster", "nowhere")
	if code != 2 || !strings.Contains(msg, "no such cluster") {
		t.Fatalf("diff exit %d: %s", code, msg)
	}
}
