package testfleet_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/hack/localfleet/fleet"
	"github.com/fleetsync/fleetsync/internal/testfleet"
)

func TestMain(m *testing.M) {
	os.Exit(testfleet.Main(m, "north", "south"))
}

// deployment is a 2-replica Deployment; annotations go on its Pod template.
func deployment(ns, name, image string, podAnnotations map[string]string) *appsv1ac.DeploymentApplyConfiguration {
	labels := map[string]string{"app": name}
	return appsv1ac.Deployment(name, ns).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(2).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).
				WithAnnotations(podAnnotations).
				WithSpec(corev1ac.PodSpec().WithContainers(
					corev1ac.Container().WithName("app").WithImage(image)))))
}

func apply(t *testing.T, cs kubernetes.Interface, d *appsv1ac.DeploymentApplyConfiguration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.AppsV1().Deployments(*d.Namespace).Apply(ctx, d, metav1.ApplyOptions{FieldManager: "testfleet-test", Force: true}); err != nil {
		t.Fatalf("Deployment/%s/%s: server-side apply: %v", *d.Namespace, *d.Name, err)
	}
}

// waitDeployment polls until cond holds or a minute passes (a failure bound,
// not a performance assertion).
func waitDeployment(t *testing.T, cs kubernetes.Interface, ns, name string, cond func(*appsv1.Deployment, []corev1.Pod) error) (*appsv1.Deployment, []corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last error
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			var pods *corev1.PodList
			pods, err = cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
			if err == nil {
				if err = cond(d, pods.Items); err == nil {
					return d, pods.Items
				}
			}
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("Deployment/%s/%s: %v", ns, name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestDeploymentBecomesAvailable(t *testing.T) {
	f := testfleet.Get(t)
	for _, cluster := range f.Clusters {
		t.Run(cluster, func(t *testing.T) {
			cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, cluster))
			ns := f.Namespace(t, cluster)
			apply(t, cs, deployment(ns, "web", f.Registries.Source+"/fleet/mes-system:v1.2", nil))
			d, pods := waitDeployment(t, cs, ns, "web", func(d *appsv1.Deployment, pods []corev1.Pod) error {
				if d.Status.ObservedGeneration < d.Generation || !available(d) || d.Status.ReadyReplicas != 2 {
					return fmt.Errorf("not Available yet: %d ready, conditions %v", d.Status.ReadyReplicas, d.Status.Conditions)
				}
				return nil
			})
			if d.Status.AvailableReplicas != 2 {
				t.Errorf("availableReplicas = %d, want 2", d.Status.AvailableReplicas)
			}
			for _, p := range pods {
				if p.Spec.NodeName == "" || !podReady(p) {
					t.Errorf("Pod/%s: node %q ready %v, want scheduled and Ready", p.Name, p.Spec.NodeName, podReady(p))
				}
			}
		})
	}
}

func TestNeverReadyDeploymentIsNotAvailable(t *testing.T) {
	f := testfleet.Get(t)
	cluster := f.Clusters[0]
	cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, cluster))
	ns := f.Namespace(t, cluster)
	apply(t, cs, deployment(ns, "stuck", f.Registries.Source+"/fleet/order-service:v2.0",
		map[string]string{"localfleet.fleetsync.dev/never-ready": "true"}))
	// Wait until kwok has processed both pods (Running, containers started),
	// so that "not Ready" is kwok's answer and not a slow start.
	d, pods := waitDeployment(t, cs, ns, "stuck", func(d *appsv1.Deployment, pods []corev1.Pod) error {
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 &&
				p.Status.ContainerStatuses[0].State.Running != nil {
				running++
			}
		}
		if running != 2 || d.Status.ObservedGeneration < d.Generation || d.Status.Replicas != 2 {
			return fmt.Errorf("%d of 2 pods Running, %d replicas observed", running, d.Status.Replicas)
		}
		return nil
	})
	for _, p := range pods {
		if podReady(p) {
			t.Errorf("Pod/%s is Ready despite the never-ready annotation", p.Name)
		}
	}
	if available(d) || d.Status.ReadyReplicas != 0 {
		t.Errorf("Deployment/%s/stuck: available %v with %d ready replicas, want not Available and 0", ns, available(d), d.Status.ReadyReplicas)
	}
}

