package fleet

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// Maximum trigger threshold, in percent.
const maxThreshold = 100

func (l *loader) validatePolicy(repo *Repo, p *v1alpha1.ScalePolicy) {
	c := l.checker(p)
	c.validateMeta(p.Metadata)
	s := p.Spec
	var clusters []*v1alpha1.Cluster
	if c.selector("spec.targets.clusterSelector", s.Targets.ClusterSelector, "a policy without a clusterSelector applies nowhere (use {} for every cluster)") {
		clusters = l.sels.selectClusters(s.Targets.ClusterSelector)
	}
	switch s.Trigger.Metric {
	case "cpu", "memory":
	case "":
		c.add("spec.trigger.metric", "required: cpu or memory")
	default:
		c.add("spec.trigger.metric", "unknown metric %q: want cpu or memory", s.Trigger.Metric)
	}
	if s.Trigger.Threshold < 1 || s.Trigger.Threshold > maxThreshold {
		c.add("spec.trigger.threshold", "must be a utilisation percentage from 1 to %d, found %d", maxThreshold, s.Trigger.Threshold)
	}
	if s.Trigger.Duration.Duration <= 0 {
		c.add("spec.trigger.duration", "must be a positive duration such as 5m, found %q", s.Trigger.Duration.String())
	}
	if len(s.Workloads) == 0 && s.NodePool == nil {
		c.add("spec", "a ScalePolicy needs workloads, a nodePool, or both")
	}
	seen := map[string]int{}
	for i, w := range s.Workloads {
		c.validateWorkload(repo, clusters, fmt.Sprintf("spec.workloads[%d]", i), w)
		key := w.App + "/" + w.Kind + "/" + w.Name
		if first, dup := seen[key]; dup {
			c.add(fmt.Sprintf("spec.workloads[%d]", i), "the same workload as spec.workloads[%d]", first)
		} else {
			seen[key] = i
		}
	}
	if np := s.NodePool; np != nil {
		c.dnsLabel("spec.nodePool.name", np.Name)
		if np.MinNodes < 0 {
			c.add("spec.nodePool.minNodes", "must not be negative, found %d", np.MinNodes)
		}
		if np.MaxNodes < 1 || np.MaxNodes < np.MinNodes {
			c.add("spec.nodePool.maxNodes", "must be at least 1 and at least minNodes (%d), found %d", np.MinNodes, np.MaxNodes)
		}
		var lacking []string
		for _, cl := range clusters {
			if !slices.ContainsFunc(cl.Spec.NodePools, func(p v1alpha1.NodePool) bool { return p.Name == np.Name }) {
				lacking = append(lacking, cl.Metadata.Name)
			}
		}
		if np.Name != "" && len(lacking) > 0 {
			c.add("spec.nodePool.name", "node pool %q is not declared by targeted clusters %s (spec.nodePools)", np.Name, strings.Join(lacking, ", "))
		}
	}
}

func (c checker) validateWorkload(repo *Repo, clusters []*v1alpha1.Cluster, field string, w v1alpha1.ScaleWorkload) {
	switch app := repo.App(w.App); {
	case w.App == "":
		c.add(field+".app", "required")
	case app == nil:
		c.add(field+".app", "unknown app %q", w.App)
	case len(clusters) > 0:
		targets := c.l.sels.selectClusters(app.Spec.Targets.ClusterSelector)
		if !slices.ContainsFunc(clusters, func(cl *v1alpha1.Cluster) bool { return slices.Contains(targets, cl) }) {
			c.add(field+".app", "app %q runs on none of the policy's clusters (%s)", w.App, clusterNames(clusters))
		}
	}
	switch w.Kind {
	case "Deployment", "StatefulSet":
	case "":
		c.add(field+".kind", "required: Deployment or StatefulSet")
	default:
		c.add(field+".kind", "unsupported kind %q: want Deployment or StatefulSet", w.Kind)
	}
	c.dnsSubdomain(field+".name", w.Name)
	if w.MinReplicas < 1 {
		c.add(field+".minReplicas", "must be at least 1, found %d", w.MinReplicas)
	}
	if w.MaxReplicas < w.MinReplicas {
		c.add(field+".maxReplicas", "must be at least minReplicas (%d), found %d", w.MinReplicas, w.MaxReplicas)
	}
}

func clusterNames(clusters []*v1alpha1.Cluster) string {
	names := make([]string, len(clusters))
	for i, cl := range clusters {
		names[i] = cl.Metadata.Name
	}
	return strings.Join(names, ", ")
}

// validatePolicyOverlaps reports two policies scaling the same workload or node
// pool on the same cluster: their HPAs (or autoscaler bounds) would fight.
func (l *loader) validatePolicyOverlaps(repo *Repo) {
	owner := map[string]string{} // cluster + "/" + target -> policy
	for _, p := range repo.ScalePolicies {
		if p.Spec.Targets.ClusterSelector == nil {
			continue
		}
		c := l.checker(p)
		clusters := l.sels.selectClusters(p.Spec.Targets.ClusterSelector)
		claim := func(field, target string) {
			var clash []string
			other := ""
			for _, cl := range clusters {
				key := cl.Metadata.Name + "/" + target
				if prev, taken := owner[key]; taken && prev != p.Metadata.Name {
					clash, other = append(clash, cl.Metadata.Name), prev
					continue
				}
				owner[key] = p.Metadata.Name
			}
			if len(clash) > 0 {
				c.add(field, "%s is already scaled by ScalePolicy %q on clusters %s", target, other, strings.Join(clash, ", "))
			}
		}
		for i, w := range p.Spec.Workloads {
			claim(fmt.Sprintf("spec.workloads[%d]", i), fmt.Sprintf("%s %s of app %s", w.Kind, w.Name, w.App))
		}
		if np := p.Spec.NodePool; np != nil {
			claim("spec.nodePool", fmt.Sprintf("node pool %s", np.Name))
		}
	}
}
