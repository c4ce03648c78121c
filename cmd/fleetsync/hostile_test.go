package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileCase is a fleet repo made to hurt: validate must answer with a
// clear error naming the place (exit 1), never panic, and stay within a
// bounded memory; a few inputs are legitimate but big (exit 0, bounded).
type hostileCase struct {
	name  string
	files map[string]string // path -> content, over the base fleet
	links map[string]string // path -> symlink target
	big   map[string]int    // path -> size of a generated file (bytes)
	dirs  []string          // empty folders
	want  []string          // each in the output (exit 1); none: exit 0
	// renderTimeout is validate's --render-timeout: short only for the
	// template that never ends; the others must not depend on speed.
	renderTimeout string
}

const (
	hostileApp = `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: app}
spec:
  namespace: app
  source: {kustomize: {path: base}}
  targets: {clusterSelector: {}}
`
	hostileHelmApp = `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: app}
spec:
  namespace: app
  source: {helm: {chart: ./chart%s}}
  targets: {clusterSelector: {}}
`
	hostileChart = "apiVersion: v2\nname: c\nversion: 1.0.0\n"
	hostileCM    = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: b}\n"
)

// aliasBomb is a billion-laughs document: nine levels of ten aliases each.
func aliasBomb(top string) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return top + b.String()
}

func hostileCases() []hostileCase {
	helm := func(extra string) string { return fmt.Sprintf(hostileHelmApp, extra) }
	manyTemplates := map[string]string{"apps/app/app.yaml": helm(""), "apps/app/chart/Chart.yaml": hostileChart}
	for i := range 10000 {
		manyTemplates[fmt.Sprintf("apps/app/chart/templates/cm-%05d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%05d}\ndata: {i: \"%d\"}\n", i, i)
	}
	nested := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	return []hostileCase{
		{name: "symlink out of the repo", links: map[string]string{"apps/app/base/cm.yaml": "/etc/hostname"},
			want: []string{"cm.yaml", "leaves the repo"}},
		{name: "symlinked folder out of the repo", links: map[string]string{"apps/app/base": "/etc"},
			want: []string{"apps/app", "leaves the repo"}},
		{name: "values file outside the repo", files: map[string]string{"apps/app/app.yaml": helm(", valuesFiles: [../../../../etc/hostname]"), "apps/app/chart/Chart.yaml": hostileChart},
			want: []string{"apps/app/app.yaml", "valuesFiles"}},
		{name: "chart dependency outside the repo", files: map[string]string{"apps/app/app.yaml": helm(""),
			"apps/app/chart/Chart.yaml": hostileChart + "dependencies:\n  - {name: d, version: 1.0.0, repository: \"file://../../../../../tmp/d\"}\n"},
			want: []string{"apps/app", "d"}},
		{name: "kustomize remote base", files: map[string]string{"apps/app/base/kustomization.yaml": "resources: [\"https://127.0.0.1:1/fleet//base?ref=main\"]\n"},
			want: []string{"apps/app", "remote"}},
		{name: "YAML alias bomb in a fleet file", files: map[string]string{"clusters/c2.yaml": aliasBomb("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c2}\n")},
			want: []string{"clusters/c2.yaml"}},
		{name: "YAML alias bomb in a manifest", files: map[string]string{"apps/app/base/cm.yaml": aliasBomb("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")},
			want: []string{"apps/app"}},
		{name: "100 MB manifest", big: map[string]int{"apps/app/base/cm.yaml": 100 << 20},
			want: []string{"cm.yaml", "over the 16 MiB limit"}},
		{name: "100 MB file in a configMapGenerator", files: map[string]string{"apps/app/base/kustomization.yaml": "resources: [cm.yaml]\nconfigMapGenerator:\n  - {name: big, files: [big.txt]}\n"},
			big: map[string]int{"apps/app/base/big.txt": 100 << 20}, want: []string{"big.txt", "over the 16 MiB limit"}},
		{name: "100 MB fleet file", big: map[string]int{"clusters/c2.yaml": 100 << 20},
			want: []string{"clusters/c2.yaml", "over the 16 MiB limit"}},
		{name: "invalid UTF-8 in a manifest", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: \"\xff\xfe\"}\n"},
			want: []string{"apps/app"}},
		{name: "invalid UTF-8 in a fleet file", files: map[string]string{"clusters/c1.yaml": "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c1, labels: {a: \"\xff\"}}\n"},
			want: []string{"clusters/c1.yaml"}},
		{name: "NUL bytes in a manifest", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: \"\x00\"}\n\x00\x00"},
			want: []string{"apps/app"}},
		{name: "duplicate keys in a manifest", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata:\n  a: b\n  a: c\n"},
			want: []string{"apps/app", "a"}},
		{name: "Secret with a 2 MB value", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {key: \"" + strings.Repeat("x", 2<<20) + "\"}\n"},
			want: []string{"Secret s", "over the 1 MiB"}},
		{name: "ConfigMap with 2 MB of data", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {key: \"" + strings.Repeat("x", 2<<20) + "\"}\n"},
			want: []string{"ConfigMap cm", "over the 1 MiB"}},
		{name: "uppercase object name", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: MyApp}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n"},
			want: []string{"Deployment MyApp", "metadata.name"}},
		{name: "values file that is a directory", files: map[string]string{"apps/app/app.yaml": helm(", valuesFiles: [vals]"), "apps/app/chart/Chart.yaml": hostileChart},
			dirs: []string{"apps/app/vals"}, want: []string{"apps/app/app.yaml", "vals"}},
		{name: "kustomization that includes itself", files: map[string]string{"apps/app/base/kustomization.yaml": "resources: [cm.yaml, ../base]\n"},
			want: []string{"apps/app", "cycle"}},
		{name: "Helm template that loops forever", files: map[string]string{"apps/app/app.yaml": helm(""), "apps/app/chart/Chart.yaml": hostileChart,
			"apps/app/chart/templates/loop.yaml": "{{- range $i := until 100000 }}{{- range $j := until 100000 }}{{- range $k := until 100000 }}{{- end }}{{- end }}{{- end }}\n"},
			want: []string{"apps/app", "did not finish within"}, renderTimeout: "3s"},
		{name: "Helm template that includes itself", files: map[string]string{"apps/app/app.yaml": helm(""), "apps/app/chart/Chart.yaml": hostileChart,
			"apps/app/chart/templates/self.yaml": "{{- define \"self\" }}{{ include \"self\" . }}{{- end }}{{ include \"self\" . }}\n"},
			want: []string{"apps/app"}},
		{name: "deeply nested YAML", files: map[string]string{"apps/app/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: b}\nextra: " + nested + "\n"},
			want: []string{"apps/app"}},
		{name: "configMapGenerator reading outside the repo", files: map[string]string{"apps/app/base/kustomization.yaml": "resources: [cm.yaml]\nconfigMapGenerator:\n  - {name: leak, files: [/etc/hostname]}\n"},
			want: []string{"apps/app"}},
		{name: "patch file outside the repo", files: map[string]string{"apps/app/base/kustomization.yaml": "resources: [cm.yaml]\npatches:\n  - {path: ../../../../../etc/hostname}\n"},
			want: []string{"apps/app"}},
		{name: "kustomize helmCharts (runs a helm binary)", files: map[string]string{"apps/app/base/kustomization.yaml": "helmCharts:\n  - {name: c, repo: \"https://127.0.0.1:1\", version: 1.0.0}\n"},
			want: []string{"apps/app"}},
		{name: "chart of 10,000 templates (legitimate, bounded)", files: manyTemplates},
	}
}

