package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
)

const usage = `localfleet: real Kubernetes control planes and registries on 127.0.0.1.

  go run ./hack/localfleet up     --dir DIR --clusters north,south,east [--own-etcd C,...] [--timeout 2m]
  go run ./hack/localfleet down   --dir DIR
  go run ./hack/localfleet status --dir DIR
  go run ./hack/localfleet build  (only build the binaries into the cache)

See docs/localfleet.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "fleet directory (kubeconfigs, registries.json, env.sh, pid files, logs)")
	clusters := fs.String("clusters", "north,south,east", "comma-separated cluster names (up)")
	timeout := fs.Duration("timeout", 2*time.Minute, "start timeout, after the build (up)")
	ownEtcd := fs.String("own-etcd", "", "comma-separated clusters that get an etcd of their own (up; fault tests restart it)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" && args[0] != "build" {
		fmt.Fprint(stderr, usage)
		return errors.New("--dir is required")
	}
	switch args[0] {
	case "up":
		var own []string
		if *ownEtcd != "" {
			own = strings.Split(*ownEtcd, ",")
		}
		return up(ctx, *dir, strings.Split(*clusters, ","), own, *timeout, stdout, stderr)
	case "down":
		if err := fleet.Down(ctx, *dir, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "fleet in %s is down\n", *dir)
		return nil
	case "status":
		return status(*dir, stdout)
	case "build":
		start := time.Now()
		bins, err := fleet.Build(ctx, fleet.DefaultVersions(), stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "binaries in %s (%s)\n", bins.Dir, time.Since(start).Round(time.Millisecond))
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func up(ctx context.Context, dir string, clusters, ownEtcd []string, timeout time.Duration, stdout, stderr io.Writer) error {
	start := time.Now()
	f, err := fleet.Up(ctx, fleet.Options{Dir: dir, Clusters: clusters, OwnEtcd: ownEtcd, Progress: stderr, Timeout: timeout})
	if err != nil {
		return err
	}
	if err := f.PrintTable(stdout); err != nil {
		return err
	}
	kubectl := filepath.Join(f.BinDir, fleet.BinKubectl)
	first := f.Clusters[0]
	fmt.Fprintf(stdout, "\nfleet up in %s (%d clusters; start %s, with build check %s)\n",
		f.Dir, len(f.Clusters), f.StartTime.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond))
	fmt.Fprintf(stdout, "registries (plain HTTP): source %s", f.Registries.Source)
	for _, c := range f.Clusters {
		fmt.Fprintf(stdout, ", %s mirror %s", c.Name, f.Registries.Mirrors[c.Name])
	}
	fmt.Fprintf(stdout, "\n\nuse it:\n  export KUBECONFIG=%s\n  %s get nodes\n", first.Kubeconfig, kubectl)
	fmt.Fprintf(stdout, "or, for kubectl on PATH and every cluster as a context:\n  . %s\n  kubectl --context %s get nodes\n",
		filepath.Join(f.Dir, "env.sh"), first.Name)
	fmt.Fprintf(stdout, "images: %s/fleet/order-service:v2.0 (and mes-system:v1.2, inventory-service:v1.0, platform:v1.0)\n", f.Registries.Source)
	fmt.Fprintf(stdout, "stop it:\n  go run ./hack/localfleet down --dir %s\n", dir)
	return nil
}

func status(dir string, stdout io.Writer) error {
	f, err := fleet.Load(dir)
	if err != nil {
		fmt.Fprintf(stdout, "no fleet running in %s\n", dir)
		return err
	}
	if err := f.PrintTable(stdout); err != nil {
		return err
	}
	return f.Live()
}
