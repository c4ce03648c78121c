package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetsync/fleetsync/internal/testfleet"
)

// TestEndToEndExampleFleet drives the CLI the way a user does, on the example
// fleet and the real local fleet: apply everything (waves, dependsOn, health),
// find no drift, detect a change made by another field manager, correct it,
// and prune an object that left the repo.
func TestEndToEndExampleFleet(t *testing.T) {
	f := testfleet.Get(t)
	repo := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(repo, os.DirFS(applyExample)); err != nil {
		t.Fatal(err)
	}
	// Only the credentials of the local fleet's kubeconfig dir may be used.
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	base := []string{"--repo", repo, "--kubeconfig-dir", f.Dir, "--insecure-registry", f.Registries.Source}

	out, msg, code := runApplyOrDiff(t, "apply", append(base, "--timeout", "3m")...)
	if code != 0 {
		t.Fatalf("first apply: exit %d (%s)\n%s", code, msg, out)
	}
	for _, want := range []string{
		"Deployment/mes/mes-deployment",
		"HorizontalPodAutoscaler/orders/order-service",
		"MachineDeployment/default/south-workers",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q:\n%s", want, out)
		}
	}

	// Images were mirrored into each cluster's registry and are pinned there.
	if !strings.Contains(out, "mirror north") || !strings.Contains(out, "copied") && !strings.Contains(out, "already present") {
		t.Errorf("apply output lacks the image mirroring:\n%s", out)
	}
	cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "north"))
	ctx := context.Background()
	mesDep, err := cs.AppsV1().Deployments("mes").Get(ctx, "mes-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img := mesDep.Spec.Template.Spec.Containers[0].Image
	if want := f.Registries.Mirrors["north"] + "/fleet/fleet/mes-system:v1.2@sha256:"; !strings.HasPrefix(img, want) {
		t.Fatalf("mes-deployment on north runs %s, want %s...", img, want)
	}

	out, msg, code = runApplyOrDiff(t, "diff", base...)
	if code != 0 {
		t.Fatalf("diff after apply: exit %d (%s), want 0 (no drift)\n%s", code, msg, out)
	}

	// Another field manager scales mes on north: drift, with a diff naming the field.
	if _, err := cs.AppsV1().Deployments("mes").Patch(ctx, "mes-deployment", types.MergePatchType,
		[]byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	out, msg, code = runApplyOrDiff(t, "diff", append(base, "--cluster", "north")...)
	if code != 1 || !strings.Contains(out, "-  replicas: 1") || !strings.Contains(out, "+  replicas: 5") {
		t.Fatalf("diff after an out-of-band scale: exit %d (%s), want 1 with the replicas diff\n%s", code, msg, out)
	}

	// apply corrects it, and the other clusters are untouched by --cluster north.
	if out, msg, code = runApplyOrDiff(t, "apply", append(base, "--cluster", "north")...); code != 0 {
		t.Fatalf("corrective apply: exit %d (%s)\n%s", code, msg, out)
	}
	d, err := cs.AppsV1().Deployments("mes").Get(ctx, "mes-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *d.Spec.Replicas; got != 5 {
		t.Fatalf("after apply mes-deployment has %d replicas, want 5", got)
	}

	// The Service leaves the repo: apply prunes it (mes has prune: true).
	kust := filepath.Join(repo, "apps", "mes", "base", "kustomization.yaml")
	b, err := os.ReadFile(kust)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kust, []byte(strings.Replace(string(b), "  - service.yaml\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, msg, code = runApplyOrDiff(t, "apply", append(base, "--cluster", "east")...)
	if code != 0 || !strings.Contains(out, "Service/mes/mes") || !strings.Contains(out, "pruned") {
		t.Fatalf("apply after removing the Service: exit %d (%s), want the Service pruned\n%s", code, msg, out)
	}
	east := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "east"))
	if _, err := east.CoreV1().Services("mes").Get(ctx, "mes", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("Service mes/mes on east after prune: err = %v, want NotFound", err)
	}
	if _, err := cs.CoreV1().Services("mes").Get(ctx, "mes", metav1.GetOptions{}); err != nil {
		t.Fatalf("Service mes/mes on north must stay (north was not applied): %v", err)
	}

	// One app of four deleted from the repo (it had prune: true): diff shows
	// its objects as extra, apply uninstalls it, diff is clean again.
	if err := os.RemoveAll(filepath.Join(repo, "apps", "inventory-service")); err != nil {
		t.Fatal(err)
	}
	eastArgs := append(base, "--cluster", "east")
	if out, msg, code = runApplyOrDiff(t, "diff", eastArgs...); code != 1 || !strings.Contains(out, "east/inventory-service: removed from the repo") || !strings.Contains(out, "pruned by the next apply") {
		t.Fatalf("diff after removing an app: exit %d (%s)\n%s", code, msg, out)
	}
	if out, msg, code = runApplyOrDiff(t, "apply", eastArgs...); code != 0 || !strings.Contains(out, "Removed") {
		t.Fatalf("apply after removing an app: exit %d (%s)\n%s", code, msg, out)
	}
	deps, err := east.AppsV1().Deployments("inventory").List(ctx, metav1.ListOptions{})
	if err != nil || len(deps.Items) != 0 {
		t.Fatalf("the removed app's Deployments are still on east: %d, %v", len(deps.Items), err)
	}
	if out, msg, code = runApplyOrDiff(t, "diff", eastArgs...); code != 0 {
		t.Fatalf("diff after the app was uninstalled: exit %d (%s)\n%s", code, msg, out)
	}
}
