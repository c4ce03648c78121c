package plan

import (
	"context"
	"fmt"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
	"github.com/fleetsync/fleetsync/pkg/source"
)

// Opener opens one revision of a repository; *source.Repo is one.
type Opener interface {
	Open(ctx context.Context, ref string) (*source.Revision, error)
}

// Option changes how FromRefs renders.
type Option func(*refsConfig)

type refsConfig struct {
	post func(context.Context, *fleet.Repo, *render.Result)
}

// WithPostRender runs f on each side's render before the comparison (image
// references are rewritten there, for example).
func WithPostRender(f func(context.Context, *fleet.Repo, *render.Result)) Option {
	return func(c *refsConfig) { c.post = f }
}

// FromRefs plans the change from ref base to ref head of one repository: it
// reads both commits straight from git objects, loads each with fleet.Load,
// renders both with r (one Renderer, so that apps whose inputs did not change
// are served from its cache) and computes the plan.
//
// An error is returned only when a ref cannot be opened. A side that does not
// load is recorded in the plan (Plan.Errors), and so are render errors per
// pair; Plan.Err reports what makes head unusable.
func FromRefs(ctx context.Context, src Opener, base, head string, r *render.Renderer, opts ...Option) (*Plan, error) {
	var cfg refsConfig
	for _, o := range opts {
		o(&cfg)
	}
	baseRev, err := src.Open(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("plan: base: %w", err)
	}
	headRev, err := src.Open(ctx, head)
	if err != nil {
		return nil, fmt.Errorf("plan: head: %w", err)
	}
	baseRes, baseErr := loadAndRender(ctx, r, baseRev, cfg.post)
	headRes, headErr := loadAndRender(ctx, r, headRev, cfg.post)
	p := Compute(ctx, baseRes, headRes)
	p.Base, p.Head = baseRev.Commit, headRev.Commit
	if baseErr != nil {
		p.AddError("base", baseErr)
	}
	if headErr != nil {
		p.AddError("head", headErr)
	}
	return p, nil
}

// loadAndRender loads a revision as a fleet repo and renders every pair.
func loadAndRender(ctx context.Context, r *render.Renderer, rev *source.Revision, post func(context.Context, *fleet.Repo, *render.Result)) (*render.Result, error) {
	repo, err := fleet.Load(ctx, rev.FS)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", shortRev(rev.Commit), err)
	}
	repo.Revision = rev.Commit
	res := r.Render(ctx, repo, render.Selection{})
	if post != nil {
		post(ctx, repo, res)
	}
	return res, nil
}
