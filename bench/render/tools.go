package renderbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Tool is a CLI the baseline runs, built from the Go module proxy at a pinned
// version.
type Tool struct {
	Name    string   // binary name: "kustomize" or "helm"
	Package string   // the main package to build
	Version string   // module version of Package's module
	Pins    []string // extra module@version requirements of the temporary module
}

// Tools returns the pinned baseline CLIs: kustomize v5.8.2 (the release built
// on sigs.k8s.io/kustomize/api v0.21.2, which fleetsync uses; v5.8.3 needs Go
// 1.27) and helm v3.22.0 (the SDK version fleetsync uses).
func Tools() []Tool {
	return []Tool{
		{
			Name: "kustomize", Package: "sigs.k8s.io/kustomize/kustomize/v5", Version: "v5.8.2",
			Pins: []string{"sigs.k8s.io/kustomize/api@v0.21.2", "sigs.k8s.io/kustomize/kyaml@v0.21.2"},
		},
		{Name: "helm", Package: "helm.sh/helm/v3/cmd/helm", Version: "v3.22.0"},
	}
}

// DefaultBinDir is os.UserCacheDir()/fleetsync/bench/bin.
func DefaultBinDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("bench tools: %w", err)
	}
	return filepath.Join(dir, "fleetsync", "bench", "bin"), nil
}

// BuildTools makes sure every tool exists in binDir as NAME-VERSION (building
// the missing ones) and returns their paths by name.
func BuildTools(ctx context.Context, binDir string, tools []Tool) (map[string]string, error) {
	paths := map[string]string{}
	for _, t := range tools {
		p, err := buildTool(ctx, binDir, t)
		if err != nil {
			return nil, err
		}
		paths[t.Name] = p
	}
	return paths, nil
}

func buildTool(ctx context.Context, binDir string, t Tool) (string, error) {
	out := filepath.Join(binDir, t.Name+"-"+t.Version)
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	if err := exec.CommandContext(ctx, out, "version").Run(); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(binDir, 0o750); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	mod, err := os.MkdirTemp("", "fleetsync-bench-"+t.Name+"-")
	if err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	defer os.RemoveAll(mod)
	goMod := fmt.Sprintf("module fleetsync.dev/bench/%s\n\ngo %s\n", t.Name, goLangVersion())
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(goMod), 0o600); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	get := append([]string{"get", t.Package + "@" + t.Version}, t.Pins...)
	if err := goCmd(ctx, mod, get...); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	tmp := out + ".tmp"
	if err := goCmd(ctx, mod, "build", "-o", tmp, t.Package); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("build %s %s: %w", t.Name, t.Version, err)
	}
	return out, nil
}

// goLangVersion is the running toolchain's language version, e.g. "1.26".
func goLangVersion() string {
	v := strings.TrimPrefix(runtime.Version(), "go")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
}

// goCmd runs the go command in dir, outside any workspace.
func goCmd(ctx context.Context, dir string, args ...string) error {
	// go test puts its own toolchain's bin directory first in PATH.
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
