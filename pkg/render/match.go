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
	sels    map[*metav1.LabelSelector]labels.Selector
}

type matchKey struct {
	sel     *metav1.LabelSelector
	cluster *v1alpha1.Cluster
}

func newMatcher() *matcher {
	return &matcher{results: map[matchKey]bool{}, sels: map[*metav1.LabelSelector]labels.Selector{}}
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
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sels[sel]
	if !ok {
		var err error
		if s, err = metav1.LabelSelectorAsSelector(sel); err != nil {
			s = labels.Nothing()
		}
		m.sels[sel] = s
	}
	r = s.Matches(labels.Set(c.Metadata.Labels))
	m.results[k] = r
	return r
}
