// Package metrics holds a node's counters: every frame and packet dropped (by
// reason), forwarded, delivered, and every signalling message sent and
// received (by type), so that tests and the demo count exactly instead of
// guessing.
package metrics

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Set is a named collection of counters. The zero value is ready to use.
// Counter lookups take a lock; hot paths look a counter up once and keep the
// pointer.
type Set struct {
	mu sync.Mutex
	m  map[string]*atomic.Uint64
}

// Counter returns the counter called name, creating it at zero.
func (s *Set) Counter(name string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*atomic.Uint64{}
	}
	c, ok := s.m[name]
	if !ok {
		c = new(atomic.Uint64)
		s.m[name] = c
	}
	return c
}

// Add adds n to the counter called name.
func (s *Set) Add(name string, n uint64) { s.Counter(name).Add(n) }

// Get returns the value of the counter called name (0 if it never counted).
func (s *Set) Get(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.m[name]; ok {
		return c.Load()
	}
	return 0
}

// Snapshot returns every non-zero counter.
func (s *Set) Snapshot() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.m))
	for k, c := range s.m {
		if v := c.Load(); v != 0 {
			out[k] = v
		}
	}
	return out
}

// Names returns the names of all non-zero counters, sorted.
func (s *Set) Names() []string {
	snap := s.Snapshot()
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
