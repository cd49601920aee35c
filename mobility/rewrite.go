package mobility

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// TunnelHopLimit is the hop limit of tunnel (outer) headers.
const TunnelHopLimit = 64

// encapsulate wraps p in an outer header from src to dst (RFC 2473).
func encapsulate(p *overlay.Packet, src, dst netip.Addr) bool {
	inner := p.Len
	h, ok := p.Prepend(ip6.HeaderLen)
	if !ok {
		return false
	}
	ip6.Fields{NextHeader: ip6.ProtoIPv6, HopLimit: TunnelHopLimit, Src: src, Dst: dst, PayloadLen: inner}.Put(h)
	return true
}

// decapsulate removes the outer headers of an IPv6-in-IPv6 packet (a bare
// outer header, or one with the bicast option: tunnelOuter) and checks the
// inner one.
func decapsulate(p *overlay.Packet) error {
	return stripTunnel(p, tunnelOuter(p.Data()).outer)
}

// stripTunnel removes the outer headers of p, outer bytes (tunnelOuter;
// 0: p is not a tunnel packet), and checks the inner header.
func stripTunnel(p *overlay.Packet, outer int) error {
	if outer == 0 {
		return ip6.ErrNotTunnel
	}
	inner, err := ip6.Check(p.Data()[outer:])
	if err != nil {
		return err
	}
	p.Strip(outer)
	p.Trim(len(inner))
	return nil
}

// isTunnelled reports whether p is IPv6-in-IPv6 as this testbed's tunnels
// make it (tunnelOuter).
func isTunnelled(p *overlay.Packet) bool {
	return tunnelOuter(p.Data()).outer > 0
}

// tunnelEntry is a router's end of the tunnels it starts: a home agent's to
// care-of addresses (RFC 6275 10.4.2), an HA2R's to where the holder of an
// anchored care-of address is now. It keeps the path MTU of each tunnel.
type tunnelEntry struct {
	r     RouterPort
	self  netip.Addr
	sig   *Signals
	pmtu  *pathMTUs
	frags *fragments
	dups  *duplicates   // bicast copies seen, by mobile node
	seq   atomic.Uint32 // numbers the packets this entry bicasts
}

func newTunnelEntry(r RouterPort, sig *Signals) *tunnelEntry {
	return &tunnelEntry{r: r, self: r.Address(), sig: sig, pmtu: newPathMTUs(r.Clock()), frags: newFragments(r.Clock(), sig),
		dups: newDuplicates(r.Clock())}
}

// forward tunnels p to dst. A packet that does not fit the tunnel's path
// with the outer header is refused with Packet Too Big, unless it is no
// bigger than IPv6's minimum MTU: then the outer packet goes in fragments
// (RFC 2473 7.1).
func (t *tunnelEntry) forward(p *overlay.Packet, dst netip.Addr) overlay.Verdict {
	mtu := t.pmtu.get(dst, t.r.BackboneMTU())
	if p.Len+ip6.HeaderLen > mtu && p.Len > ip6.MinMTU {
		t.sig.Drop(DropTunnelTooBig)
		t.r.PacketTooBig(tunnelMTU(mtu), p.Data())
		return overlay.Consumed
	}
	if !encapsulate(p, t.self, dst) {
		t.sig.Drop(DropTunnelNoRoom)
		return overlay.Consumed
	}
	t.sig.tunnelEncap.Add(1)
	return fitPath(p, mtu, ip6.HeaderLen, ip6.OffNextHeader, t.frags, t.sig, t.r.Send)
}

