// Command image builds fleetsync's container image without Docker and pushes
// it (`make image`): one layer holding the static linux binary at /fleetsync
// on an empty base, run as the non-root user 65532, with no shell and no
// package manager. go-containerregistry writes the layer, the config and the
// manifest and pushes them (HTTP for a loopback registry).
//
//	go run ./hack/image --binary bin/linux/fleetsync --ref 127.0.0.1:5000/fleetsync:dev
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	binary := flag.String("binary", "", "the fleetsync binary, built for linux with CGO_ENABLED=0")
	ref := flag.String("ref", "", "where to push, e.g. 127.0.0.1:5000/fleetsync:dev")
	arch := flag.String("arch", runtime.GOARCH, "the binary's architecture")
	insecure := flag.Bool("insecure", true, "allow plain HTTP (a registry on loopback)")
	flag.Parse()
	if err := run(*binary, *ref, *arch, *insecure); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, ref, arch string, insecure bool) error {
	if binary == "" || ref == "" {
		return fmt.Errorf("--binary and --ref are required")
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return layerTar(bin) }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = []string{"/fleetsync"}
	cfg.Config.User = "65532:65532"
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"HOME=/var/cache/fleetsync"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "fleetsync"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	opts := []name.Option{}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, _ := layer.Size()
	fmt.Printf("pushed %s@%s (one layer, %.1f MB compressed)\n", ref, digest, float64(size)/1e6)
	return nil
}

// layerTar is a tar stream of the image's files: /fleetsync (0755) and the
// directories it writes to, owned by 65532 (the emptyDir mounts of deploy/
// cover them on a read-only root filesystem).
func layerTar(bin []byte) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, dir := range []string{"tmp/", "var/", "var/cache/", "var/cache/fleetsync/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, Uid: 65532, Gid: 65532, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "fleetsync", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}
