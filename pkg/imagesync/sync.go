package imagesync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/fleetsync/fleetsync/internal/keyedsem"
)

// Options configure a Syncer.
type Options struct {
	// Keychain gives registry credentials; default authn.DefaultKeychain (the
	// Docker config file in $DOCKER_CONFIG or ~/.docker). See KeychainFromFile.
	Keychain authn.Keychain
	// Insecure lists the registries (host[:port]) that may be spoken to over
	// plain HTTP or with an unverified certificate; every other one is TLS,
	// verified.
	Insecure map[string]bool
	// PerRegistry bounds the copies running at once against one registry
	// (default 4).
	PerRegistry int
	// Attempts for a request a registry throttled (429), default 5, waiting as
	// its Retry-After says (at most MaxWait, default 30s).
	Attempts int
	MaxWait  time.Duration
	// Transport under the retries (default remote.DefaultTransport).
	Transport http.RoundTripper
}

// Syncer resolves and copies images. It caches resolved digests: one digest per
// reference for the Syncer's life (a run). Safe for concurrent use.
type Syncer struct {
	opts Options
	rt   *retryTransport

	mu       sync.Mutex
	resolved map[string]string
	sems     *keyedsem.Sem // copies at once per registry
	flights  map[string]*flight
}

type flight struct {
	done chan struct{}
	res  CopyResult
	err  error
}

// New returns a Syncer.
func New(opts Options) *Syncer {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.PerRegistry <= 0 {
		opts.PerRegistry = 4
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 30 * time.Second
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	insecureBase := opts.Transport
	if t, ok := opts.Transport.(*http.Transport); ok {
		c := t.Clone()
		c.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries the cluster marks insecure
		insecureBase = c
	}
	return &Syncer{
		opts: opts,
		rt: &retryTransport{base: opts.Transport, insecure: opts.Insecure, insecureBase: insecureBase,
			attempts: opts.Attempts, backoff: 500 * time.Millisecond, maxWait: opts.MaxWait},
		resolved: map[string]string{},
		sems:     keyedsem.New(opts.PerRegistry),
		flights:  map[string]*flight{},
	}
}

// KeychainFromFile reads registry credentials from a Docker config file
// (--registry-config); credential helpers named there are not run.
func KeychainFromFile(path string) (authn.Keychain, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("registry config: %w", err)
	}
	defer func() { _ = f.Close() }()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: not a Docker config file", path)
	}
	return &fileKeychain{cf: cf}, nil
}

type fileKeychain struct{ cf *configfile.ConfigFile }

func (k *fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	key := r.RegistryStr()
	if key == name.DefaultRegistry {
		key = authn.DefaultAuthKey
	}
	ac, ok := k.cf.AuthConfigs[key]
	if !ok {
		return authn.Anonymous, nil
	}
	if ac.Username == "" && ac.Auth != "" {
		return authn.FromConfig(authn.AuthConfig{Auth: ac.Auth}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}), nil
}

func (s *Syncer) nameOpts(registry string) []name.Option {
	if s.opts.Insecure[registry] {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (s *Syncer) remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.opts.Keychain),
		remote.WithTransport(s.rt),
		remote.WithUserAgent("fleetsync"),
		// 429 is retried below, honouring Retry-After; the rest here.
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
	}
}

// registryOf returns the registry host of an image reference.
func registryOf(image string) string {
	p, err := parse(image)
	if err != nil {
		return ""
	}
	return p.repo.RegistryStr()
}

// Resolve returns the digest an image reference names at its source: the
// digest written in it, or the one its tag points to now (asked once per
// reference in the Syncer's life).
func (s *Syncer) Resolve(ctx context.Context, image string) (string, error) {
	p, err := parse(image, s.nameOpts(registryOf(image))...)
	if err != nil {
		return "", err
	}
	if p.digest != "" {
		return p.digest, nil
	}
	s.mu.Lock()
	d, ok := s.resolved[image]
	s.mu.Unlock()
	if ok {
		return d, nil
	}
	tag := p.tag
	if tag == "" {
		tag = name.DefaultTag
	}
	ref, err := name.NewTag(p.repo.Name()+":"+tag, s.nameOpts(p.repo.RegistryStr())...)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	desc, err := remote.Head(ref, s.remoteOpts(ctx)...)
	if err != nil {
		return "", fmt.Errorf("image %s: resolve at the source: %w", image, describe(err))
	}
	d = desc.Digest.String()
	s.mu.Lock()
	s.resolved[image] = d
	s.mu.Unlock()
	return d, nil
}

// Pin records a digest for a reference (for example one recorded on the
// clusters for the revision being rolled out), so Resolve returns it.
func (s *Syncer) Pin(image, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolved[image] = digest
}

