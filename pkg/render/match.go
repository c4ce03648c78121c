package render

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/fleetsync/fleetsync/api/v1alpha1"
)

// matcher is fleet.Matches with the selectors converted once per Render:
// a nil selector selects nothing, an invalid one nothing.
type matcher struct {
	mu      sync.RWMutex
	results map[matchKey]bool
}

type matchKey struct {
	sel     *metav1.LabelSelector
	cluster *v1alpha1.Cluster
}

func newMatcher() *matcher {
	return &matcher{results: map[matchKey]bool{}}
}

func (m *matcher) matches(sel *metav1.LabelSelector, c *v1alpha1.Cluster) bool {
	if sel == nil {
		return false
	}
	k := matchKey{sel, c}
	m.mu.RLock()
	r, ok := m.results[k]
	m.mu.RUnlock()
	if ok {
		return r
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	r = err == nil && s.Matches(labels.Set(c.Metadata.Labels))
	m.mu.Lock()
	m.results[k] = r
	m.mu.Unlock()
	return r
}
