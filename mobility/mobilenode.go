package mobility

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// RRTrigger says when a mobile node starts Return Routability with a peer.
type RRTrigger uint8

const (
	// RROnTunnelled starts it when a packet from the peer arrives through
	// the home agent's tunnel, as the paper describes (its step 5).
	RROnTunnelled RRTrigger = 1 << iota
	// RROnFirstPacket starts it with the first packet to the peer.
	RROnFirstPacket
)

// DefaultAnchorIdle is how long an old care-of address may carry nothing
// before its anchor is released: longer than twice TCP's longest
// retransmission timeout (60 s in Linux and gVisor), so that a connection
// whose timer backed off during a bad stretch is not mistaken for an ended
// one.
const DefaultAnchorIdle = 150 * time.Second

// MobileNodeConfig configures a mobile node.
type MobileNodeConfig struct {
	Home       netip.Addr
	HomePrefix netip.Prefix
	HomeAgent  netip.Addr
	SPI        uint32
	Key        []byte
	Scheme     Scheme
	RRTrigger  RRTrigger
	// HomeLifetime is the lifetime requested in home registrations.
	HomeLifetime time.Duration
	// HA2RLinks names the access links whose routers act as HA2R.
	HA2RLinks map[string]bool
	// AnchorIdle is how long an old care-of address may carry no traffic
	// before the mobile node releases its HA2R anchor (ha2r scheme).
	AnchorIdle time.Duration
	// MNAuthOnFirstSession delays the MN Authentication exchange from the
	// attach to the first new session from the care-of address.
	MNAuthOnFirstSession bool
	Log                  *slog.Logger
	// Bicast is how long after a make-before-break move what the node
	// reverse-tunnels also leaves from the address it left, by the link
	// it left (bicast.go; 0: off).
	Bicast time.Duration
}

// MobileNode is the mobile node of RFC 6275 section 11 and, in the ha2r
// scheme, of the paper. It is built from parts with one job and one lock
// each: the home registration (mn_home.go), the scheme's policy
// (mn_scheme.go) with Return Routability (mn_rr.go) or the HA2R anchors
// (mn_anchors.go), and the correspondent role every node has. What ties
// them is the current attachment, which the data path reads without locks.
type MobileNode struct {
	cfg    MobileNodeConfig
	host   HostPort
	clk    clock.Clock
	sig    *Signals
	log    *slog.Logger
	cn     *Correspondent
	home   *homeRegistration
	scheme schemePolicy
	pmtu   *pathMTUs // of route-optimised paths to peers' care-of addresses
	frags  *fragments

	mu     sync.Mutex // serialises attach events
	at     atomic.Pointer[attachView]
	closed atomic.Bool
	// A make-before-break move under way: the attachment prepared, whose
	// registrations are out; the host commits to it once they are all
	// acknowledged. committing is the care-of address whose registrations
	// were made before the move (the commit's attach skips them).
	prepared   *overlay.Attachment
	committing netip.Addr
	// left is the care-of address a make-before-break move left and until
	// when the host still hears it: route-optimised packets that peers
	// sent there before they learned the new one are still ours.
	left atomic.Pointer[leftAddr]
	// Bicast copies: their sequence numbers, and those seen.
	bicastSeq atomic.Uint32
	dups      *duplicates

	cmu       sync.Mutex // the contact address and who wants to hear of it
	contact   netip.Addr
	onContact []func(netip.Addr)
}

// attachView is the current attachment as the data path sees it; it is
// replaced on every attach, never changed.
type attachView struct {
	overlay.Attachment
	attached bool
	atHome   bool
}

// linkMTU is the current link's MTU, or no limit when its router did not
// advertise one.
func (v *attachView) linkMTU() int {
	if v.MTU > 0 {
		return v.MTU
	}
	return 1 << 16
}

