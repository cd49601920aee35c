package overlay

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
)

// accessLink is a router's view of one access link it serves: the hosts
// attached to it (by link-layer address, with the underlay endpoint their
// frames come from) and the neighbour cache (IPv6 address to link-layer
// address). The overlay link is hub-and-spoke: hosts talk only to the router,
// so "multicast on the link" means "a copy to every attached host".
type accessLink struct {
	cfg       LinkConfig
	linkLocal netip.Addr

	mu      sync.RWMutex
	members map[LinkAddr]*member
	neigh   map[netip.Addr]*neighbour
	// gone are addresses whose host left the link (a leave frame): packets
	// for them are refused at once until the entry runs out or the host
	// comes back.
	gone map[netip.Addr]departure
}

// departure is an address whose host left.
type departure struct {
	ll    LinkAddr
	epoch uint16 // the attachment that ended
	until time.Time
}

// departedFor is how long a router answers for an address whose host left:
// long enough for a correspondent to hear and fall back (RFC 6275 9.3.2).
const departedFor = 30 * time.Second

type member struct {
	ep       netip.AddrPort
	lastSeen time.Time
	epoch    uint16 // the latest attachment heard from (FrameHeader.Epoch)
}

type neighbourState uint8

const (
	neighIncomplete neighbourState = iota
	neighReachable
)

type neighbour struct {
	state   neighbourState
	ll      LinkAddr
	pending []pendingPacket // packets waiting for resolution (copies)
	probes  int
	timer   clock.Timer
}

// pendingPacket waits for its next hop's link-layer address; fwd says it
// was forwarded (its hop limit already decremented), for the error quote.
type pendingPacket struct {
	data []byte
	fwd  bool
}

// Resolution parameters (RFC 4861 section 10, with the overlay's shorter
// retransmission so that a missing host is reported within 3 s).
const (
	maxPending       = 3
	maxMulticastSolt = 3
	retransTimer     = time.Second
)

func newAccessLink(cfg LinkConfig, routerName string) *accessLink {
	return &accessLink{
		cfg:       cfg,
		linkLocal: LinkLocal(routerName, cfg.Name),
		members:   map[LinkAddr]*member{},
		neigh:     map[netip.Addr]*neighbour{},
		gone:      map[netip.Addr]departure{},
	}
}

// leave forgets host ll and its neighbour entries and remembers its
// addresses as departed, unless the host has been heard from in a later
// attachment than the one it leaves (the leave came late). It reports
// whether it did.
func (l *accessLink) leave(ll LinkAddr, epoch uint16, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.members[ll]
	if !ok || epochAfter(m.epoch, epoch) {
		return false
	}
	delete(l.members, ll)
	for a, nb := range l.neigh {
		if nb.state == neighReachable && nb.ll == ll {
			delete(l.neigh, a)
			if len(l.gone) < maxDepartures {
				l.gone[a] = departure{ll: ll, epoch: epoch, until: now.Add(departedFor)}
			}
		}
	}
	return true
}

// maxDepartures bounds the departed addresses a link remembers.
const maxDepartures = 4096

// departed reports whether a's host left the link lately.
func (l *accessLink) departed(a netip.Addr, now time.Time) bool {
	l.mu.RLock()
	d, ok := l.gone[a]
	l.mu.RUnlock()
	return ok && now.Before(d.until)
}

// touch records that ll was heard from ep. It takes the write lock only when
// something changed, so the per-frame cost is a read-locked map lookup.
func (l *accessLink) touch(ll LinkAddr, ep netip.AddrPort, epoch uint16, now time.Time) {
	l.mu.RLock()
	m, ok := l.members[ll]
	same := ok && m.ep == ep && m.epoch == epoch && now.Sub(m.lastSeen) < time.Second
	l.mu.RUnlock()
	if same {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m, ok = l.members[ll]; ok {
		m.ep, m.lastSeen = ep, now
		if epochAfter(epoch, m.epoch) {
			m.epoch = epoch
		}
		return
	}
	l.members[ll] = &member{ep: ep, lastSeen: now, epoch: epoch}
	// A host that left and came back: its addresses are resolvable again
	// (a late frame of the attachment that ended does not count).
	for a, d := range l.gone {
		if d.ll == ll && epochAfter(epoch, d.epoch) {
			delete(l.gone, a)
		}
	}
}

// endpointOf returns where to send a frame for the neighbour with address a.
func (l *accessLink) endpointOf(a netip.Addr) (netip.AddrPort, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n, ok := l.neigh[a]
	if !ok || n.state != neighReachable {
		return netip.AddrPort{}, false
	}
	m, ok := l.members[n.ll]
	if !ok {
		return netip.AddrPort{}, false
	}
	return m.ep, true
}

// memberEndpoints returns every attached host's endpoint (link "multicast").
func (l *accessLink) memberEndpoints() []netip.AddrPort {
	l.mu.RLock()
	defer l.mu.RUnlock()
	eps := make([]netip.AddrPort, 0, len(l.members))
	for _, m := range l.members {
		eps = append(eps, m.ep)
	}
	return eps
}

// learn records that address a belongs to ll and returns packets that were
// waiting for it.
func (l *accessLink) learn(a netip.Addr, ll LinkAddr) []pendingPacket {
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.gone, a)
	n, ok := l.neigh[a]
	if !ok {
		l.neigh[a] = &neighbour{state: neighReachable, ll: ll}
		return nil
	}
	pending := n.pending
	n.pending, n.state, n.ll, n.probes = nil, neighReachable, ll, 0
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	return pending
}

// forget drops a neighbour entry (a mobility engine that now anchors the
// address elsewhere calls it through the router).
func (l *accessLink) forget(a netip.Addr) {
	l.mu.Lock()
	if n, ok := l.neigh[a]; ok && n.timer != nil {
		n.timer.Stop()
	}
	delete(l.neigh, a)
	l.mu.Unlock()
}

// expire forgets hosts not heard from since before cutoff, with their
// neighbour entries; it returns how many hosts it forgot.
func (l *accessLink) expire(cutoff time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, d := range l.gone {
		if d.until.Before(cutoff) { // long past: cutoff is a member timeout ago
			delete(l.gone, a)
		}
	}
	gone := 0
	for ll, m := range l.members {
		if m.lastSeen.Before(cutoff) {
			delete(l.members, ll)
			gone++
			for a, n := range l.neigh {
				if n.state == neighReachable && n.ll == ll {
					delete(l.neigh, a)
				}
			}
		}
	}
	return gone
}

// NeighbourInfo describes one neighbour cache entry for status output.
type NeighbourInfo struct {
	Link     string         `json:"link"`
	Address  netip.Addr     `json:"address"`
	LinkAddr string         `json:"lladdr,omitempty"`
	Endpoint netip.AddrPort `json:"endpoint,omitempty"`
	State    string         `json:"state"`
}

func (l *accessLink) neighbours() []NeighbourInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []NeighbourInfo
	for a, n := range l.neigh {
		ni := NeighbourInfo{Link: l.cfg.Name, Address: a, State: "incomplete"}
		if n.state == neighReachable {
			ni.State = "reachable"
			ni.LinkAddr = n.ll.String()
			if m, ok := l.members[n.ll]; ok {
				ni.Endpoint = m.ep
			}
		}
		out = append(out, ni)
	}
	return out
}
