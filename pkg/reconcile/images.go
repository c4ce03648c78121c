package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/apply"
	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/imagesync"
	"github.com/fleetsync/fleetsync/pkg/render"
)

// ImageOptions switch image mirroring on: every app with imageMirror: true has
// its images copied to the spec.registry of each cluster that has one, pinned
// by digest, and its references rewritten.
type ImageOptions struct {
	// Keychain gives registry credentials (default: the Docker config file).
	Keychain authn.Keychain
	// InsecureRegistries may be spoken to over plain HTTP or unverified TLS,
	// besides the mirrors whose cluster says insecure: true (source registries
	// are named here).
	InsecureRegistries []string
	// PodSpecPaths declare the pod templates of custom kinds (default:
	// Kubernetes' own pod-bearing kinds only).
	PodSpecPaths imagesync.PodSpecPaths
}

// pairImages is what mirroring does to one pair.
type pairImages struct {
	mirror string
	uses   []imagesync.Use
	// pins: image as written -> digest; SourceDigest: the desired set's digest
	// before the rewrite.
	pins         map[string]string
	sourceDigest string
}

func pairKey(cluster, app string) string { return cluster + "/" + app }

// mirrored reports whether the app's images are mirrored to the cluster.
func mirrored(repo *fleet.Repo, cluster, app string) (string, bool) {
	a, c := repo.App(app), repo.Cluster(cluster)
	if a == nil || c == nil || !a.Spec.ImageMirror || c.Spec.Registry == nil {
		return "", false
	}
	return c.Spec.Registry.Mirror, true
}

func (r *Reconciler) newSyncer(repo *fleet.Repo) *imagesync.Syncer {
	insecure := map[string]bool{}
	for _, h := range r.opts.Images.InsecureRegistries {
		insecure[h] = true
	}
	for _, c := range repo.Clusters {
		if c.Spec.Registry != nil && c.Spec.Registry.Insecure {
			if host, _, ok := strings.Cut(c.Spec.Registry.Mirror, "/"); ok {
				insecure[host] = true
			}
		}
	}
	return imagesync.New(imagesync.Options{Keychain: r.opts.Images.Keychain, Insecure: insecure})
}

func (r *Reconciler) podSpecPaths() imagesync.PodSpecPaths {
	paths := imagesync.DefaultPodSpecPaths()
	if r.opts.Images != nil {
		for k, v := range r.opts.Images.PodSpecPaths {
			paths[k] = v
		}
	}
	return paths
}

// pinImages resolves the images of every mirrored pair to digests and rewrites
// their references to the cluster's mirror (without copying: Mirror does). A
// rollout keeps one digest per image: pins recorded on any cluster that runs
// the same output of the app are reused before a tag is resolved again. A pair
// whose images cannot be resolved gets an error (it is not applied, nothing is
// pruned on its cluster).
func (r *Reconciler) pinImages(ctx context.Context, d *Desired) {
	if r.opts.Images == nil {
		return
	}
	d.syncer = r.newSyncer(d.Repo)
	d.images = rewriteAll(ctx, d.syncer, d.Repo, d.Rendered, r.podSpecPaths(), d.Unreachable,
		func(app string, pairs map[string]*pairImages) map[string]string {
			return r.recordedPins(ctx, app, pairs)
		})
}

// RewriteImages resolves the images of the mirrored pairs of a render at
// their sources and rewrites their references, without looking at any
// cluster (for render and plan). A pair whose images cannot be resolved gets
// an error.
func RewriteImages(ctx context.Context, repo *fleet.Repo, res *render.Result, o ImageOptions) {
	r := &Reconciler{opts: Options{Images: &o}}
	rewriteAll(ctx, r.newSyncer(repo), repo, res, r.podSpecPaths(), nil, nil)
}

