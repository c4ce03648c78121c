package render

import (
	"encoding/json"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
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

// selectPairs resolves a Selection to clusters and apps, sorted by name.
func selectPairs(repo *fleet.Repo, sel Selection) ([]*v1alpha1.Cluster, []*v1alpha1.App, error) {
	clusters := repo.Clusters
	if len(sel.Clusters) > 0 {
		clusters = nil
		for _, n := range dedupe(sel.Clusters) {
			c := repo.Cluster(n)
			if c == nil {
				return nil, nil, fmt.Errorf("cluster %q is not in the fleet repo", n)
			}
			clusters = append(clusters, c)
		}
	}
	apps := repo.Apps
	if len(sel.Apps) > 0 {
		apps = nil
		for _, n := range dedupe(sel.Apps) {
			a := repo.App(n)
			if a == nil {
				return nil, nil, fmt.Errorf("app %q is not in the fleet repo", n)
			}
			apps = append(apps, a)
		}
	}
	return clusters, apps, nil
}

func dedupe(l []string) []string {
	c := sortedCopy(l)
	out := c[:0]
	for i, s := range c {
		if i == 0 || s != c[i-1] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
