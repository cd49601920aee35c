package mobility

import (
	"errors"
	"net/netip"

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

// ErrNotTunnelled: the packet is not IPv6-in-IPv6 with a bare outer header.
var ErrNotTunnelled = errors.New("mobility: not an IPv6-in-IPv6 packet")

// decapsulate removes the outer header of an IPv6-in-IPv6 packet whose outer
// header has no extension headers, and checks the inner one.
func decapsulate(p *overlay.Packet) error {
	d := p.Data()
	if len(d) < 2*ip6.HeaderLen || d[6] != ip6.ProtoIPv6 {
		return ErrNotTunnelled
	}
	inner, err := ip6.Check(d[ip6.HeaderLen:])
	if err != nil {
		return err
	}
	p.Strip(ip6.HeaderLen)
	p.Len = len(inner)
	return nil
}

// tunnelTo forwards p through a tunnel from src to dst: a home agent to a
// mobile node's care-of address (RFC 6275 section 10.4.2), an HA2R to where
// the holder of an anchored care-of address is now. A packet that would not
// fit the backbone MTU with the outer header is answered with Packet Too Big.
func tunnelTo(p *overlay.Packet, r *overlay.Router, sig *Signals, src, dst netip.Addr) overlay.Verdict {
	if mtu := r.Config().BackboneMTU; p.Len+ip6.HeaderLen > mtu {
		sig.Drop("tunnel.too_big")
		r.PacketTooBig(mtu-ip6.HeaderLen, p.Data())
		return overlay.Consumed
	}
	if !encapsulate(p, src, dst) {
		sig.Drop("tunnel.no_room")
		return overlay.Consumed
	}
	sig.Add("tunnel.encap", 1)
	return overlay.Continue
}

// untunnel decapsulates what a mobile node sent through a reverse tunnel,
// if bindings maps the inner source to the outer one (the care-of address
// it registered); anything else is dropped and counted.
func untunnel(p *overlay.Packet, sig *Signals, bindings *BindingCache) overlay.Verdict {
	d := p.Data()
	if len(d) < 2*ip6.HeaderLen || d[6] != ip6.ProtoIPv6 {
		sig.Drop("tunnel.malformed")
		return overlay.Consumed
	}
	outer := ip6.Header(d).Src()
	inner := ip6.Header(d[ip6.HeaderLen:]).Src()
	if coa, ok := bindings.Lookup(inner); !ok || coa != outer {
		sig.Drop("tunnel.unknown_sender")
		return overlay.Consumed
	}
	if err := decapsulate(p); err != nil {
		sig.Drop("tunnel.malformed")
		return overlay.Consumed
	}
	sig.Add("tunnel.decap", 1)
	return overlay.Reinput
}

// insertionPoint returns the offset after the fixed header and any
// hop-by-hop options header: where Mobile IPv6 headers go.
func insertionPoint(d []byte) (off int, nextOff int, ok bool) {
	off, nextOff = ip6.HeaderLen, 6
	if d[6] == ip6.ProtoHopByHop {
		if len(d) < off+8 {
			return 0, 0, false
		}
		n := (int(d[off+1]) + 1) * 8
		if off+n > len(d) {
			return 0, 0, false
		}
		nextOff, off = off, off+n
	}
	return off, nextOff, true
}

// routeOptimise rewrites an outgoing packet for route optimisation, in
// place: with hoa valid, its source becomes careOf and a Home Address option
// carries hoa (RFC 6275 6.3); with peerCoA valid, its destination becomes
// peerCoA and a type 2 routing header carries the original destination
// (6.4). The upper-layer checksum stays right because both headers restore
// the addresses it was computed over.
func routeOptimise(p *overlay.Packet, careOf, peerCoA netip.Addr) bool {
	add := 0
	if careOf.IsValid() {
		add += mh.HAOHeaderLen
	}
	if peerCoA.IsValid() {
		add += mh.RH2Len
	}
	if add == 0 {
		return true
	}
	d := p.Data()
	ins, nextOff, ok := insertionPoint(d)
	if !ok {
		return false
	}
	if _, ok := p.Prepend(add); !ok {
		return false
	}
	nd := p.Data()
	copy(nd, nd[add:add+ins]) // move the fixed header (and hop-by-hop) to the front
	h := ip6.Header(nd)
	next := nd[nextOff]
	at := ins
	if peerCoA.IsValid() {
		inner := next
		if careOf.IsValid() {
			inner = ip6.ProtoDstOpts
		}
		mh.PutRH2(nd[at:at+mh.RH2Len], inner, h.Dst())
		nd[nextOff] = ip6.ProtoRouting
		h.SetDst(peerCoA)
		at += mh.RH2Len
	} else if careOf.IsValid() {
		nd[nextOff] = ip6.ProtoDstOpts
	}
	if careOf.IsValid() {
		mh.PutHAODestOpts(nd[at:at+mh.HAOHeaderLen], next, h.Src())
		h.SetSrc(careOf)
	}
	h.SetPayloadLen(p.Len - ip6.HeaderLen)
	return true
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
	var c ip6.Chain
	if err := ip6.Walk(d, &c); err != nil {
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
