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
	err := filepath.WalkDir(filepath.Join("..", "..", "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
		r.write(t, filepath.Join("apps", "fleetsync", rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
	admin := f.RESTConfig(t, "north")
	cs := kubernetes.NewForConfigOrDie(admin)
	ctx := context.Background()
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts("fleetsync-system").CreateToken(ctx, "fleetsync", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
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
	kc.Clusters["north"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca}
	kc.AuthInfos["fleetsync-agent"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["north"] = &clientcmdapi.Context{Cluster: "north", AuthInfo: "fleetsync-agent"}
	kc.CurrentContext = "north"
	agentKubeconfig := filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, agentKubeconfig); err != nil {
		t.Fatal(err)
	}

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
