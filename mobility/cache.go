package mobility

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
)

// Binding is one binding cache entry: packets for Home go to CareOf.
type Binding struct {
	Home    netip.Addr `json:"home"`
	CareOf  netip.Addr `json:"care_of"`
	Seq     uint16     `json:"seq"`
	Expires time.Time  `json:"expires"`
	// Key is the MN-HA2R key of an HA2R anchor.
	Key []byte `json:"-"`
	// Peer names who registered it, for status output.
	Peer string `json:"peer,omitempty"`
}

type entry struct {
	Binding
	lastUsed atomic.Int64 // unix nanoseconds of the last packet sent with it
}

// BindingCache maps home addresses to care-of addresses with lifetimes. The
// data path reads it under a read lock; expiry is checked on lookup and
// swept periodically, so that a hundred thousand bindings need no timers.
type BindingCache struct {
	clk clock.Clock
	max int

	mu sync.RWMutex
	m  map[netip.Addr]*entry

	// OnExpire, if set, is called (without the lock) for each binding the
	// sweep removes.
	OnExpire func(Binding)
}

// NewBindingCache returns an empty cache holding at most max entries (0: no
// limit).
func NewBindingCache(clk clock.Clock, max int) *BindingCache {
	return &BindingCache{clk: clk, max: max, m: map[netip.Addr]*entry{}}
}

// Lookup returns the care-of address bound to home, if the binding is live.
// It is the data path's query and does not allocate.
func (c *BindingCache) Lookup(home netip.Addr) (netip.Addr, bool) {
	c.mu.RLock()
	e, ok := c.m[home]
	c.mu.RUnlock()
	if !ok || !c.clk.Now().Before(e.Expires) {
		return netip.Addr{}, false
	}
	return e.CareOf, true
}

// Touch records that a packet was just sent through the binding for home
// (the correspondent's Binding Refresh Request policy uses it).
func (c *BindingCache) Touch(home netip.Addr) {
	c.mu.RLock()
	if e, ok := c.m[home]; ok {
		e.lastUsed.Store(c.clk.Now().UnixNano())
	}
	c.mu.RUnlock()
}

// Get returns a copy of the binding for home, live or not.
func (c *BindingCache) Get(home netip.Addr) (Binding, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[home]
	if !ok {
		return Binding{}, false
	}
	return e.Binding, true
}

// LastUsed returns when the binding for home last carried a packet.
func (c *BindingCache) LastUsed(home netip.Addr) time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.m[home]; ok && e.lastUsed.Load() != 0 {
		return time.Unix(0, e.lastUsed.Load())
	}
	return time.Time{}
}

// Put creates or replaces the binding for b.Home, valid for lifetime. It
// reports false when the cache is full and b is new.
func (c *BindingCache) Put(b Binding, lifetime time.Duration) bool {
	b.Expires = c.clk.Now().Add(lifetime)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[b.Home]; ok {
		e.Binding = b
		return true
	}
	if c.max > 0 && len(c.m) >= c.max {
		return false
	}
	c.m[b.Home] = &entry{Binding: b}
	return true
}

// Delete removes the binding for home and reports whether there was one.
func (c *BindingCache) Delete(home netip.Addr) (Binding, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[home]
	if !ok {
		return Binding{}, false
	}
	delete(c.m, home)
	return e.Binding, true
}

// Len returns the number of bindings.
func (c *BindingCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// All returns the bindings sorted by home address.
func (c *BindingCache) All() []Binding {
	c.mu.RLock()
	out := make([]Binding, 0, len(c.m))
	for _, e := range c.m {
		out = append(out, e.Binding)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Home.Less(out[j].Home) })
	return out
}

// Sweep removes expired bindings.
func (c *BindingCache) Sweep() {
	now := c.clk.Now()
	var gone []Binding
	c.mu.Lock()
	for k, e := range c.m {
		if !now.Before(e.Expires) {
			gone = append(gone, e.Binding)
			delete(c.m, k)
		}
	}
	c.mu.Unlock()
	if c.OnExpire != nil {
		for _, b := range gone {
			c.OnExpire(b)
		}
	}
}

// every runs f every d on clk until stop is closed.
func every(clk clock.Clock, d time.Duration, stop <-chan struct{}, f func()) {
	var mu sync.Mutex
	var t clock.Timer
	var tick func()
	tick = func() {
		select {
		case <-stop:
			return
		default:
		}
		f()
		mu.Lock()
		t.Reset(d)
		mu.Unlock()
	}
	mu.Lock()
	t = clk.AfterFunc(d, tick)
	mu.Unlock()
	go func() {
		<-stop
		mu.Lock()
		t.Stop()
		mu.Unlock()
	}()
}
