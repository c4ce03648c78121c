package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// validateFlags are the flags of `fleetsync validate`.
type validateFlags struct {
	repo          string
	output        string
	render        bool
	renderTimeout time.Duration
	source        sourceFlags
}

// BindFlags adds validate's flags.
func (f *validateFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text, json or yaml")
	fs.BoolVar(&f.render, "render", true, "also render every (cluster, app) pair; --render=false checks the files only")
	fs.DurationVar(&f.renderTimeout, "render-timeout", render.DefaultRenderTimeout, "how long one chart's templates may run before the pair fails")
	f.source.BindFlags(fs)
}

func newValidateCmd() *cobra.Command {
	f := &validateFlags{}
	cmd := &cobra.Command{
		Use:   "validate --repo DIR|URL [-o text|json]",
		Short: "Check a fleet repo: strict decoding, references, paths, and a full render",
		Long: "validate loads the fleet repo strictly (unknown fields are errors), checks every rule of " +
			"the format (docs/fleet-repo.md), then renders every (cluster, app) pair. It lists every " +
			"problem as file:line: field: message, sorted by file and line, and exits 1 when there is any.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	f.BindFlags(cmd.Flags())
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

// validateReport is validate's JSON and YAML output.
type validateReport struct {
	Valid    bool           `json:"valid"`
	Problems fleet.Problems `json:"problems"`
	// Warnings do not make the repo invalid: what Kustomize and Helm found
	// doubtful, kinds of unknown scope, empty renders, random output.
	Warnings fleet.Problems   `json:"warnings,omitempty"`
	Summary  *validateSummary `json:"summary,omitempty"`
}

// validateSummary counts what a valid repo holds.
type validateSummary struct {
	Clusters int `json:"clusters"`
	Apps     int `json:"apps"`
	Policies int `json:"policies"`
	// Pairs is the number of (cluster, app) pairs rendered; -1 when not rendered.
	Pairs int `json:"pairs"`
}

func runValidate(ctx context.Context, stdout, stderr io.Writer, f *validateFlags) error {
	if f.output != "text" && f.output != "json" && f.output != "yaml" {
		return &exitError{code: 1, err: fmt.Errorf("-o %s: want text, json or yaml", f.output)}
	}
	report, err := validateRepo(ctx, f)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if f.output != "text" {
		if report.Problems == nil {
			report.Problems = fleet.Problems{}
		}
		if err := printData(stdout, f.output, report); err != nil {
			return err
		}
	} else {
		for _, p := range report.Problems {
			if _, err := fmt.Fprintln(stdout, p); err != nil {
				return err
			}
		}
		for _, p := range report.Warnings {
			if _, err := fmt.Fprintln(stdout, p); err != nil {
				return err
			}
		}
		if s := report.Summary; s != nil {
			rendered := fmt.Sprintf("%d pairs rendered", s.Pairs)
			if s.Pairs < 0 {
				rendered = "not rendered"
			}
			if _, err := fmt.Fprintf(stdout, "valid: %d clusters, %d apps, %d policies, %s\n", s.Clusters, s.Apps, s.Policies, rendered); err != nil {
				return err
			}
		}
	}
	if !report.Valid {
		fmt.Fprintf(stderr, "invalid: %d problem(s)\n", len(report.Problems))
		return &exitError{code: 1}
	}
	return nil
}

// validateRepo loads (and renders) the repo; problems are in the report, other
// failures (unreadable repo, bad flags) are the error.
func validateRepo(ctx context.Context, f *validateFlags) (*validateReport, error) {
	repo, closeRepo, err := f.source.load(ctx, f.repo)
	var problems fleet.Problems
	switch {
	case errors.As(err, &problems):
		return &validateReport{Problems: problems}, nil
	case err != nil:
		return nil, err
	}
	defer closeRepo()
	summary := &validateSummary{Clusters: len(repo.Clusters), Apps: len(repo.Apps), Policies: len(repo.ScalePolicies), Pairs: -1}
	var warnings fleet.Problems
	if f.render {
		res := render.New(render.Options{RenderTimeout: f.renderTimeout}).Render(ctx, repo, render.Selection{})
		summary.Pairs = res.Stats.Pairs
		problems = renderProblems(repo, res)
		warnings = renderWarnings(repo, res)
		// A second, independent render names the objects whose output is random.
		if len(problems) > 0 {
			return &validateReport{Problems: problems.Sorted(), Warnings: warnings.Sorted()}, nil
		}
		again := render.New(render.Options{RenderTimeout: f.renderTimeout}).Render(ctx, repo, render.Selection{})
		warnings = append(warnings, randomWarnings(repo, res, again)...)
	}
	if len(problems) > 0 {
		return &validateReport{Problems: problems.Sorted(), Warnings: warnings.Sorted()}, nil
	}
	return &validateReport{Valid: true, Summary: summary, Warnings: warnings.Sorted()}, nil
}

// renderProblems reports each pair that failed to render at its app's source.
func renderProblems(repo *fleet.Repo, res *render.Result) fleet.Problems {
	var out fleet.Problems
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err != nil {
				p := pairProblem(repo, a.App, "render failed: "+a.Err.Error())
				var fe *render.FieldError
				if app := repo.App(a.App); app != nil && errors.As(a.Err, &fe) {
					p.Field = fe.Field
					p.File, p.Line = repo.Position(app, fe.Field)
				}
				out = append(out, p)
			}
		}
	}
	return out
}

// renderWarnings reports each pair's render warnings at its app's source.
func renderWarnings(repo *fleet.Repo, res *render.Result) fleet.Problems {
	var out fleet.Problems
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			for _, w := range a.Warnings {
				out = append(out, pairProblem(repo, a.App, "warning: "+c.Cluster+"/"+a.App+": "+w))
			}
		}
	}
	return out
}

// randomWarnings names the objects two renders of the same inputs disagree on.
func randomWarnings(repo *fleet.Repo, a, b *render.Result) fleet.Problems {
	var out fleet.Problems
	for _, c := range a.Clusters {
		for _, p := range c.Apps {
			q := b.Get(c.Cluster, p.App)
			if p.Err != nil || q == nil || q.Err != nil {
				continue
			}
			if diff := render.Differing(p.Objects, q.Objects); len(diff) > 0 {
				out = append(out, pairProblem(repo, p.App, fmt.Sprintf("warning: %s/%s: renders differently each time (random output such as randAlphaNum): %s; "+
					"create such values once (a Secret annotated fleetsync.dev/ssa: IfNotPresent) or give them as values", c.Cluster, p.App, strings.Join(diff, ", "))))
			}
		}
	}
	return out
}

// pairProblem is a problem of a pair, placed at its app's spec.source.
func pairProblem(repo *fleet.Repo, app, msg string) fleet.Problem {
	p := fleet.Problem{Field: "spec.source", Message: msg}
	if a := repo.App(app); a != nil {
		p.File, p.Line = repo.Position(a, p.Field)
	} else {
		p.File, p.Field = ".", ""
	}
	return p
}