// forwardBicast tunnels p to dst and a copy to also, both with the same
// bicast sequence number (bicast.go). A packet for which the option leaves
// no room on either path goes to dst alone, as forward sends it.
func (t *tunnelEntry) forwardBicast(p *overlay.Packet, dst, also netip.Addr) overlay.Verdict {
	over := p.Len + ip6.HeaderLen + bicastHdrLen
	mtu, alsoMTU := t.pmtu.get(dst, t.r.BackboneMTU()), t.pmtu.get(also, t.r.BackboneMTU())
	if (over > mtu || over > alsoMTU) && p.Len > ip6.MinMTU {
		return t.forward(p, dst)
	}
	seq := t.seq.Add(1)
	c := overlay.NewPacket(p.Data())
	if encapsulateSeq(c, t.self, also, seq) {
		t.sig.bicastCopies.Add(1)
		if fitPath(c, alsoMTU, ip6.HeaderLen, ip6.OffNextHeader, t.frags, t.sig, t.r.Send) == overlay.Continue {
			t.r.Send(c.Data())
		}
	}
	if !encapsulateSeq(p, t.self, dst, seq) {
		t.sig.Drop(DropTunnelNoRoom)
		return overlay.Consumed
	}
	t.sig.tunnelEncap.Add(1)
	return fitPath(p, mtu, ip6.HeaderLen, ip6.OffNextHeader, t.frags, t.sig, t.r.Send)
}

// ownTunnelled says p is a tunnel packet this entry made, routed again
// (a bicast copy it sends): the engine's Forward must let it go, not
// tunnel it a second time.
func (t *tunnelEntry) ownTunnelled(p *overlay.Packet) bool {
	return p.Header().Src() == t.self && isTunnelled(p)
}

// tooBig takes a Packet Too Big (its ICMPv6 message) and reports whether it
// was about a packet this router tunnelled: then it learns the tunnel's path
// MTU and tells the inner packet's source the MTU left for it, if that
// packet was bigger than the minimum (a smaller one goes in fragments next
// time).
func (t *tunnelEntry) tooBig(icmp []byte) bool {
	mtu, quoted, ok := packetTooBig(icmp)
	if !ok || len(quoted) < 2*ip6.HeaderLen {
		return false
	}
	outer := ip6.Header(quoted)
	if outer.Src() != t.self || outer.NextHeader() != ip6.ProtoIPv6 {
		return false
	}
	t.pmtu.learn(outer.Dst(), mtu)
	t.sig.Add("tunnel.packet_too_big", 1)
	inner := quoted[ip6.HeaderLen:]
	if ip6.HeaderLen+ip6.Header(inner).PayloadLen() > ip6.MinMTU {
		t.r.PacketTooBig(tunnelMTU(mtu), inner)
	}
	return true
}

// exit handles what reaches a router's own address that a tunnel exit
// point cares about before anything else: fragments are reassembled (the
// packet then goes round again), and Packet Too Big messages about its own
// tunnels are taken. It reports whether it decided p's fate.
func (t *tunnelEntry) exit(p *overlay.Packet, c *ip6.Chain) (overlay.Verdict, bool) {
	if off, ok := fragmentOf(p); ok {
		if t.frags.reassemble(p, off) {
			return overlay.Reinput, true
		}
		return overlay.Consumed, true
	}
	d := p.Data()
	if c.Upper == ip6.ProtoICMPv6 && c.UpperOff < len(d) && t.tooBig(d[c.UpperOff:]) {
		return overlay.Consumed, true
	}
	return overlay.Continue, false
}

// untunnel decapsulates what a mobile node sent through a reverse tunnel,
// if bindings maps the inner source to the outer one (the care-of address
// it registered, or within its grace the one it replaced); anything else
// is dropped and counted, and told to unknown (if set) with its inner and
// outer sources. The second copy of a bicast packet is dropped too.
func (t *tunnelEntry) untunnel(p *overlay.Packet, bindings *BindingCache, unknown func(inner, outer netip.Addr)) overlay.Verdict {
	d := p.Data()
	h := tunnelOuter(d)
	if h.outer == 0 {
		t.sig.Drop(DropTunnelMalformed)
		return overlay.Consumed
	}
	outer := ip6.Header(d).Src()
	inner := ip6.Header(d[h.outer:]).Src()
	if !bindings.Accepts(inner, outer) {
		t.sig.Drop(DropTunnelUnknownSender)
		if unknown != nil {
			unknown(inner, outer)
		}
		return overlay.Consumed
	}
	if !takeTunnelled(p, h, t.dups, true, t.sig) {
		return overlay.Consumed
	}
	return overlay.Reinput
}

