package mobility

import (
	"net/netip"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// schemePolicy is where the two schemes differ, for a mobile node: what a
// move does beyond the home registration, what happens to packets from a
// care-of address, whether packets from the home address go
// route-optimised, which tunnels it accepts, and which signalling it
// takes. The mobile node picks one at construction and asks it; nothing
// else in the node tests the scheme.
type schemePolicy interface {
	// moved runs the scheme's part of a move to cur.
	moved(cur overlay.Attachment)
	// prepare runs the part of a make-before-break move to next that can
	// be done while the old link carries the traffic; settled reports
	// whether it is all acknowledged; committed runs the rest once the
	// host has moved.
	prepare(next overlay.Attachment)
	settled(next overlay.Attachment) bool
	committed(cur overlay.Attachment)
	// careOfRoute decides a packet from src, an address other than the
	// home address, when the node is at cur: ok false drops it, a valid
	// tunnel sends it through a tunnel to that router, otherwise it leaves
	// as it is.
	careOfRoute(src, cur netip.Addr) (tunnel netip.Addr, ok bool)
	// routeOptimised reports whether dst holds our binding, so that packets
	// from the home address go to it directly.
	routeOptimised(dst netip.Addr) bool
	// heldCareOf is the care-of address dst still holds for us while the
	// binding for the current one is under way after a move (invalid if
	// none): from that address, by the link left, packets may still go to
	// dst directly.
	heldCareOf(dst netip.Addr) netip.Addr
	// tunnelling notes a packet from the home address to dst that goes
	// through the home agent's tunnel.
	tunnelling(dst netip.Addr)
	// delivered notes a packet that arrived for dst from src; tunnelledBy
	// is the home agent or HA2R whose tunnel it came through, if any.
	delivered(tunnelledBy, src, dst netip.Addr)
	// acceptsTunnelFrom reports whether outer, not our home agent, may
	// tunnel packets to us.
	acceptsTunnelFrom(outer netip.Addr) bool
	// handleMH takes the scheme's own signalling and reports whether m was.
	handleMH(pkt []byte, info mh.PacketInfo, m *mh.Message) bool
	// unreachable reacts to an ICMPv6 error quoting a packet we sent.
	unreachable(quoted []byte)
	// contact is the address new sessions use, and SIP registers, when the
	// node is at cur and its home address is home.
	contact(cur, home netip.Addr) netip.Addr
	status(st *MNStatus)
	close()
}

// standardScheme is RFC 6275: Return Routability and route optimisation
// with every correspondent, the home address for everything.
type standardScheme struct {
	rr      *returnRoutability
	ha      netip.Addr
	trigger RRTrigger
	atHome  func() bool
}

func (s *standardScheme) moved(overlay.Attachment) { s.rr.moved() }

// A standard node's Return Routability needs its care-of address to be the
// current one (the Care-of Test comes back to it, the BU goes from it), so
// it runs after the move; meanwhile peers' route-optimised packets still
// reach the old address, which the host hears for its leave grace.
func (s *standardScheme) prepare(overlay.Attachment)      {}
func (s *standardScheme) settled(overlay.Attachment) bool { return true }
func (s *standardScheme) committed(overlay.Attachment)    { s.rr.moved() }

// careOfRoute: in the standard scheme applications never use a care-of
// address; what the node itself sends from one (CoTI, BU) leaves as it is.
func (s *standardScheme) careOfRoute(netip.Addr, netip.Addr) (netip.Addr, bool) {
	return netip.Addr{}, true
}

func (s *standardScheme) routeOptimised(dst netip.Addr) bool { return s.rr.view.Load().bound[dst] }

func (s *standardScheme) heldCareOf(dst netip.Addr) netip.Addr {
	h, ok := s.rr.view.Load().held[dst]
	if !ok || !s.rr.clk.Now().Before(h.until) {
		return netip.Addr{}
	}
	return h.careOf
}

// tunnelling starts Return Routability with the first packet to a peer
// when the topology asks for it.
func (s *standardScheme) tunnelling(dst netip.Addr) {
	if s.trigger&RROnFirstPacket != 0 && dst != s.ha && !dst.IsLinkLocalUnicast() && !s.rr.view.Load().started[dst] {
		s.rr.start(dst)
	}
}

// delivered starts Return Routability when a packet from a peer arrives
// through the home agent's tunnel, as the paper's step 5 describes.
func (s *standardScheme) delivered(tunnelledBy, src, _ netip.Addr) {
	if tunnelledBy == s.ha && s.trigger&RROnTunnelled != 0 && src != s.ha && !s.rr.view.Load().started[src] && !s.atHome() {
		s.rr.start(src)
	}
}

func (s *standardScheme) acceptsTunnelFrom(netip.Addr) bool { return false }

func (s *standardScheme) handleMH(pkt []byte, info mh.PacketInfo, m *mh.Message) bool {
	switch m.Type {
	case mh.TypeBA:
		s.rr.sig.Received("BA", pkt)
		s.rr.ack(info, m)
	case mh.TypeHoT:
		s.rr.sig.Received("HoT", pkt)
		s.rr.testReply(info, m, false)
	case mh.TypeCoT:
		s.rr.sig.Received("CoT", pkt)
		s.rr.testReply(info, m, true)
	case mh.TypeBRR:
		s.rr.sig.Received("BRR", pkt)
		s.rr.refreshRequested(info.Src)
	case mh.TypeBE:
		s.rr.sig.Received("BE", pkt)
		// Status 1: the peer has no binding for us; back to the tunnel
		// (RFC 6275 11.3.6).
		if m.Status == mh.BEUnknownHAO && m.Address == s.rr.home {
			s.rr.fallBack(info.Src)
		}
	default:
		return false
	}
	return true
}

// unreachable drops route optimisation with the destination of a packet
// that carried our Home Address option (RFC 6275 11.3.5).
func (s *standardScheme) unreachable(quoted []byte) {
	if _, hao := quotedMobilityHeaders(quoted); hao {
		s.rr.fallBack(ip6.Header(quoted).Dst())
	}
}

// contact: the standard scheme keeps the care-of address below the stack.
func (s *standardScheme) contact(_, home netip.Addr) netip.Addr { return home }

func (s *standardScheme) status(st *MNStatus) {
	st.RouteOptim = s.rr.boundPeers()
	st.BindingUpdateList = s.rr.entries()
}
func (s *standardScheme) close() { s.rr.close() }

// ha2rScheme is the paper's: anchors at the HA2Rs that handed out care-of
// addresses, no Return Routability.
type ha2rScheme struct{ anchors *anchorSet }

func (s *ha2rScheme) moved(cur overlay.Attachment) { s.anchors.moved(cur) }

// The anchors move before the node does: the old addresses' HA2Rs tunnel
// to the new one, which the node already hears, and the new HA2R
// authenticates it, all while the old link carries the traffic.
func (s *ha2rScheme) prepare(next overlay.Attachment)      { s.anchors.moved(next) }
func (s *ha2rScheme) settled(next overlay.Attachment) bool { return s.anchors.settled(next) }
func (s *ha2rScheme) committed(overlay.Attachment)         {}

func (s *ha2rScheme) careOfRoute(src, cur netip.Addr) (netip.Addr, bool) {
	return s.anchors.careOfRoute(src, cur)
}

func (s *ha2rScheme) routeOptimised(netip.Addr) bool   { return false }
func (s *ha2rScheme) heldCareOf(netip.Addr) netip.Addr { return netip.Addr{} }

// tunnelling: the first packet the node sends after attaching starts the
// MN Authentication when it was put off until then (mn_auth:
// first_session).
func (s *ha2rScheme) tunnelling(netip.Addr) { s.anchors.firstSession() }

func (s *ha2rScheme) delivered(tunnelledBy, _, dst netip.Addr) {
	s.anchors.noteActivity(dst)
	if tunnelledBy.IsValid() {
		s.anchors.heard(tunnelledBy, dst)
	}
}

func (s *ha2rScheme) acceptsTunnelFrom(outer netip.Addr) bool {
	return s.anchors.view.Load().ha2rs[outer]
}

func (s *ha2rScheme) handleMH(pkt []byte, info mh.PacketInfo, m *mh.Message) bool {
	switch {
	case m.Type == mh.TypeBA && s.anchors.view.Load().ha2rs[info.Src]:
		s.anchors.sig.Received("BA.anchor", pkt)
		s.anchors.ack(info, m)
	case m.Type == mh.TypeExperimental && m.Subtype == mh.SubtypeMNAuthReply:
		s.anchors.sig.Received("MNAuthRep", pkt)
		s.anchors.authReply(info, m)
	default:
		return false
	}
	return true
}

func (s *ha2rScheme) unreachable([]byte) {}

// contact: the care-of address once the HA2R that handed it out has
// authenticated the node (and so can anchor it after a move); until then,
// on a router that is no HA2R, and at home, the home address.
func (s *ha2rScheme) contact(cur, home netip.Addr) netip.Addr {
	if s.anchors.view.Load().ready[cur] {
		return cur
	}
	return home
}

func (s *ha2rScheme) status(st *MNStatus) { st.Anchors = s.anchors.docs() }
func (s *ha2rScheme) close()              { s.anchors.close() }
