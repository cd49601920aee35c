package overlay

import (
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
)

// rx is the state of one processing round of a router loop: what to send
// when the round ends, and the packet being processed. Each loop goroutine
// has its own.
type rx struct {
	out   sendBatch
	tun   [][]byte
	from  netip.AddrPort
	depth int
	fwd   bool // the packet being routed is forwarded: its hop limit was decremented
	pkt   Packet
	nd    ndArena
	// counting: the round is a loop's, and the packet being processed must
	// settle exactly once (settled says whether it has).
	counting, settled bool
}

// outcome is how the processing of a packet a loop read ended, other than
// a drop (which is counted under its reason). Every packet ends in exactly
// one drop or outcome: frames.unsettled and frames.settled_twice count the
// exceptions, which are bugs, and tests check that they stay zero.
type outcome uint8

const (
	outDrop      outcome = iota // counted by drop
	outKeepalive                // counted as keepalive.in
	outND                       // neighbour discovery processed
	outEmitted                  // queued as a frame to the underlay
	outDevice                   // queued to the node's own device
	outResolving                // waiting for neighbour resolution
	outConsumed                 // taken by the mobility engine
	outAnswered                 // answered by the router itself (echo)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{outDrop: "drop", outKeepalive: "keepalive", outND: "nd",
	outEmitted: "emitted", outDevice: "device", outResolving: "resolving", outConsumed: "consumed", outAnswered: "answered"}

// begin starts the accounting of one packet read by a loop.
func (st *rx) begin() { st.counting, st.settled = true, false }

// end checks that the packet begun settled.
func (r *Router) end(st *rx) {
	if st.counting && !st.settled {
		r.c.unsettled.Add(1)
	}
	st.counting = false
}

// settle records the outcome of the packet being processed.
func (r *Router) settle(st *rx, o outcome) {
	r.c.outcome[o].Add(1)
	if !st.counting {
		return
	}
	if st.settled {
		r.c.settledTwice.Add(1)
		return
	}
	st.settled = true
}

// drop counts a dropped packet under its reason and settles it.
func (r *Router) drop(st *rx, reason DropReason) {
	r.c.dropped(reason, 1)
	r.settle(st, outDrop)
}

// ndArena hands out reusable builders for the ND messages a router answers
// within one round; their bytes stay valid until the round's flush.
type ndArena struct {
	bs []*ndBuilder
	n  int
}

func (a *ndArena) next() *ndBuilder {
	if a.n == len(a.bs) {
		a.bs = append(a.bs, &ndBuilder{})
	}
	a.n++
	return a.bs[a.n-1]
}

// receiveBatch processes one batch from the underlay.
func (r *Router) receiveBatch(st *rx, bufs [][]byte, sizes []int, from []netip.AddrPort, n int) {
	now := r.clk.Now()
	for i := 0; i < n; i++ {
		st.from = from[i]
		r.handleFrame(bufs[i], sizes[i], now, st)
	}
	r.flush(st)
}

// tunBatch routes what the router's own applications sent.
func (r *Router) tunBatch(st *rx, bufs [][]byte, sizes []int, n int) {
	for i := 0; i < n; i++ {
		st.begin()
		r.fromDevice(st, bufs[i], sizes[i])
		r.end(st)
	}
	r.flush(st)
}

func (r *Router) fromDevice(st *rx, buf []byte, size int) {
	p := &st.pkt
	p.Set(buf, Headroom, size)
	data, err := ip6.Check(p.Data())
	if err != nil {
		r.drop(st, DropIPv6Malformed)
		return
	}
	p.Trim(len(data))
	if p.Header().Dst().IsMulticast() {
		r.drop(st, DropMulticast)
		return
	}
	r.route(p, st)
}

// flush sends what a round produced: frames to the underlay, packets to the
// router's own stack.
func (r *Router) flush(st *rx) {
	nOut := len(st.out.items)
	if failed := st.out.flush(r.bind); failed > 0 {
		r.c.dropped(DropUnderlaySend, failed)
		nOut -= failed
	}
	r.c.framesOut.Add(uint64(nOut))
	if len(st.tun) > 0 {
		if _, err := r.dev.Write(st.tun, FrameHeaderLen); err != nil {
			r.c.dropped(DropTunWrite, len(st.tun))
		} else {
			r.c.toTun.Add(uint64(len(st.tun)))
		}
		clear(st.tun)
		st.tun = st.tun[:0]
	}
	st.nd.n = 0
}

// handleFrame processes one underlay datagram in buf[Headroom:Headroom+size].
func (r *Router) handleFrame(buf []byte, size int, now time.Time, st *rx) {
	st.begin()
	r.frame(buf, size, now, st)
	r.end(st)
}

