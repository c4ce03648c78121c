package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// planRepo makes a real git repository (system git) holding the example
// fleet, and returns it with the SHAs of three commits: the example, mes
// scaled from 5 to 7 replicas, and a commit that breaks the mes app.
func planRepo(t *testing.T) (dir, example, scaled, broken string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	dir = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "git", append([]string{"-c", "user.name=Plan Test", "-c", "user.email=plan@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	commit := func(msg string) string {
		git("add", "-A")
		git("commit", "-q", "-m", msg)
		return git("rev-parse", "HEAD")
	}
	edit := func(rel, old, new string) {
		p := filepath.Join(dir, rel)
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s: %v, or no %q in it", rel, err, old)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "examples", "fleet-repo"))); err != nil {
		t.Fatal(err)
	}
	example = commit("example fleet")
	edit("apps/mes/base/deployment.yaml", "replicas: 5", "replicas: 7")
	scaled = commit("scale mes")
	edit("apps/mes/app.yaml", "  prune: true\n", "  prune: true\n  notAField: 1\n")
	broken = commit("break mes")
	return dir, example, scaled, broken
}

// runCLI runs fleetsync with args and returns its output (stdout, then
// stderr with the error main would print) and the exit status main would use.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := execute(t, newRootCmd(), args...)
	return out + errOut, code
}

func TestPlanCommand(t *testing.T) {
	dir, example, scaled, broken := planRepo(t)
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		want       []string
	}{
		{
			name:       "change with --exit-code",
			args:       []string{"--base", example, "--head", scaled, "--exit-code"},
			wantStatus: 2,
			want:       []string{"| Clusters affected | 3: east, north, south |", "Same change on east, north, south.", "+  replicas: 7"},
		},
		{
			name:       "change without --exit-code",
			args:       []string{"--base", example, "--head", scaled},
			wantStatus: 0,
			want:       []string{"+  replicas: 7"},
		},
		{
			name:       "no change with --exit-code",
			args:       []string{"--base", scaled, "--head", scaled, "--exit-code"},
			wantStatus: 0,
			want:       []string{"**No changes.**"},
		},
		{
			name:       "head does not load",
			args:       []string{"--base", scaled, "--head", broken, "--exit-code"},
			wantStatus: 1,
			want:       []string{"> - head: `load", "notAField"},
		},
		{
			name:       "unknown ref",
			args:       []string{"--base", example, "--head", "no-such-ref"},
			wantStatus: 1,
			want:       []string{"no-such-ref"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, status := runCLI(t, append([]string{"plan", "--repo", dir}, tt.args...)...)
			if status != tt.wantStatus {
				t.Errorf("exit status %d, want %d; output:\n%s", status, tt.wantStatus, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPlanCommandJSON(t *testing.T) {
	dir, example, scaled, _ := planRepo(t)
	out, status := runCLI(t, "plan", "--repo", dir, "--base", example, "--head", scaled, "-o", "json")
	if status != 0 {
		t.Fatalf("exit status %d:\n%s", status, out)
	}
	var p struct {
		Kind    string
		Base    string
		Head    string
		Summary struct{ Changed int }
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if p.Kind != "Plan" || p.Base != example || p.Head != scaled || p.Summary.Changed != 3 {
		t.Errorf("JSON plan = %+v", p)
	}
}
