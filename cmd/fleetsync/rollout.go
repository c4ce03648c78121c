package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

type rolloutStatusOptions struct {
	repo     string
	clusters []string
	apps     []string
	output   string
	source   sourceFlags
	conn     clusterFlags
}

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Inspect the cross-cluster rollouts of apps",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRolloutStatusCmd())
	return cmd
}

func newRolloutStatusCmd() *cobra.Command {
	var o rolloutStatusOptions
	cmd := &cobra.Command{
		Use:   "status --repo DIR|URL [--app A]...",
		Short: "Each app's rollout, read from the clusters: wave, per-cluster state, halt or rollback reason",
		Long: `rollout status renders the fleet repo (the revision being rolled out) and reads,
from each cluster, what is applied there, its health, and the revisions held after a
failed rollout; it then says where each app's rollout is, exactly as apply would
decide it: Progressing (which wave, what it waits for), Done, Halted or RolledBack
(with the reason). It changes nothing. Exit status 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRolloutStatus(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringArrayVar(&o.clusters, "cluster", nil, "cluster to read (repeatable; default all)")
	fs.StringArrayVar(&o.apps, "app", nil, "app to show (repeatable; default all)")
	fs.StringVarP(&o.output, "output", "o", "table", "output: table, json or yaml")
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func runRolloutStatus(ctx context.Context, o rolloutStatusOptions, w io.Writer) error {
	if o.output != "table" && o.output != "json" && o.output != "yaml" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want table, json or yaml", o.output)}
	}
	rec, desired, closeRun, err := clusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer closeRun()
	rolls, err := rec.RolloutStatus(ctx, desired, o.apps)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if o.output != "table" {
		if err := printData(w, o.output, rolls); err != nil {
			return &exitError{code: 1, err: err}
		}
		return nil
	}
	printRollouts(w, rolls)
	return nil
}

// printRollouts prints one block per app: its phase and reason, then a line
// per cluster.
func printRollouts(w io.Writer, rolls []reconcile.AppRollout) {
	for i, r := range rolls {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s at wave %d/%d (revision %s)\n", r.App, r.Phase, r.Wave+1, r.Waves, shortRev(r.Target))
		if r.Reason != "" {
			fmt.Fprintf(w, "  %s\n", oneLine(r.Reason))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  WAVE\tCLUSTER\tSTATE\tREASON")
		for _, c := range r.Clusters {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", c.Wave+1, c.Cluster, c.State, oneLine(c.Reason))
		}
		_ = tw.Flush()
	}
}

func shortRev(rev string) string {
	if len(rev) > 12 && !strings.Contains(rev, " ") {
		return rev[:12]
	}
	return rev
}
