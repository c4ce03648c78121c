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
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/rollout"
)

type applyCmdOptions struct {
	repo           string
	clusters       []string
	dryRun         bool
	allowMassPrune bool
	timeout        time.Duration
	timeoutSet     bool
	output         string
	verbose        bool
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
Apps removed from the repo are uninstalled (unless more than half of a cluster's apps
would go at once). It prints one line per object, then a summary; errors are one
line each (-v for the API server's full text). A pair whose render failed is not
applied and nothing is pruned on its cluster. Exit status 0 when everything applied
and is healthy, 1 otherwise.`,
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
	fs.BoolVar(&o.allowMassPrune, "allow-mass-prune", false, "allow pruning more than half of an app's objects, or removing more than half of a cluster's apps at once")
	fs.DurationVar(&o.timeout, "timeout", apply.DefaultTimeout, "health timeout per app (default: the app's rollout.healthTimeout, the fleet's healthTimeout, else 5m)")
	fs.StringVarP(&o.output, "output", "o", "table", "output: table or json")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print errors in full (the API server's whole message)")
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func runApply(ctx context.Context, o applyCmdOptions, w io.Writer) error {
	if o.output != "table" && o.output != "json" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want table or json", o.output)}
	}
	rec, desired, closeRun, err := clusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer closeRun()
	opts := reconcile.RequestOptions{DryRun: o.dryRun, AllowMassPrune: o.allowMassPrune, Timeout: o.timeout, TimeoutOverrides: o.timeoutSet}
	if o.output == "table" {
		opts.Progress = func(c apply.Change) {
			action := string(c.Action)
			if c.Phase != "" {
				action += " " + c.Phase // a hook: "hook pre-install", "failed post-upgrade"
			}
			if c.DryRun {
				action += " (dry run)"
			}
			detail := c.Reason
			if c.Err != nil {
				detail = errText(c.Err, o.verbose)
			}
			fmt.Fprintf(w, "%-10s %-20s %-50s %-12s %s\n", c.Cluster, c.App, c.Object, action, oneLine(detail))
		}
		opts.Mirrored = func(e reconcile.MirrorEvent) { printMirrorEvent(w, e) }
		opts.Events = func(e reconcile.RolloutEvent) {
			fmt.Fprintf(w, "rollout %s [wave %d/%d] %s: %s\n", e.App, e.Wave+1, e.Waves, e.Phase, oneLine(e.Message))
		}
	}
	res := rec.Apply(ctx, desired, opts)
	if o.output == "json" {
		if err := printData(w, "json", res); err != nil {
			return &exitError{code: 1, err: err}
		}
	} else {
		fmt.Fprintln(w)
		printApplySummary(w, res, o.verbose)
	}
	if !res.OK() {
		return &exitError{code: 1}
	}
	return nil
}

// errText is an error's one-line form, or its full text with -v.
func errText(err error, verbose bool) string {
	if verbose {
		return err.Error()
	}
	var lines []string
	for _, e := range leafErrors(err) {
		lines = append(lines, apply.Brief(e))
	}
	return strings.Join(lines, "\n")
}

// leafErrors splits a joined error into its parts (one line each).
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // splitting errors.Join
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

func printApplySummary(w io.Writer, res *reconcile.Result, verbose bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if res.Mirror != nil && len(res.Mirror.Clusters) > 0 {
		printMirrorTable(w, res.Mirror, verbose)
		fmt.Fprintln(w)
	}
	if len(res.Rollouts) > 0 {
		printRollouts(w, res.Rollouts)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(tw, "CLUSTER\tAPP\tWAVE\tCREATED\tCONFIGURED\tUNCHANGED\tPRUNED\tSKIPPED\tHOOKS\tFAILED\tHEALTH")
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
		case p.Err != nil && p.ErrorKind == apply.ErrCanceled:
			health = "Canceled"
			errs = append(errs, errText(p.Err, verbose))
		case rolloutState(p.Err) != "":
			health = rolloutState(p.Err)
			errs = append(errs, errText(p.Err, verbose))
		case p.Err != nil:
			health = "Failed"
			errs = append(errs, errText(p.Err, verbose))
		case res.DryRun:
			health = "-"
		case !p.Healthy && !p.Removed:
			health = "Unhealthy"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Cluster, p.App, wave,
			counts[apply.Created]+counts[apply.Recreated], counts[apply.Configured], counts[apply.Unchanged],
			counts[apply.Pruned], counts[apply.Skipped], counts[apply.Hook], counts[apply.Failed], health)
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

// rolloutState is the rollout state of a pair that did not end healthy
// (Failed, RolledBack, Held, ...), "" for other errors.
func rolloutState(err error) string {
	var re *reconcile.RolloutError
	if errors.As(err, &re) && re.State != rollout.StatePending {
		return string(re.State)
	}
	if errors.As(err, &re) {
		return "NotApplied"
	}
	return ""
}
