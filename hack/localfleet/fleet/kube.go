package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// NodesPerCluster is how many kwok nodes each cluster gets.
const NodesPerCluster = 3

// waitFor polls check until it succeeds, p exits, or ctx ends.
func waitFor(ctx context.Context, p *Process, what string, check func(context.Context) error) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			p.StartTime = time.Since(p.Started)
			return nil
		}
		if p.exited() {
			return p.failure("exited while waiting for "+what, last)
		}
		select {
		case <-ctx.Done():
			return p.failure("timed out waiting for "+what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpReady checks that GET url answers 200 with a body containing want.
func httpReady(client *http.Client, url, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			return fmt.Errorf("GET %s: %s: %.200s: %w", url, resp.Status, body, errNotReady)
		}
		return nil
	}
}

// adminHTTPClient authenticates with the admin client certificate and
// verifies the API server against the cluster CA.
func adminHTTPClient(ca, admin *keyPair) (*http.Client, error) {
	cert, err := tls.X509KeyPair(admin.CertPEM, admin.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}}, nil
}

func clientset(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return kubernetes.NewForConfig(cfg)
}

// createNodes registers the fake nodes kwok manages (kwok does not create nodes).
func createNodes(ctx context.Context, cs kubernetes.Interface, cluster string) error {
	for i := 1; i <= NodesPerCluster; i++ {
		name := fmt.Sprintf("%s-node-%d", cluster, i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name,
					"kubernetes.io/os":       "linux",
					"kubernetes.io/arch":     "amd64",
					"type":                   "kwok",
				},
				Annotations: map[string]string{
					"kwok.x-k8s.io/node":             "fake",
					"node.alpha.kubernetes.io/ttl":   "0",
					"localfleet.fleetsync.dev/fleet": cluster,
				},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("128Gi"),
					corev1.ResourcePods:   resource.MustParse("110"),
				},
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("32"),
					corev1.ResourceMemory: resource.MustParse("128Gi"),
					corev1.ResourcePods:   resource.MustParse("110"),
				},
			},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("node %s: create: %w", name, err)
		}
	}
	return nil
}

// nodesReady succeeds once NodesPerCluster nodes are Ready.
func nodesReady(cs kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < NodesPerCluster {
			return fmt.Errorf("%d of %d nodes Ready: %w", ready, NodesPerCluster, errNotReady)
		}
		return nil
	}
}

// serviceAccountExists succeeds once the controller manager created the
// default ServiceAccount (its controllers run).
func serviceAccountExists(cs kubernetes.Interface) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}
}
