package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fleetsync/fleetsync/internal/gittest"
)

// planRepo makes a real git repository (system git) holding the example
// fleet, and returns it with the SHAs of three commits: the example, mes
// scaled from 5 to 7 replicas, and a commit that breaks the mes app.
func planRepo(t *testing.T) (dir, example, scaled, broken string) {
	t.Helper()
	dir, example, scaled = gittest.ExampleFleet(t)
	gittest.Replace(t, dir, "apps/mes/app.yaml", "  prune: true\n", "  prune: true\n  notAField: 1\n")
	broken = gittest.CommitAll(t, dir, "break mes")
	return dir, example, scaled, broken
}

// runCLI runs fleetsync with args and returns its output (stdout, then
// stderr with the error main would print) and the exit status main would use.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	if len(args) > 0 && args[0] == "plan" {
		args = append([]string{"plan", "--offline"}, args[1:]...)
	}
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
	out, _, status := execute(t, newRootCmd(), "plan", "--offline", "--repo", dir, "--base", example, "--head", scaled, "-o", "json")
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
