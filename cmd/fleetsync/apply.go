package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

type applyCmdOptions struct {
	repo           string
	clusters       []string
	dryRun         bool
	allowMassPrune bool
	timeout        time.Duration
	timeoutSet     bool
	output         string
	source         sourceFlags
	conn           clusterFlags
}

func newApplyCmd() *cobra.Command {
	var o applyCmdOptions
	cmd := &cobra.Command{
		Use:   "apply --repo DIR|URL [--cluster C]...",
		Short: "One-shot reconcile: render, apply with server-side apply, prune, wait healthy",
		Long: `apply renders the fleet repo and applies every (cluster, app) pair: clusters in
parallel, each cluster's apps in dependsOn order, rollout waves one after the other.
It prints one line per object, then a summary. A pair whose render failed is not
applied and nothing of it is pruned. Exit status 0 when everything applied and is
healthy, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.timeoutSet = cmd.Flags().Changed("timeout")
			return runApply(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringArrayVar(&o.clusters, "cluster", nil, "cluster to apply (repeatable; default all)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "server-side dry run: show what would change, write nothing")
	fs.BoolVar(&o.allowMassPrune, "allow-mass-prune", false, "allow pruning more than half of an app's objects")
	fs.DurationVar(&o.timeout, "timeout", apply.DefaultTimeout, "health timeout per app (default: the app's rollout.healthTimeout, the fleet's healthTimeout, else 5m)")
	fs.StringVarP(&o.output, "output", "o", "table", "output: table or json")
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// clusterRun is what apply and diff share: the loaded repo, the clusters in
// scope, a connection per cluster, and the render made with each reachable
// cluster's Kubernetes version.
type clusterRun struct {
	repo     *fleet.Repo
	clusters []string // --cluster, or every cluster of the repo
	managers *managerSet
	rendered *render.Result
	close    func()
}

// prepareClusterRun loads --repo, rejects unknown --cluster names, asks the
// selected clusters their version and renders for them. Call close when done.
func prepareClusterRun(ctx context.Context, sf *sourceFlags, conn *clusterFlags, repoArg string, clusters []string) (*clusterRun, error) {
	repo, closeRepo, err := sf.load(ctx, repoArg)
	if err != nil {
		return nil, err
	}
	if err := checkClusters(repo, clusters); err != nil {
		closeRepo()
		return nil, err
	}
	run := &clusterRun{repo: repo, clusters: selectedClusters(repo, clusters), managers: newManagerSet(conn), close: closeRepo}
	versions := run.managers.kubeVersions(ctx, run.clusters)
	run.rendered = render.New(render.Options{KubeVersions: versions}).Render(ctx, repo, render.Selection{Clusters: clusters})
	return run, nil
}

func runApply(ctx context.Context, o applyCmdOptions, w io.Writer) error {
	if o.output != "table" && o.output != "json" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want table or json", o.output)}
	}
	run, err := prepareClusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer run.close()
	opts := apply.FleetOptions{DryRun: o.dryRun, AllowMassPrune: o.allowMassPrune, Timeout: o.timeout, TimeoutOverrides: o.timeoutSet}
	if o.output == "table" {
		opts.Progress = func(c apply.Change) {
			action := string(c.Action)
			if c.DryRun {
				action += " (dry run)"
			}
			detail := c.Reason
			if c.Err != nil {
				detail = c.Err.Error()
			}
			fmt.Fprintf(w, "%-10s %-20s %-50s %-12s %s\n", c.Cluster, c.App, c.Object, action, oneLine(detail))
		}
	}
	opts.Clusters = run.clusters
	res := apply.Fleet(ctx, run.repo, run.rendered, run.managers.get, opts)
	if o.output == "json" {
		if err := printData(w, "json", res); err != nil {
			return &exitError{code: 1, err: err}
		}
	} else {
		fmt.Fprintln(w)
		printApplySummary(w, res)
	}
	if !res.OK() {
		return &exitError{code: 1}
	}
	return nil
}

// checkClusters rejects --cluster names the repo does not define.
func checkClusters(repo *fleet.Repo, names []string) error {
	var errs []error
	for _, n := range names {
		if repo.Cluster(n) == nil {
			errs = append(errs, fmt.Errorf("--cluster %s: no such cluster in the fleet repo", n))
		}
	}
	return errors.Join(errs...)
}

func printApplySummary(w io.Writer, res *apply.FleetResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tAPP\tWAVE\tCREATED\tCONFIGURED\tUNCHANGED\tPRUNED\tSKIPPED\tFAILED\tHEALTH")
	var errs []string
	for _, p := range res.Pairs {
		counts := map[apply.Action]int{}
		if p.ChangeSet != nil {
			counts = p.ChangeSet.Counts()
		}
		health, wave := "Healthy", fmt.Sprint(p.Wave+1)
		if p.Removed {
			health, wave = "Removed", "-"
		}
		switch {
		case p.Err != nil:
			health = "Failed"
			errs = append(errs, p.Err.Error())
		case res.DryRun:
			health = "-"
		case !p.Healthy && !p.Removed:
			health = "Unhealthy"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Cluster, p.App, wave,
			counts[apply.Created]+counts[apply.Recreated], counts[apply.Configured], counts[apply.Unchanged],
			counts[apply.Pruned], counts[apply.Skipped], counts[apply.Failed], health)
	}
	_ = tw.Flush()
	sort.Strings(errs)
	if len(errs) > 0 {
		fmt.Fprintln(w, "\nErrors:")
		for _, e := range errs {
			for _, line := range strings.Split(e, "\n") {
				fmt.Fprintln(w, "  "+line)
			}
		}
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// selectedClusters is --cluster, or every cluster of the repo.
func selectedClusters(repo *fleet.Repo, names []string) []string {
	if len(names) > 0 {
		return names
	}
	out := make([]string, 0, len(repo.Clusters))
	for _, c := range repo.Clusters {
		out = append(out, c.Metadata.Name)
	}
	return out
}
