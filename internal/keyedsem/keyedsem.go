// Package keyedsem bounds concurrent work per key (a registry, a cluster):
// one counting semaphore per key, made on first use.
package keyedsem

import (
	"context"
	"sync"
)

// Sem is a set of semaphores of the same size, one per key. The zero value
// is not usable; call New. Safe for concurrent use.
type Sem struct {
	size int
	mu   sync.Mutex
	sems map[string]chan struct{}
}

// New returns a Sem allowing size holders per key (at least 1).
func New(size int) *Sem { return &Sem{size: max(1, size), sems: map[string]chan struct{}{}} }

// Acquire waits for a slot of key and returns its release, or ctx's error.
func (s *Sem) Acquire(ctx context.Context, key string) (func(), error) {
	s.mu.Lock()
	ch, ok := s.sems[key]
	if !ok {
		ch = make(chan struct{}, s.size)
		s.sems[key] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
