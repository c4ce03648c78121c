package imagesync_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
)

// crane builds (once, cached in the user cache dir) the crane CLI of the
// go-containerregistry version this module uses: the baseline.
func crane(b *testing.B) string {
	b.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(cache, "fleetsync", "bench-bin")
	bin := filepath.Join(dir, "crane-v0.22.1")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build crane: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(dir, "crane"), bin); err != nil {
		b.Fatal(err)
	}
	return bin
}

// BenchmarkMirror20 copies 20 images (3 layers of 1 MiB each) to the 3 mirrors
// of the local fleet with a Syncer and with a loop of `crane copy`, then runs
// the Syncer again (everything present), and reports wall times, the ratio,
// bytes sent and requests per image. Run with -benchtime=1x.
func BenchmarkMirror20(b *testing.B) {
	const images, layerSize, layers = 20, 1 << 20, 3
	f := testfleet.Get(b)
	craneBin := crane(b)
	ctx := context.Background()
	mirrors := []string{f.Registries.Mirrors["north"], f.Registries.Mirrors["south"], f.Registries.Mirrors["east"]}
	insecure := map[string]bool{f.Registries.Source: true}
	for _, m := range mirrors {
		insecure[m] = true
	}
	for range b.N {
		run := suffix()
		var refs, digests []string
		for i := range images {
			img, err := random.Image(layerSize, layers)
			if err != nil {
				b.Fatal(err)
			}
			ref := fmt.Sprintf("%s/bench-%s/img-%d:v1", f.Registries.Source, run, i)
			tag, _ := name.NewTag(ref, name.Insecure)
			if err := remote.Write(tag, img); err != nil {
				b.Fatal(err)
			}
			d, _ := img.Digest()
			refs, digests = append(refs, ref), append(digests, d.String())
		}

		copyAll := func(s *imagesync.Syncer, prefix string) time.Duration {
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, images*len(mirrors))
			for i := range refs {
				for _, m := range mirrors {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := s.Copy(ctx, refs[i], digests[i], m+"/"+prefix); err != nil {
							errs <- err
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		first := imagesync.New(imagesync.Options{Insecure: insecure})
		tFirst := copyAll(first, "fs")
		second := imagesync.New(imagesync.Options{Insecure: insecure})
		tSecond := copyAll(second, "fs")

		start := time.Now()
		for i := range refs {
			for _, m := range mirrors {
				dst := fmt.Sprintf("%s/crane/bench-%s/img-%d:v1", m, run, i)
				if out, err := exec.Command(craneBin, "copy", "--insecure", refs[i], dst).CombinedOutput(); err != nil {
					b.Fatalf("crane copy: %v\n%s", err, out)
				}
			}
		}
		tCrane := time.Since(start)

		copies := float64(images * len(mirrors))
		b.ReportMetric(tFirst.Seconds(), "first-s")
		b.ReportMetric(tCrane.Seconds(), "crane-loop-s")
		b.ReportMetric(tFirst.Seconds()/tCrane.Seconds(), "first/crane")
		b.ReportMetric(tSecond.Seconds(), "second-s")
		b.ReportMetric(float64(first.Stats().BytesSent)/(1<<20), "first-MiB-sent")
		b.ReportMetric(float64(second.Stats().BytesSent), "second-bytes-sent")
		b.ReportMetric(float64(first.Stats().Requests)/copies, "first-requests/copy")
		b.ReportMetric(float64(second.Stats().Requests)/copies, "second-requests/copy")
		if second.Stats().BytesSent != 0 {
			b.Errorf("the second run sent %d bytes", second.Stats().BytesSent)
		}
	}
}
