package mobility

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/internal/seqwindow"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

// Bicasting covers the switch of a make-before-break move: from the change
// of a care-of address until a short window after the node is seen using
// the new one (BindingCache.LookupBicast), a tunnel's entry point sends
// each packet through the tunnel to the new address and to the replaced
// one (a home agent; an HA2R for an address it anchors), and a mobile
// node sends what it reverse-tunnels from the new address and from the
// one it left, by each one's link. Both copies carry the same sequence
// number in a Destination Options header of the outer packet, and the
// tunnel's exit point takes the first and drops the other: the number is
// the tunnel's, not guessed from what the packet carries (RTP or
// anything else), as GRE's sequence numbers (RFC 2890) are. The window
// is short (MaxBicast) because each copy costs a packet on the old path.
//
// The header is 8 bytes: Next Header 41 (the inner IPv6 header), length
// 0, then one option of type 0x1E (RFC 4727's experimental value whose
// high bits say "skip if unknown, not changed en route") with 4 bytes of
// data, the sequence number.
const (
	bicastOption = 0x1E
	bicastHdrLen = 8
	// MaxBicast caps the bicast window: within it a replaced care-of
	// address must still be accepted (PrevCareOfGrace).
	MaxBicast = PrevCareOfGrace
)

// encapsulateSeq wraps p as encapsulate does, with the bicast sequence
// number seq.
func encapsulateSeq(p *overlay.Packet, src, dst netip.Addr, seq uint32) bool {
	inner := p.Len
	h, ok := p.Prepend(ip6.HeaderLen + bicastHdrLen)
	if !ok {
		return false
	}
	ip6.Fields{NextHeader: ip6.ProtoDstOpts, HopLimit: TunnelHopLimit, Src: src, Dst: dst, PayloadLen: inner + bicastHdrLen}.Put(h)
	o := h[ip6.HeaderLen:]
	o[0], o[1], o[2], o[3] = ip6.ProtoIPv6, 0, bicastOption, 4
	binary.BigEndian.PutUint32(o[4:8], seq)
	return true
}

// tunnelHeader is what tunnelOuter read: the length of the outer
// headers (0: not a tunnel packet) and the bicast sequence number, if the
// packet carries one.
type tunnelHeader struct {
	outer  int
	seq    uint32
	tagged bool
}

// tunnelOuter reads the outer headers of a packet as this testbed's
// tunnels make them: a bare IPv6 header before the inner one (outer is
// 40), or one followed by the bicast option (48, seq and tagged set).
// Anything else is not a tunnel packet (outer 0).
func tunnelOuter(d []byte) tunnelHeader {
	if len(d) < 2*ip6.HeaderLen {
		return tunnelHeader{}
	}
	switch ip6.Header(d).NextHeader() {
	case ip6.ProtoIPv6:
		return tunnelHeader{outer: ip6.HeaderLen}
	case ip6.ProtoDstOpts:
		o := d[ip6.HeaderLen:]
		if len(d) >= 2*ip6.HeaderLen+bicastHdrLen && o[0] == ip6.ProtoIPv6 && o[1] == 0 && o[2] == bicastOption && o[3] == 4 {
			return tunnelHeader{outer: ip6.HeaderLen + bicastHdrLen, seq: binary.BigEndian.Uint32(o[4:8]), tagged: true}
		}
	}
	return tunnelHeader{}
}

// duplicates drops the second copy of a bicast packet: a sliding window
// of sequence numbers per sender (the tunnel's entry point at a mobile
// node, the mobile node's address at an anchor). A window idle for
// duplicateIdle is started afresh, so that a restarted sender, whose
// numbers begin again, is not taken for a repeat. Only packets whose
// sender the exit point accepts reach it.
type duplicates struct {
	clk clock.Clock
	mu  sync.Mutex
	m   map[netip.Addr]*senderWindow
}

type senderWindow struct {
	w    seqwindow.Window
	last time.Time
}

const (
	duplicateIdle    = 10 * time.Second // > MaxBicast: windows do not overlap
	duplicateSenders = 4096
)

func newDuplicates(clk clock.Clock) *duplicates {
	return &duplicates{clk: clk, m: map[netip.Addr]*senderWindow{}}
}

// fresh reports whether seq from sender is the first copy.
func (d *duplicates) fresh(sender netip.Addr, seq uint32) bool {
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.m[sender]
	if w == nil || now.Sub(w.last) > duplicateIdle {
		if w == nil && len(d.m) >= duplicateSenders {
			for a, x := range d.m {
				if now.Sub(x.last) > duplicateIdle {
					delete(d.m, a)
				}
			}
		}
		w = &senderWindow{}
		d.m[sender] = w
	}
	w.last = now
	return w.w.Accept(uint64(seq))
}

// takeTunnelled removes the tunnel headers h (read from p) of p, whose
// sender (the outer source) the caller accepted, and reports whether the
// inner packet is the first copy: a bicast copy already seen from the
// same sender (the outer source, or with byInner the inner one) is
// dropped, counted.
func takeTunnelled(p *overlay.Packet, h tunnelHeader, dups *duplicates, byInner bool, sig *Signals) bool {
	sender := p.Header().Src()
	if err := stripTunnel(p, h.outer); err != nil {
		sig.Drop(DropTunnelMalformed)
		return false
	}
	if byInner {
		sender = p.Header().Src()
	}
	if h.tagged && !dups.fresh(sender, h.seq) {
		sig.Drop(DropBicastDuplicate)
		return false
	}
	sig.tunnelDecap.Add(1)
	return true
}
