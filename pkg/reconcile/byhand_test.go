package reconcile_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/drift"
	"github.com/fleetsync/fleetsync/pkg/reconcile"
	"github.com/fleetsync/fleetsync/pkg/render"
)

const webApp = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: %[1]s}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s, labels: {tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example.invalid/web:1}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: %[1]s}
data: {mode: prod}
`

var (
	svcGVR    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// A person's kubectl edit, patch, scale, label or client-side apply on a
// managed object is drift: diff reports it (naming kubectl's field manager)
// and apply restores the desired object, also where server-side apply alone
// would merge into an invalid object (the Service port added by a patch).
func TestDriftByHand(t *testing.T) {
	cases := []struct {
		name    string
		kubectl func(t *testing.T, k kubectl)
		manager string
		object  string // Kind/name of the changed object
		check   func(t *testing.T, e *env)
	}{
		{"patch", func(t *testing.T, k kubectl) {
			k.run(t, "patch", "service", "web", "--type", "merge", "-p", `{"spec":{"ports":[{"port":81,"targetPort":8080}]}}`)
		}, "kubectl-patch", "Service/web", func(t *testing.T, e *env) {
			ports, _, _ := unstructured.NestedSlice(e.get(t, svcGVR, "web").Object, "spec", "ports")
			if len(ports) != 1 || ports[0].(map[string]any)["port"] != int64(80) {
				t.Fatalf("ports after apply: %v", ports)
			}
		}},
		{"edit", func(t *testing.T, k kubectl) {
			k.env = append(k.env, "KUBE_EDITOR=sed -i -e s/replicas:\\ 2/replicas:\\ 7/")
			k.run(t, "edit", "deployment", "web")
		}, "kubectl-edit", "Deployment/web", wantReplicas(2)},
		{"scale", func(t *testing.T, k kubectl) {
			k.run(t, "scale", "deployment", "web", "--replicas=4")
		}, "kubectl", "Deployment/web", wantReplicas(2)}, // kubectl scale writes the scale subresource as "kubectl"
		{"label", func(t *testing.T, k kubectl) {
			k.run(t, "label", "deployment", "web", "added-by=hand")
		}, "kubectl-label", "Deployment/web", func(t *testing.T, e *env) {
			if l := e.get(t, deployGVR, "web").GetLabels(); l["added-by"] != "" || l["tier"] != "front" {
				t.Fatalf("labels after apply: %v", l)
			}
		}},
		{"client-side apply", func(t *testing.T, k kubectl) {
			p := filepath.Join(t.TempDir(), "cm.yaml")
			doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: " + k.ns + "}\ndata: {mode: debug, extra: added}\n"
			if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			k.run(t, "apply", "-f", p)
		}, "kubectl-client-side-apply", "ConfigMap/web-config", func(t *testing.T, e *env) {
			cm := e.get(t, cmGVR, "web-config")
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			if len(data) != 1 || data["mode"] != "prod" {
				t.Fatalf("data after apply: %v", data)
			}
			if _, ok := cm.GetAnnotations()["kubectl.kubernetes.io/last-applied-configuration"]; ok {
				t.Fatal("kubectl's last-applied annotation survived the apply")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			repo := fleetRepo("f", app("web", e.ns, true))
			d := desired(repo, []string{"north"}, map[string][]render.AppResult{"north": {{App: "web", Objects: objs(t, e.ns, webApp)}}})
			if res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: 2 * time.Minute}); !res.OK() {
				t.Fatalf("first apply: %+v", res.Pairs)
			}
			tc.kubectl(t, newKubectl(t, e.ns))

			diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{})
			if diff.Failed() || !diff.Drifted() {
				t.Fatalf("diff after kubectl %s: failed %v drifted %v: %+v", tc.name, diff.Failed(), diff.Drifted(), diff.Pairs)
			}
			kind, name, _ := strings.Cut(tc.object, "/")
			od, ok := diff.Pairs[0].Report.Get(kind, e.ns, name)
			if !ok || od.State != drift.Drifted || !strings.Contains(strings.Join(od.ChangedBy, ","), tc.manager) || od.Diff == "" {
				t.Fatalf("drift of %s: %+v", tc.object, od)
			}
			dry := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{DryRun: true})
			if !dry.OK() || dry.Pairs[0].ChangeSet.Count("configured") != 1 {
				t.Fatalf("apply --dry-run disagrees with diff: %+v", dry.Pairs[0].ChangeSet)
			}
			if res := e.rec.Apply(ctxT(t), d, reconcile.RequestOptions{Timeout: 2 * time.Minute}); !res.OK() {
				t.Fatalf("corrective apply: %+v", res.Pairs)
			}
			tc.check(t, e)
			if diff := e.rec.Diff(ctxT(t), d, reconcile.DiffOptions{}); diff.Drifted() || diff.Failed() {
				t.Fatalf("diff after the corrective apply: %+v", diff.Pairs[0].Report)
			}
		})
	}
}

func wantReplicas(n int64) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		got, _, _ := unstructured.NestedInt64(e.get(t, deployGVR, "web").Object, "spec", "replicas")
		if got != n {
			t.Fatalf("replicas after apply: %d, want %d", got, n)
		}
	}
}

func (e *env) get(t *testing.T, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := e.dyn["north"].Resource(gvr).Namespace(e.ns).Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// kubectl runs the local fleet's kubectl on north in the test's namespace.
type kubectl struct {
	bin, kubeconfig, ns string
	env                 []string
}

func newKubectl(t *testing.T, ns string) kubectl {
	f := testfleet.Get(t)
	return kubectl{bin: f.Kubectl(t), kubeconfig: f.Kubeconfig("north"), ns: ns}
}

func (k kubectl) run(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t), k.bin, append([]string{"--kubeconfig", k.kubeconfig, "-n", k.ns}, args...)...)
	cmd.Env = append(os.Environ(), k.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