// NewMobileNode installs a mobile node on h and starts it.
func NewMobileNode(h HostPort, sig *Signals, cfg MobileNodeConfig) *MobileNode {
	if cfg.HomeLifetime == 0 {
		cfg.HomeLifetime = DefaultHomeLifetime
	}
	if cfg.AnchorIdle == 0 {
		cfg.AnchorIdle = DefaultAnchorIdle
	}
	if cfg.Scheme == "" {
		cfg.Scheme = SchemeStandard
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	mn := &MobileNode{cfg: cfg, host: h, clk: h.Clock(), sig: sig, log: cfg.Log.With("node", h.Name(), "role", "mn")}
	mn.at.Store(&attachView{})
	mn.pmtu, mn.frags = newPathMTUs(mn.clk), newFragments(mn.clk, sig)
	mn.dups = newDuplicates(mn.clk)
	mn.cfg.Bicast = min(cfg.Bicast, MaxBicast)
	mn.cn = NewCorrespondent(mn.clk, sig, mn.log, func() netip.Addr { return cfg.Home }, mn.output)
	mn.home = newHomeRegistration(mn.clk, sig, mn.log, h, &cfg, randomSeq())
	switch cfg.Scheme {
	case SchemeHA2R:
		anchors := newAnchorSet(mn.clk, sig, mn.log, h.Device(), h.Send, &cfg)
		anchors.onReady = mn.contactMayHaveChanged
		mn.scheme = &ha2rScheme{anchors: anchors}
	default:
		rr := newReturnRoutability(mn.clk, sig, cfg.Home, cfg.HomeAgent, mn.careOf, h.Send, mn.output)
		mn.scheme = &standardScheme{rr: rr, ha: cfg.HomeAgent, trigger: cfg.RRTrigger, atHome: func() bool { return mn.at.Load().atHome }}
	}
	h.SetHook(mn)
	h.OnAttach(mn.attached)
	h.OnPrepared(mn.prepare)
	if dev := h.Device(); dev != nil {
		// Applications use the home address; in the paper's scheme it stays
		// valid but new sessions prefer the care-of address.
		dev.AddAddress(netip.PrefixFrom(cfg.Home, 128), cfg.Scheme != SchemeHA2R)
	}
	return mn
}

// careOf returns the current care-of address and whether it is at home.
func (mn *MobileNode) careOf() (netip.Addr, bool) {
	v := mn.at.Load()
	return v.Address, v.atHome
}

// Correspondent returns the node's correspondent role.
func (mn *MobileNode) Correspondent() *Correspondent { return mn.cn }

// Close stops the mobile node's timers.
func (mn *MobileNode) Close() {
	if mn.closed.Swap(true) {
		return
	}
	mn.home.close()
	mn.scheme.close()
	mn.cn.Close()
}

// attached reacts to the overlay's attach events: movement detection.
func (mn *MobileNode) attached(a overlay.Attachment) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if mn.closed.Load() {
		return
	}
	v := &attachView{Attachment: a, attached: a.Address.IsValid(), atHome: mn.cfg.HomePrefix.Contains(a.Address)}
	old := mn.at.Swap(v)
	if a.Prepared && old.attached {
		now := mn.clk.Now()
		mn.left.Store(&leftAddr{addr: old.Address, until: now.Add(LeftAddressGrace), bicastUntil: now.Add(mn.cfg.Bicast)})
	}
	mn.sig.Add("mn.moves", 1)
	mn.log.Info("attached", "link", a.Link.Name, "care_of", a.Address, "home", v.atHome, "prepared", a.Prepared)
	if a.Prepared && a.Address == mn.committing {
		// Make-before-break: the registrations were made and acknowledged
		// before the move; the data path has just switched (the view).
		mn.committing = netip.Addr{}
		mn.scheme.committed(a)
		mn.contactMayHaveChanged()
		return
	}
	mn.prepared = nil
	// The scheme first (the paper's Fig. 5 step 7 sends the anchor Binding
	// Update beside the home one), then the home registration, or the
	// deregistration when home (RFC 6275 11.5.4).
	mn.scheme.moved(a)
	mn.home.moved(a.Address)
	mn.contactMayHaveChanged()
}

