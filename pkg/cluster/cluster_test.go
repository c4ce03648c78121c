package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/fleetsync/fleetsync/internal/testfleet"
	"github.com/fleetsync/fleetsync/pkg/cluster"
)

func TestMain(m *testing.M) { os.Exit(testfleet.Main(m, "north")) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// check proves the connection reaches the cluster.
func check(t *testing.T, c *cluster.Cluster, source string) {
	t.Helper()
	if c.Source != source {
		t.Fatalf("source %s, want %s", c.Source, source)
	}
	v, err := c.ServerVersion(ctxT(t))
	if err != nil || !strings.HasPrefix(v, "v1.") {
		t.Fatalf("version %q: %v", v, err)
	}
	m, err := c.Mapping(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
	if err != nil || m.Resource.Resource != "deployments" {
		t.Fatalf("mapping: %+v %v", m, err)
	}
	if c.Config.QPS != cluster.DefaultQPS || c.Config.Burst != cluster.DefaultBurst {
		t.Fatalf("qps/burst %v/%d", c.Config.QPS, c.Config.Burst)
	}
}

// kubeconfigAs writes the fleet's north kubeconfig with its context renamed.
func kubeconfigAs(t *testing.T, f *testfleet.Fleet, context, path string) []byte {
	t.Helper()
	raw, err := clientcmd.LoadFromFile(f.Kubeconfig("north"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := raw.Contexts[raw.CurrentContext]
	raw.Contexts = map[string]*clientcmdapi.Context{context: ctx}
	raw.CurrentContext = context
	b, err := clientcmd.Write(*raw)
	if err != nil {
		t.Fatal(err)
	}
	if path != "" {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestConnectKubeconfigDir(t *testing.T) {
	f := testfleet.Get(t)
	dir := t.TempDir()
	kubeconfigAs(t, f, "whatever", filepath.Join(dir, "alpha.kubeconfig"))
	c, err := cluster.Connect(ctxT(t), "alpha", cluster.ConnectOptions{KubeconfigDir: dir, Kubeconfig: filepath.Join(dir, "none")})
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, cluster.SourceKubeconfigDir)
}

func TestConnectContextNamedAfterCluster(t *testing.T) {
	f := testfleet.Get(t)
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	kubeconfigAs(t, f, "beta", kc)
	c, err := cluster.Connect(ctxT(t), "beta", cluster.ConnectOptions{KubeconfigDir: dir, Kubeconfig: kc})
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, cluster.SourceContext)
}

func TestConnectSecretOnManagementCluster(t *testing.T) {
	f := testfleet.Get(t)
	ns := f.Namespace(t, "north")
	dir := t.TempDir()
	mgmt := filepath.Join(dir, "mgmt")
	gammaConfig := kubeconfigAs(t, f, "mgmt", mgmt) // also the member's kubeconfig
	cs, err := kubernetes.NewForConfig(f.RESTConfig(t, "north"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Secrets(ns).Create(ctxT(t), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: cluster.SecretPrefix + "gamma"},
		Data:       map[string][]byte{cluster.SecretKey: gammaConfig},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Connect(ctxT(t), "gamma", cluster.ConnectOptions{Kubeconfig: mgmt, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, cluster.SourceSecret)

	// Nowhere to be found: the error says where it looked.
	_, err = cluster.Connect(ctxT(t), "delta", cluster.ConnectOptions{KubeconfigDir: dir, Kubeconfig: mgmt, Namespace: ns})
	if err == nil {
		t.Fatal("connected to a cluster that has no credentials")
	}
	for _, want := range []string{"cluster delta", "delta.kubeconfig", "context delta", cluster.SecretPrefix + "delta"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
