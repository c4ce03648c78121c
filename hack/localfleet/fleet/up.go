package fleet

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

//go:embed stages.yaml
var kwokStages []byte

// Options configure Up.
type Options struct {
	Dir      string   // where kubeconfigs, registries.json, env.sh, pid files and logs go
	Clusters []string // cluster names (DNS-1123 labels)
	Versions Versions // zero value: DefaultVersions()
	Progress io.Writer
	// Attached makes the processes die with the calling process (tests).
	Attached bool
	// Timeout bounds the start after the build; zero means 2 minutes.
	Timeout time.Duration
	// OwnEtcd names clusters that get an etcd of their own (etcd-<cluster>)
	// instead of a prefix of the shared one, so that a fault test can stop
	// and restart one cluster's storage alone.
	OwnEtcd []string
}

// Cluster is one started control plane.
type Cluster struct {
	Name       string `json:"name"`
	Server     string `json:"server"` // https://127.0.0.1:PORT
	Kubeconfig string `json:"kubeconfig"`
}

// Fleet is a running local fleet, as recorded in DIR/fleet.json.
type Fleet struct {
	Dir        string     `json:"dir"`
	BinDir     string     `json:"binDir"`
	Clusters   []Cluster  `json:"clusters"`
	Registries Registries `json:"registries"`
	Etcd       string     `json:"etcd"`
	// OwnEtcd is the etcd of each cluster that has one of its own.
	OwnEtcd   map[string]string `json:"ownEtcd,omitempty"`
	Processes []*Process        `json:"processes"`
	StartTime time.Duration     `json:"startTime"`

	mu sync.Mutex
}

func (f *Fleet) add(p *Process) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Processes = append(f.Processes, p)
}

func stateFile(dir string) string { return filepath.Join(dir, "fleet.json") }

