package render

import (
	"fmt"
	"strconv"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Cluster API autoscaler annotations set on a node pool's MachineDeployment.
const (
	AnnotationNodeGroupMin = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
	AnnotationNodeGroupMax = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
)

// scaleObjects returns what the cluster's ScalePolicies add to the app: an
// HPA per workload of the app (whose spec.replicas is removed so the HPA
// owns it), and the partial MachineDeployment of a policy's node pool when
// the app is the first of the policy's workload apps targeting the cluster.
func (run *renderRun) scaleObjects(c *v1alpha1.Cluster, app *v1alpha1.App, objs []object) ([]object, error) {
	var out []object
	for _, p := range run.repo.ScalePolicies {
		if !run.match.matches(p.Spec.Targets.ClusterSelector, c) {
			continue
		}
		for _, w := range p.Spec.Workloads {
			if w.App != app.Metadata.Name {
				continue
			}
			hpa, err := hpaFor(p, w, objs)
			if err != nil {
				return nil, fmt.Errorf("scale policy %s: %w", p.Metadata.Name, err)
			}
			out = append(out, hpa)
		}
		if p.Spec.NodePool != nil && run.nodePoolApp(p, c) == app.Metadata.Name {
			md, err := machineDeploymentFor(c, p.Spec.NodePool)
			if err != nil {
				return nil, fmt.Errorf("scale policy %s: %w", p.Metadata.Name, err)
			}
			out = append(out, md)
		}
	}
	return out, nil
}

// nodePoolApp is the app that carries a policy's node pool object on a
// cluster: the app of the first workload that targets the cluster.
func (run *renderRun) nodePoolApp(p *v1alpha1.ScalePolicy, c *v1alpha1.Cluster) string {
	for _, w := range p.Spec.Workloads {
		if a := run.repo.App(w.App); a != nil && run.match.matches(a.Spec.Targets.ClusterSelector, c) {
			return a.Metadata.Name
		}
	}
	return ""
}

func hpaFor(p *v1alpha1.ScalePolicy, w v1alpha1.ScaleWorkload, objs []object) (object, error) {
	var target object
	for _, o := range objs {
		if str(o, "kind") == w.Kind && str(o, "metadata", "name") == w.Name {
			target = o
			break
		}
	}
	if target == nil {
		return nil, fmt.Errorf("workload %s/%s is not rendered by app %s", w.Kind, w.Name, w.App)
	}
	if spec, ok := target["spec"].(map[string]any); ok {
		delete(spec, "replicas")
	}
	metric := p.Spec.Trigger.Metric
	if metric == "" {
		metric = "cpu"
	}
	md := map[string]any{"name": w.Name}
	if ns := str(target, "metadata", "namespace"); ns != "" {
		md["namespace"] = ns
	}
	spec := map[string]any{
		"scaleTargetRef": map[string]any{
			"apiVersion": str(target, "apiVersion"),
			"kind":       w.Kind,
			"name":       w.Name,
		},
		"minReplicas": int64(w.MinReplicas),
		"maxReplicas": int64(w.MaxReplicas),
		"metrics": []any{map[string]any{
			"type": "Resource",
			"resource": map[string]any{
				"name": metric,
				"target": map[string]any{
					"type":               "Utilization",
					"averageUtilization": int64(p.Spec.Trigger.Threshold),
				},
			},
		}},
		"behavior": map[string]any{
			"scaleUp": map[string]any{
				"stabilizationWindowSeconds": int64(p.Spec.Trigger.Duration.Seconds()),
			},
		},
	}
	return object{
		"apiVersion": "autoscaling/v2",
		"kind":       "HorizontalPodAutoscaler",
		"metadata":   md,
		"spec":       spec,
	}, nil
}

// machineDeploymentFor is a partial MachineDeployment: only the autoscaler
// annotations (and fleetsync's prune guard), so server-side apply owns
// nothing else and removing the policy never deletes the pool.
func machineDeploymentFor(c *v1alpha1.Cluster, np *v1alpha1.NodePoolScale) (object, error) {
	for _, pool := range c.Spec.NodePools {
		if pool.Name != np.Name {
			continue
		}
		return object{
			"apiVersion": "cluster.x-k8s.io/v1beta1",
			"kind":       "MachineDeployment",
			"metadata": map[string]any{
				"name":      pool.MachineDeployment.Name,
				"namespace": pool.MachineDeployment.Namespace,
				"annotations": map[string]any{
					AnnotationNodeGroupMin:   strconv.Itoa(int(np.MinNodes)),
					AnnotationNodeGroupMax:   strconv.Itoa(int(np.MaxNodes)),
					v1alpha1.AnnotationPrune: "disabled",
				},
			},
		}, nil
	}
	return nil, fmt.Errorf("node pool %q is not declared in cluster %s spec.nodePools", np.Name, c.Metadata.Name)
}