func TestSeededImagesArePullable(t *testing.T) {
	f := testfleet.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	puller, err := remote.NewPuller()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fleet.SeedImages() {
		ref, err := name.ParseReference(f.Registries.Source+"/"+s.Repository+":"+s.Tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := puller.Get(ctx, ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if len(s.Platforms) == 1 {
			img, err := desc.Image()
			if err != nil {
				t.Errorf("%s: %v", ref, err)
				continue
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Errorf("%s: config: %v", ref, err)
				continue
			}
			if got := cf.OS + "/" + cf.Architecture; got != s.Platforms[0] {
				t.Errorf("%s: platform %s, want %s", ref, got, s.Platforms[0])
			}
			continue
		}
		if !desc.MediaType.IsIndex() {
			t.Errorf("%s: media type %s, want an index", ref, desc.MediaType)
			continue
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if len(im.Manifests) != 2 {
			t.Errorf("%s: %d manifests, want 2", ref, len(im.Manifests))
		}
		var got []string
		for _, m := range im.Manifests {
			if m.Platform != nil {
				got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
			}
			if m.MediaType != types.DockerManifestSchema2 && m.MediaType != types.OCIManifestSchema1 {
				t.Errorf("%s: child media type %s", ref, m.MediaType)
			}
		}
		if fmt.Sprint(got) != "[linux/amd64 linux/arm64]" {
			t.Errorf("%s: platforms %v, want [linux/amd64 linux/arm64]", ref, got)
		}
	}
}

func TestMirrorRegistriesServe(t *testing.T) {
	f := testfleet.Get(t)
	for _, c := range f.Clusters {
		mirror, ok := f.Registries.Mirrors[c]
		if !ok {
			t.Errorf("no mirror registry for cluster %s", c)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+mirror+"/v2/", nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Errorf("mirror of %s: %v", c, err)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("mirror of %s: GET /v2/: %s", c, resp.Status)
		}
	}
}

func TestNodesAreReadyAndRBACIsOn(t *testing.T) {
	f := testfleet.Get(t)
	for _, c := range f.Clusters {
		cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, c))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			cancel()
			t.Fatalf("%s: list nodes: %v", c, err)
		}
		if len(nodes.Items) != fleet.NodesPerCluster {
			t.Errorf("%s: %d nodes, want %d", c, len(nodes.Items), fleet.NodesPerCluster)
		}
		if _, err := cs.RbacV1().ClusterRoles().Get(ctx, "cluster-admin", metav1.GetOptions{}); err != nil {
			t.Errorf("%s: RBAC bootstrap ClusterRole cluster-admin: %v", c, err)
		}
		v, err := cs.Discovery().ServerVersion()
		cancel()
		if err != nil || v.GitVersion != fleet.DefaultVersions().Kubernetes {
			t.Errorf("%s: server version %v (%v), want %s", c, v, err, fleet.DefaultVersions().Kubernetes)
		}
	}
}

func TestUpRefusesLiveFleetAndDownOfEmptyDirIsNoop(t *testing.T) {
	f := testfleet.Get(t)
	ctx := context.Background()
	if _, err := fleet.Up(ctx, fleet.Options{Dir: f.Dir, Clusters: []string{"north"}}); err == nil {
		t.Fatal("Up over a live fleet succeeded, want a refusal")
	}
	live, err := fleet.Load(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Live(); err != nil {
		t.Fatalf("the refused Up harmed the live fleet: %v", err)
	}
	empty := t.TempDir()
	if err := fleet.Down(ctx, empty, nil); err != nil {
		t.Errorf("Down of an empty dir: %v", err)
	}
	if err := fleet.Down(ctx, empty+"/missing", nil); err != nil {
		t.Errorf("Down of a missing dir: %v", err)
	}
	if _, err := os.Stat(empty + "/missing"); !os.IsNotExist(err) {
		t.Errorf("Down created the missing dir: %v", err)
	}
}