// Up builds the binaries if needed and starts a fleet in opts.Dir. It refuses
// to start over a live fleet, cleans the leftovers of a crashed one, and stops
// whatever it started when a step fails.
func Up(ctx context.Context, opts Options) (*Fleet, error) {
	if opts.Versions == (Versions{}) {
		opts.Versions = DefaultVersions()
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	if err := validateClusters(opts.Clusters); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("localfleet: dir %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localfleet: create %s: %w", dir, err)
	}
	if live, err := liveProcesses(dir); err != nil {
		return nil, err
	} else if len(live) > 0 {
		return nil, fmt.Errorf("localfleet: a fleet is already running in %s (%s pid %d and %d more); run `down --dir %s` first",
			dir, live[0].Name, live[0].PID, len(live)-1, dir)
	}
	if err := Down(ctx, dir, opts.Progress); err != nil { // leftovers of a crashed run
		return nil, fmt.Errorf("localfleet: clean leftovers in %s: %w", dir, err)
	}
	bins, err := Build(ctx, opts.Versions, opts.Progress)
	if err != nil {
		return nil, err
	}
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	// Port choice and start are serialised between processes, so that two
	// fleets starting at once do not pick the same free port.
	unlock, err := lockFile(ctx, filepath.Join(root, "start.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	sctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	f := &Fleet{Dir: dir, BinDir: bins.Dir}
	start := time.Now()
	if err := f.start(sctx, bins, opts); err != nil {
		stopErr := f.Stop(context.WithoutCancel(ctx))
		return nil, errors.Join(err, stopErr)
	}
	f.StartTime = time.Since(start)
	if err := f.save(); err != nil {
		stopErr := f.Stop(context.WithoutCancel(ctx))
		return nil, errors.Join(err, stopErr)
	}
	return f, nil
}

func validateClusters(names []string) error {
	if len(names) == 0 {
		return errors.New("localfleet: no cluster named (--clusters north,south,east)")
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || len(n) > 40 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			strings.HasPrefix(n, "-") || strings.HasSuffix(n, "-") {
			return fmt.Errorf("localfleet: cluster name %q: want a DNS-1123 label of at most 40 characters", n)
		}
		if n == "source" {
			return errors.New(`localfleet: cluster name "source" is reserved for the source registry`)
		}
		if seen[n] {
			return fmt.Errorf("localfleet: cluster %q named twice", n)
		}
		seen[n] = true
	}
	return nil
}

// start runs every step; on error the caller stops what is in f.Processes.
func (f *Fleet) start(ctx context.Context, bins Binaries, opts Options) error {
	pp := newPortPicker()
	etcdPort, err := pp.pick(ctx, DefaultEtcdPort)
	if err != nil {
		return err
	}
	peerPort, err := pp.pick(ctx, DefaultEtcdPort+1)
	if err != nil {
		return err
	}
	f.Etcd = "http://" + addr(etcdPort)
	srcPort, err := pp.pick(ctx, DefaultSourceRegistry)
	if err != nil {
		return err
	}
	f.Registries = Registries{Source: addr(srcPort), Mirrors: map[string]string{}}
	mirrorPorts := map[string]int{}
	apiPorts := map[string]int{}
	ownEtcd := map[string][2]int{}
	for _, c := range opts.OwnEtcd {
		if !slices.Contains(opts.Clusters, c) {
			return fmt.Errorf("localfleet: --own-etcd %s: not a cluster of this fleet", c)
		}
		var ports [2]int
		for i := range ports {
			if ports[i], err = pp.pick(ctx, 0); err != nil {
				return err
			}
		}
		ownEtcd[c] = ports
		if f.OwnEtcd == nil {
			f.OwnEtcd = map[string]string{}
		}
		f.OwnEtcd[c] = "http://" + addr(ports[0])
	}
	for i, c := range opts.Clusters {
		if mirrorPorts[c], err = pp.pick(ctx, DefaultMirrorPorts()[c]); err != nil {
			return err
		}
		f.Registries.Mirrors[c] = addr(mirrorPorts[c])
		if apiPorts[c], err = pp.pick(ctx, DefaultAPIServerPort+i); err != nil {
			return err
		}
	}

	// Stage 1: etcd and the registries.
	regs := map[string]int{"source": srcPort}
	for c, p := range mirrorPorts {
		regs[c] = p
	}
	var tasks []func() error
	tasks = append(tasks, func() error { return f.startEtcd(ctx, bins, "etcd", etcdPort, peerPort, opts.Attached) })
	for c, ports := range ownEtcd {
		tasks = append(tasks, func() error { return f.startEtcd(ctx, bins, "etcd-"+c, ports[0], ports[1], opts.Attached) })
	}
	for name, port := range regs {
		tasks = append(tasks, func() error { return f.startRegistry(ctx, bins, name, port, opts.Attached) })
	}
	if err := parallel(tasks); err != nil {
		return err
	}
	// Stage 2: one control plane per cluster, in parallel; seed the source meanwhile.
	tasks = []func() error{func() error {
		if err := seedRegistry(ctx, f.Registries.Source, SeedImages()); err != nil {
			return fmt.Errorf("registry-source (%s): %w", f.Registries.Source, err)
		}
		return nil
	}}
	clusters := make([]Cluster, len(opts.Clusters))
	for i, c := range opts.Clusters {
		tasks = append(tasks, func() error {
			cl, err := f.startCluster(ctx, bins, c, apiPorts[c], opts.Attached)
			clusters[i] = cl
			return err
		})
	}
	if err := parallel(tasks); err != nil {
		return err
	}
	f.Clusters = clusters
	return nil
}

func parallel(tasks []func() error) error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *Fleet) startEtcd(ctx context.Context, bins Binaries, name string, port, peer int, attached bool) error {
	data := filepath.Join(f.Dir, name)
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("%s: clean %s: %w", name, data, err)
	}
	p := &Process{Name: name, Component: "etcd", Address: addr(port), Bin: bins.Path(BinEtcd)}
	if c, ok := strings.CutPrefix(name, "etcd-"); ok {
		p.Cluster = c
	}
	peerURL := "http://" + addr(peer)
	if err := spawn(f.Dir, p, attached, nil,
		"--name=localfleet", "--data-dir="+data,
		"--listen-client-urls=http://"+addr(port), "--advertise-client-urls=http://"+addr(port),
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=localfleet="+peerURL, "--initial-cluster-state=new",
		"--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
	); err != nil {
		return err
	}
	f.add(p)
	return waitFor(ctx, p, "GET /health", httpReady(http.DefaultClient, "http://"+addr(port)+"/health", `"health":"true"`))
}

