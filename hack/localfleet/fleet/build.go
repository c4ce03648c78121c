package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// recipe is bumped whenever the way binaries are built changes, so that
// stale caches are not reused.
const recipe = "r2"

// Versions pins every binary the local fleet runs.
type Versions struct {
	Kubernetes string // k8s.io/kubernetes, e.g. v1.37.2
	Staging    string // k8s.io/<staging module> versions replacing the in-repo ones, e.g. v0.37.2
	Etcd       string // go.etcd.io/etcd/server/v3
	Kwok       string // sigs.k8s.io/kwok
	Registry   string // github.com/distribution/distribution/v3
}

// DefaultVersions returns the versions the project is tested with.
func DefaultVersions() Versions {
	return Versions{
		Kubernetes: "v1.37.2",
		Staging:    "v0.37.2",
		Etcd:       "v3.7.3",
		Kwok:       "v0.8.0",
		Registry:   "v3.1.2",
	}
}

// Key names the cache directory of one set of versions.
func (v Versions) Key() string {
	return fmt.Sprintf("k8s-%s_etcd-%s_kwok-%s_registry-%s_%s-%s_%s",
		v.Kubernetes, v.Etcd, v.Kwok, v.Registry, runtime.GOOS, runtime.GOARCH, recipe)
}

// stagingModules are the k8s.io modules that k8s.io/kubernetes replaces with
// its staging directories; a wrapper module must replace them with releases.
var stagingModules = []string{
	"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime",
	"client-go", "cloud-provider", "cluster-bootstrap", "code-generator",
	"component-base", "component-helpers", "controller-manager", "cri-api",
	"cri-client", "cri-streaming", "csi-translation-lib",
	"dynamic-resource-allocation", "endpointslice", "externaljwt", "kms",
	"kube-aggregator", "kube-controller-manager", "kube-proxy", "kube-scheduler",
	"kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
	"sample-apiserver", "streaming",
}

// Binary names.
const (
	BinEtcd       = "etcd"
	BinAPIServer  = "kube-apiserver"
	BinController = "kube-controller-manager"
	BinScheduler  = "kube-scheduler"
	BinKubectl    = "kubectl"
	BinKwok       = "kwok"
	BinRegistry   = "registry"
)

// target is one binary built from one package of a wrapper module.
type target struct {
	name     string
	module   string // the module required by the wrapper
	version  string
	pkg      string
	wrapper  string   // wrapper module directory name
	replaces []string // "old => new version" lines
	ldflags  string
}

func (v Versions) targets() []target {
	k8sRepl := make([]string, 0, len(stagingModules))
	for _, m := range stagingModules {
		k8sRepl = append(k8sRepl, fmt.Sprintf("k8s.io/%s => k8s.io/%s %s", m, m, v.Staging))
	}
	major, minor := splitVersion(v.Kubernetes)
	var x []string
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		x = append(x,
			"-X "+p+".gitVersion="+v.Kubernetes,
			"-X "+p+".gitMajor="+major,
			"-X "+p+".gitMinor="+minor,
			"-X "+p+".gitTreeState=clean",
			"-X "+p+".buildDate=1970-01-01T00:00:00Z")
	}
	k8sFlags := "-s -w " + strings.Join(x, " ")
	k8s := func(name string) target {
		return target{name: name, module: "k8s.io/kubernetes", version: v.Kubernetes,
			pkg: "k8s.io/kubernetes/cmd/" + name, wrapper: "kubernetes", replaces: k8sRepl, ldflags: k8sFlags}
	}
	return []target{
		{name: BinEtcd, module: "go.etcd.io/etcd/server/v3", version: v.Etcd,
			pkg: "go.etcd.io/etcd/server/v3", wrapper: "etcd", ldflags: "-s -w"},
		k8s(BinAPIServer), k8s(BinController), k8s(BinScheduler), k8s(BinKubectl),
		{name: BinKwok, module: "sigs.k8s.io/kwok", version: v.Kwok,
			pkg: "sigs.k8s.io/kwok/cmd/kwok", wrapper: "kwok", ldflags: "-s -w"},
		{name: BinRegistry, module: "github.com/distribution/distribution/v3", version: v.Registry,
			pkg: "github.com/distribution/distribution/v3/cmd/registry", wrapper: "registry", ldflags: "-s -w"},
	}
}

// splitVersion turns v1.37.2 into ("1", "37").
func splitVersion(v string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// CacheRoot returns the directory holding built binaries of every version set:
// os.UserCacheDir()/fleetsync/localfleet.
func CacheRoot() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localfleet: find user cache dir: %w", err)
	}
	return filepath.Join(d, "fleetsync", "localfleet"), nil
}

