package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

type diffCmdOptions struct {
	repo     string
	clusters []string
	output   string
	source   sourceFlags
	conn     clusterFlags
}

func newDiffCmd() *cobra.Command {
	var o diffCmdOptions
	cmd := &cobra.Command{
		Use:   "diff --repo DIR|URL [--cluster C]...",
		Short: "Show drift: desired state versus the clusters, through server-side dry-run",
		Long: `diff renders the fleet repo and compares every (cluster, app) pair with the
cluster through a server-side dry-run apply: objects drifted (with a YAML diff),
missing, or extra (still on the cluster, no longer desired). Secret values are
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
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

type diffPair struct {
	Cluster string        `json:"cluster"`
	App     string        `json:"app"`
	Report  *drift.Report `json:"report,omitempty"`
	Error   string        `json:"error,omitempty"`
}

func runDiff(ctx context.Context, o diffCmdOptions, w io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return &exitError{code: 2, err: fmt.Errorf("-o %s: want text or json", o.output)}
	}
	run, err := prepareClusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer run.close()
	pairs := diffFleet(ctx, run.repo, run.rendered, run.managers)
	drifted, failed := false, false
	for _, p := range pairs {
		if p.Error != "" {
			failed = true
		}
		if p.Report != nil && p.Report.Drifted() {
			drifted = true
		}
	}
	if o.output == "json" {
		if err := printData(w, "json", pairs); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		printDiffText(w, pairs)
	}
	switch {
	case failed:
		return &exitError{code: 2, err: errors.New("diff: some pairs could not be compared (see above)")}
	case drifted:
		return &exitError{code: 1}
	}
	return nil
}

// diffFleet compares every rendered pair, clusters in parallel.
func diffFleet(ctx context.Context, repo *fleet.Repo, rendered *render.Result, managers *managerSet) []diffPair {
	var mu sync.Mutex
	var out []diffPair
	var wg sync.WaitGroup
	for _, cr := range rendered.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []diffPair
			m, connErr := managers.get(ctx, cr.Cluster)
			for _, ar := range cr.Apps {
				p := diffPair{Cluster: cr.Cluster, App: ar.App}
				switch {
				case ar.Err != nil:
					p.Error = fmt.Sprintf("%s/%s: render: %v", cr.Cluster, ar.App, ar.Err)
				case connErr != nil:
					p.Error = connErr.Error()
				default:
					req := apply.Request{App: ar.App, Objects: ar.Objects}
					if app := repo.App(ar.App); app != nil {
						req.Namespace = app.Spec.Namespace
					}
					rep, err := drift.Detect(ctx, m, req)
					p.Report = rep
					if err != nil {
						p.Error = err.Error()
					}
				}
				local = append(local, p)
			}
			if connErr == nil {
				local = append(local, diffRemovedApps(ctx, repo, m, cr)...)
			}
			mu.Lock()
			out = append(out, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].App < out[j].App
	})
	return out
}

func printDiffText(w io.Writer, pairs []diffPair) {
	for _, p := range pairs {
		if p.Report == nil {
			fmt.Fprintf(w, "%s/%s: error: %s\n", p.Cluster, p.App, oneLine(p.Error))
			continue
		}
		r := p.Report
		state := "in sync"
		if r.Drifted() {
			state = fmt.Sprintf("drifted (%d drifted, %d missing, %d extra)", r.Count(drift.Drifted), r.Count(drift.Missing), r.Count(drift.Extra))
		}
		fmt.Fprintf(w, "%s/%s: %s\n", p.Cluster, p.App, state)
		for _, od := range r.Objects {
			switch od.State {
			case drift.InSync:
				continue
			case drift.Unknown:
				fmt.Fprintf(w, "  %s: error: %s\n", od.Object, oneLine(od.Error))
			default:
				fmt.Fprintf(w, "  %s: %s\n", od.Object, od.State)
			}
			if od.Diff != "" {
				for _, line := range strings.Split(strings.TrimRight(od.Diff, "\n"), "\n") {
					fmt.Fprintln(w, "    "+line)
				}
			}
		}
		if p.Error != "" && r != nil {
			fmt.Fprintf(w, "  error: %s\n", oneLine(p.Error))
		}
	}
}

// diffRemovedApps reports the objects of apps this fleet applied to the cluster
// that are no longer desired there (all extra).
func diffRemovedApps(ctx context.Context, repo *fleet.Repo, m *apply.Manager, cr render.ClusterResult) []diffPair {
	desired := map[string]bool{}
	for _, ar := range cr.Apps {
		desired[ar.App] = true
	}
	fleetName := ""
	if repo.Fleet != nil {
		fleetName = repo.Fleet.Metadata.Name
	}
	apps, err := m.Inventories(ctx)
	if err != nil {
		return []diffPair{{Cluster: cr.Cluster, Error: err.Error()}}
	}
	var out []diffPair
	for _, app := range apps {
		if desired[app] {
			continue
		}
		inv, err := m.Inventory(ctx, app)
		if err != nil || inv == nil || inv.Fleet != fleetName {
			continue // another fleet's app
		}
		p := diffPair{Cluster: cr.Cluster, App: app}
		rep, err := drift.Detect(ctx, m, apply.Request{App: app})
		p.Report = rep
		if err != nil {
			p.Error = err.Error()
		}
		out = append(out, p)
	}
	return out
}
