package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/server"
	"github.com/fleetsync/fleetsync/pkg/hub"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

// runFlags are the flags of `fleetsync run`.
type runFlags struct {
	repo              string
	cluster           string
	listen            string
	interval          time.Duration
	driftInterval     time.Duration
	heartbeatInterval time.Duration
	githubSecretFile  string
	gitlabTokenFile   string
	logFormat         string
	leaderElect       bool
	leaseNamespace    string
	leaseKubeconfig   string
	healthTimeout     time.Duration
	allowMassPrune    bool
	hubKubeconfig     string
	shards            string
	shardLease        time.Duration
	identity          string
	debugPprof        bool
	memoryLimit       string
	source            sourceFlags
	conn              clusterFlags
}

func (f *runFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a git URL (or a local repository or directory)")
	fs.StringVar(&f.cluster, "cluster", "", "agent mode: reconcile only this cluster (with --in-cluster, or --kubeconfig's context of that name)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the status API, metrics, webhooks and dashboard")
	fs.DurationVar(&f.interval, "interval", daemon.DefaultInterval, "how often the fleet repo is fetched (webhooks fetch at once)")
	fs.DurationVar(&f.driftInterval, "drift-interval", daemon.DefaultDriftInterval, "how often drift is checked (and corrected for apps with drift: correct)")
	fs.DurationVar(&f.heartbeatInterval, "heartbeat-interval", daemon.DefaultHeartbeatInterval, "how often each cluster's version and nodes are read")
	fs.StringVar(&f.githubSecretFile, "github-webhook-secret-file", "", "file holding the GitHub webhook secret (enables POST /hooks/github)")
	fs.StringVar(&f.gitlabTokenFile, "gitlab-webhook-token-file", "", "file holding the GitLab webhook token (enables POST /hooks/gitlab)")
	fs.StringVar(&f.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "central replicas elect one leader with a coordination.k8s.io Lease; the others stand by")
	fs.StringVar(&f.shards, "shards", "", "central replicas share the clusters: \"auto\" (a membership Lease per replica, clusters by rendezvous hashing, a Lease per cluster held while writing to it)")
	fs.DurationVar(&f.shardLease, "shard-lease-duration", daemon.DefaultShardLeaseDuration, "with --shards: how long a replica's Leases last unrenewed (its clusters move to the others after it)")
	fs.StringVar(&f.memoryLimit, "memory-limit", "auto", "the Go runtime's soft memory limit: auto (twice the live heap, at least 96Mi, at most 90% of the container's limit; off when GOMEMLIMIT or GOGC is set), off, or a size such as 512Mi")
	fs.BoolVar(&f.debugPprof, "debug-pprof", false, "serve Go's profiles under /debug/pprof/ on --listen (for debugging: they show the process's memory and code paths)")
	fs.StringVar(&f.identity, "identity", "", "this replica's identity in the Leases (default: the host name and a random suffix)")
	fs.StringVar(&f.leaseNamespace, "lease-namespace", "fleetsync-system", "namespace of the Leases (--leader-elect, --shards)")
	fs.StringVar(&f.leaseKubeconfig, "lease-kubeconfig", "", "kubeconfig of the cluster holding the Leases (--leader-elect, --shards; default: in-cluster config)")
	fs.StringVar(&f.leaseNamespace, "leader-elect-namespace", "fleetsync-system", "")
	fs.StringVar(&f.leaseKubeconfig, "leader-elect-kubeconfig", "", "")
	_ = fs.MarkDeprecated("leader-elect-namespace", "use --lease-namespace")
	_ = fs.MarkDeprecated("leader-elect-kubeconfig", "use --lease-kubeconfig")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "how long an apply waits for health (default: the app's rollout.healthTimeout, else fleet.yaml's, else 5m)")
	fs.StringVar(&f.hubKubeconfig, "hub-kubeconfig", "", "agent mode: kubeconfig of the hub API server where the agents publish their state and gate cross-cluster waves (its current context)")
	fs.BoolVar(&f.allowMassPrune, "allow-mass-prune", false, "allow removing more than half of an app's objects, or of a cluster's apps, at once")
	f.source.BindAccessFlags(fs)
	fs.StringVar(&f.source.ref, "branch", "", "branch to follow (default: the remote's default branch)")
	f.conn.BindFlags(fs)
}

func newRunCmd() *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run --repo URL [--branch B] [--kubeconfig-dir D | --cluster C]",
		Short: "Run the daemon: fetch the fleet repo, reconcile the clusters, serve status, metrics and the dashboard",
		Long: "run keeps the clusters on the fleet repo: it fetches the branch every --interval and on webhooks, " +
			"keeps the last revision that loads and validates in force, rolls each app out wave by wave with health " +
			"gates and automatic rollback, checks drift, and keeps a heartbeat per cluster. Central mode reconciles " +
			"every cluster it finds credentials for; agent mode (--cluster) only its own. It serves /healthz, /readyz, " +
			"/metrics, /api/v1/status, webhooks and a dashboard on --listen (docs/daemon.md).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), cmd.ErrOrStderr(), f) },
	}
	f.BindFlags(cmd.Flags())
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// newLogger returns the daemon's logger: text on a terminal, JSON otherwise.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	if format == "auto" {
		format = "json"
		if file, ok := w.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %s: want text, json or auto", format)
}

