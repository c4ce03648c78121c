package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

type diffCmdOptions struct {
	repo           string
	clusters       []string
	output         string
	verbose        bool
	allowMassPrune bool
	source         sourceFlags
	conn           clusterFlags
}

func newDiffCmd() *cobra.Command {
	var o diffCmdOptions
	cmd := &cobra.Command{
		Use:   "diff --repo DIR|URL [--cluster C]...",
		Short: "Show drift: desired state versus the clusters, through server-side dry-run",
		Long: `diff renders the fleet repo and compares every (cluster, app) pair with the
cluster through a server-side dry-run of the very request apply would send: objects
drifted (with a YAML diff, naming the kubectl verbs that changed them), missing, or
extra (still on the cluster, no longer desired, and whether the next apply prunes
them). Apps that left a cluster are listed with their objects. Secret values are
masked. Exit status 0 when nothing drifted, 1 when something did, 2 on errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDiff(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringArrayVar(&o.clusters, "cluster", nil, "cluster to compare (repeatable; default all)")
	fs.StringVarP(&o.output, "output", "o", "text", "output: text or json")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print errors in full (the API server's whole message)")
	fs.BoolVar(&o.allowMassPrune, "allow-mass-prune", false, "compare as apply --allow-mass-prune would act")
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func runDiff(ctx context.Context, o diffCmdOptions, w io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return &exitError{code: 2, err: fmt.Errorf("-o %s: want text or json", o.output)}
	}
	rec, desired, closeRun, err := clusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer closeRun()
	res := rec.Diff(ctx, desired, reconcile.DiffOptions{RequestOptions: reconcile.RequestOptions{AllowMassPrune: o.allowMassPrune}})
	if o.output == "json" {
		if err := printData(w, "json", res); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		printDiffText(w, res, o.verbose)
	}
	switch {
	case res.Failed():
		return &exitError{code: 2, err: errors.New("diff: some pairs could not be compared (see above)")}
	case res.Drifted():
		return &exitError{code: 1}
	}
	return nil
}

func printDiffText(w io.Writer, res *reconcile.DiffResult, verbose bool) {
	for _, p := range res.Pairs {
		name := p.Cluster + "/" + p.App
		if p.App == "" {
			name = p.Cluster
		}
		if p.Report == nil {
			fmt.Fprintf(w, "%s: error: %s\n", name, oneLine(errText(p.Err, verbose)))
			continue
		}
		r := p.Report
		state := "in sync"
		if r.Drifted() {
			state = fmt.Sprintf("drifted (%d drifted, %d missing, %d extra)", r.Count(drift.Drifted), r.Count(drift.Missing), r.Count(drift.Extra))
		}
		if p.Removed {
			state = "removed from the repo: " + state
		}
		fmt.Fprintf(w, "%s: %s\n", name, state)
		if p.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", p.Note)
		}
		for _, od := range r.Objects {
			switch od.State {
			case drift.InSync:
				continue
			case drift.Unknown:
				fmt.Fprintf(w, "  %s: error: %s\n", od.Object, oneLine(od.Error))
			case drift.Extra:
				what := "not pruned by apply"
				if od.Prune {
					what = "pruned by the next apply"
				}
				fmt.Fprintf(w, "  %s: extra (%s)\n", od.Object, what)
			default:
				extra := ""
				if len(od.ChangedBy) > 0 {
					extra = " (changed by " + strings.Join(od.ChangedBy, ", ") + ")"
				}
				if od.Approximate {
					extra += " (predicted: the server cannot dry-run the merge with those changes)"
				}
				fmt.Fprintf(w, "  %s: %s%s\n", od.Object, od.State, extra)
			}
			if od.Diff != "" {
				for _, line := range strings.Split(strings.TrimRight(od.Diff, "\n"), "\n") {
					fmt.Fprintln(w, "    "+line)
				}
			}
		}
		if p.Err != nil {
			fmt.Fprintf(w, "  error: %s\n", oneLine(errText(p.Err, verbose)))
		}
	}
}