func (r *Router) frame(buf []byte, size int, now time.Time, st *rx) {
	var fh FrameHeader
	if _, err := ParseFrame(buf[Headroom:Headroom+size], &fh); err != nil {
		r.drop(st, frameDrop(err))
		return
	}
	var in *accessLink
	if fh.LinkID == 0 {
		if _, ok := r.peersByEP[st.from]; !ok {
			r.drop(st, DropPeerUnknown)
			return
		}
	} else {
		if in = r.links[fh.LinkID]; in == nil {
			r.drop(st, DropLinkUnknown)
			return
		}
		if fh.Type != FrameTypeLeave {
			in.touch(fh.Src, st.from, fh.Epoch, now)
		}
	}
	switch fh.Type {
	case FrameTypeKeep:
		r.c.keepIn.Add(1)
		r.settle(st, outKeepalive)
		return
	case FrameTypeLeave:
		if in == nil {
			r.drop(st, DropFrameType) // only hosts on links leave
			return
		}
		if in.leave(fh.Src, fh.Epoch, now) {
			r.m.Add("hosts.left", 1)
		} else {
			r.m.Add("hosts.left_stale", 1)
		}
		r.settle(st, outKeepalive)
		return
	}
	// The Packet lives in st, not on the heap: hooks see a pointer to it.
	p := &st.pkt
	p.Set(buf, Headroom+FrameHeaderLen, size-FrameHeaderLen)
	data, err := ip6.Check(p.Data())
	if err != nil {
		r.drop(st, DropIPv6Malformed)
		return
	}
	p.Trim(len(data))
	if r.tap.Tapping() {
		r.tap.see(In, fh.LinkID, now, p.Data())
	}
	r.input(p, in, fh.Src, st)
}

// input processes a packet that arrived on link in (nil: backbone).
func (r *Router) input(p *Packet, in *accessLink, srcLL LinkAddr, st *rx) {
	h := p.Header()
	src, dst := h.Src(), h.Dst()
	if in != nil && !src.IsUnspecified() && !ip6.IsLinkLocal(src) && !in.cfg.Prefix.Contains(src) {
		// Ingress filtering (BCP 38): a host may only use addresses of the
		// link it is on. It is why Mobile IPv6 tunnels home-address traffic.
		r.drop(st, DropIngress)
		return
	}
	if dst.IsMulticast() {
		if in != nil && isND(p.Data()) && (dst == ip6.AllRouters || dst == ip6.AllNodes || isSolicitedNode(dst)) {
			r.handleND(p.Data(), in, srcLL, st)
			return
		}
		r.drop(st, DropMulticast)
		return
	}
	if l, ok := r.own[dst]; ok {
		if l != nil && l != in {
			r.drop(st, DropScope) // a link-local of another link
			return
		}
		r.local(p, in, srcLL, st)
		return
	}
	if ip6.IsLinkLocal(src) || ip6.IsLinkLocal(dst) {
		r.drop(st, DropScope) // link-local packets are never forwarded (RFC 4291 2.5.6)
		return
	}
	if h.HopLimit() <= 1 {
		r.drop(st, DropHopLimit)
		r.icmpError(ip6.ICMPTimeExceeded, ip6.CodeHopLimit, 0, p.Data())
		return
	}
	h.SetHopLimit(h.HopLimit() - 1)
	r.c.forwarded.Add(1)
	st.fwd = true
	r.route(p, st)
	st.fwd = false
}

func isSolicitedNode(a netip.Addr) bool {
	b := a.As16()
	return b[0] == 0xff && b[1] == 0x02 && b[11] == 0x01 && b[12] == 0xff
}

// route sends a packet towards its destination: mobility engine first, then
// the forwarding table.
func (r *Router) route(p *Packet, st *rx) {
	if hb := r.hook.Load(); hb != nil {
		if hb.h.Forward(p) == Consumed {
			r.settle(st, outConsumed)
			return
		}
	}
	data := p.Data()
	dst := ip6.Header(data).Dst()
	if _, ok := r.own[dst]; ok {
		if st.depth > 4 {
			r.drop(st, DropLoop)
			return
		}
		st.depth++
		r.local(p, nil, LinkAddr{}, st)
		st.depth--
		return
	}
	rt := r.fib.lookup(dst)
	if rt == nil {
		r.drop(st, DropNoRoute)
		r.routeError(st, ip6.ICMPDstUnreach, ip6.CodeNoRoute, 0, data)
		return
	}
	switch rt.kind {
	case routeLocal:
		r.drop(st, DropNoRoute)
		r.routeError(st, ip6.ICMPDstUnreach, ip6.CodeAddrUnreach, 0, data)
	case routePeer:
		if len(data) > r.cfg.BackboneMTU {
			r.drop(st, DropTooBig)
			r.routeError(st, ip6.ICMPPacketTooBig, 0, uint32(r.cfg.BackboneMTU), data)
			return
		}
		r.emit(st, rt.peer.Endpoint, p, 0)
	case routeLink:
		l := rt.link
		if len(data) > l.cfg.MTU {
			r.drop(st, DropTooBig)
			r.routeError(st, ip6.ICMPPacketTooBig, 0, uint32(l.cfg.MTU), data)
			return
		}
		if ep, ok := l.endpointOf(dst); ok {
			r.emit(st, ep, p, l.cfg.ID)
			return
		}
		if l.departed(dst, r.clk.Now()) {
			// Its host left the link: say so now rather than after a
			// neighbour resolution that cannot succeed.
			r.drop(st, DropNeighbourUnresolved)
			r.routeError(st, ip6.ICMPDstUnreach, ip6.CodeAddrUnreach, 0, data)
			return
		}
		r.resolve(st, l, dst, data)
	}
}

