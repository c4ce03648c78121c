package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/plan"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// planFlags are the flags of `fleetsync plan`.
type planFlags struct {
	repo             string
	base, head       string
	output           string
	exitCode         bool
	allowRemoteBases bool
	kubeVersion      string
	offline          bool
	images           imageFlags
	source           sourceFlags
}

// BindFlags adds plan's flags.
func (f *planFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a git URL or a directory inside a git repository")
	fs.StringVar(&f.base, "base", "", "git ref of the base (e.g. the pull request's target branch)")
	fs.StringVar(&f.head, "head", "HEAD", "git ref of the head (e.g. the pull request's commit)")
	fs.StringVarP(&f.output, "output", "o", "markdown", "output format: markdown or json")
	fs.BoolVar(&f.exitCode, "exit-code", false, "exit with status 2 when anything changes (0 no change, 1 error)")
	fs.BoolVar(&f.allowRemoteBases, "allow-remote-bases", false, "allow remote (URL) resources in kustomizations")
	fs.StringVar(&f.kubeVersion, "kube-version", render.DefaultKubeVersion, "Kubernetes version Helm renders with when a cluster's is unknown")
	fs.BoolVar(&f.offline, "offline", false, "do not resolve images: references of mirrored apps stay as written (no registry is contacted)")
	f.images.BindFlags(fs)
	f.source.BindAccessFlags(fs)
}

func newPlanCmd() *cobra.Command {
	f := &planFlags{}
	cmd := &cobra.Command{
		Use:   "plan --repo DIR|URL --base REF --head REF [-o markdown|json] [--exit-code]",
		Short: "Show what a change to the fleet repo does to each cluster",
		Long: "plan renders two commits of the fleet repo, read straight from git objects (no checkout), " +
			"and reports per cluster and app the objects added, changed and deleted, with unified diffs " +
			"of the rendered YAML (Secret values masked). The Markdown output is made for a pull-request " +
			"comment; the JSON output is documented in docs/plan.md.\n\n" +
			"Exit status: 0, or 2 with --exit-code when anything changes; 1 when a ref cannot be read, " +
			"or the head does not load or render (the plan, with the errors, is still printed).",
		Example: "  fleetsync plan --repo . --base origin/main --head HEAD --exit-code\n" +
			"  fleetsync plan --repo https://git.example/fleet.git --base main --head pr-42 -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlan(cmd, f)
		},
	}
	f.BindFlags(cmd.Flags())
	return cmd
}

func runPlan(cmd *cobra.Command, f *planFlags) error {
	switch {
	case f.repo == "":
		return errors.New("--repo is required")
	case f.base == "":
		return errors.New("--base is required")
	case f.head == "":
		return errors.New("--head must not be empty")
	case f.output != "markdown" && f.output != "json":
		return fmt.Errorf("-o %s: want markdown or json", f.output)
	}
	ctx := cmd.Context()
	batchGC()
	render.Preload()
	src, err := f.source.open(ctx, f.repo)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("plan: %w", err)}
	}
	defer src.Close()
	r := render.New(render.Options{AllowRemoteBases: f.allowRemoteBases, DefaultKubeVersion: f.kubeVersion})
	var imgErr error
	note := cmd.ErrOrStderr()
	p, err := plan.FromRefs(ctx, src, f.base, f.head, r, plan.WithPostRender(func(ctx context.Context, repo *fleet.Repo, res *render.Result) {
		if e := rewriteImages(ctx, note, f.offline, &f.images, repo, res); e != nil {
			imgErr = e
		}
		note = io.Discard // the --offline note once, not per side
	}))
	if err == nil {
		err = imgErr
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	w := cmd.OutOrStdout()
	if f.output == "json" {
		err = plan.JSON(w, p)
	} else {
		err = plan.Markdown(w, p)
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := p.Err(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("plan %s..%s (see the plan for details):\n%w", f.base, f.head, err)}
	}
	if f.exitCode && p.HasChanges() {
		return &exitError{code: 2}
	}
	return nil
}
