package overlay

import (
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
)

// The router's side of neighbour discovery on its access links: answering
// Router and Neighbour Solicitations, learning hosts from what they send,
// resolving on-link destinations, and periodic Router Advertisements.

// handleND answers neighbour discovery from hosts on link l. It does not
// allocate: answers are built in the round's ND arena and leave with the
// round's other frames.
func (r *Router) handleND(data []byte, l *accessLink, srcLL LinkAddr, st *rx) {
	var m ndMsg
	if err := parseND(data, &m); err != nil {
		r.drop(st, DropNDInvalid)
		return
	}
	r.settle(st, outND)
	src := ip6.Header(data).Src()
	switch m.typ {
	case ip6.ICMPRouterSol:
		r.m.Add("nd.rs.in", 1)
		if m.hasSrcLL && !src.IsUnspecified() {
			r.flushPending(l, l.learn(src, m.srcLL))
		}
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		// Answered at once and unicast to the soliciting host: the overlay
		// has no shared medium to protect (RFC 4861 6.2.6 allows unicast).
		w := st.nd.next()
		w.ra(r.raParams(l), l.linkLocal, dst)
		r.m.Add("nd.ra.out", 1)
		r.queueOnLink(st, l, w, st.from)
	case ip6.ICMPNeighborSol:
		r.m.Add("nd.ns.in", 1)
		if m.hasSrcLL && !src.IsUnspecified() {
			r.flushPending(l, l.learn(src, m.srcLL))
		}
		if owner, ok := r.own[m.target]; !ok || (owner != nil && owner != l) {
			return // not ours; hosts answer for themselves
		}
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		w := st.nd.next()
		w.na(m.target, dst, r.ll, true, !src.IsUnspecified())
		r.m.Add("nd.na.out", 1)
		r.queueOnLink(st, l, w, st.from)
	case ip6.ICMPNeighborAdv:
		r.m.Add("nd.na.in", 1)
		ll := srcLL
		if m.hasTgtLL {
			ll = m.tgtLL
		}
		// Unsolicited advertisements create entries too (as Linux does with
		// accept_untracked_na): a host announces a new address at once.
		r.flushPending(l, l.learn(m.target, ll))
	default:
		r.m.Add("nd.other.in", 1)
	}
}

func (r *Router) raParams(l *accessLink) RAParams {
	return RAParams{Prefix: l.cfg.Prefix, MTU: l.cfg.MTU, Router: r.ll, Lifetime: 30 * time.Minute}
}

// queueOnLink queues the packet w holds as frames of link l to the given
// hosts, sent at the end of the round.
func (r *Router) queueOnLink(st *rx, l *accessLink, w *ndBuilder, eps ...netip.AddrPort) {
	if r.tap.Tapping() {
		r.tap.see(Out, l.cfg.ID, r.clk.Now(), w.packet())
	}
	f := w.frame(&FrameHeader{Type: FrameTypePacket, LinkID: l.cfg.ID, Src: r.ll})
	for _, ep := range eps {
		st.out.add(ep, f)
	}
}

// sendOnLink sends a packet as frames of link l to the given hosts now,
// outside a receive round (timers).
func (r *Router) sendOnLink(l *accessLink, pkt []byte, eps ...netip.AddrPort) {
	var st rx
	w := st.nd.next()
	w.set(pkt)
	r.queueOnLink(&st, l, w, eps...)
	r.flush(&st)
}

// flushPending sends packets that waited for a neighbour.
func (r *Router) flushPending(l *accessLink, pending []pendingPacket) {
	for _, pkt := range pending {
		dst := ip6.Header(pkt.data).Dst()
		if ep, ok := l.endpointOf(dst); ok {
			r.sendOnLink(l, pkt.data, ep)
		}
	}
}

// resolve queues a packet for an on-link destination whose link-layer
// address is unknown and solicits it. The packet is copied: the buffer it
// is in belongs to the loop.
func (r *Router) resolve(st *rx, l *accessLink, dst netip.Addr, data []byte) {
	l.mu.Lock()
	n, ok := l.neigh[dst]
	if !ok {
		n = &neighbour{state: neighIncomplete}
		l.neigh[dst] = n
	}
	if len(n.pending) >= maxPending {
		l.mu.Unlock()
		r.drop(st, DropNeighbourQueueFull)
		return
	}
	n.pending = append(n.pending, pendingPacket{data: append([]byte(nil), data...), fwd: st.fwd})
	r.settle(st, outResolving)
	start := n.timer == nil
	if start {
		n.probes = 1
		n.timer = r.clk.AfterFunc(retransTimer, func() { r.resolveTimeout(l, dst) })
	}
	l.mu.Unlock()
	if start {
		r.solicit(l, dst)
	}
}

func (r *Router) resolveTimeout(l *accessLink, dst netip.Addr) {
	l.mu.Lock()
	n, ok := l.neigh[dst]
	if !ok || n.state == neighReachable {
		l.mu.Unlock()
		return
	}
	if n.probes < maxMulticastSolt {
		n.probes++
		n.timer = r.clk.AfterFunc(retransTimer, func() { r.resolveTimeout(l, dst) })
		l.mu.Unlock()
		r.solicit(l, dst)
		return
	}
	pending := n.pending
	delete(l.neigh, dst)
	l.mu.Unlock()
	for _, pkt := range pending {
		r.c.dropped(DropNeighbourUnresolved, 1)
		r.routeError(&rx{fwd: pkt.fwd}, ip6.ICMPDstUnreach, ip6.CodeAddrUnreach, 0, pkt.data)
	}
}

func (r *Router) solicit(l *accessLink, target netip.Addr) {
	var st rx
	w := st.nd.next()
	w.ns(target, l.linkLocal, r.ll, netip.Addr{})
	r.m.Add("nd.ns.out", 1)
	r.queueOnLink(&st, l, w, l.memberEndpoints()...)
	r.flush(&st)
}

// advertiseAll sends the periodic Router Advertisement on every link with
// hosts.
func (r *Router) advertiseAll() {
	for _, l := range r.linkList {
		eps := l.memberEndpoints()
		if len(eps) == 0 {
			continue
		}
		var st rx
		w := st.nd.next()
		w.ra(r.raParams(l), l.linkLocal, ip6.AllNodes)
		r.m.Add("nd.ra.out", uint64(len(eps)))
		r.queueOnLink(&st, l, w, eps...)
		r.flush(&st)
	}
}

// icmpError sends an ICMPv6 error about invoking, unless RFC 4443 forbids it
// or the rate limit is exhausted.
func (r *Router) icmpError(typ, code uint8, param uint32, invoking []byte) {
	if r.icmp.allow(r.clk.Now(), typ, code, invoking) {
		r.Send(ip6.ICMPError(typ, code, param, r.cfg.Address, invoking))
	}
}

// ParamProblem sends an ICMPv6 Parameter Problem (code 0, erroneous header
// field) about invoking, pointing at byte pointer of it (RFC 4443 3.4).
func (r *Router) ParamProblem(pointer uint32, invoking []byte) {
	r.icmpError(ip6.ICMPParamProblem, ip6.CodeErrHeaderFld, pointer, invoking)
}

// PacketTooBig tells the source of invoking that mtu is the most that fits
// (a tunnel entry point's answer, RFC 2473 7.1).
func (r *Router) PacketTooBig(mtu int, invoking []byte) {
	r.icmpError(ip6.ICMPPacketTooBig, 0, uint32(mtu), invoking)
}