// routeError answers a packet the router could not route. The error quotes
// the packet as it arrived, so a forwarded packet's hop limit is restored.
func (r *Router) routeError(st *rx, typ, code uint8, param uint32, data []byte) {
	if st.fwd {
		h := ip6.Header(data)
		h.SetHopLimit(h.HopLimit() + 1)
		defer h.SetHopLimit(h.HopLimit() - 1)
	}
	r.icmpError(typ, code, param, data)
}

// emit queues p as a frame of link id (0: backbone) to ep.
func (r *Router) emit(st *rx, ep netip.AddrPort, p *Packet, id uint32) {
	if r.tap.Tapping() {
		r.tap.see(Out, id, r.clk.Now(), p.Data())
	}
	st.out.add(ep, p.frame(&FrameHeader{Type: FrameTypePacket, LinkID: id, Src: r.ll}))
	r.settle(st, outEmitted)
}

// SetTap installs a function that sees every packet the router receives and
// sends (nil removes it).
func (r *Router) SetTap(f TapFunc) { r.tap.Set(f) }

// local handles a packet addressed to the router.
func (r *Router) local(p *Packet, in *accessLink, srcLL LinkAddr, st *rx) {
	r.c.local.Add(1)
	c, err := p.Chain()
	if err != nil {
		r.drop(st, DropIPv6Chain)
		return
	}
	data := p.Data()
	if c.Upper == ip6.ProtoICMPv6 && !c.Fragmented && c.UpperOff < len(data) && isNDType(data[c.UpperOff]) {
		// Neighbour discovery is link-scoped and never carries extension
		// headers (RFC 4861 6.1.1, 7.1.1).
		if in != nil && c.N == 0 {
			r.handleND(data, in, srcLL, st)
		} else {
			r.drop(st, DropNDInvalid)
		}
		return
	}
	if hb := r.hook.Load(); hb != nil {
		var lc *LinkConfig
		if in != nil {
			lc = &in.cfg
		}
		switch hb.h.Local(p, lc) {
		case Consumed:
			r.settle(st, outConsumed)
			return
		case Reinput:
			if st.depth > 4 {
				r.drop(st, DropLoop)
				return
			}
			st.depth++
			if d, err := ip6.Check(p.Data()); err == nil {
				p.Trim(len(d))
				r.input(p, nil, LinkAddr{}, st)
			} else {
				r.drop(st, DropIPv6Malformed)
			}
			st.depth--
			return
		}
		if c, err = p.Chain(); err != nil { // the hook may have rewritten it
			r.drop(st, DropIPv6Chain)
			return
		}
		data = p.Data()
	}
	if r.dev != nil {
		st.tun = append(st.tun, p.Buf[p.Off-FrameHeaderLen:p.Off+p.Len])
		r.settle(st, outDevice)
		return
	}
	switch {
	case c.Upper == ip6.ProtoICMPv6 && c.UpperOff+8 <= len(data) && data[c.UpperOff] == ip6.ICMPEchoRequest:
		r.settle(st, outAnswered)
		r.Send(ip6.EchoReply(data, c.UpperOff))
	case c.Upper == ip6.ProtoTCP || c.Upper == ip6.ProtoUDP:
		r.drop(st, DropLocalUnhandled)
		r.icmpError(ip6.ICMPDstUnreach, ip6.CodePortUnreach, 0, data)
	default:
		r.drop(st, DropLocalUnhandled)
	}
}

// Send routes a packet the router (or its mobility engine) originates. It
// copies pkt, into a round kept from earlier sends so that the control path
// does not allocate one per packet.
func (r *Router) Send(pkt []byte) {
	st, _ := r.sends.Get().(*rx)
	if st == nil {
		st = &rx{}
	}
	defer r.sends.Put(st)
	p := &st.pkt
	p.Replace(pkt)
	data, err := ip6.Check(p.Data())
	if err != nil {
		r.drop(st, DropIPv6Malformed)
		return
	}
	p.Trim(len(data))
	r.route(p, st)
	r.flush(st)
}