// prepare is the first half of a make-before-break move: the host has an
// address on the new link while the old one still carries the traffic.
// The registrations a move needs go out now, from the new address (so by
// the new link); the host commits once they are acknowledged. A move home
// needs no registration to be in place first: it commits at once and goes
// the ordinary way.
func (mn *MobileNode) prepare(a overlay.Attachment) {
	mn.mu.Lock()
	if mn.closed.Load() {
		mn.mu.Unlock()
		return
	}
	if a.Standby {
		// Held in reserve: registering it would move the bindings there.
		// The host moves when its path dies, and the move goes the
		// ordinary way from there.
		mn.mu.Unlock()
		return
	}
	mn.sig.Add("mn.prepared", 1)
	if mn.cfg.HomePrefix.Contains(a.Address) {
		mn.prepared = nil
		mn.mu.Unlock()
		mn.host.Commit()
		return
	}
	mn.prepared = &a
	mn.log.Info("preparing a move", "link", a.Link.Name, "care_of", a.Address)
	mn.scheme.prepare(a)
	mn.home.moved(a.Address)
	mn.mu.Unlock()
	mn.maybeCommit()
}

// maybeCommit moves the host to the prepared link once every registration
// the move needs is acknowledged: the home agent's binding, and the
// scheme's (the HA2R anchors of old addresses, the new HA2R's
// authentication).
func (mn *MobileNode) maybeCommit() {
	mn.mu.Lock()
	a := mn.prepared
	if a == nil || !mn.home.registeredAt(a.Address) || !mn.scheme.settled(*a) {
		mn.mu.Unlock()
		return
	}
	mn.prepared = nil
	mn.committing = a.Address
	mn.mu.Unlock()
	mn.sig.Add("mn.committed", 1)
	if _, err := mn.host.Commit(); err != nil {
		mn.log.Warn("make-before-break move", "err", err)
	}
}

// Contact is the address new sessions use and SIP registers now (see
// schemePolicy.contact); invalid until the node is first attached.
func (mn *MobileNode) Contact() netip.Addr {
	v := mn.at.Load()
	if !v.attached {
		return netip.Addr{}
	}
	return mn.scheme.contact(v.Address, mn.cfg.Home)
}

// OnHomeRestored registers f to be told (on a goroutine of its own) when
// the node registered again with a home agent that had lost its binding:
// whatever else that agent's host kept for the node, such as its SIP
// registration, is likely lost too.
func (mn *MobileNode) OnHomeRestored(f func()) {
	mn.home.mu.Lock()
	defer mn.home.mu.Unlock()
	prev := mn.home.restored
	mn.home.restored = func() {
		if prev != nil {
			prev()
		}
		f()
	}
}

// OnAnchorLost registers f to be told (on a goroutine of its own) of an
// old care-of address whose HA2R stopped answering (paper's scheme): the
// address is gone, and sessions on it must move (the softphone re-INVITEs).
func (mn *MobileNode) OnAnchorLost(f func(coa netip.Addr)) {
	s, ok := mn.scheme.(*ha2rScheme)
	if !ok {
		return
	}
	s.anchors.mu.Lock()
	defer s.anchors.mu.Unlock()
	prev := s.anchors.onLost
	s.anchors.onLost = func(coa netip.Addr) {
		if prev != nil {
			prev(coa)
		}
		f(coa)
	}
}

// OnContactChange registers f to be told, on a goroutine of its own, each
// new contact address.
func (mn *MobileNode) OnContactChange(f func(netip.Addr)) {
	mn.cmu.Lock()
	mn.onContact = append(mn.onContact, f)
	mn.cmu.Unlock()
}

func (mn *MobileNode) contactMayHaveChanged() {
	c := mn.Contact()
	mn.cmu.Lock()
	defer mn.cmu.Unlock()
	if c == mn.contact || !c.IsValid() {
		return
	}
	mn.contact = c
	mn.sig.Add("mn.contact_changed", 1)
	for _, f := range mn.onContact {
		go f(c)
	}
}

