package imagesync

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// parsed is an image reference split into repository, the tag it was
// written with ("" when none) and the digest it was written with ("" when none).
type parsed struct {
	repo   name.Repository
	tag    string
	digest string
}

func parse(image string, opts ...name.Option) (parsed, error) {
	var p parsed
	base := image
	if i := strings.Index(image, "@"); i >= 0 {
		base, p.digest = image[:i], image[i+1:]
	}
	if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
		base, p.tag = base[:i], base[i+1:]
	}
	repo, err := name.NewRepository(base, opts...)
	if err != nil {
		return parsed{}, fmt.Errorf("image %q: %w", image, err)
	}
	p.repo = repo
	if p.tag != "" {
		if _, err := name.NewTag(repo.Name()+":"+p.tag, opts...); err != nil {
			return parsed{}, fmt.Errorf("image %q: %w", image, err)
		}
	}
	if p.digest != "" {
		if _, err := name.NewDigest(repo.Name()+"@"+p.digest, opts...); err != nil {
			return parsed{}, fmt.Errorf("image %q: %w", image, err)
		}
	}
	return p, nil
}

// Pinned is the reference of an image mirrored to mirror (a registry and
// repository prefix): <mirror>/<source repository path>:<tag>@<digest>, the
// tag kept when the image was written with one.
func Pinned(mirror, image, digest string) (string, error) {
	p, err := parse(image)
	if err != nil {
		return "", err
	}
	out := strings.TrimSuffix(mirror, "/") + "/" + p.repo.RepositoryStr()
	if p.tag != "" {
		out += ":" + p.tag
	}
	return out + "@" + digest, nil
}