func (f *Fleet) startRegistry(ctx context.Context, bins Binaries, name string, port int, attached bool) error {
	base := filepath.Join(f.Dir, "registry", name)
	if err := os.RemoveAll(base); err != nil {
		return fmt.Errorf("registry-%s: clean %s: %w", name, base, err)
	}
	cfg := filepath.Join(base, "config.yml")
	if err := writeRegistryConfig(cfg, filepath.Join(base, "data"), port); err != nil {
		return fmt.Errorf("registry-%s: config: %w", name, err)
	}
	p := &Process{Name: "registry-" + name, Component: "registry", Address: addr(port), Bin: bins.Path(BinRegistry)}
	if name != "source" {
		p.Cluster = name
	}
	// No telemetry exporter: nothing may leave the machine.
	env := []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_SDK_DISABLED=true"}
	if err := spawn(f.Dir, p, attached, env, "serve", cfg); err != nil {
		return err
	}
	f.add(p)
	return waitFor(ctx, p, "GET /v2/", httpReady(http.DefaultClient, "http://"+addr(port)+"/v2/", ""))
}

// startCluster starts kube-apiserver, then kube-controller-manager,
// kube-scheduler and kwok, registers the nodes and waits until they are Ready.
func (f *Fleet) startCluster(ctx context.Context, bins Binaries, name string, port int, attached bool) (Cluster, error) {
	cdir := filepath.Join(f.Dir, name)
	if err := os.RemoveAll(cdir); err != nil {
		return Cluster{}, fmt.Errorf("%s: clean %s: %w", name, cdir, err)
	}
	pki, ca, admin, err := writeClusterPKI(filepath.Join(cdir, "pki"), name)
	if err != nil {
		return Cluster{}, fmt.Errorf("%s: pki: %w", name, err)
	}
	cl := Cluster{Name: name, Server: "https://" + addr(port), Kubeconfig: filepath.Join(f.Dir, name+".kubeconfig")}
	if err := writeKubeconfig(cl.Kubeconfig, name, cl.Server, ca, admin); err != nil {
		return cl, fmt.Errorf("%s: %w", name, err)
	}
	api := &Process{Name: name + "-kube-apiserver", Component: "kube-apiserver", Cluster: name, Address: addr(port), Bin: bins.Path(BinAPIServer)}
	if err := spawn(f.Dir, api, attached, nil,
		"--etcd-servers="+f.etcdOf(name), "--etcd-prefix=/localfleet/"+name,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port), "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", "--cert-dir="+filepath.Join(cdir, "certs"),
		"--tls-cert-file="+pki.path("apiserver.crt"), "--tls-private-key-file="+pki.path("apiserver.key"),
		"--client-ca-file="+pki.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.path("sa.pub"), "--service-account-signing-key-file="+pki.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC", "--allow-privileged=true",
		"--enable-priority-and-fairness=false", "--profiling=false",
	); err != nil {
		return cl, err
	}
	f.add(api)
	hc, err := adminHTTPClient(ca, admin)
	if err != nil {
		return cl, fmt.Errorf("%s: %w", name, err)
	}
	if err := waitFor(ctx, api, "GET /readyz", httpReady(hc, cl.Server+"/readyz", "ok")); err != nil {
		return cl, err
	}
	cs, err := clientset(cl.Kubeconfig)
	if err != nil {
		return cl, fmt.Errorf("%s: %w", name, err)
	}

	kcm := &Process{Name: name + "-kube-controller-manager", Component: "kube-controller-manager", Cluster: name, Bin: bins.Path(BinController)}
	if err := spawn(f.Dir, kcm, attached, nil,
		"--kubeconfig="+cl.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+pki.path("sa.key"), "--root-ca-file="+pki.path("ca.crt"),
		"--cluster-signing-cert-file="+pki.path("ca.crt"), "--cluster-signing-key-file="+pki.path("ca.key"),
		"--profiling=false",
		// kwok's pvc-bound stage plays the storage layer; the binder would fight it.
		"--controllers=*,-persistentvolume-binder-controller",
	); err != nil {
		return cl, err
	}
	f.add(kcm)
	sched := &Process{Name: name + "-kube-scheduler", Component: "kube-scheduler", Cluster: name, Bin: bins.Path(BinScheduler)}
	if err := spawn(f.Dir, sched, attached, nil,
		"--kubeconfig="+cl.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--profiling=false",
	); err != nil {
		return cl, err
	}
	f.add(sched)
	stages := filepath.Join(cdir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
		return cl, fmt.Errorf("%s: write kwok stages: %w", name, err)
	}
	kwok := &Process{Name: name + "-kwok", Component: "kwok", Cluster: name, Bin: bins.Path(BinKwok)}
	if err := spawn(f.Dir, kwok, attached, []string{"HOME=" + cdir},
		"--kubeconfig="+cl.Kubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
	); err != nil {
		return cl, err
	}
	f.add(kwok)
	if err := createNodes(ctx, cs, name); err != nil {
		return cl, fmt.Errorf("%s: %w", name, err)
	}
	if err := waitFor(ctx, kwok, fmt.Sprintf("%d Ready nodes", NodesPerCluster), nodesReady(cs)); err != nil {
		return cl, err
	}
	if err := waitFor(ctx, kcm, "ServiceAccount default/default", serviceAccountExists(cs)); err != nil {
		return cl, err
	}
	if err := installNodePools(ctx, cl.Kubeconfig, name); err != nil {
		return cl, fmt.Errorf("%s: %w", name, err)
	}
	if sched.exited() {
		return cl, sched.failure("exited during start", errNotReady)
	}
	sched.StartTime = time.Since(sched.Started)
	return cl, nil
}

