package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// runApplyOrDiff runs `fleetsync apply|diff ARGS`.
func runApplyOrDiff(t *testing.T, verb string, args ...string) (string, string, int) {
	t.Helper()
	cmd := newApplyCmd()
	if verb == "diff" {
		cmd = newDiffCmd()
	}
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case err == nil:
		return out.String(), "", 0
	case errors.As(err, &ee):
		msg := ""
		if ee.err != nil {
			msg = ee.err.Error()
		}
		return out.String(), msg, ee.code
	default:
		t.Fatalf("%s %v: %v", verb, args, err)
		return "", "", -1
	}
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
