package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// validateFlags are the flags of `fleetsync validate`.
type validateFlags struct {
	repo   string
	output string
	render bool
	source sourceFlags
}

// BindFlags adds validate's flags.
func (f *validateFlags) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "fleet repo: a directory or a git URL")
	fs.StringVarP(&f.output, "output", "o", "text", "output format: text, json or yaml")
	fs.BoolVar(&f.render, "render", true, "also render every (cluster, app) pair; --render=false checks the files only")
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
	Valid    bool             `json:"valid"`
	Problems fleet.Problems   `json:"problems"`
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
	if f.render {
		res := render.New(render.Options{}).Render(ctx, repo, render.Selection{})
		summary.Pairs = res.Stats.Pairs
		problems = renderProblems(repo, res)
	}
	if len(problems) > 0 {
		return &validateReport{Problems: problems.Sorted()}, nil
	}
	return &validateReport{Valid: true, Summary: summary}, nil
}

// renderProblems reports each pair that failed to render at its app's source.
func renderProblems(repo *fleet.Repo, res *render.Result) fleet.Problems {
	var out fleet.Problems
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			if a.Err == nil {
				continue
			}
			p := fleet.Problem{Field: "spec.source", Message: "render failed: " + a.Err.Error()}
			if app := repo.App(a.App); app != nil {
				p.File, p.Line = repo.Position(app, p.Field)
			} else {
				p.File, p.Field = ".", ""
			}
			out = append(out, p)
		}
	}
	return out
}
