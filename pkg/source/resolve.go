package source

import (
	"errors"
	"fmt"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// resolved is a ref resolved to a commit.
type resolved struct {
	commit plumbing.Hash
	name   string      // full ref name, or the SHA asked for
	tag    *object.Tag // the annotated tag the ref named, if any
}

// resolveRef resolves ref in g. mirror says g is a cache mirror, where the
// remote's branches are refs/heads/* (so origin/x means refs/heads/x).
func resolveRef(g *git.Repository, ref string, mirror bool) (resolved, error) {
	if ref == "" || ref == "HEAD" {
		head, err := g.Storer.Reference(plumbing.HEAD)
		if err != nil {
			return resolved{}, &RefNotFoundError{Ref: "HEAD"}
		}
		name := "HEAD"
		if head.Type() == plumbing.SymbolicReference {
			name = head.Target().String()
		}
		if res, ok, err := lookupRef(g, plumbing.HEAD); ok || err != nil {
			res.name = name
			return res, err
		}
		return resolved{}, &RefNotFoundError{Ref: "HEAD"}
	}
	var candidates []plumbing.ReferenceName
	if strings.HasPrefix(ref, "refs/") {
		candidates = append(candidates, plumbing.ReferenceName(ref))
	} else {
		candidates = append(candidates, plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref),
			plumbing.ReferenceName("refs/remotes/"+ref))
		if rest, ok := strings.CutPrefix(ref, "origin/"); ok && mirror {
			candidates = append(candidates, plumbing.NewBranchReferenceName(rest))
		}
	}
	for _, name := range candidates {
		res, ok, err := lookupRef(g, name)
		if err != nil {
			return resolved{}, fmt.Errorf("ref %q: %w", ref, err)
		}
		if ok {
			return res, nil
		}
	}
	if plumbing.IsHash(ref) {
		h := plumbing.NewHash(ref)
		res, err := peel(g, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return resolved{}, &RefNotFoundError{Ref: ref}
		}
		res.name = ref
		return res, err
	}
	// Short SHAs and revision expressions (main~1, HEAD^).
	h, err := g.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return resolved{}, &RefNotFoundError{Ref: ref}
	}
	return resolved{commit: *h, name: ref}, nil
}

// lookupRef reads a reference and peels it to a commit; ok is false when
// the reference does not exist.
func lookupRef(g *git.Repository, name plumbing.ReferenceName) (resolved, bool, error) {
	ref, err := g.Reference(name, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return resolved{}, false, nil
	}
	if err != nil {
		return resolved{}, false, err
	}
	res, err := peel(g, ref.Hash())
	if err != nil {
		return resolved{}, false, err
	}
	res.name = ref.Name().String()
	return res, true, nil
}

// peel turns a commit or annotated tag hash into the commit it names.
func peel(g *git.Repository, h plumbing.Hash) (resolved, error) {
	obj, err := g.Storer.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return resolved{}, fmt.Errorf("object %s: %w", h, err)
	}
	switch obj.Type() {
	case plumbing.CommitObject:
		return resolved{commit: h}, nil
	case plumbing.TagObject:
		t, err := object.DecodeTag(g.Storer, obj)
		if err != nil {
			return resolved{}, fmt.Errorf("tag %s: %w", h, err)
		}
		c, err := peelTag(g.Storer, t)
		if err != nil {
			return resolved{}, err
		}
		return resolved{commit: c, tag: t}, nil
	}
	return resolved{}, fmt.Errorf("object %s is a %s, not a commit", h, obj.Type())
}
