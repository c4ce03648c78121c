package apply_test

import (
	"os/exec"
	"strings"
	"testing"
)

// pkg/apply is the per-cluster mechanism: it must not depend on the fleet
// model or the renderer (orchestration is pkg/reconcile's), not even through
// another package.
func TestApplyImportsNoFleetOrchestration(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/pkg/fleet", "/pkg/render", "/pkg/reconcile", "/pkg/drift", "/pkg/plan", "/pkg/source"} {
			if strings.HasSuffix(dep, "fleetsync"+banned) {
				t.Errorf("pkg/apply depends on %s", dep)
			}
		}
	}
}
