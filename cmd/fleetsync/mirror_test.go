package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// pushRandom writes a new random image under ref (a tag) and returns its digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	var d v1.Hash
	if d, err = img.Digest(); err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// mirrorRepo is a fleet of north and south, each with its mirror, and one
// mirrored app running image.
func mirrorRepo(t *testing.T, f *testfleet.Fleet, image string, waves bool) (*rolloutRepo, string) {
	r := newRolloutRepo(t)
	for _, c := range []string{"north", "south"} {
		r.write(t, "clusters/"+c+".yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: %s\n  labels: {region: %s, env: prod}\nspec:\n  registry: {mirror: %q, insecure: true}\n", c, c, f.Registries.Mirrors[c]+"/m"))
	}
	r.write(t, "clusters/east.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: east\n  labels: {region: east}\n")
	spec := "  targets: {clusterSelector: {matchLabels: {env: prod}}}\n  imageMirror: true\n"
	if waves {
		spec += "  rollout:\n    waves: [{clusterSelector: {matchLabels: {region: north}}}, {clusterSelector: {}}]\n"
	}
	app := r.appWithImage(t, "mirrored", spec, "", image)
	return r, app
}

// One digest per rollout: a tag moved at the source after the canary got the
// image does not give the next wave other bits.
func TestMirrorOneDigestPerRollout(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r0 := newRolloutRepo(t)
	image := f.Registries.Source + "/test/pinned-" + r0.suffix + ":v1"
	first := pushRandom(t, image)
	r, app := mirrorRepo(t, f, image, true)
	r.commit(t, "mirrored app")
	args := append(r.args(f, "--insecure-registry", f.Registries.Source), "--cluster", "north")
	if out, msg, code := runApplyOrDiff(t, "apply", args...); code != 0 {
		t.Fatalf("apply on north: exit %d (%s)\n%s", code, msg, out)
	}
	if got, want := deployment(t, f, "north", app).Spec.Template.Spec.Containers[0].Image, f.Registries.Mirrors["north"]+"/m/test/pinned-"+r0.suffix+":v1@"+first; got != want {
		t.Fatalf("north runs %s, want %s", got, want)
	}
	moved := pushRandom(t, image) // the tag moves at the source
	if moved == first {
		t.Fatal("random images collided")
	}
	out, msg, code := runApplyOrDiff(t, "apply", r.args(f, "--insecure-registry", f.Registries.Source)...)
	if code != 0 {
		t.Fatalf("apply everywhere: exit %d (%s)\n%s", code, msg, out)
	}
	if got := deployment(t, f, "south", app).Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(got, "@"+first) {
		t.Fatalf("south runs %s: the rollout must keep the digest the canary got (%s), not the moved tag's", got, first)
	}

	// mirror alone: everything is already there.
	out, _, code = execute(t, newMirrorCmd(), r.args(f, "--insecure-registry", f.Registries.Source)...)
	if code != 0 || !strings.Contains(out, "already present") || strings.Contains(out, ": copied") {
		t.Fatalf("mirror after apply: exit %d\n%s", code, out)
	}
}

// An image missing at the source: the app is not applied (and nothing pruned)
// where it runs, with an error naming cluster, app, object, container and
// image; plain HTTP to a source not declared insecure is refused.
func TestMirrorBadImages(t *testing.T) {
	t.Parallel()
	f := testfleet.Get(t)
	r0 := newRolloutRepo(t)
	image := f.Registries.Source + "/test/absent-" + r0.suffix + ":v1"
	r, app := mirrorRepo(t, f, image, false)
	r.commit(t, "missing image")
	out, _, code := runApplyOrDiff(t, "apply", r.args(f, "--insecure-registry", f.Registries.Source)...)
	want := "image sync: north/" + app + ": Deployment/" + app + "/web container web: image " + image + ": resolve at the source"
	if code != 1 || !strings.Contains(out, want) || strings.Contains(out, "Deployment/"+app+"/web   ") {
		t.Fatalf("apply with a missing image: exit %d, want 1 with %q\n%s", code, want, out)
	}
	out, _, code = execute(t, newMirrorCmd(), r.args(f)...)
	if code != 1 || !strings.Contains(out, "plain HTTP to "+f.Registries.Source+" refused") {
		t.Fatalf("mirror without --insecure-registry: exit %d\n%s", code, out)
	}
}

// render shows the references apply will use (mirror, tag, digest); with
// --offline it leaves them as written and says so.
func TestRenderRewritesMirroredImages(t *testing.T) {
	f := testfleet.Get(t)
	args := []string{"--repo", renderExample, "--cluster", "north", "--app", "mes"}
	out, _, code := execute(t, newRenderCmd(), append(args, "--insecure-registry", f.Registries.Source)...)
	if want := "image: " + f.Registries.Mirrors["north"] + "/fleet/fleet/mes-system:v1.2@sha256:"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("render: exit %d, want %q\n%s", code, want, out)
	}
	out, stderr, code := execute(t, newRenderCmd(), append(args, "--offline")...)
	if code != 0 || !strings.Contains(out, "image: 127.0.0.1:5000/fleet/mes-system:v1.2\n") || !strings.Contains(stderr, "--offline") {
		t.Fatalf("render --offline: exit %d\n%s\n%s", code, out, stderr)
	}
}
