package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// NodePoolNamespace and the name <cluster>-workers are where each cluster's
// Cluster API MachineDeployment stands in for a scalable node pool.
const NodePoolNamespace = "default"

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	mdGVR  = schema.GroupVersionResource{Group: "cluster.x-k8s.io", Version: "v1beta1", Resource: "machinedeployments"}
)

// installNodePools installs a minimal Cluster API MachineDeployment CRD (schema
// open, as only its metadata matters here) and one MachineDeployment named
// <cluster>-workers, so ScalePolicy node-pool annotations apply for real.
func installNodePools(ctx context.Context, kubeconfig, cluster string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "machinedeployments.cluster.x-k8s.io"},
		"spec": map[string]any{
			"group": "cluster.x-k8s.io",
			"scope": "Namespaced",
			"names": map[string]any{"kind": "MachineDeployment", "listKind": "MachineDeploymentList", "plural": "machinedeployments", "singular": "machinedeployment", "shortNames": []any{"md"}},
			"versions": []any{map[string]any{
				"name": "v1beta1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	if _, err := dc.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("CustomResourceDefinition/machinedeployments.cluster.x-k8s.io: create: %w", err)
	}
	md := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cluster.x-k8s.io/v1beta1",
		"kind":       "MachineDeployment",
		"metadata":   map[string]any{"name": cluster + "-workers", "namespace": NodePoolNamespace},
		"spec":       map[string]any{"clusterName": cluster, "replicas": int64(NodesPerCluster)},
	}}
	// The CRD needs a moment to be established before its objects can be created.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = dc.Resource(mdGVR).Namespace(NodePoolNamespace).Create(ctx, md, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MachineDeployment/%s/%s-workers: create: %w", NodePoolNamespace, cluster, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