// insertionPoint returns the offset after the fixed header and any
// hop-by-hop options header, where Mobile IPv6 headers go, and the offset of
// the Next Header byte that names what follows it.
func insertionPoint(p *overlay.Packet) (off int, nextOff int, ok bool) {
	c, err := p.Chain()
	if err != nil {
		return 0, 0, false
	}
	if c.N > 0 && c.Headers[0].Proto == ip6.ProtoHopByHop {
		return c.Headers[0].Off + c.Headers[0].Len, c.Headers[0].Off, true
	}
	return ip6.HeaderLen, ip6.OffNextHeader, true
}

// routeOptimise rewrites an outgoing packet for route optimisation, in
// place: with careOf valid, its source becomes careOf and a Home Address
// option carries the original source (RFC 6275 6.3); with peerCoA valid,
// its destination becomes peerCoA and a type 2 routing header carries the
// original destination (6.4). The upper-layer checksum stays right because
// both headers restore the addresses it was computed over. It returns where
// the headers it added end and the offset of the Next Header byte that
// names what follows them: the packet's unfragmentable part, should it need
// fragmenting.
func routeOptimise(p *overlay.Packet, careOf, peerCoA netip.Addr) (unfrag, nextOff int, ok bool) {
	add := 0
	if careOf.IsValid() {
		add += mh.HAOHeaderLen
	}
	if peerCoA.IsValid() {
		add += mh.RH2Len
	}
	ins, nextOff, ok := insertionPoint(p)
	if !ok {
		return 0, 0, false
	}
	if add == 0 {
		return ins, nextOff, true
	}
	if _, ok := p.Prepend(add); !ok {
		return 0, 0, false
	}
	nd := p.Data()
	copy(nd, nd[add:add+ins]) // move the fixed header (and hop-by-hop) to the front
	h := ip6.Header(nd)
	next := nd[nextOff]
	at := ins
	last := nextOff
	if peerCoA.IsValid() {
		inner := next
		if careOf.IsValid() {
			inner = ip6.ProtoDstOpts
		}
		mh.PutRH2(nd[at:at+mh.RH2Len], inner, h.Dst())
		nd[nextOff] = ip6.ProtoRouting
		h.SetDst(peerCoA)
		last = at
		at += mh.RH2Len
	} else if careOf.IsValid() {
		nd[nextOff] = ip6.ProtoDstOpts
	}
	if careOf.IsValid() {
		mh.PutHAODestOpts(nd[at:at+mh.HAOHeaderLen], next, h.Src())
		h.SetSrc(careOf)
		last = at
		at += mh.HAOHeaderLen
	}
	h.SetPayloadLen(p.Len - ip6.HeaderLen)
	p.Changed()
	return at, last, true
}

// fitPath sends p within mtu: as it is when it fits (Continue), otherwise
// fragmented at this node, p's source or tunnel entry point, after its
// first unfrag bytes, whose Next Header byte at nextOff names what follows
// (RFC 8200 4.5; a routing header and a Home Address option are part of
// the unfragmentable part). The fragments go to send; p is consumed.
func fitPath(p *overlay.Packet, mtu, unfrag, nextOff int, frags *fragments, sig *Signals, send func([]byte)) overlay.Verdict {
	if mtu <= 0 || p.Len <= mtu {
		return overlay.Continue
	}
	if !frags.split(p.Data(), unfrag, nextOff, mtu, send) {
		sig.Drop(DropTunnelTooBig)
	}
	return overlay.Consumed
}

