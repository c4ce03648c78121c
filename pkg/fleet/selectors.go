package fleet

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// selectorCache remembers, for one Load, the clusters each selector (by
// pointer) selects: the rules ask the same question many times.
type selectorCache struct {
	clusters []*v1alpha1.Cluster
	selected map[*metav1.LabelSelector][]*v1alpha1.Cluster
}

// selectClusters returns the clusters sel selects, sorted by name; none for a
// nil or invalid selector (invalid ones are reported by checker.selector).
func (s *selectorCache) selectClusters(sel *metav1.LabelSelector) []*v1alpha1.Cluster {
	if sel == nil {
		return nil
	}
	if out, ok := s.selected[sel]; ok {
		return out
	}
	var out []*v1alpha1.Cluster
	if ls, err := metav1.LabelSelectorAsSelector(sel); err == nil {
		for _, c := range s.clusters {
			if ls.Matches(labels.Set(c.Metadata.Labels)) {
				out = append(out, c)
			}
		}
	}
	if s.selected == nil {
		s.selected = map[*metav1.LabelSelector][]*v1alpha1.Cluster{}
	}
	s.selected[sel] = out
	return out
}

// selects reports whether sel selects cluster c.
func (s *selectorCache) selects(sel *metav1.LabelSelector, c *v1alpha1.Cluster) bool {
	return slices.Contains(s.selectClusters(sel), c)
}
