package mobility

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

// Path MTU for tunnels and route-optimised packets. A tunnel (RFC 2473) or
// a route-optimisation header (RFC 6275) makes a packet bigger than what
// its source sent, so the node that adds the bytes must handle what no
// longer fits: RFC 2473 7.1 and RFC 4459 3.2 have it learn the path's MTU
// from the Packet Too Big messages sent back to it, tell the original
// source the MTU left for it (never below IPv6's 1280), and fragment what
// the source cannot make smaller: a packet of 1280 bytes or less must pass
// every path, tunnels included. The exit reassembles.

// pmtuLifetime is how long a learned path MTU holds before the node tries
// the larger one again (RFC 8201 section 5.3 suggests 10 minutes).
const pmtuLifetime = 10 * time.Minute

// pathMTUs remembers the MTU of paths Packet Too Big messages reported.
type pathMTUs struct {
	clk clock.Clock
	mu  sync.RWMutex
	m   map[netip.Addr]pmtuEntry
}

type pmtuEntry struct {
	mtu   int
	until time.Time
}

func newPathMTUs(clk clock.Clock) *pathMTUs {
	return &pathMTUs{clk: clk, m: map[netip.Addr]pmtuEntry{}}
}

// get returns the MTU of the path to dst: the one learned, if any and
// smaller, otherwise dflt.
func (c *pathMTUs) get(dst netip.Addr, dflt int) int {
	c.mu.RLock()
	e, ok := c.m[dst]
	c.mu.RUnlock()
	if !ok || e.mtu >= dflt || c.clk.Now().After(e.until) {
		return dflt
	}
	return e.mtu
}

// learn records that the path to dst carries at most mtu bytes (never
// less than IPv6's minimum: a smaller report is a lie, RFC 8201 4).
func (c *pathMTUs) learn(dst netip.Addr, mtu int) {
	mtu = max(mtu, ip6.MinMTU)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 4096 { // bounded: each entry came from a (possibly forged) message
		clear(c.m)
	}
	c.m[dst] = pmtuEntry{mtu: mtu, until: c.clk.Now().Add(pmtuLifetime)}
}

// fragments is a node's IPv6 fragmentation: the identification of the
// packets it fragments, and the reassembly of those it is the end of.
type fragments struct {
	clk clock.Clock
	sig *Signals
	id  atomic.Uint32
	mu  sync.Mutex
	r   ip6.Reassembler
}

func newFragments(clk clock.Clock, sig *Signals) *fragments {
	f := &fragments{clk: clk, sig: sig}
	f.id.Store(uint32(randomSeq())<<16 | uint32(randomSeq()))
	return f
}

// split fragments pkt for a path of mtu bytes: the first unfrag bytes go
// in every fragment, nextOff names the Next Header byte among them that
// names the fragmentable part. send gets each fragment (it must copy).
func (f *fragments) split(pkt []byte, unfrag, nextOff, mtu int, send func([]byte)) bool {
	frags, err := ip6.Fragment(pkt, unfrag, nextOff, mtu, f.id.Add(1))
	if err != nil {
		return false
	}
	f.sig.Add("fragments.out", uint64(len(frags)))
	for _, fr := range frags {
		send(fr)
	}
	return true
}

// reassemble takes p, a fragment addressed to this node, and reports
// whether it completed a packet, which then replaces p's contents.
func (f *fragments) reassemble(p *overlay.Packet, fragOff int) bool {
	f.mu.Lock()
	out, err := f.r.Add(p.Data(), fragOff, f.clk.Now())
	f.mu.Unlock()
	f.sig.Add("fragments.in", 1)
	if err != nil {
		f.sig.Drop(DropFragment)
		return false
	}
	if out == nil {
		return false
	}
	f.sig.Add("fragments.reassembled", 1)
	p.Replace(out)
	return true
}

// fragmentOf returns where p's Fragment header is, if it has one.
func fragmentOf(p *overlay.Packet) (int, bool) {
	c, err := p.Chain()
	if err != nil {
		return 0, false
	}
	h, ok := c.Find(ip6.ProtoFragment)
	return h.Off, ok
}

// packetTooBig reads an ICMPv6 Packet Too Big message (starting at its
// type octet): the MTU it reports and the packet it quotes.
func packetTooBig(icmp []byte) (mtu int, quoted []byte, ok bool) {
	if len(icmp) < 8+ip6.HeaderLen || icmp[0] != ip6.ICMPPacketTooBig {
		return 0, nil, false
	}
	return int(binary.BigEndian.Uint32(icmp[4:8])), icmp[8:], true
}

// tunnelMTU is the MTU left inside a tunnel over a path of pathMTU bytes,
// as the entry point reports it to sources: never below 1280, since it
// fragments rather than refuse a packet of the minimum size.
func tunnelMTU(pathMTU int) int { return max(pathMTU-ip6.HeaderLen, ip6.MinMTU) }

// learnRouteOptimisedMTU learns, from a Packet Too Big (its ICMPv6
// message) about a packet sent with a type 2 routing header, the MTU of the
// path to that packet's destination: the peer's care-of address.
func learnRouteOptimisedMTU(icmp []byte, pmtu *pathMTUs) {
	mtu, quoted, ok := packetTooBig(icmp)
	if !ok {
		return
	}
	if home, _ := quotedMobilityHeaders(quoted); home.IsValid() {
		pmtu.learn(ip6.Header(quoted).Dst(), mtu)
	}
}
