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
	// PrevCareOf is the care-of address this one replaced at Changed,
	// which still speaks for the home address for a while (see Accepts).
	PrevCareOf netip.Addr `json:"-"`
	Changed    time.Time  `json:"-"`
}

// PrevCareOfGrace is how long a replaced care-of address still speaks for
// its home address after the node was seen using the new one (a packet it
// tunnelled from there): what it sent from the old one before it switched
// is still on the way. Without it a make-before-break move loses that
// round trip's packets in the mobile node's direction. The old address
// was authenticated when it was bound, so this widens nothing an attacker
// could use.
const PrevCareOfGrace = 2 * time.Second

// PrepareWindow bounds how long after a binding changes the replaced
// address is still taken while the node has not been seen using the new
// one: a make-before-break move registers first and switches only when
// every registration is acknowledged, a few retransmissions later on a
// lossy link; the node may also send nothing through the tunnel at all.
const PrepareWindow = 5 * time.Second

// entry is immutable once in the map (copy-on-write): Put installs a new
// one, so the data path may read a Binding it looked up without a lock.
// Only lastUsed changes in place, atomically.
type entry struct {
	b        Binding
	lastUsed atomic.Int64 // unix nanoseconds of the last packet sent with it
	switched atomic.Int64 // unix nanoseconds of the first packet from b.CareOf after a change
}

// prevUntil is when the replaced care-of address stops speaking for the
// home address, and bicastUntil when the bicast window closes.
func (e *entry) prevUntil() time.Time {
	if sw := e.switched.Load(); sw != 0 {
		return time.Unix(0, sw).Add(PrevCareOfGrace)
	}
	return e.b.Changed.Add(PrepareWindow)
}

func (e *entry) bicastUntil(window time.Duration) time.Time {
	if sw := e.switched.Load(); sw != 0 {
		return time.Unix(0, sw).Add(window)
	}
	return e.b.Changed.Add(PrepareWindow)
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
	// Bicast is how long after a binding's care-of address changes the
	// replaced one still gets a copy of each packet (LookupBicast; 0: never,
	// at most MaxBicast). Set before the cache is used.
	Bicast time.Duration
	// OnLinkBefore says a home address was on the owner's own link before
	// its first binding (an HA2R's anchors): that first binding replaces
	// the address itself, which is then bicast to and accepted as a
	// reverse tunnel's sender as a replaced care-of address would be.
	OnLinkBefore bool
}

// NewBindingCache returns an empty cache holding at most max entries (0: no
// limit).
func NewBindingCache(clk clock.Clock, max int) *BindingCache {
	return &BindingCache{clk: clk, max: max, m: map[netip.Addr]*entry{}}
}

func (c *BindingCache) get(home netip.Addr) *entry {
	c.mu.RLock()
	e := c.m[home]
	c.mu.RUnlock()
	return e
}

// Lookup returns the care-of address bound to home, if the binding is live.
// It is the data path's query and does not allocate.
func (c *BindingCache) Lookup(home netip.Addr) (netip.Addr, bool) {
	e := c.get(home)
	if e == nil || !c.clk.Now().Before(e.b.Expires) {
		return netip.Addr{}, false
	}
	return e.b.CareOf, true
}

// LookupBicast is Lookup, with also the care-of address the binding
// replaced while the bicast window after the change is open (else also
// is not valid).
func (c *BindingCache) LookupBicast(home netip.Addr) (coa, also netip.Addr, ok bool) {
	e := c.get(home)
	if e == nil {
		return netip.Addr{}, netip.Addr{}, false
	}
	now := c.clk.Now()
	if !now.Before(e.b.Expires) {
		return netip.Addr{}, netip.Addr{}, false
	}
	if c.Bicast > 0 && e.b.PrevCareOf.IsValid() && e.b.PrevCareOf != e.b.CareOf && now.Before(e.bicastUntil(c.Bicast)) {
		also = e.b.PrevCareOf
	}
	return e.b.CareOf, also, true
}

// Touch records that a packet was just sent through the binding for home
// (the correspondent's Binding Refresh Request policy uses it).
func (c *BindingCache) Touch(home netip.Addr) {
	if e := c.get(home); e != nil {
		e.lastUsed.Store(c.clk.Now().UnixNano())
	}
}

// Get returns a copy of the binding for home, live or not.
func (c *BindingCache) Get(home netip.Addr) (Binding, bool) {
	e := c.get(home)
	if e == nil {
		return Binding{}, false
	}
	return e.b, true
}

// LastUsed returns when the binding for home last carried a packet.
func (c *BindingCache) LastUsed(home netip.Addr) time.Time {
	if e := c.get(home); e != nil && e.lastUsed.Load() != 0 {
		return time.Unix(0, e.lastUsed.Load())
	}
	return time.Time{}
}

// Put creates or replaces the binding for b.Home, valid for lifetime. It
// reports false when the cache is full and b is new.
func (c *BindingCache) Put(b Binding, lifetime time.Duration) bool {
	b.Expires = c.clk.Now().Add(lifetime)
	n := &entry{b: b}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[b.Home]
	if !ok && c.max > 0 && len(c.m) >= c.max {
		return false
	}
	switch {
	case ok:
		n.lastUsed.Store(old.lastUsed.Load())
		if old.b.CareOf != b.CareOf {
			n.b.PrevCareOf, n.b.Changed = old.b.CareOf, c.clk.Now()
		} else {
			// A refresh (or a retransmitted BU) keeps the move's grace.
			n.b.PrevCareOf, n.b.Changed = old.b.PrevCareOf, old.b.Changed
			n.switched.Store(old.switched.Load())
		}
	case c.OnLinkBefore && b.CareOf != b.Home:
		n.b.PrevCareOf, n.b.Changed = b.Home, c.clk.Now()
	}
	c.m[b.Home] = n
	return true
}

// Accepts reports whether a packet from outer may speak for home (a
// reverse-tunnelled packet, a Home Address option): outer is the live
// binding's care-of address, or the one it replaced, until PrevCareOfGrace
// after the node was first seen using the new one (this call notes it),
// or PrepareWindow after the change if it has not been.
func (c *BindingCache) Accepts(home, outer netip.Addr) bool {
	e := c.get(home)
	if e == nil {
		return false
	}
	now := c.clk.Now()
	if !now.Before(e.b.Expires) {
		return false
	}
	if e.b.CareOf == outer {
		if e.b.PrevCareOf.IsValid() && e.switched.Load() == 0 {
			e.switched.CompareAndSwap(0, now.UnixNano())
		}
		return true
	}
	return e.b.PrevCareOf == outer && now.Before(e.prevUntil())
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
	return e.b, true
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
		out = append(out, e.b)
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
		if !now.Before(e.b.Expires) {
			gone = append(gone, e.b)
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
	mu.Lock()
	defer mu.Unlock()
	t = clk.AfterFunc(d, func() {
		select {
		case <-stop:
			return
		default:
		}
		f()
		mu.Lock()
		t.Reset(d)
		mu.Unlock()
	})
	go func() {
		<-stop
		mu.Lock()
		t.Stop()
		mu.Unlock()
	}()
}