// rewriteAll pins and rewrites every mirrored pair of res (pins from
// recorded first, when given, else resolved) and returns each pair's pins.
func rewriteAll(ctx context.Context, s *imagesync.Syncer, repo *fleet.Repo, res *render.Result, paths imagesync.PodSpecPaths,
	skip map[string]error, recorded func(app string, pairs map[string]*pairImages) map[string]string) map[string]*pairImages {
	images := map[string]*pairImages{}
	byApp := map[string]map[string]*render.AppResult{} // app -> cluster -> pair
	for ci := range res.Clusters {
		cr := &res.Clusters[ci]
		for ai := range cr.Apps {
			ar := &cr.Apps[ai]
			mirror, ok := mirrored(repo, cr.Cluster, ar.App)
			if !ok || ar.Err != nil || skip[cr.Cluster] != nil {
				continue // an unreachable cluster fails with its own error
			}
			uses, err := imagesync.Collect(ar.Objects, paths)
			if err != nil {
				ar.Objects, ar.Err = nil, fmt.Errorf("%s/%s: image sync: %w", cr.Cluster, ar.App, err)
				continue
			}
			images[pairKey(cr.Cluster, ar.App)] = &pairImages{mirror: mirror, uses: uses, sourceDigest: apply.Digest(ar.Objects)}
			if byApp[ar.App] == nil {
				byApp[ar.App] = map[string]*render.AppResult{}
			}
			byApp[ar.App][cr.Cluster] = ar
		}
	}
	apps := make([]string, 0, len(byApp))
	for a := range byApp {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	for _, app := range apps {
		var pins map[string]string
		if recorded != nil {
			pairs := map[string]*pairImages{}
			for c := range byApp[app] {
				pairs[c] = images[pairKey(c, app)]
			}
			pins = recorded(app, pairs)
		}
		for c, ar := range byApp[app] {
			pi := images[pairKey(c, app)]
			objs, err := rewrite(ctx, s, c, app, ar.Objects, pi, pins)
			if err != nil {
				ar.Objects, ar.Err = nil, err
				delete(images, pairKey(c, app))
				continue
			}
			ar.Objects = objs
		}
	}
	return images
}

// recordedPins are the image pins of the app's inventories on clusters that
// run the same output (before rewrite) as this run wants there.
func (r *Reconciler) recordedPins(ctx context.Context, app string, pairs map[string]*pairImages) map[string]string {
	pins := map[string]string{}
	var mu sync.Mutex
	names := make([]string, 0, len(pairs))
	for c := range pairs {
		names = append(names, c)
	}
	r.forEachCluster(ctx, names, func(ctx context.Context, c string) {
		m, err := r.pool.Get(ctx, c)
		if err != nil {
			return
		}
		inv, err := m.Inventory(ctx, app)
		if err != nil || inv == nil || inv.SourceDigest == "" || inv.SourceDigest != pairs[c].sourceDigest {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for img, dg := range inv.Images {
			pins[img] = dg
		}
	})
	return pins
}

// rewrite pins every image of a pair (recorded pins first, else resolved at
// the source) and rewrites the references to the mirror.
func rewrite(ctx context.Context, s *imagesync.Syncer, c, app string, objs []*unstructured.Unstructured, pi *pairImages, pins map[string]string) ([]*unstructured.Unstructured, error) {
	pi.pins = map[string]string{}
	to := map[string]string{}
	var errs []error
	for _, img := range imagesync.Images(pi.uses) {
		dg, ok := pins[img]
		if !ok {
			var err error
			if dg, err = s.Resolve(ctx, img); err != nil {
				errs = append(errs, fmt.Errorf("%s/%s: %s: %w", c, app, usedBy(pi.uses, img), err))
				continue
			}
		}
		ref, err := imagesync.Pinned(pi.mirror, img, dg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %s: %w", c, app, usedBy(pi.uses, img), err))
			continue
		}
		pi.pins[img], to[img] = dg, ref
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("image sync: %w", errors.Join(errs...))
	}
	return imagesync.Rewrite(objs, pi.uses, to), nil
}

// usedBy names the first object and container using an image.
func usedBy(uses []imagesync.Use, img string) string {
	for _, u := range uses {
		if u.Image == img {
			return fmt.Sprintf("%s container %s", u.Object, u.Container)
		}
	}
	return img
}

// MirrorCluster is one cluster's image copies.
type MirrorCluster struct {
	Cluster string                 `json:"cluster"`
	Mirror  string                 `json:"mirror"`
	Copied  int                    `json:"copied"`
	Present int                    `json:"present"`
	Failed  int                    `json:"failed"`
	Images  []imagesync.CopyResult `json:"images"`
	Errors  []string               `json:"errors,omitempty"`
	errs    map[string]error       // image -> error
	apps    map[string][]string    // image -> apps using it
}

// MirrorResult is the outcome of Mirror, by cluster.
type MirrorResult struct {
	Clusters  []MirrorCluster `json:"clusters"`
	BytesSent int64           `json:"bytesSent"`
	Requests  int64           `json:"requests"`
}

// OK reports whether every image was mirrored.
func (m *MirrorResult) OK() bool {
	for _, c := range m.Clusters {
		if c.Failed > 0 {
			return false
		}
	}
	return true
}

// MirrorEvent reports one image copy as it ends.
type MirrorEvent struct {
	Cluster string
	Result  imagesync.CopyResult
	Err     error
	// Done and Total count this cluster's images; BytesSent is the run's
	// upload so far (every cluster).
	Done, Total int
	BytesSent   int64
}

// Mirror copies the pinned images of every mirrored pair to its cluster's
// registry (clusters in parallel; images bounded per registry). A pair with an
// image that failed to copy gets an error: it is not applied, and nothing is
// pruned on its cluster.
func (r *Reconciler) Mirror(ctx context.Context, d *Desired, progress func(MirrorEvent)) *MirrorResult {
	return r.mirror(ctx, d, progress, RequestOptions{})
}

// mirror is Mirror for the apps o accepts, on the clusters it writes to.
func (r *Reconciler) mirror(ctx context.Context, d *Desired, progress func(MirrorEvent), o RequestOptions) *MirrorResult {
	res := &MirrorResult{}
	if d.syncer == nil {
		return res
	}
	byCluster := map[string]*MirrorCluster{}
	want := map[string]map[string]string{} // cluster -> image -> digest
	for key, pi := range d.images {
		c, app, _ := strings.Cut(key, "/")
		if !o.accepts(app) || !o.local(c) {
			continue
		}
		mc := byCluster[c]
		if mc == nil {
			mc = &MirrorCluster{Cluster: c, Mirror: pi.mirror, errs: map[string]error{}, apps: map[string][]string{}}
			byCluster[c] = mc
			want[c] = map[string]string{}
		}
		for img, dg := range pi.pins {
			want[c][img] = dg
			mc.apps[img] = append(mc.apps[img], app)
		}
	}
	names := make([]string, 0, len(byCluster))
	for c := range byCluster {
		names = append(names, c)
	}
	sort.Strings(names)
	var pmu sync.Mutex
	r.forEachCluster(ctx, names, func(ctx context.Context, c string) {
		mc := byCluster[c]
		imgs := make([]string, 0, len(want[c]))
		for img := range want[c] {
			imgs = append(imgs, img)
		}
		sort.Strings(imgs)
		results := make([]imagesync.CopyResult, len(imgs))
		errs := make([]error, len(imgs))
		var wg sync.WaitGroup
		var done int
		for i, img := range imgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = d.syncer.Copy(ctx, img, want[c][img], mc.Mirror)
				if progress != nil {
					pmu.Lock()
					done++
					progress(MirrorEvent{Cluster: c, Result: results[i], Err: errs[i], Done: done, Total: len(imgs), BytesSent: d.syncer.Stats().BytesSent})
					pmu.Unlock()
				}
			}()
		}
		wg.Wait()
		for i, img := range imgs {
			mc.Images = append(mc.Images, results[i])
			switch {
			case errs[i] != nil:
				mc.Failed++
				mc.errs[img] = errs[i]
				mc.Errors = append(mc.Errors, errs[i].Error())
			case results[i].Present:
				mc.Present++
			default:
				mc.Copied++
			}
		}
	})
	// Pairs with a failed image are not applied.
	for ci := range d.Rendered.Clusters {
		cr := &d.Rendered.Clusters[ci]
		mc := byCluster[cr.Cluster]
		if mc == nil {
			continue
		}
		for ai := range cr.Apps {
			ar := &cr.Apps[ai]
			pi := d.images[pairKey(cr.Cluster, ar.App)]
			if pi == nil || ar.Err != nil {
				continue
			}
			var errs []error
			for img := range pi.pins {
				if err := mc.errs[img]; err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", usedBy(pi.uses, img), err))
				}
			}
			if len(errs) > 0 {
				ar.Objects, ar.Err = nil, fmt.Errorf("%s/%s: image sync: %w", cr.Cluster, ar.App, errors.Join(errs...))
			}
		}
	}
	for _, c := range names {
		res.Clusters = append(res.Clusters, *byCluster[c])
	}
	st := d.syncer.Stats()
	res.BytesSent, res.Requests = st.BytesSent, st.Requests
	return res
}

// request is Request plus the pair's image pins (recorded in the inventory).
func (d *Desired) request(cluster string, ar *render.AppResult, o RequestOptions) apply.AppRequest {
	req := Request(d.Repo, ar, d.incomplete(cluster), o)
	if pi := d.images[pairKey(cluster, ar.App)]; pi != nil {
		req.Images, req.SourceDigest, req.InputsDigest = pi.pins, pi.sourceDigest, pinInputs(req.InputsDigest, pi.pins)
	}
	return req
}
