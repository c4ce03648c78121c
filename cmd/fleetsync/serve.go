package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/server"
)

type serveFlags struct {
	hubKubeconfig string
	listen        string
	poll          time.Duration
	logFormat     string
	memoryLimit   string
}

func newServeCmd() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve [--hub-kubeconfig H] [--listen ADDR]",
		Short: "Serve the status API, metrics and dashboard of a fleet of agents, read from their hub",
		Long: "serve reads the state every agent publishes on the hub (ConfigMaps fleetsync-agent-<cluster> in " +
			"fleetsync-system) every --poll and serves it read-only on --listen: /healthz, /readyz (ready once the hub " +
			"was read), /metrics, GET /api/v1/status and the dashboard, as `fleetsync run` does for its own clusters. " +
			"It needs only get and list on those ConfigMaps (deploy/hub-view). An agent whose state is older than " +
			"three of its heartbeat intervals shows its cluster down.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), cmd.ErrOrStderr(), f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.hubKubeconfig, "hub-kubeconfig", "", "kubeconfig of the hub API server the agents publish to (its current context; default: the cluster serve runs in)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the status API, metrics and dashboard")
	fs.DurationVar(&f.poll, "poll", 5*time.Second, "how often the hub is read")
	fs.StringVar(&f.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
	fs.StringVar(&f.memoryLimit, "memory-limit", "auto", "the Go runtime's soft memory limit: auto (twice the live heap, at least 96Mi, at most 90% of the container's limit; off when GOMEMLIMIT or GOGC is set), off, or a size such as 512Mi")
	return cmd
}

func runServe(ctx context.Context, stderr io.Writer, f *serveFlags) error {
	log, err := newLogger(stderr, f.logFormat)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	klog.SetSlogLogger(log.With("from", "client-go"))
	if _, err := daemonGC(f.memoryLimit); err != nil {
		return &exitError{code: 1, err: err}
	}
	h, err := connectHub(f.hubKubeconfig) // "" is the in-cluster config
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	view := daemon.NewHubView(h, f.poll, log)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.listen)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("--listen: %w", err)}
	}
	srv := &http.Server{
		Handler:           server.New(server.Options{Status: view.Status, Ready: view.Ready, Metrics: view.Metrics()}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	hubName := f.hubKubeconfig
	if hubName == "" {
		hubName = "in-cluster"
	}
	log.Info("fleetsync serve", "hub", hubName, "listen", "http://"+ln.Addr().String())
	view.Run(ctx)
	return nil
}