func readSecret(flag, file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s is empty", flag, file)
	}
	return b, nil
}

func runDaemon(ctx context.Context, stderr io.Writer, f *runFlags) error {
	log, err := newLogger(stderr, f.logFormat)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	klog.SetSlogLogger(log.With("from", "client-go"))
	settled, err := daemonGC(f.memoryLimit)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	ghSecret, err := readSecret("--github-webhook-secret-file", f.githubSecretFile)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	glToken, err := readSecret("--gitlab-webhook-token-file", f.gitlabTokenFile)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.cluster != "" {
		f.conn.inCluster = f.conn.inCluster || f.conn.kubeconfig == "" && f.conn.kubeconfigDir == ""
	}
	src, err := f.source.open(ctx, f.repo)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("open %s: %w", f.repo, err)}
	}
	defer src.Close()
	var hubClient *hub.Hub
	if f.hubKubeconfig != "" {
		if f.cluster == "" {
			return &exitError{code: 2, err: errors.New("--hub-kubeconfig is for agent mode: give --cluster too")}
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", f.hubKubeconfig)
		if err == nil {
			hubClient, err = hub.New(cfg)
		}
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("--hub-kubeconfig %s: %w", f.hubKubeconfig, err)}
		}
	}
	if f.shards != "" && f.shards != "auto" {
		return &exitError{code: 2, err: fmt.Errorf("--shards %s: want auto", f.shards)}
	}
	if f.shards != "" && (f.cluster != "" || f.leaderElect) {
		return &exitError{code: 2, err: errors.New("--shards is for central replicas: not with --cluster or --leader-elect")}
	}
	identity := f.identity
	if identity == "" {
		host, _ := os.Hostname()
		var suffix [4]byte
		_, _ = rand.Read(suffix[:])
		identity = host + "-" + hex.EncodeToString(suffix[:])
	}
	metrics := daemon.NewMetrics()
	f.conn.wrap = metrics.CountRequests
	var shards *daemon.Shards
	if f.shards != "" {
		cfg, err := leaseConfig(f.leaseKubeconfig)
		if err == nil {
			shards, err = daemon.NewShards(daemon.ShardOptions{Config: cfg, Namespace: f.leaseNamespace, Identity: identity, LeaseDuration: f.shardLease, Logger: log, Refused: metrics.ShardRefused})
		}
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		// Every write to a cluster goes through its shard guard first; what
		// the guard refuses is not sent, nor counted as a request.
		f.conn.wrap = func(cluster string) func(http.RoundTripper) http.RoundTripper {
			count, guard := metrics.CountRequests(cluster), shards.Wrap(cluster)
			return func(rt http.RoundTripper) http.RoundTripper { return guard(count(rt)) }
		}
	}
	rec, err := f.conn.reconcilerWith(reconcile.PoolOptions{Attempts: 1})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	var clusters []string
	if f.cluster != "" {
		clusters = []string{f.cluster}
	}
	d := daemon.New(daemon.Options{
		Source: src, Ref: f.source.ref, Reconciler: rec, Clusters: clusters, Agent: f.cluster != "",
		Interval: f.interval, DriftInterval: f.driftInterval, HeartbeatInterval: f.heartbeatInterval,
		Request: reconcile.RequestOptions{Timeout: f.healthTimeout, TimeoutOverrides: f.healthTimeout > 0, AllowMassPrune: f.allowMassPrune},
		Logger:  log, Metrics: metrics, Hub: hubClient, Shards: shards, Settled: settled,
	})
	hooks := map[string]http.Handler{}
	if ghSecret != nil {
		hooks["github"] = d.GitHubWebhook(ghSecret)
	}
	if glToken != nil {
		hooks["gitlab"] = d.GitLabWebhook(glToken)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.listen)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--listen: %w", err)}
	}
	handler := server.New(server.Options{Status: d.Status, Ready: d.Ready, Metrics: metrics.Handler(), Hooks: hooks})
	if f.debugPprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.Handle("/", handler)
		handler = mux
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// ctx is done by now: the shutdown gets a fresh deadline of its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	mode := "central"
	switch {
	case f.cluster != "":
		mode = "agent for cluster " + f.cluster
	case shards != nil:
		mode = "central, sharded as " + identity
	}
	log.Info("fleetsync run", "mode", mode, "repo", d.Status().Source.URL, "listen", "http://"+ln.Addr().String())
	switch {
	case f.cluster != "" && hubClient != nil:
		log.Info("agent with a hub: waves across clusters are gated on the other agents' states there", "hub", f.hubKubeconfig)
	case f.cluster != "":
		log.Warn("agent without a hub (--hub-kubeconfig): waves across clusters are not gated; this cluster's apps are rolled out on their own")
	}
	if !f.leaderElect {
		return d.Run(ctx)
	}
	cfg, err := leaseConfig(f.leaseKubeconfig)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	err = daemon.RunAsLeader(ctx, daemon.LeaderOptions{
		Config: cfg, Namespace: f.leaseNamespace, Identity: identity, Logger: log,
	}, func(ctx context.Context) {
		if err := d.Run(ctx); err != nil {
			log.Error("daemon stopped", "error", err)
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{code: 1, err: err}
	}
	return nil
}

// leaseConfig reaches the cluster holding the leader Lease.
func leaseConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--leader-elect, --shards: not in a cluster (%w): give --lease-kubeconfig", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--lease-kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
