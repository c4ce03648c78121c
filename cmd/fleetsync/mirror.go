package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
)

type mirrorCmdOptions struct {
	repo     string
	clusters []string
	output   string
	verbose  bool
	source   sourceFlags
	conn     clusterFlags
}

func newMirrorCmd() *cobra.Command {
	var o mirrorCmdOptions
	cmd := &cobra.Command{
		Use:   "mirror --repo DIR|URL [--cluster C]...",
		Short: "Image sync only: copy every image of mirrored apps into each cluster's registry, pinned by digest",
		Long: `mirror renders the fleet repo, resolves every image of the apps with
imageMirror: true to a digest at its source (reusing the digests a rollout of the same
output recorded on the clusters), and copies it to <spec.registry.mirror>/<source
repository path> of each cluster that has a registry: whole indexes (every platform),
skipping what the mirror already has, verified by digest. It prints a line per image,
then a table per cluster. Exit status 0 when every image is there, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMirror(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringArrayVar(&o.clusters, "cluster", nil, "cluster to mirror for (repeatable; default all)")
	fs.StringVarP(&o.output, "output", "o", "table", "output: table or json")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print errors in full")
	o.source.BindFlags(fs)
	o.conn.BindFlags(fs)
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func runMirror(ctx context.Context, o mirrorCmdOptions, w io.Writer) error {
	if o.output != "table" && o.output != "json" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want table or json", o.output)}
	}
	o.conn.imageMirror = true
	rec, desired, closeRun, err := clusterRun(ctx, &o.source, &o.conn, o.repo, o.clusters)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer closeRun()
	var progress func(reconcile.MirrorEvent)
	bar := newMirrorBar(w)
	switch {
	case o.output == "table" && bar != nil:
		progress = bar.update
	case o.output == "table":
		progress = func(e reconcile.MirrorEvent) { printMirrorEvent(w, e) }
	}
	res := rec.Mirror(ctx, desired, progress)
	if bar != nil {
		bar.finish()
	}
	// Images that could not even be resolved failed before any copy.
	var resolveErrs []string
	for _, cr := range desired.Rendered.Clusters {
		for _, ar := range cr.Apps {
			if ar.Err != nil {
				resolveErrs = append(resolveErrs, errText(ar.Err, o.verbose))
			}
		}
	}
	if o.output == "json" {
		if err := printData(w, "json", res); err != nil {
			return &exitError{code: 1, err: err}
		}
	} else {
		fmt.Fprintln(w)
		printMirrorTable(w, res, o.verbose)
		for _, e := range resolveErrs {
			fmt.Fprintln(w, "  "+oneLine(e))
		}
	}
	if !res.OK() || len(resolveErrs) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

func printMirrorEvent(w io.Writer, e reconcile.MirrorEvent) {
	state := "copied"
	switch {
	case e.Err != nil:
		state = "failed: " + oneLine(apply.Brief(e.Err))
	case e.Result.Present:
		state = "already present"
	}
	fmt.Fprintf(w, "mirror %-8s [%d/%d] %s -> %s: %s\n", e.Cluster, e.Done, e.Total, e.Result.Image, e.Result.Target, state)
}

func printMirrorTable(w io.Writer, res *reconcile.MirrorResult, verbose bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tMIRROR\tIMAGES\tCOPIED\tPRESENT\tFAILED")
	for _, c := range res.Clusters {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", c.Cluster, c.Mirror, len(c.Images), c.Copied, c.Present, c.Failed)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d bytes sent in %d registry requests\n", res.BytesSent, res.Requests)
	for _, c := range res.Clusters {
		for _, e := range c.Errors {
			if !verbose {
				e = oneLine(e)
			}
			fmt.Fprintln(w, "  "+c.Cluster+": "+e)
		}
	}
}

// mirrorBar is one line, redrawn, on a terminal: images done per cluster and
// the bytes sent; failures are printed as they come.
type mirrorBar struct {
	w       io.Writer
	order   []string
	done    map[string]int
	total   map[string]int
	sent    int64
	started time.Time
}

func newMirrorBar(w io.Writer) *mirrorBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) { //nolint:gosec // a file descriptor fits an int
		return nil
	}
	return &mirrorBar{w: w, done: map[string]int{}, total: map[string]int{}, started: time.Now()}
}

func (b *mirrorBar) update(e reconcile.MirrorEvent) {
	if _, ok := b.total[e.Cluster]; !ok {
		b.order = append(b.order, e.Cluster)
		sort.Strings(b.order)
	}
	b.done[e.Cluster], b.total[e.Cluster], b.sent = e.Done, e.Total, e.BytesSent
	if e.Err != nil {
		fmt.Fprintf(b.w, "\r\033[K%s: %s: %s\n", e.Cluster, e.Result.Image, oneLine(apply.Brief(e.Err)))
	}
	var parts []string
	for _, c := range b.order {
		parts = append(parts, fmt.Sprintf("%s %d/%d", c, b.done[c], b.total[c]))
	}
	fmt.Fprintf(b.w, "\r\033[Kmirroring images: %s | %.1f MiB sent | %s", strings.Join(parts, "  "), float64(b.sent)/(1<<20), time.Since(b.started).Truncate(100*time.Millisecond))
}

func (b *mirrorBar) finish() { fmt.Fprintln(b.w) }