// output sends a packet the mobile node itself originates through the same
// policy applications' packets follow.
func (mn *MobileNode) output(pkt []byte) {
	p := overlay.NewPacket(pkt)
	if mn.Outbound(p) == overlay.Consumed {
		return
	}
	mn.host.Send(p.Data())
}

// send hands a finished packet (a fragment) to the host.
func (mn *MobileNode) send(pkt []byte) { mn.host.Send(pkt) }

// Outbound applies the mobile node's policy to a packet leaving it.
func (mn *MobileNode) Outbound(p *overlay.Packet) overlay.Verdict {
	v := mn.at.Load()
	if !v.attached {
		return overlay.Continue
	}
	h := p.Header()
	if src := h.Src(); src != mn.cfg.Home {
		tunnel, ok := mn.scheme.careOfRoute(src, v.Address)
		switch {
		case !ok:
			mn.sig.Drop(DropAnchorNotReady)
			return overlay.Consumed
		case tunnel.IsValid():
			return mn.tunnelOut(p, v, tunnel, mn.sig.anchorEncap)
		}
		return overlay.Continue
	}
	return mn.outboundHome(p, v, h.Dst())
}

// outboundHome handles a packet from the home address. Away from home it is
// route-optimised to a peer that holds our binding, otherwise it goes
// through the home agent's tunnel; at home it leaves as it is. Either way a
// peer that holds a binding with us as its correspondent is reached at its
// care-of address through a type 2 routing header.
func (mn *MobileNode) outboundHome(p *overlay.Packet, v *attachView, dst netip.Addr) overlay.Verdict {
	peerCoA, peerBound := mn.cn.PeerCareOf(dst)
	if c, err := p.Chain(); err == nil && c.Upper == ip6.ProtoMH && c.UpperOff+3 <= p.Len {
		// Our own signalling from the home address: a Mobility Header may
		// carry neither a Home Address option (only a BU may) nor a routing
		// header (only a BA may), so away from home it goes through the
		// tunnel, a BA with a routing header when the peer is bound (RFC
		// 6275 6.1, 9.5.4).
		if peerBound && mh.Type(p.Data()[c.UpperOff+2]) == mh.TypeBA {
			if _, _, ok := routeOptimise(p, netip.Addr{}, peerCoA); !ok {
				mn.sig.Drop(DropRONoRoom)
				return overlay.Consumed
			}
		}
		if v.atHome {
			return overlay.Continue
		}
		return mn.tunnelOut(p, v, mn.cfg.HomeAgent, mn.sig.tunnelEncap)
	}
	if !v.atHome && !mn.scheme.routeOptimised(dst) {
		// heldCareOf first: it is empty but for the moments after a move,
		// so the common packet reads no clock here.
		if l := mn.left.Load(); l != nil && mn.scheme.heldCareOf(dst) == l.addr && mn.clk.Now().Before(l.until) {
			return mn.outboundFromLeft(p, v, l.addr, peerCoA, peerBound)
		}
	}
	if !v.atHome && mn.scheme.routeOptimised(dst) {
		var rh2 netip.Addr
		if peerBound {
			rh2 = peerCoA
			mn.cn.Bindings().Touch(dst)
		}
		unfrag, nextOff, ok := routeOptimise(p, v.Address, rh2)
		if !ok {
			mn.sig.Drop(DropRONoRoom)
			return overlay.Consumed
		}
		mn.sig.roOut.Add(1)
		return fitPath(p, mn.pmtu.get(p.Header().Dst(), v.linkMTU()), unfrag, nextOff, mn.frags, mn.sig, mn.send)
	}
	if peerBound {
		// The peer is route-optimised towards us but not we towards it: a
		// routing header gets the packet to its care-of address; away from
		// home the tunnel gets it out of the visited network (the paper's
		// step 6 BA).
		unfrag, nextOff, ok := routeOptimise(p, netip.Addr{}, peerCoA)
		if !ok {
			mn.sig.Drop(DropRONoRoom)
			return overlay.Consumed
		}
		mn.cn.Bindings().Touch(dst)
		if v.atHome {
			return fitPath(p, mn.pmtu.get(peerCoA, v.linkMTU()), unfrag, nextOff, mn.frags, mn.sig, mn.send)
		}
	}
	if v.atHome {
		return overlay.Continue
	}
	mn.scheme.tunnelling(dst)
	return mn.tunnelOut(p, v, mn.cfg.HomeAgent, mn.sig.tunnelEncap)
}