// roInfo is what unrouteOptimise found.
type roInfo struct {
	homeAddress netip.Addr // from a Home Address option: the peer's home address
	careOf      netip.Addr // the packet's source before the swap
	routedTo    netip.Addr // from a type 2 routing header: our home address
	arrivedAt   netip.Addr // the destination before the swap (our care-of address)
}

// Errors of unrouteOptimise.
var errROChain = errors.New("mobility: malformed route-optimisation headers")

// unrouteOptimise undoes routeOptimise on an incoming packet, in place: it
// swaps the home addresses back into the header and removes the type 2
// routing header and a destination options header that holds only a Home
// Address option. It does nothing to packets without them.
func unrouteOptimise(p *overlay.Packet) (roInfo, error) {
	var info roInfo
	d := p.Data()
	c, err := p.Chain()
	if err != nil {
		return info, err
	}
	remove := 0
	var rm [2]ip6.ExtHeader
	nrm := 0
	h := ip6.Header(d)
	for i := 0; i < c.N; i++ {
		e := c.Headers[i]
		switch e.Proto {
		case ip6.ProtoRouting:
			a, sl, err := mh.ParseRH2(d[e.Off : e.Off+e.Len])
			if err != nil {
				return info, err
			}
			if sl != 1 {
				return info, errROChain
			}
			info.routedTo, info.arrivedAt = a, h.Dst()
			rm[nrm] = e
			nrm++
			remove += e.Len
		case ip6.ProtoDstOpts:
			a, _, err := mh.ParseHAO(d[e.Off : e.Off+e.Len])
			if errors.Is(err, mh.ErrHAOMissing) {
				continue
			}
			if err != nil {
				return info, err
			}
			info.homeAddress, info.careOf = a, h.Src()
			if e.Len == mh.HAOHeaderLen && nrm < 2 {
				rm[nrm] = e
				nrm++
				remove += e.Len
			}
		}
		if nrm == 2 {
			break
		}
	}
	if info.routedTo.IsValid() {
		h.SetDst(info.routedTo)
	}
	if info.homeAddress.IsValid() {
		h.SetSrc(info.homeAddress)
	}
	if remove == 0 {
		return info, nil
	}
	defer p.Changed()
	// The removed headers are consecutive (RH2 then the HAO header, as the
	// sender put them): relink the chain and close the gap by moving what
	// precedes them forward.
	first := rm[0]
	last := rm[nrm-1]
	if last.Off+last.Len-first.Off != remove {
		return info, errROChain
	}
	idx := -1
	for i := 0; i < c.N; i++ {
		if c.Headers[i].Off == first.Off {
			idx = i
		}
	}
	d[c.NextHeaderOffset(idx)] = d[last.Off] // the removed headers' successor
	copy(d[remove:first.Off+remove], d[:first.Off])
	p.Strip(remove)
	ip6.Header(p.Data()).SetPayloadLen(p.Len - ip6.HeaderLen)
	return info, nil
}

// quotedMobilityHeaders reads, from the packet an ICMPv6 error quotes, the
// home address of a type 2 routing header and whether it carried a Home
// Address option: what a correspondent and a mobile node learn from an
// error about a route-optimised packet (RFC 6275 9.3.2, 11.3.5). The quote
// may be cut short; the headers before the cut count.
func quotedMobilityHeaders(quoted []byte) (rh2Home netip.Addr, hao bool) {
	var c ip6.Chain
	_ = ip6.Walk(quoted, &c)
	for i := 0; i < c.N; i++ {
		e := c.Headers[i]
		if e.Off+e.Len > len(quoted) {
			break
		}
		switch e.Proto {
		case ip6.ProtoRouting:
			if home, _, err := mh.ParseRH2(quoted[e.Off : e.Off+e.Len]); err == nil {
				rh2Home = home
			}
		case ip6.ProtoDstOpts:
			if _, _, err := mh.ParseHAO(quoted[e.Off : e.Off+e.Len]); err == nil {
				hao = true
			}
		}
	}
	return rh2Home, hao
}
