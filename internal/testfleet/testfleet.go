package testfleet

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
)

// EnvDir names a directory holding a live fleet (started with
// `go run ./hack/localfleet up --dir DIR`) for Main to reuse.
const EnvDir = "FLEETSYNC_TESTFLEET_DIR"

// Fleet is a running local fleet.
type Fleet struct {
	Dir        string
	Clusters   []string
	Registries Registries
}

// Registries are the fleet's plain-HTTP registries on 127.0.0.1.
type Registries struct {
	Source  string            `json:"source"`
	Mirrors map[string]string `json:"mirrors"`
}

// Main starts (or reuses, when $FLEETSYNC_TESTFLEET_DIR names a live fleet
// dir) a local fleet with the given clusters ("north" when none), runs m,
// stops what it started, and returns the exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north", "south")) }
//
// A fleet that cannot start fails the test binary; it is never skipped.
func Main(m *testing.M, clusters ...string) int {
	if len(clusters) == 0 {
		clusters = []string{"north"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if dir := os.Getenv(EnvDir); dir != "" {
		if !filepath.IsAbs(dir) {
			fmt.Fprintf(os.Stderr, "testfleet: $%s=%s must be an absolute path (go test runs in each package's directory)\n", EnvDir, dir)
			return 1
		}
		f, err := fleet.Load(dir)
		if err == nil {
			err = f.Live()
		}
		if err == nil {
			if missing := missingClusters(f, clusters); len(missing) > 0 {
				fmt.Fprintf(os.Stderr, "testfleet: the fleet in $%s=%s lacks clusters %s (start it with --clusters %s)\n",
					EnvDir, dir, strings.Join(missing, ","), strings.Join(clusters, ","))
				return 1
			}
			return m.Run() // not ours: never stopped here
		}
		fmt.Fprintf(os.Stderr, "testfleet: $%s=%s holds no live fleet (%v); starting one for this test binary\n", EnvDir, dir, err)
	}

	dir, err := os.MkdirTemp("", "testfleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testfleet:", err)
		return 1
	}
	f, err := fleet.Up(ctx, fleet.Options{Dir: dir, Clusters: clusters, Progress: os.Stderr, Attached: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testfleet: start fleet in %s: %v\n", dir, err)
		if _, statErr := os.Stat(filepath.Join(dir, "logs")); os.IsNotExist(statErr) {
			_ = os.RemoveAll(dir) // nothing to look at: the build or a check failed
		}
		return 1
	}
	if err := os.Setenv(EnvDir, dir); err != nil {
		fmt.Fprintln(os.Stderr, "testfleet:", err)
		_ = f.Stop(context.WithoutCancel(ctx))
		return 1
	}
	code := m.Run()
	if err := f.Stop(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(os.Stderr, "testfleet: stop fleet in %s: %v\n", dir, err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "testfleet: logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

func missingClusters(f *fleet.Fleet, want []string) []string {
	have := make([]string, 0, len(f.Clusters))
	for _, c := range f.Clusters {
		have = append(have, c.Name)
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// Get returns the fleet started (or reused) by Main.
func Get(t testing.TB) *Fleet {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		t.Fatalf("testfleet: no fleet: call testfleet.Main from TestMain (or set $%s)", EnvDir)
	}
	f, err := fleet.Load(dir)
	if err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	out := &Fleet{Dir: f.Dir, Registries: Registries{Source: f.Registries.Source, Mirrors: f.Registries.Mirrors}}
	for _, c := range f.Clusters {
		out.Clusters = append(out.Clusters, c.Name)
	}
	return out
}

// Kubeconfig returns the path of DIR/<cluster>.kubeconfig (admin; its
// context is named after the cluster).
func (f *Fleet) Kubeconfig(cluster string) string {
	return filepath.Join(f.Dir, cluster+".kubeconfig")
}

// RESTConfig returns an admin client config for cluster.
func (f *Fleet) RESTConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	if !slices.Contains(f.Clusters, cluster) {
		t.Fatalf("testfleet: no cluster %q in the fleet (have %s)", cluster, strings.Join(f.Clusters, ", "))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f.Kubeconfig(cluster))
	if err != nil {
		t.Fatalf("testfleet: cluster %s: %v", cluster, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg
}

// Namespace creates a namespace unique to the test in cluster and deletes it
// when the test ends.
func (f *Fleet) Namespace(t testing.TB, cluster string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(f.RESTConfig(t, cluster))
	if err != nil {
		t.Fatalf("testfleet: cluster %s: %v", cluster, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: namespacePrefix(t.Name()),
		Labels:       map[string]string{"localfleet.fleetsync.dev/test": "true"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testfleet: cluster %s: create namespace for %s: %v", cluster, t.Name(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("testfleet: cluster %s: delete Namespace/%s: %v", cluster, ns.Name, err)
		}
	})
	return ns.Name
}

// namespacePrefix turns a test name into a DNS-1123 prefix ending in "-".
func namespacePrefix(testName string) string {
	var b strings.Builder
	b.WriteString("t-")
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.TrimRight(s, "-") + "-"
}

// Kubectl returns the path of the fleet's kubectl (built with the fleet).
func (f *Fleet) Kubectl(t testing.TB) string { return f.Binary(t, fleet.BinKubectl) }

// Binary returns the path of one of the fleet's binaries (fleet.BinRegistry, ...).
func (f *Fleet) Binary(t testing.TB, name string) string {
	t.Helper()
	lf, err := fleet.Load(f.Dir)
	if err != nil {
		t.Fatalf("testfleet: %v", err)
	}
	return filepath.Join(lf.BinDir, name)
}

// StopProcess stops one process of the fleet (e.g. "north-kube-apiserver",
// "etcd-west" of a cluster started with its own etcd), for fault tests.
func (f *Fleet) StopProcess(t testing.TB, name string) {
	t.Helper()
	lf, err := fleet.Load(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := lf.StopProcess(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// StartProcess starts a process stopped by StopProcess again, with the
// arguments it was first started with.
func (f *Fleet) StartProcess(t testing.TB, name string) {
	t.Helper()
	lf, err := fleet.Load(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := lf.StartProcess(name); err != nil {
		t.Fatal(err)
	}
}