// etcdOf is the etcd a cluster's API server stores in.
func (f *Fleet) etcdOf(cluster string) string {
	if e, ok := f.OwnEtcd[cluster]; ok {
		return e
	}
	return f.Etcd
}

// save writes DIR/fleet.json, DIR/registries.json and DIR/env.sh.
func (f *Fleet) save() error {
	state, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	regs, err := json.MarshalIndent(f.Registries, "", "  ")
	if err != nil {
		return err
	}
	var env strings.Builder
	fmt.Fprintf(&env, "# Written by localfleet up. Source it: . %s\n", filepath.Join(f.Dir, "env.sh"))
	fmt.Fprintf(&env, "export PATH=%q:\"$PATH\"\n", f.BinDir)
	kcs := make([]string, 0, len(f.Clusters))
	for _, c := range f.Clusters {
		kcs = append(kcs, c.Kubeconfig)
	}
	fmt.Fprintf(&env, "export KUBECONFIG=%q\n", strings.Join(kcs, ":"))
	fmt.Fprintf(&env, "export FLEETSYNC_TESTFLEET_DIR=%q\n", f.Dir)
	fmt.Fprintf(&env, "export LOCALFLEET_SOURCE_REGISTRY=%q\n", f.Registries.Source)
	files := map[string][]byte{
		"registries.json": append(regs, '\n'),
		"env.sh":          []byte(env.String()),
		"fleet.json":      append(state, '\n'),
	}
	for _, n := range []string{"registries.json", "env.sh", "fleet.json"} {
		if err := os.WriteFile(filepath.Join(f.Dir, n), files[n], 0o644); err != nil {
			return fmt.Errorf("localfleet: write %s: %w", n, err)
		}
	}
	return nil
}
