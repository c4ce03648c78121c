package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/fleetsync/fleetsync/internal/testtree"
)

// execute runs cmd with args the way main does and returns its stdout, its
// stderr followed by the error main would print, and the exit status main
// would use.
func execute(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code, err = ee.code, ee.err
		}
		if err != nil {
			errOut.WriteString("Error: " + err.Error() + "\n")
		}
	}
	return out.String(), errOut.String(), code
}

// runValidateCmd runs `fleetsync validate ARGS` and returns stdout and the exit status.
func runValidateCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, errOut, code := execute(t, newValidateCmd(), args...)
	if errOut != "" {
		t.Logf("stderr: %s", errOut)
	}
	return out, code
}

func TestValidateExampleFleet(t *testing.T) {
	out, code := runValidateCmd(t, "--repo", filepath.Join("..", "..", "examples", "fleet-repo"))
	if code != 0 {
		t.Fatalf("exit status %d, output:\n%s", code, out)
	}
	if !strings.HasPrefix(out, "valid: 3 clusters, ") || !strings.Contains(out, "pairs rendered") {
		t.Errorf("output = %q", out)
	}
}

// TestValidateInvalidCases checks that every invalid testdata repo exits 1 and
// lists exactly the problems of its want.txt.
func TestValidateInvalidCases(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "..", "pkg", "fleet", "testdata", "invalid", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no invalid cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "want.txt"))
			if err != nil {
				t.Fatal(err)
			}
			out, code := runValidateCmd(t, "--repo", dir)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if out != string(want) {
				t.Errorf("output:\n%s\nwant:\n%s", out, want)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	out, code := runValidateCmd(t, "--repo", filepath.Join("..", "..", "pkg", "fleet", "testdata", "invalid", "dependson-cycle"), "-o", "json")
	if code != 1 {
		t.Fatalf("exit status %d", code)
	}
	var got struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got.Valid || len(got.Problems) != 1 || got.Problems[0].File != "apps/api/app.yaml" || got.Problems[0].Line != 11 ||
		got.Problems[0].Field != "spec.dependsOn[0]" || got.Problems[0].Message != "dependsOn cycle: api -> web -> db -> api" {
		t.Errorf("report = %+v", got)
	}

	out, code = runValidateCmd(t, "--repo", filepath.Join("..", "..", "pkg", "fleet", "testdata", "valid"), "--render=false", "-o", "json")
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, out)
	}
	if !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"problems": []`) || !strings.Contains(out, `"pairs": -1`) {
		t.Errorf("valid report = %s", out)
	}
}

// TestValidateRenderFailure checks that a repo that loads but does not render
// is invalid, with the failure reported at the app's source.
func TestValidateRenderFailure(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"clusters/north.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: north\n  labels: {env: prod}\n",
		"apps/web/app.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  namespace: web\n" +
			"  source:\n    kustomize: {path: base}\n  targets:\n    clusterSelector: {}\n",
		"apps/web/base/kustomization.yaml": "resources: [missing.yaml]\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runValidateCmd(t, "--repo", dir)
	if code != 1 {
		t.Fatalf("exit status %d, output:\n%s", code, out)
	}
	if !strings.HasPrefix(out, "apps/web/app.yaml:7: spec.source: render failed: north/web: ") || strings.Count(out, "\n") != 1 {
		t.Errorf("output = %q", out)
	}
	if _, code := runValidateCmd(t, "--repo", dir, "--render=false"); code != 0 {
		t.Errorf("--render=false: exit status %d, want 0", code)
	}
}

// validate names random output, kinds of unknown scope, empty renders and
// Kustomize deprecations as warnings: the repo stays valid.
func TestValidateWarnings(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"clusters/north.yaml":               "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north, labels: {env: prod}}\n",
		"apps/db/app.yaml":                  "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: db}\nspec:\n  namespace: db\n  source: {helm: {chart: ./chart}}\n  targets: {clusterSelector: {}}\n",
		"apps/db/chart/Chart.yaml":          "apiVersion: v2\nname: db\nversion: 0.1.0\n",
		"apps/db/chart/templates/s.yaml":    "apiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: {{ randAlphaNum 12 | quote }}}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
		"apps/empty/app.yaml":               "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: empty}\nspec:\n  source: {helm: {chart: ./chart}}\n  targets: {clusterSelector: {}}\n",
		"apps/empty/chart/Chart.yaml":       "apiVersion: v2\nname: empty\nversion: 0.1.0\n",
		"apps/empty/chart/templates/x.yaml": "{{- if .Values.enabled }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n{{- end }}\n",
		"apps/old/app.yaml":                 "apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: old}\nspec:\n  namespace: old\n  source: {kustomize: {path: base}}\n  targets: {clusterSelector: {}}\n",
		"apps/old/base/kustomization.yaml":  "commonLabels: {a: b}\nresources: [cm.yaml]\n",
		"apps/old/base/cm.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
	}
	testtree.Write(t, dir, files)
	out, code := runValidateCmd(t, "--repo", dir)
	for _, want := range []string{
		"apps/db/app.yaml:6: spec.source: warning: north/db: renders differently each time (random output such as randAlphaNum): Secret/db/pw",
		"apps/db/app.yaml:6: spec.source: warning: north/db: Widget w: the scope of kind example.com/Widget is unknown here",
		"apps/empty/app.yaml:5: spec.source: warning: north/empty: renders no objects",
		"apps/old/app.yaml:6: spec.source: warning: north/old: apps/old/base/kustomization.yaml: 'commonLabels' is deprecated",
		"valid: 1 clusters, 3 apps",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d, want 0 (warnings only)", code)
	}
}

// A render error caused by a customization's patch is reported at that
// patch's line, not at spec.source.
func TestValidateBlamesPatch(t *testing.T) {
	dir := t.TempDir()
	app := `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: web}
spec:
  namespace: web
  source: {kustomize: {path: base}}
  targets: {clusterSelector: {}}
  customizations:
    - clusterSelector: {}
      patches:
        - patch: '[{"op": "add", "path": "/metadata/labels", "value": {"ok": "yes"}}]'
          target: {kind: ConfigMap}
    - clusterSelector: {}
      patches:
        - patch: '[{"op": "replace", "path": "/spec/nothing", "value": 1}]'
          target: {kind: ConfigMap}
`
	testtree.Write(t, dir, map[string]string{
		"clusters/north.yaml":   "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: north}\n",
		"apps/web/app.yaml":     app,
		"apps/web/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
	})
	out, code := runValidateCmd(t, "--repo", dir)
	want := "apps/web/app.yaml:15: spec.customizations[1].patches[0]: render failed: north/web: spec.customizations[1].patches[0]: patch: replace operation does not apply"
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want 1 with %q:\n%s", code, want, out)
	}
}
