package render

import (
	"encoding/json"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/pkg/fleet"
)

// YAML encodes objects as one YAML stream, "---" between documents, keys
// sorted: the same objects always give the same bytes.
func YAML(objs []*unstructured.Unstructured) ([]byte, error) {
	l := make([]object, len(objs))
	for i, u := range objs {
		l[i] = u.Object
	}
	return encodeYAML(l)
}

// JSON encodes objects as a v1 List, indented, keys sorted.
func JSON(objs []*unstructured.Unstructured) ([]byte, error) {
	items := make([]any, len(objs))
	for i, u := range objs {
		items[i] = u.Object
	}
	b, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// badPair is a selected pair that cannot be rendered at all.
type badPair struct {
	cluster, app string
	err          error
}

// selectPairs lists the selected (cluster, app) pairs where the app targets
// the cluster, and error pairs for selected names not in the repo.
func selectPairs(repo *fleet.Repo, sel Selection, m *matcher) ([]*pairJob, []badPair) {
	var bad []badPair
	clusters := repo.Clusters
	var clusterNames []string
	if len(sel.Clusters) > 0 {
		clusters = nil
		for _, n := range dedupe(sel.Clusters) {
			if c := repo.Cluster(n); c != nil {
				clusters = append(clusters, c)
			}
			clusterNames = append(clusterNames, n)
		}
	} else {
		for _, c := range clusters {
			clusterNames = append(clusterNames, c.Metadata.Name)
		}
	}
	apps := repo.Apps
	var appNames []string
	if len(sel.Apps) > 0 {
		apps = nil
		for _, n := range dedupe(sel.Apps) {
			if a := repo.App(n); a != nil {
				apps = append(apps, a)
			}
			appNames = append(appNames, n)
		}
	} else {
		for _, a := range apps {
			appNames = append(appNames, a.Metadata.Name)
		}
	}
	for _, cn := range clusterNames {
		for _, an := range appNames {
			switch {
			case repo.Cluster(cn) == nil:
				bad = append(bad, badPair{cn, an, fmt.Errorf("%s/%s: cluster %q is not in the fleet repo", cn, an, cn)})
			case repo.App(an) == nil:
				bad = append(bad, badPair{cn, an, fmt.Errorf("%s/%s: app %q is not in the fleet repo", cn, an, an)})
			}
		}
		if len(appNames) == 0 && repo.Cluster(cn) == nil {
			bad = append(bad, badPair{cn, "", fmt.Errorf("%s: cluster %q is not in the fleet repo", cn, cn)})
		}
	}
	var jobs []*pairJob
	for _, c := range clusters {
		for _, a := range apps {
			if m.matches(a.Spec.Targets.ClusterSelector, c) {
				jobs = append(jobs, &pairJob{cluster: c, app: a})
			}
		}
	}
	return jobs, bad
}

// mergeBad adds the error pairs to the results, keeping both orders.
func mergeBad(cs []ClusterResult, bad []badPair) []ClusterResult {
	for _, b := range bad {
		i := sort.Search(len(cs), func(i int) bool { return cs[i].Cluster >= b.cluster })
		if i == len(cs) || cs[i].Cluster != b.cluster {
			cs = append(cs, ClusterResult{})
			copy(cs[i+1:], cs[i:])
			cs[i] = ClusterResult{Cluster: b.cluster}
		}
		apps := cs[i].Apps
		j := sort.Search(len(apps), func(j int) bool { return apps[j].App >= b.app })
		apps = append(apps, AppResult{})
		copy(apps[j+1:], apps[j:])
		apps[j] = AppResult{App: b.app, Err: b.err}
		cs[i].Apps = apps
	}
	return cs
}

func dedupe(l []string) []string {
	c := sortedCopy(l)
	out := c[:0]
	for i, s := range c {
		if i == 0 || s != c[i-1] {
			out = append(out, s)
		}
	}
	return out
}