// Binaries are the absolute paths of the built binaries, by name.
type Binaries struct {
	Dir string
}

// Path returns the path of the named binary.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// Build builds the binaries of v that are not in the cache yet, reporting
// progress on progress (nil for none), and returns where they are. Concurrent
// callers (several test binaries) are serialised by a file lock.
func Build(ctx context.Context, v Versions, progress io.Writer) (Binaries, error) {
	if progress == nil {
		progress = io.Discard
	}
	root, err := CacheRoot()
	if err != nil {
		return Binaries{}, err
	}
	base := filepath.Join(root, v.Key())
	bins := Binaries{Dir: filepath.Join(base, "bin")}
	if err := os.MkdirAll(bins.Dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("localfleet: create cache dir: %w", err)
	}
	// /proc/PID/exe shows the resolved path; pids are matched against it.
	if real, err := filepath.EvalSymlinks(bins.Dir); err == nil {
		bins.Dir = real
	}
	unlock, err := lockFile(ctx, filepath.Join(base, "build.lock"))
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()

	goVersion, err := goEnv(ctx, "GOVERSION")
	if err != nil {
		return Binaries{}, err
	}
	start := time.Now()
	built := 0
	for _, t := range v.targets() {
		if fileExists(bins.Path(t.name)) {
			continue
		}
		built++
		if err := buildTarget(ctx, base, strings.TrimPrefix(goVersion, "go"), t, bins, progress); err != nil {
			return Binaries{}, err
		}
	}
	if built > 0 {
		fmt.Fprintf(progress, "built %d binaries in %s into %s\n", built, time.Since(start).Round(time.Second), bins.Dir)
	}
	return bins, nil
}

func buildTarget(ctx context.Context, base, goVersion string, t target, bins Binaries, progress io.Writer) error {
	what := fmt.Sprintf("%s (%s %s)", t.name, t.module, t.version)
	src := filepath.Join(base, "src", t.wrapper)
	if err := writeWrapper(src, goVersion, t); err != nil {
		return fmt.Errorf("localfleet: build %s: %w", what, err)
	}
	logDir := filepath.Join(base, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("localfleet: build %s: %w", what, err)
	}
	logPath := filepath.Join(logDir, t.name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("localfleet: build %s: %w", what, err)
	}
	defer logFile.Close()

	tmp := bins.Path("." + t.name + ".tmp")
	cmd := exec.CommandContext(ctx, "go", "build", "-mod=mod", "-trimpath", "-ldflags", t.ldflags, "-o", tmp, t.pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	fmt.Fprintf(progress, "building %s ...\n", what)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localfleet: build %s: start go: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				_ = os.Remove(tmp)
				return fmt.Errorf("localfleet: build %s failed after %s: %w; log %s:\n%s",
					what, time.Since(start).Round(time.Second), err, logPath, tail(logPath, 20))
			}
			if err := os.Rename(tmp, bins.Path(t.name)); err != nil {
				return fmt.Errorf("localfleet: build %s: install: %w", what, err)
			}
			fmt.Fprintf(progress, "built %s in %s\n", t.name, time.Since(start).Round(time.Second))
			return nil
		case <-tick.C:
			fmt.Fprintf(progress, "  still building %s (%s elapsed)\n", t.name, time.Since(start).Round(time.Second))
		}
	}
}

// writeWrapper generates a module that requires t.module so that its
// replace directives (which make `go install pkg@version` fail) are replaced
// by released versions.
func writeWrapper(dir, goVersion string, t target) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Generated by hack/localfleet: builds %s %s.\nmodule localfleet.invalid/%s\n\ngo %s\n\nrequire %s %s\n",
		t.module, t.version, t.wrapper, goVersion, t.module, t.version)
	if len(t.replaces) > 0 {
		b.WriteString("\nreplace (\n")
		for _, r := range t.replaces {
			b.WriteString("\t" + r + "\n")
		}
		b.WriteString(")\n")
	}
	gomod := filepath.Join(dir, "go.mod")
	old, err := os.ReadFile(gomod)
	if err == nil && bytes.HasPrefix(old, b.Bytes()[:bytes.IndexByte(b.Bytes(), '\n')+1]) {
		return nil // same wrapper already generated (go build -mod=mod may have extended it)
	}
	return os.WriteFile(gomod, b.Bytes(), 0o644)
}

func goEnv(ctx context.Context, key string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", key).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("localfleet: go env %s: %w: %s", key, err, ee.Stderr)
		}
		return "", fmt.Errorf("localfleet: go env %s (is go on PATH?): %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
