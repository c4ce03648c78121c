package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registries are the registry addresses of a fleet, as in DIR/registries.json.
type Registries struct {
	Source  string            `json:"source"`
	Mirrors map[string]string `json:"mirrors"`
}

// SeedImage is one image pushed into the source registry.
type SeedImage struct {
	Repository string // path in the registry, e.g. fleet/mes-system
	Tag        string
	Platforms  []string // os/arch; more than one makes an image index
}

// SeedImages are the images the example fleet repo uses.
func SeedImages() []SeedImage {
	return []SeedImage{
		{Repository: "fleet/mes-system", Tag: "v1.2", Platforms: []string{"linux/amd64"}},
		{Repository: "fleet/order-service", Tag: "v2.0", Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Repository: "fleet/inventory-service", Tag: "v1.0", Platforms: []string{"linux/amd64"}},
		{Repository: "fleet/platform", Tag: "v1.0", Platforms: []string{"linux/amd64"}},
	}
}

// writeRegistryConfig writes a distribution registry config serving plain
// HTTP on 127.0.0.1:port and storing under dataDir.
func writeRegistryConfig(path, dataDir string, port int) error {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
health:
  storagedriver:
    enabled: false
`, dataDir, addr(port))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(cfg), 0o644)
}

// seedImage builds a small image (one layer naming the image and platform)
// per platform and pushes it to registry, as an index when multi-platform.
func seedImage(ctx context.Context, pusher *remote.Pusher, registry string, s SeedImage) error {
	refText := registry + "/" + s.Repository + ":" + s.Tag
	ref, err := name.ParseReference(refText, name.Insecure)
	if err != nil {
		return fmt.Errorf("seed %s: %w", refText, err)
	}
	images := make([]v1.Image, 0, len(s.Platforms))
	plats := make([]*v1.Platform, 0, len(s.Platforms))
	for _, p := range s.Platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return fmt.Errorf("seed %s: platform %q: %w", refText, p, err)
		}
		img, err := crane.Image(map[string][]byte{
			"etc/localfleet-image": []byte(fmt.Sprintf("%s:%s %s\n", s.Repository, s.Tag, p)),
		})
		if err != nil {
			return fmt.Errorf("seed %s: build image: %w", refText, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return fmt.Errorf("seed %s: config: %w", refText, err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
		cf.Config.Entrypoint = []string{"/bin/true"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return fmt.Errorf("seed %s: set config: %w", refText, err)
		}
		images = append(images, img)
		plats = append(plats, plat)
	}
	if len(images) == 1 {
		if err := pusher.Push(ctx, ref, images[0]); err != nil {
			return fmt.Errorf("seed %s: push: %w", refText, err)
		}
		return nil
	}
	var idx v1.ImageIndex = empty.Index
	for i, img := range images {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plats[i]},
		})
	}
	if err := pusher.Push(ctx, ref, idx); err != nil {
		return fmt.Errorf("seed %s: push index: %w", refText, err)
	}
	return nil
}

func seedRegistry(ctx context.Context, registry string, images []SeedImage) error {
	pusher, err := remote.NewPusher()
	if err != nil {
		return fmt.Errorf("seed registry %s: %w", registry, err)
	}
	for _, s := range images {
		if err := seedImage(ctx, pusher, registry, s); err != nil {
			return err
		}
	}
	return nil
}