// outboundFromLeft sends p route-optimised from the care-of address a
// make-before-break move left, by the link left (the host still holds it),
// to a peer that holds that address for us while Return Routability for
// the new one runs: the old direct path, rather than the home agent's
// tunnel, whose longer path would open a gap in the peer's stream.
func (mn *MobileNode) outboundFromLeft(p *overlay.Packet, v *attachView, left, peerCoA netip.Addr, peerBound bool) overlay.Verdict {
	var rh2 netip.Addr
	if peerBound {
		rh2 = peerCoA
	}
	unfrag, nextOff, ok := routeOptimise(p, left, rh2)
	if !ok {
		mn.sig.Drop(DropRONoRoom)
		return overlay.Consumed
	}
	mn.sig.roOut.Add(1)
	mn.sig.roOutLeft.Add(1)
	if fitPath(p, mn.pmtu.get(p.Header().Dst(), v.linkMTU()), unfrag, nextOff, mn.frags, mn.sig, mn.send) == overlay.Continue {
		mn.send(p.Data()) // by the link left: the host picks it by the source
	}
	return overlay.Consumed
}

// tunnelOut sends p through a tunnel from the current care-of address to
// dst, the home agent (RFC 6275 11.3.1) or an HA2R, within the link's MTU:
// a packet of the minimum MTU that no longer fits goes in fragments; a
// bigger one is refused with a Packet Too Big to the node's own stack,
// giving the MTU left inside the tunnel (RFC 2473 7.1).
func (mn *MobileNode) tunnelOut(p *overlay.Packet, v *attachView, dst netip.Addr, count *atomic.Uint64) overlay.Verdict {
	mtu := v.linkMTU()
	if mn.cfg.Bicast > 0 {
		if l := mn.left.Load(); l != nil && p.Len+ip6.HeaderLen+bicastHdrLen <= mtu && mn.clk.Now().Before(l.bicastUntil) {
			return mn.tunnelBicast(p, v.Address, l.addr, dst, mtu, count)
		}
	}
	if p.Len+ip6.HeaderLen > mtu && p.Len > ip6.MinMTU {
		mn.sig.Drop(DropTunnelTooBig)
		if ip6.MayAnswerWithError(p.Data(), ip6.ICMPPacketTooBig) {
			mn.host.Deliver(ip6.ICMPError(ip6.ICMPPacketTooBig, 0, uint32(tunnelMTU(mtu)), v.RouterLL, p.Data()))
		}
		return overlay.Consumed
	}
	if !encapsulate(p, v.Address, dst) {
		mn.sig.Drop(DropTunnelNoRoom)
		return overlay.Consumed
	}
	count.Add(1)
	return fitPath(p, mtu, ip6.HeaderLen, ip6.OffNextHeader, mn.frags, mn.sig, mn.send)
}

// tunnelBicast sends p through the tunnel to dst from the current care-of
// address and a copy from the one a make-before-break move left (the host
// sends it by the link it left), both with the same bicast sequence
// number. p fits the link with the option (tunnelOut checked).
func (mn *MobileNode) tunnelBicast(p *overlay.Packet, cur, left, dst netip.Addr, mtu int, count *atomic.Uint64) overlay.Verdict {
	seq := mn.bicastSeq.Add(1)
	c := overlay.NewPacket(p.Data())
	if encapsulateSeq(c, left, dst, seq) {
		mn.sig.bicastCopies.Add(1)
		mn.send(c.Data())
	}
	if !encapsulateSeq(p, cur, dst, seq) {
		mn.sig.Drop(DropTunnelNoRoom)
		return overlay.Consumed
	}
	count.Add(1)
	return fitPath(p, mtu, ip6.HeaderLen, ip6.OffNextHeader, mn.frags, mn.sig, mn.send)
}