// TestHostileInputs runs `fleetsync validate` as a process on each hostile
// repo: exit 1 with the place named (or 0 for the legitimate big ones), no
// panic, a peak RSS under 2 GiB (the 100 MB files are refused unread).
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The bound catches a runaway (an alias bomb took more than 10 GiB before
	// it was refused). Linux's ru_maxrss of a child counts the parent's RSS
	// at fork too, so it is an upper bound that includes this test binary
	// (large under -race).
	const rssLimitKB = 2 << 20
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			base := map[string]string{
				"fleet.yaml":                       "apiVersion: fleetsync.dev/v1alpha1\nkind: Fleet\nmetadata: {name: hostile}\n",
				"clusters/c1.yaml":                 "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c1}\n",
				"apps/app/app.yaml":                hostileApp,
				"apps/app/base/kustomization.yaml": "resources: [cm.yaml]\n",
				"apps/app/base/cm.yaml":            hostileCM,
			}
			for p, body := range c.files {
				base[p] = body
			}
			for p := range c.links {
				delete(base, p)
				for q := range base {
					if strings.HasPrefix(q, p+"/") {
						delete(base, q)
					}
				}
			}
			for p := range c.big {
				delete(base, p)
			}
			write := func(p string, b []byte) {
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for p, body := range base {
				write(p, []byte(body))
			}
			for p, n := range c.big { // written in pieces: the test itself stays small
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				fh, err := os.Create(full)
				if err != nil {
					t.Fatal(err)
				}
				chunk := bytes.Repeat([]byte("# padding padding padding padding padding padding padding padding\n"), 1<<14)
				for left := n; left > 0; left -= len(chunk) {
					if _, err := fh.Write(chunk[:min(left, len(chunk))]); err != nil {
						t.Fatal(err)
					}
				}
				if err := fh.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for p, target := range c.links {
				full := filepath.Join(dir, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, full); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range c.dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			renderTimeout := c.renderTimeout
			if renderTimeout == "" {
				renderTimeout = "30m"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "validate", "--repo", dir, "--render-timeout", renderTimeout)
			cmd.Env = append(os.Environ(), envRunMain+"=1")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("validate did not end within 30 minutes:\n%s", out.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			text := out.String()
			shown := text
			if len(shown) > 2000 {
				shown = shown[:2000] + "..."
			}
			if strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
				t.Fatalf("validate panicked:\n%s", shown)
			}
			if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; rss > rssLimitKB {
				t.Errorf("validate peaked at %d MiB RSS, want under %d MiB", rss>>10, rssLimitKB>>10)
			}
			wantCode := 1
			if len(c.want) == 0 {
				wantCode = 0
			}
			if code != wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, wantCode, shown)
			}
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("output does not name %q:\n%s", w, shown)
				}
			}
			t.Logf("exit %d: %s", code, strings.SplitN(strings.TrimSpace(text), "\n", 3)[0])
		})
	}
}