// CopyResult is the outcome of one image copy.
type CopyResult struct {
	Image  string `json:"image"`
	Target string `json:"target"`
	// Present is true when the mirror already had the digest: nothing copied.
	Present bool `json:"present,omitempty"`
}

// Copy mirrors image (at digest) to <mirror>/<source repository path>: a
// whole index with every platform, or a single image. What the mirror already
// has is not sent again (blobs are checked first; a mount from another
// repository of the same registry is tried); the mirror's digest is verified.
// Copies of the same digest to the same target run once.
func (s *Syncer) Copy(ctx context.Context, image, digest, mirror string) (CopyResult, error) {
	target, err := Pinned(mirror, image, digest)
	res := CopyResult{Image: image, Target: target}
	if err != nil {
		return res, err
	}
	key := target
	s.mu.Lock()
	if f, ok := s.flights[key]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f.res, f.err
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	s.flights[key] = f
	s.mu.Unlock()
	f.res, f.err = s.copy(ctx, image, digest, target, res)
	if f.err != nil {
		s.mu.Lock()
		delete(s.flights, key) // a failed copy may be tried again
		s.mu.Unlock()
	}
	close(f.done)
	return f.res, f.err
}

func (s *Syncer) copy(ctx context.Context, image, digest, target string, res CopyResult) (CopyResult, error) {
	src, err := parse(image, s.nameOpts(registryOf(image))...)
	if err != nil {
		return res, err
	}
	dst, err := parse(target, s.nameOpts(registryOf(target))...)
	if err != nil {
		return res, err
	}
	release, err := s.sems.Acquire(ctx, dst.repo.RegistryStr())
	if err != nil {
		return res, err
	}
	defer release()
	opts := s.remoteOpts(ctx)
	dstDigest, err := name.NewDigest(dst.repo.Name()+"@"+digest, s.nameOpts(dst.repo.RegistryStr())...)
	if err != nil {
		return res, err
	}
	if d, err := remote.Head(dstDigest, opts...); err == nil && d.Digest.String() == digest {
		res.Present = true
		return res, s.tagIfNeeded(dst, dstDigest, opts)
	}
	srcDigest, err := name.NewDigest(src.repo.Name()+"@"+digest, s.nameOpts(src.repo.RegistryStr())...)
	if err != nil {
		return res, err
	}
	desc, err := remote.Get(srcDigest, opts...)
	if err != nil {
		return res, fmt.Errorf("image %s: read at the source: %w", image, describe(err))
	}
	var to name.Reference = dstDigest
	if dst.tag != "" {
		to, err = name.NewTag(dst.repo.Name()+":"+dst.tag, s.nameOpts(dst.repo.RegistryStr())...)
		if err != nil {
			return res, err
		}
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err == nil {
			err = remote.WriteIndex(to, idx, opts...)
		}
		if err != nil {
			return res, fmt.Errorf("image %s: copy to %s: %w", image, target, describe(err))
		}
	} else {
		img, err := desc.Image()
		if err == nil {
			err = remote.Write(to, img, opts...)
		}
		if err != nil {
			return res, fmt.Errorf("image %s: copy to %s: %w", image, target, describe(err))
		}
	}
	d, err := remote.Head(dstDigest, opts...)
	if err != nil {
		return res, fmt.Errorf("image %s: verify the copy at %s: %w", image, target, describe(err))
	}
	if d.Digest.String() != digest {
		return res, fmt.Errorf("image %s: the mirror has digest %s after the copy, the source %s", image, d.Digest, digest)
	}
	return res, nil
}

// tagIfNeeded points the mirror's tag at a digest it already has (a moved tag).
func (s *Syncer) tagIfNeeded(dst parsed, dstDigest name.Digest, opts []remote.Option) error {
	if dst.tag == "" {
		return nil
	}
	tag, err := name.NewTag(dst.repo.Name()+":"+dst.tag, s.nameOpts(dst.repo.RegistryStr())...)
	if err != nil {
		return err
	}
	if d, err := remote.Head(tag, opts...); err == nil && d.Digest.String() == dstDigest.DigestStr() {
		return nil
	}
	desc, err := remote.Get(dstDigest, opts...)
	if err != nil {
		return describe(err)
	}
	return describe(remote.Tag(tag, desc, opts...))
}

// Stats are the requests made and the bytes sent to registries so far.
type Stats struct {
	Requests  int64 `json:"requests"`
	BytesSent int64 `json:"bytesSent"`
}

// Stats returns the Syncer's traffic so far.
func (s *Syncer) Stats() Stats {
	return Stats{Requests: s.rt.requests.Load(), BytesSent: s.rt.sent.Load()}
}

// describe keeps a registry error short: its status and codes, never a
// credential (ggcr's errors carry neither tokens nor passwords).
func describe(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return fmt.Errorf("registry answered %d: %w", te.StatusCode, err)
	}
	return err
}