// Inbound applies the mobile node's policy to a packet arriving.
func (mn *MobileNode) Inbound(p *overlay.Packet) overlay.Verdict {
	v := mn.at.Load()
	if off, ok := fragmentOf(p); ok {
		// Fragments of a tunnel packet (its entry point fragmented it to
		// fit our link): the tunnel's exit reassembles.
		if src := p.Header().Src(); src == mn.cfg.HomeAgent || mn.scheme.acceptsTunnelFrom(src) {
			if !mn.frags.reassemble(p, off) {
				return overlay.Consumed
			}
		}
	}
	// A packet can come through two tunnels: the home agent's to an old
	// care-of address, then that address's HA2R's to the current one
	// (the home agent had not yet heard of the move when it sent it; a
	// make-before-break move makes that the rule, not the exception).
	// Each tunnel's sender must be one the node accepts tunnels from.
	tunnelledBy := netip.Addr{}
	for depth := 0; depth < 2; depth++ {
		h := tunnelOuter(p.Data())
		if h.outer == 0 {
			break
		}
		outer := p.Header().Src()
		if outer != mn.cfg.HomeAgent && !mn.scheme.acceptsTunnelFrom(outer) {
			mn.sig.Drop(DropTunnelUnknownSender)
			return overlay.Consumed
		}
		if !takeTunnelled(p, h, mn.dups, false, mn.sig) {
			return overlay.Consumed
		}
		if !tunnelledBy.IsValid() {
			tunnelledBy = outer
		}
	}
	c, err := p.Chain()
	if err != nil {
		mn.sig.Drop(DropIPv6Chain)
		return overlay.Consumed
	}
	d := p.Data()
	session := true // an ICMPv6 error is no session: it triggers nothing
	switch c.Upper {
	case ip6.ProtoMH:
		mn.handleMH(d, tunnelledBy)
		return overlay.Consumed
	case ip6.ProtoICMPv6:
		if c.UpperOff < len(d) && d[c.UpperOff] < 128 {
			mn.icmpError(d[c.UpperOff:])
			session = false
		}
	}
	src := p.Header().Src()
	if c.N > 0 {
		info, err := unrouteOptimise(p)
		if err != nil {
			mn.sig.Drop(DropROMalformed)
			return overlay.Consumed
		}
		if info.homeAddress.IsValid() {
			if !mn.cn.CheckHomeAddress(d, info.homeAddress, info.careOf) {
				return overlay.Consumed
			}
			src = info.homeAddress
			mn.sig.roIn.Add(1)
		}
		if info.routedTo.IsValid() && (info.routedTo != mn.cfg.Home || !mn.arrivedForUs(info.arrivedAt, v)) {
			mn.sig.Drop(DropRONotForUs)
			return overlay.Consumed
		}
	}
	if session {
		mn.scheme.delivered(tunnelledBy, src, p.Header().Dst())
	}
	return overlay.Continue
}

// icmpError reacts to an ICMPv6 error about a packet the node sent: a
// route-optimised peer that is unreachable (RFC 6275 9.3.2, 11.3.5), a
// route-optimised path too small for what the headers add. The error goes
// on to the stack too.
func (mn *MobileNode) icmpError(icmp []byte) {
	quoted, ok := ip6.QuotedPacket(icmp)
	if !ok {
		return
	}
	switch icmp[0] {
	case ip6.ICMPDstUnreach:
		mn.cn.forgetUnreachable(quoted)
		mn.scheme.unreachable(quoted)
	case ip6.ICMPPacketTooBig:
		learnRouteOptimisedMTU(icmp, mn.pmtu)
	}
}

