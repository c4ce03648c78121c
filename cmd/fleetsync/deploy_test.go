package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fleetsync/fleetsync/internal/daemon"
	"github.com/fleetsync/fleetsync/internal/gitserver"
	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/hub"
)

// deploy/agent applied by fleetsync to a local cluster becomes healthy
// (kwok runs no containers: the Deployment is Available by kwok's rules, so
// the objects, the RBAC and the rollout are checked, the image and the
// probes are not). Then `fleetsync run` in agent mode, with a kubeconfig that
// carries nothing but the fleetsync ServiceAccount's token, reconciles north
// within exactly those rights: a Deployment is applied and healthy, a
// ClusterRole (RBAC is not granted by rbac/apply) fails with the API server's
// "forbidden" naming it, in the status, and is not created.
func TestDeployAgentWithItsOwnRBAC(t *testing.T) {
	f := testfleet.Get(t)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	r := newRolloutRepo(t)
	copyDeploy(t, r, "fleetsync")
	r.write(t, "apps/fleetsync/app.yaml", `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: fleetsync}
spec:
  namespace: fleetsync-system
  source: {kustomize: {path: deploy/agent}}
  targets: {clusterSelector: {matchLabels: {region: north}}}
`)
	out, msg, code := runApplyOrDiff(t, "apply", "--repo", r.dir, "--kubeconfig-dir", f.Dir, "--cluster", "north", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("apply deploy/agent: exit %d (%s)\n%s", code, msg, out)
	}
	for _, want := range []string{"Deployment/fleetsync-system/fleetsync", "ClusterRole/fleetsync-apply", "Role/fleetsync-system/fleetsync-state", "Service/fleetsync-system/fleetsync"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %s:\n%s", want, out)
		}
	}

	// A token of the agent's ServiceAccount, and a kubeconfig with only it.
	agentKubeconfig := tokenKubeconfig(t, f, "north", "fleetsync-system", "fleetsync")
	cs := kubernetes.NewForConfigOrDie(f.RESTConfig(t, "north"))
	ctx := context.Background()

	// The agent's fleet: a Deployment (within its rights) and a ClusterRole
	// (outside them).
	a := newRolloutRepo(t)
	allowed := a.app(t, "agent", "  targets: {clusterSelector: {matchLabels: {region: north}}}\n", "")
	denied := "rbac-" + a.suffix
	a.write(t, "apps/"+denied+"/app.yaml", fmt.Sprintf("apiVersion: fleetsync.dev/v1alpha1\nkind: App\nmetadata: {name: %s}\nspec:\n  source: {kustomize: {path: base}}\n  targets: {clusterSelector: {matchLabels: {region: north}}}\n", denied))
	a.write(t, "apps/"+denied+"/base/kustomization.yaml", "resources: [role.yaml]\n")
	a.write(t, "apps/"+denied+"/base/role.yaml", fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: %s}\nrules: []\n", denied))
	a.commit(t, "agent fleet")
	url := serveRepo(t, a.dir)
	addr := freeAddr(t)
	startDaemon(t, "--cluster", "north", "--kubeconfig", agentKubeconfig, "--repo", url, "--branch", "main",
		"--listen", addr, "--interval", "1s", "--heartbeat-interval", "1s", "--log-format", "json", "--git-cache-dir", t.TempDir())
	deadline := time.Now().Add(90 * time.Second)
	for {
		s, err := getStatus(addr)
		if err == nil {
			ok, bad := appOn(s, "north", allowed), appOn(s, "north", denied)
			c := s.Cluster("north")
			if ok.Sync == daemon.SyncSynced && ok.Health == daemon.HealthHealthy && strings.Contains(bad.Error, "forbidden") && c != nil && c.Up && c.Nodes > 0 {
				// The first apply names the object; later cycles, which
				// cannot read it back either, name its resource.
				if !strings.Contains(bad.Error, "ClusterRole/"+denied) && !strings.Contains(bad.Error, "clusterroles") {
					t.Errorf("the refused app's error names neither its object nor its resource: %s", bad.Error)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent with its own RBAC: allowed %+v, denied %+v, cluster %+v", ok, bad, c)
			}
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, denied, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the ClusterRole outside the agent's rights: %v", err)
	}
}

// tokenKubeconfig writes a kubeconfig for the cluster that carries nothing
// but a token of the ServiceAccount ns/sa (a TokenRequest of an hour).
func tokenKubeconfig(t *testing.T, f *testfleet.Fleet, cluster, ns, sa string) string {
	t.Helper()
	admin := f.RESTConfig(t, cluster)
	exp := int64(3600)
	tr, err := kubernetes.NewForConfigOrDie(admin).CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		if ca, err = os.ReadFile(admin.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: sa}
	kc.CurrentContext = cluster
	p := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// copyDeploy copies deploy/ into the repo's apps/<app>/deploy.
func copyDeploy(t *testing.T, r *rolloutRepo, app string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join("..", "..", "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
		r.write(t, filepath.Join("apps", app, rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deploy/hub-view applied by fleetsync to the hub cluster: the agents' objects
// and RBAC, and the hub view. With a token of north's agent identity, the
// agent publishes its own state and reads every agent's, and may not write
// south's object; the hub view's identity reads them and writes none;
// `status --hub-kubeconfig` works with it.
func TestDeployHubRBAC(t *testing.T) {
	f := testfleet.Get(t)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	r := newRolloutRepo(t)
	copyDeploy(t, r, "fleetsync-hub")
	// south's agent object and identity, copied from north's as deploy/hub says
	r.write(t, "apps/fleetsync-hub/deploy/hub/south.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: fleetsync-agent-south
  namespace: fleetsync-system
  labels: {fleetsync.dev/agent: south, app.kubernetes.io/managed-by: fleetsync}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: fleetsync-agent-south, namespace: fleetsync-system}
rules:
  - {apiGroups: [""], resources: [configmaps], resourceNames: [fleetsync-agent-south], verbs: [get, update, patch]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: fleetsync-agent-south, namespace: fleetsync-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fleetsync-agent-south, namespace: fleetsync-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: fleetsync-agent-south}
subjects: [{kind: ServiceAccount, name: fleetsync-agent-south, namespace: fleetsync-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: fleetsync-agents-read-south, namespace: fleetsync-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: fleetsync-agents-read}
subjects: [{kind: ServiceAccount, name: fleetsync-agent-south, namespace: fleetsync-system}]
`)
	r.write(t, "apps/fleetsync-hub/deploy/hub/kustomization.yaml", "resources: [hub.yaml, south.yaml]\n")
	r.write(t, "clusters/hub.yaml", "apiVersion: fleetsync.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: hub\n  labels: {region: hub}\n")
	r.write(t, "apps/fleetsync-hub/app.yaml", `apiVersion: fleetsync.dev/v1alpha1
kind: App
metadata: {name: fleetsync-hub}
spec:
  namespace: fleetsync-system
  source: {kustomize: {path: deploy/hub-view}}
  targets: {clusterSelector: {matchLabels: {region: hub}}}
`)
	out, msg, code := runApplyOrDiff(t, "apply", "--repo", r.dir, "--kubeconfig-dir", f.Dir, "--cluster", "hub", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("apply deploy/hub-view: exit %d (%s)\n%s", code, msg, out)
	}
	for _, want := range []string{"Deployment/fleetsync-system/fleetsync-hub-view", "ConfigMap/fleetsync-system/fleetsync-agent-north", "Role/fleetsync-system/fleetsync-agent-south"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %s:\n%s", want, out)
		}
	}
	ctx := context.Background()
	connect := func(kubeconfig string) *hub.Hub {
		t.Helper()
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		h, err := hub.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	north := connect(tokenKubeconfig(t, f, "hub", "fleetsync-system", "fleetsync-agent-north"))
	state := func(c string) hub.AgentState {
		return hub.AgentState{Cluster: c, Heartbeat: time.Now().UTC(), Revision: "r1", Up: true, Apps: map[string]hub.AppState{}}
	}
	if err := north.Publish(ctx, state("north")); err != nil {
		t.Fatalf("north's agent publishing its own state: %v", err)
	}
	if err := north.Publish(ctx, state("south")); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("north's agent writing south's object: %v, want forbidden", err)
	} else if !strings.Contains(err.Error(), "fleetsync-agent-south") {
		t.Errorf("the refusal does not name the object: %v", err)
	}
	if agents, _, err := north.Agents(ctx); err != nil || agents["north"].Revision != "r1" {
		t.Fatalf("north's agent reading the agents: %v %+v", err, agents)
	}
	viewKubeconfig := tokenKubeconfig(t, f, "hub", "fleetsync-system", "fleetsync-hub-view")
	view := connect(viewKubeconfig)
	if err := view.Publish(ctx, state("north")); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("the hub view writing an agent's object: %v, want forbidden", err)
	}
	out2, code := runCLI(t, "status", "--hub-kubeconfig", viewKubeconfig, "-o", "json")
	if code != 0 || !strings.Contains(out2, `"mode":"hub"`) && !strings.Contains(out2, `"mode": "hub"`) || !strings.Contains(out2, `"north"`) {
		t.Errorf("status --hub-kubeconfig with the view's identity (exit %d):\n%s", code, out2)
	}
}

// serveRepo serves a git work tree on a loopback git server and returns its
// clone URL.
func serveRepo(t *testing.T, dir string) string {
	t.Helper()
	h, err := gitserver.HTTPHandler(context.Background(), filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(dir) + "/.git"
}
