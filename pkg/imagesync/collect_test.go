package imagesync

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(stream, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

const workloads = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      initContainers: [{name: init, image: "127.0.0.1:5000/fleet/platform:v1.0"}]
      containers:
      - {name: web, image: "127.0.0.1:5000/fleet/order-service:v2.0"}
      - {name: sidecar, image: "nginx"}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: "busybox:1.36@sha256:1111111111111111111111111111111111111111111111111111111111111111"}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers: [{name: c, image: "nginx"}]
  ephemeralContainers: [{name: dbg, image: "busybox:1.36"}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: canary, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: app, image: "127.0.0.1:5000/fleet/mes-system:v1.2"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-workload, namespace: shop}
data: {image: "looks/like:one"}`

func TestCollectAndRewrite(t *testing.T) {
	objs := decode(t, workloads)
	paths := DefaultPodSpecPaths()
	paths["argoproj.io/Rollout"] = [][]string{{"spec", "template", "spec"}}
	uses, err := Collect(objs, paths)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range uses {
		got = append(got, u.Object+" "+u.Container+" "+u.Field+" "+u.Image)
	}
	want := []string{
		"Deployment/shop/web init spec.template.spec.initContainers[0].image 127.0.0.1:5000/fleet/platform:v1.0",
		"Deployment/shop/web web spec.template.spec.containers[0].image 127.0.0.1:5000/fleet/order-service:v2.0",
		"Deployment/shop/web sidecar spec.template.spec.containers[1].image nginx",
		"CronJob/shop/nightly job spec.jobTemplate.spec.template.spec.containers[0].image busybox:1.36@sha256:1111111111111111111111111111111111111111111111111111111111111111",
		"Pod/shop/debug c spec.containers[0].image nginx",
		"Pod/shop/debug dbg spec.ephemeralContainers[0].image busybox:1.36",
		"Rollout/shop/canary app spec.template.spec.containers[0].image 127.0.0.1:5000/fleet/mes-system:v1.2",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("uses (-want +got):\n%s", d)
	}
	if n := len(Images(uses)); n != 6 {
		t.Fatalf("%d distinct images, want 6", n)
	}
	out := Rewrite(objs, uses, map[string]string{"nginx": "m/library/nginx@sha256:2222"})
	if out[0] == objs[0] || out[1] != objs[1] {
		t.Fatal("Rewrite must copy changed objects and only those")
	}
	img, _, _ := unstructured.NestedSlice(out[0].Object, "spec", "template", "spec", "containers")
	if img[1].(map[string]any)["image"] != "m/library/nginx@sha256:2222" || img[0].(map[string]any)["image"] != "127.0.0.1:5000/fleet/order-service:v2.0" {
		t.Fatalf("rewritten containers: %v", img)
	}
	orig, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "containers")
	if orig[1].(map[string]any)["image"] != "nginx" {
		t.Fatal("Rewrite changed its input")
	}
}

func TestCollectContainerWithoutImage(t *testing.T) {
	objs := decode(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns1}\nspec: {containers: [{name: c}]}")
	_, err := Collect(objs, DefaultPodSpecPaths())
	if err == nil || !strings.Contains(err.Error(), `Pod/ns1/p: spec.containers[0].image: container "c" has no image`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPinned(t *testing.T) {
	const d = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	for _, c := range []struct{ mirror, image, want string }{
		{"127.0.0.1:5002/fleet", "127.0.0.1:5000/fleet/order-service:v2.0", "127.0.0.1:5002/fleet/fleet/order-service:v2.0@" + d},
		{"registry.north.example:5000/fleet/", "nginx", "registry.north.example:5000/fleet/library/nginx@" + d},
		{"m.example/x", "ghcr.io/org/app:1.0@" + d, "m.example/x/org/app:1.0@" + d},
		{"m.example/x", "quay.io/org/app@" + d, "m.example/x/org/app@" + d},
	} {
		got, err := Pinned(c.mirror, c.image, d)
		if err != nil || got != c.want {
			t.Errorf("Pinned(%q, %q) = %q, %v; want %q", c.mirror, c.image, got, err, c.want)
		}
	}
	if _, err := Pinned("m.example/x", "UPPER/Case:tag", d); err == nil {
		t.Error("a malformed reference was accepted")
	}
}