// handleMH dispatches Mobility Header messages that reach the mobile node:
// the correspondent role's, the home agent's acknowledgement, the scheme's.
func (mn *MobileNode) handleMH(pkt []byte, tunnelledBy netip.Addr) {
	var m mh.Message
	info, ok := receiveMH(pkt, &m, mn.sig, mn.cn.errs)
	if !ok {
		return
	}
	if m.Type == mh.TypeBA && info.Src == mn.cfg.HomeAgent {
		mn.sig.Received("BA.home", pkt)
		mn.home.ack(info, &m)
		mn.maybeCommit()
		return
	}
	if m.Type == mh.TypeBRR && info.Src == mn.cfg.HomeAgent {
		mn.sig.Received("BRR.home", pkt)
		mn.home.refreshRequested(info, &m)
		return
	}
	if mn.cn.HandleMH(pkt, info, &m) {
		if m.Type == mh.TypeBU && info.HomeAddress.IsValid() {
			// A peer's Binding Update that reached us through our home
			// agent starts Return Routability the other way (the paper's
			// step 7); its tests, HoTI and CoTI, do not.
			mn.scheme.delivered(tunnelledBy, info.HomeAddress, info.Dst)
		}
		return
	}
	if mn.scheme.handleMH(pkt, info, &m) {
		mn.maybeCommit() // an anchor's BA, an HA2R's authentication
		return
	}
	mn.sig.Received(MsgName(&m, false), pkt)
	mn.sig.Drop(DropMHUnexpected)
}

// MNStatus describes the mobile node for `node status`.
type MNStatus struct {
	Scheme Scheme     `json:"scheme"`
	Home   netip.Addr `json:"home_address"`
	CareOf netip.Addr `json:"care_of_address"`
	AtHome bool       `json:"at_home"`
	// Contact is the source of new sessions and the SIP Contact: the home
	// address until the care-of address is authenticated at an HA2R.
	Contact     netip.Addr `json:"contact"`
	HomeBound   bool       `json:"home_registered"`
	HomeExpires time.Time  `json:"home_binding_expires"`
	RouteOptim  []string   `json:"route_optimised_peers"`
	// BindingUpdateList is Return Routability's list of correspondents.
	BindingUpdateList []BULEntry  `json:"binding_update_list,omitempty"`
	PeerBindings      []Binding   `json:"peer_bindings"`
	Anchors           []AnchorDoc `json:"anchors,omitempty"`
}

// AnchorDoc describes one HA2R anchor of the mobile node.
type AnchorDoc struct {
	CareOf   netip.Addr `json:"care_of_address"`
	HA2R     netip.Addr `json:"ha2r"`
	State    string     `json:"state"`
	Expires  time.Time  `json:"expires"`
	IdleSecs float64    `json:"idle_seconds"`
}

// Status reports the mobile node's bindings.
func (mn *MobileNode) Status() MNStatus {
	v := mn.at.Load()
	st := MNStatus{Scheme: mn.cfg.Scheme, Home: mn.cfg.Home, CareOf: v.Address, AtHome: v.atHome, Contact: mn.Contact()}
	st.HomeBound, st.HomeExpires = mn.home.state()
	st.PeerBindings = mn.cn.Bindings().All()
	mn.scheme.status(&st)
	return st
}

// LeftAddressGrace is how long after a make-before-break move the address
// left still takes route-optimised packets: the host's default leave grace.
const LeftAddressGrace = 2 * time.Second

// leftAddr is a care-of address left by a make-before-break move.
type leftAddr struct {
	addr        netip.Addr
	until       time.Time
	bicastUntil time.Time // what the node tunnels leaves from it too until then
}

// arrivedForUs reports whether a route-optimised packet that arrived at
// addr (its routing header's care-of address) is ours: addr is the
// current care-of address, or the one a make-before-break move left while
// the host still hears it.
func (mn *MobileNode) arrivedForUs(addr netip.Addr, v *attachView) bool {
	if addr == v.Address {
		return true
	}
	l := mn.left.Load()
	return l != nil && l.addr == addr && mn.clk.Now().Before(l.until)
}
