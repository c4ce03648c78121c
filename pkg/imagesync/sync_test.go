package imagesync_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north")) }

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// push writes an image or index to the source registry under a new name and
// returns its reference (with tag) and digest.
func push(t *testing.T, registry, repo string, index bool) (string, string) {
	t.Helper()
	ref := registry + "/test/" + repo + "-" + suffix() + ":v1"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	if index {
		idx, err := random.Index(1024, 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(tag, idx); err != nil {
			t.Fatal(err)
		}
		d, _ = idx.Digest()
	} else {
		img, err := random.Image(2048, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ = img.Digest()
	}
	return ref, d.String()
}

func syncer(insecure ...string) *imagesync.Syncer {
	m := map[string]bool{}
	for _, r := range insecure {
		m[r] = true
	}
	return imagesync.New(imagesync.Options{Insecure: m})
}

func ctx(t *testing.T) context.Context { return testfleet.Context(t) }

// An index with every platform and a single image are copied to the cluster's
// mirror, verified by digest; a second copy sends no blob and says present.
func TestCopyIndexAndImage(t *testing.T) {
	f := testfleet.Get(t)
	src, mirrorHost := f.Registries.Source, f.Registries.Mirrors["north"]
	mirror := mirrorHost + "/fleet"
	s := syncer(src, mirrorHost)
	for _, index := range []bool{true, false} {
		ref, want := push(t, src, "app", index)
		got, err := s.Resolve(ctx(t), ref)
		if err != nil || got != want {
			t.Fatalf("Resolve(%s) = %s, %v; want %s", ref, got, err, want)
		}
		res, err := s.Copy(ctx(t), ref, got, mirror)
		if err != nil || res.Present {
			t.Fatalf("first copy: %+v %v", res, err)
		}
		if !strings.HasPrefix(res.Target, mirror+"/test/app-") || !strings.HasSuffix(res.Target, ":v1@"+want) {
			t.Fatalf("target %s", res.Target)
		}
		dst, err := name.NewDigest(res.Target[:strings.Index(res.Target, ":v1@")]+"@"+want, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(dst)
		if err != nil || desc.Digest.String() != want {
			t.Fatalf("mirror has %v, %v", desc, err)
		}
		if index { // every platform's image is there
			idx, _ := desc.ImageIndex()
			m, _ := idx.IndexManifest()
			for _, c := range m.Manifests {
				if _, err := remote.Head(dst.Context().Digest(c.Digest.String())); err != nil {
					t.Fatalf("child %s of the index is missing in the mirror: %v", c.Digest, err)
				}
			}
		}
		// A fresh Syncer (another run) finds it present and sends nothing.
		again := syncer(src, mirrorHost)
		res, err = again.Copy(ctx(t), ref, want, mirror)
		if err != nil || !res.Present || again.Stats().BytesSent != 0 {
			t.Fatalf("second copy: %+v %v, %d bytes sent", res, err, again.Stats().BytesSent)
		}
	}
}

// A registry that throttles (429 with Retry-After) is waited for and retried.
func TestThrottledRegistryIsRetried(t *testing.T) {
	f := testfleet.Get(t)
	ref, want := push(t, f.Registries.Source, "throttled", false)
	target, _ := url.Parse("http://" + f.Registries.Source)
	rp := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	viaProxy := strings.Replace(ref, f.Registries.Source, host, 1)
	// How long it waits is TestRetryDelay's; here: it retries and gets through.
	s := imagesync.New(imagesync.Options{Insecure: map[string]bool{host: true}, MaxWait: 10 * time.Millisecond})
	got, err := s.Resolve(ctx(t), viaProxy)
	if err != nil || got != want {
		t.Fatalf("Resolve through a throttling registry: %s, %v", got, err)
	}
	if n.Load() < 3 {
		t.Fatalf("the 429s were not retried: %d requests", n.Load())
	}
}

func TestImageNotFound(t *testing.T) {
	f := testfleet.Get(t)
	s := syncer(f.Registries.Source)
	_, err := s.Resolve(ctx(t), f.Registries.Source+"/test/absent-"+suffix()+":v1")
	if err == nil || !strings.Contains(err.Error(), "resolve at the source") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
}

// Plain HTTP is used only for registries marked insecure.
func TestTLSUnlessInsecure(t *testing.T) {
	f := testfleet.Get(t)
	ref, _ := push(t, f.Registries.Source, "tls", false)
	if _, err := syncer().Resolve(ctx(t), ref); err == nil {
		t.Fatal("a plain-HTTP registry was used without insecure")
	}
}

// A source registry that is down: a clear error naming the image.
func TestSourceRegistryDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	_ = l.Close()
	image := down + "/fleet/app:v1"
	_, err = syncer(down).Resolve(ctx(t), image)
	if err == nil || !strings.Contains(err.Error(), "image "+image+": resolve at the source") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
}
