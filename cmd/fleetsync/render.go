package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// renderFlags are the flags of `fleetsync render`.
type renderFlags struct {
	repo             string
	source           sourceFlags
	clusters         []string
	apps             []string
	out              string
	output           string
	allowRemoteBases bool
	kubeVersion      string
	offline          bool
	images           imageFlags
}

func (f *renderFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a directory (plain or git) or a git URL")
	f.source.BindFlags(fs)
	fs.StringArrayVar(&f.clusters, "cluster", nil, "render only this cluster (repeatable)")
	fs.StringArrayVar(&f.apps, "app", nil, "render only this app (repeatable)")
	fs.StringVar(&f.out, "out", "", "write OUT/<cluster>/<app>.yaml instead of one stream to stdout")
	fs.StringVarP(&f.output, "output", "o", "yaml", "output format: yaml or json")
	fs.BoolVar(&f.allowRemoteBases, "allow-remote-bases", false, "allow remote (URL) resources in kustomizations")
	fs.StringVar(&f.kubeVersion, "kube-version", render.DefaultKubeVersion, "Kubernetes version Helm renders with when a cluster's is unknown")
	fs.BoolVar(&f.offline, "offline", false, "do not resolve images: references of mirrored apps stay as written (no registry is contacted)")
	f.images.BindFlags(fs)
}

func newRenderCmd() *cobra.Command {
	f := &renderFlags{}
	cmd := &cobra.Command{
		Use:   "render --repo DIR|URL [--ref R] [--cluster C]... [--app A]... [--out DIR] [-o yaml|json]",
		Short: "Render the manifests each cluster should run",
		Long: "render builds every (cluster, app) pair of the fleet repo (Kustomize and Helm, with " +
			"customizations, storage mapping and scale policies) and writes OUT/<cluster>/<app>.yaml, " +
			"or one stream to stdout. Errors are listed on stderr; the exit status is 1 when any pair failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRender(cmd, f)
		},
	}
	f.BindFlags(cmd.Flags())
	return cmd
}

func runRender(cmd *cobra.Command, f *renderFlags) error {
	if f.repo == "" {
		return errors.New("--repo is required")
	}
	if f.output != "yaml" && f.output != "json" {
		return fmt.Errorf("-o %s: want yaml or json", f.output)
	}
	ctx := cmd.Context()
	repo, closeRepo, err := f.source.load(ctx, f.repo)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("load %s: %w", f.repo, err)}
	}
	defer closeRepo()
	r := render.New(render.Options{AllowRemoteBases: f.allowRemoteBases, DefaultKubeVersion: f.kubeVersion})
	res := r.Render(ctx, repo, render.Selection{Clusters: f.clusters, Apps: f.apps})
	if err := rewriteImages(ctx, cmd.ErrOrStderr(), f.offline, &f.images, repo, res); err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.out != "" {
		err = writeRenderDir(f.out, f.output, res)
	} else {
		err = writeRenderStream(cmd.OutOrStdout(), f.output, res)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			for _, w := range a.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s/%s: %s\n", c.Cluster, a.App, w)
			}
			if a.Err != nil {
				failed++
				fmt.Fprintln(cmd.ErrOrStderr(), "error:", a.Err)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d pair(s) failed to render\n", failed)
		return &exitError{code: 1}
	}
	return nil
}

func encodeObjects(format string, objs []*unstructured.Unstructured) ([]byte, error) {
	if format == "json" {
		return render.JSON(objs)
	}
	return render.YAML(objs)
}

// writeRenderDir writes OUT/<cluster>/<app>.yaml (.json) for every pair that
// rendered, readable by the user only (rendered Secrets may be among them).
func writeRenderDir(out, format string, res *render.Result) error {
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				continue
			}
			b, err := encodeObjects(format, a.Objects)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", c.Cluster, a.App, err)
			}
			dir := filepath.Join(out, c.Cluster)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, a.App+"."+format), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// renderedPair is one pair in `render -o json` output.
type renderedPair struct {
	Cluster string           `json:"cluster"`
	App     string           `json:"app"`
	Objects []map[string]any `json:"objects"`
}

// writeRenderStream writes every pair that rendered to w: in YAML a
// "# cluster/app" comment before each pair's documents; in JSON an array of
// {cluster, app, objects}.
func writeRenderStream(w io.Writer, format string, res *render.Result) error {
	if format == "json" {
		pairs := []renderedPair{}
		for _, c := range res.Clusters {
			for _, a := range c.Apps {
				if a.Err != nil {
					continue
				}
				p := renderedPair{Cluster: c.Cluster, App: a.App, Objects: []map[string]any{}}
				for _, o := range a.Objects {
					p.Objects = append(p.Objects, o.Object)
				}
				pairs = append(pairs, p)
			}
		}
		return printData(w, "json", pairs)
	}
	first := true
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				continue
			}
			b, err := render.YAML(a.Objects)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", c.Cluster, a.App, err)
			}
			if !first {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			first = false
			if _, err := fmt.Fprintf(w, "# %s/%s\n%s", c.Cluster, a.App, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// rewriteImages pins the images of mirrored apps and rewrites their references
// as apply would (resolved at the source), or, with --offline, says that they
// are left as written.
func rewriteImages(ctx context.Context, stderr io.Writer, offline bool, f *imageFlags, repo *fleet.Repo, res *render.Result) error {
	if offline {
		fmt.Fprintln(stderr, "--offline: image references of mirrored apps are as written (not resolved to digests, not rewritten to the mirrors)")
		return nil
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	reconcile.RewriteImages(ctx, repo, res, *opts)
	return nil
}
