package mobility

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// Schemes a mobile node can run.
const (
	SchemeStandard = "standard"
	SchemeHA2R     = "ha2r"
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

// MobileNodeConfig configures a mobile node.
type MobileNodeConfig struct {
	Home       netip.Addr
	HomePrefix netip.Prefix
	HomeAgent  netip.Addr
	SPI        uint32
	Key        []byte
	Scheme     string
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
}

// MobileNode is the mobile node of RFC 6275 section 11 (home registration,
// bidirectional tunnel, Return Routability and route optimisation) and, in
// the ha2r scheme, of the paper (ha2r_mn.go). It is a correspondent too.
type MobileNode struct {
	cfg MobileNodeConfig
	h   *overlay.Host
	clk clock.Clock
	sig *Signals
	log *slog.Logger
	cn  *Correspondent

	view atomic.Pointer[mnView] // what the data path reads, without locks

	mu      sync.Mutex
	att     overlay.Attachment
	seq     uint16
	home    homeReg
	peers   map[netip.Addr]*roEntry
	anchors map[netip.Addr]*anchorRec // ha2r: by care-of address
	closed  bool

	housekeeping bool
	stopHK       chan struct{}
}

// mnView is an immutable snapshot for the data path; changes replace it.
type mnView struct {
	attached bool
	atHome   bool
	coa      netip.Addr
	ro       map[netip.Addr]bool          // peers holding our binding: send route-optimised
	known    map[netip.Addr]bool          // peers with Return Routability started
	anchored map[netip.Addr]netip.Addr    // ha2r: old care-of address -> its HA2R (tunnel)
	ha2rs    map[netip.Addr]bool          // ha2r: HA2R addresses we accept tunnels from
	active   map[netip.Addr]*atomic.Int64 // ha2r: last traffic per care-of address
	scheme   string
	rrOnTun  bool
	rrOnPkt  bool
	homeAddr netip.Addr
}

// homeReg is the binding update list entry for the home agent.
type homeReg struct {
	coa       netip.Addr // being registered or registered
	sentSeq   uint16
	bound     bool
	expires   time.Time
	firstDone bool
	retrySchedule
}

// retrySchedule is a message's retransmission state: RFC 6275 section
// 11.8's back-off, doubling from an initial timeout up to
// MAX_BINDACK_TIMEOUT.
type retrySchedule struct {
	timer   clock.Timer
	backoff time.Duration
	tries   int
}

// next stops the pending timer, counts a try and returns how long to wait
// for an answer to it: initial the first time, then twice the last wait.
func (r *retrySchedule) next(initial time.Duration) time.Duration {
	if r.backoff == 0 {
		r.backoff = initial
	} else {
		r.backoff = min(2*r.backoff, MaxBindackTimeout)
	}
	r.tries++
	r.stopTimer()
	return r.backoff
}

func (r *retrySchedule) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// NewMobileNode installs a mobile node on h and starts it.
func NewMobileNode(h *overlay.Host, sig *Signals, cfg MobileNodeConfig) *MobileNode {
	if cfg.HomeLifetime == 0 {
		cfg.HomeLifetime = DefaultHomeLifetime
	}
	if cfg.AnchorIdle == 0 {
		cfg.AnchorIdle = 30 * time.Second
	}
	if cfg.Scheme == "" {
		cfg.Scheme = SchemeStandard
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	mn := &MobileNode{cfg: cfg, h: h, clk: h.Clock(), sig: sig, log: cfg.Log.With("node", h.Name(), "role", "mn"),
		peers: map[netip.Addr]*roEntry{}, anchors: map[netip.Addr]*anchorRec{}}
	var s [2]byte
	rand.Read(s[:])
	mn.seq = binary.BigEndian.Uint16(s[:])
	mn.cn = NewCorrespondent(mn.clk, sig, mn.log, func() netip.Addr { return cfg.Home }, mn.output)
	mn.publish()
	h.SetHook(mn)
	h.OnAttach(mn.attached)
	if dev := h.Device(); dev != nil {
		// Applications use the home address; in the paper's scheme it stays
		// valid but new sessions prefer the care-of address.
		dev.AddAddress(netip.PrefixFrom(cfg.Home, 128), cfg.Scheme != SchemeHA2R)
	}
	return mn
}

// Correspondent returns the node's correspondent role.
func (mn *MobileNode) Correspondent() *Correspondent { return mn.cn }

// Close stops the mobile node's timers.
func (mn *MobileNode) Close() {
	mn.mu.Lock()
	mn.closed = true
	mn.home.stopTimer()
	for _, e := range mn.peers {
		e.stopTimer()
	}
	for _, a := range mn.anchors {
		a.stopTimer()
	}
	if mn.stopHK != nil {
		close(mn.stopHK)
	}
	mn.mu.Unlock()
	mn.cn.Close()
}

// publish rebuilds the data path's view; call with mu held (or before start).
func (mn *MobileNode) publish() {
	v := &mnView{
		attached: mn.att.Address.IsValid(), coa: mn.att.Address, scheme: mn.cfg.Scheme,
		atHome: mn.att.Address.IsValid() && mn.cfg.HomePrefix.Contains(mn.att.Address),
		ro:     map[netip.Addr]bool{}, known: map[netip.Addr]bool{},
		anchored: map[netip.Addr]netip.Addr{}, ha2rs: map[netip.Addr]bool{}, active: map[netip.Addr]*atomic.Int64{},
		rrOnTun: mn.cfg.RRTrigger&RROnTunnelled != 0, rrOnPkt: mn.cfg.RRTrigger&RROnFirstPacket != 0,
		homeAddr: mn.cfg.Home,
	}
	for peer, e := range mn.peers {
		v.known[peer] = true
		if e.state == roBound {
			v.ro[peer] = true
		}
	}
	for coa, a := range mn.anchors {
		v.ha2rs[a.ha2r] = true
		v.active[coa] = &a.lastActive
		if a.tunnel && coa != v.coa {
			v.anchored[coa] = a.ha2r
		}
	}
	mn.view.Store(v)
}

// Status describes the mobile node for `node status`.
type MNStatus struct {
	Scheme       string      `json:"scheme"`
	Home         netip.Addr  `json:"home_address"`
	CareOf       netip.Addr  `json:"care_of_address"`
	AtHome       bool        `json:"at_home"`
	HomeBound    bool        `json:"home_registered"`
	HomeExpires  time.Time   `json:"home_binding_expires"`
	RouteOptim   []string    `json:"route_optimised_peers"`
	PeerBindings []Binding   `json:"peer_bindings"`
	Anchors      []AnchorDoc `json:"anchors,omitempty"`
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
	mn.mu.Lock()
	defer mn.mu.Unlock()
	v := mn.view.Load()
	st := MNStatus{Scheme: mn.cfg.Scheme, Home: mn.cfg.Home, CareOf: v.coa, AtHome: v.atHome, HomeBound: mn.home.bound, HomeExpires: mn.home.expires}
	for p, e := range mn.peers {
		if e.state == roBound {
			st.RouteOptim = append(st.RouteOptim, p.String())
		}
	}
	st.PeerBindings = mn.cn.Bindings().All()
	now := mn.clk.Now()
	for coa, a := range mn.anchors {
		st.Anchors = append(st.Anchors, AnchorDoc{CareOf: coa, HA2R: a.ha2r, State: a.stateName(coa == v.coa), Expires: a.expires,
			IdleSecs: now.Sub(time.Unix(0, a.lastActive.Load())).Seconds()})
	}
	return st
}

// attached reacts to the overlay's attach events: movement detection.
func (mn *MobileNode) attached(a overlay.Attachment) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if mn.closed {
		return
	}
	prev := mn.att
	mn.att = a
	atHome := mn.cfg.HomePrefix.Contains(a.Address)
	mn.sig.Add("mn.moves", 1)
	mn.log.Info("attached", "link", a.Link.Name, "care_of", a.Address, "home", atHome)
	if mn.cfg.Scheme == SchemeHA2R {
		mn.ha2rMoved(prev, a)
	}
	mn.publish()
	// Home registration, or deregistration when home (RFC 6275 11.5.4).
	mn.home.coa = a.Address
	mn.home.bound = false
	mn.home.backoff = 0
	mn.home.tries = 0
	mn.sendHomeBU()
	// Every binding update list entry follows the move (11.7.2).
	for _, e := range mn.peers {
		mn.rerunRR(e)
	}
}

// lifetimeUnits converts a duration to the 4-second units of the wire.
func lifetimeUnits(d time.Duration) uint16 {
	u := d / (4 * time.Second)
	if u > 0xffff {
		u = 0xffff
	}
	return uint16(u)
}

// sendHomeBU sends (or retransmits) the home registration; call with mu held.
func (mn *MobileNode) sendHomeBU() {
	coa := mn.home.coa
	if !coa.IsValid() {
		return
	}
	mn.seq++
	mn.home.sentSeq = mn.seq
	atHome := coa == mn.cfg.Home || mn.cfg.HomePrefix.Contains(coa)
	bu := &mh.Message{Type: mh.TypeBU, Sequence: mn.seq, Flags: mh.FlagA | mh.FlagH}
	if !atHome {
		bu.Lifetime = lifetimeUnits(mn.cfg.HomeLifetime)
	}
	bu.Options.Set(mh.OptMsgID)
	bu.Options.Timestamp = auth.NTPTime(mn.clk.Now())
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: mn.cfg.SPI}
	a := mh.Addressing{Src: coa, Dst: mn.cfg.HomeAgent, HomeAddress: mn.cfg.Home}
	careOf := coa
	if atHome {
		a = mh.Addressing{Src: mn.cfg.Home, Dst: mn.cfg.HomeAgent}
		careOf = mn.cfg.Home
	}
	pkt := mh.BuildPacket(a, 64, bu, func(b []byte) {
		x := auth.MNHAAuthenticator(mn.cfg.Key, careOf, mn.cfg.Home, b, bu.Options.Auth.DataOff)
		copy(b[bu.Options.Auth.DataOff:], x[:])
	})
	mn.sig.Sent("BU.home", pkt)
	mn.h.Send(pkt)
	// Retransmission with exponential back-off (RFC 6275 11.8); the very
	// first home registration starts from INITIAL_BINDACK_TIMEOUT_FIRSTREG.
	initial := InitialBindackTimeout
	if !mn.home.firstDone {
		initial = InitialHomeBindack
	}
	seq := mn.seq
	mn.home.timer = mn.clk.AfterFunc(mn.home.next(initial), func() {
		mn.mu.Lock()
		defer mn.mu.Unlock()
		if mn.closed || mn.home.bound || mn.home.sentSeq != seq {
			return
		}
		mn.sig.Add("mn.home_bu.retransmit", 1)
		mn.sendHomeBU()
	})
}

// homeBA processes the home agent's Binding Acknowledgement.
func (mn *MobileNode) homeBA(pkt []byte, info mh.PacketInfo, m *mh.Message) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	o := &m.Options
	careOf := info.Dst // where it reached us: our care-of address, or home
	if !o.Has(mh.OptAuth) || o.Auth.SPI != mn.cfg.SPI || len(o.Auth.Data) != mh.AuthenticatorLen ||
		!auth.VerifyMNHA(mn.cfg.Key, careOf, mn.cfg.Home, info.MH, o.Auth.DataOff) {
		mn.sig.Drop("ba.bad_authenticator")
		return
	}
	switch {
	case m.Status == mh.StatusSeqOutOfWindow:
		mn.seq = m.Sequence // resynchronise, then try again at once
		mn.home.backoff = 0
		mn.sendHomeBU()
		return
	case m.Sequence != mn.home.sentSeq:
		mn.sig.Drop("ba.stale")
		return
	case m.Status >= 128:
		mn.log.Warn("home registration refused", "status", m.Status)
		mn.sig.Add("mn.home_refused", 1)
		return
	}
	mn.home.bound = true
	mn.home.firstDone = true
	mn.home.backoff = 0
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	mn.home.expires = mn.clk.Now().Add(lifetime)
	mn.home.stopTimer()
	if lifetime > 0 {
		// Refresh before expiry (RFC 6275 11.7.1).
		refresh := lifetime - max(lifetime/5, 2*time.Second)
		seq := mn.home.sentSeq
		mn.home.timer = mn.clk.AfterFunc(refresh, func() {
			mn.mu.Lock()
			defer mn.mu.Unlock()
			if mn.closed || mn.home.sentSeq != seq {
				return
			}
			mn.home.bound = false
			mn.sig.Add("mn.home_bu.refresh", 1)
			mn.sendHomeBU()
		})
	}
}

// output sends a packet the mobile node itself originates through the same
// policy applications' packets follow.
func (mn *MobileNode) output(pkt []byte) {
	p := overlay.NewPacket(pkt)
	if mn.Outbound(p) == overlay.Consumed {
		return
	}
	mn.h.Send(p.Data())
}

// Outbound applies the mobile node's policy to a packet leaving it.
func (mn *MobileNode) Outbound(p *overlay.Packet) overlay.Verdict {
	v := mn.view.Load()
	if !v.attached || v.atHome {
		return overlay.Continue
	}
	h := ip6.Header(p.Data())
	src, dst := h.Src(), h.Dst()
	switch {
	case src == v.homeAddr:
		return mn.outboundHome(p, v, dst)
	case v.scheme == SchemeHA2R:
		return mn.outboundCareOf(p, v, src)
	}
	return overlay.Continue
}

// outboundHome handles a packet from the home address: route-optimised to a
// peer that holds our binding, otherwise through the home agent's tunnel.
func (mn *MobileNode) outboundHome(p *overlay.Packet, v *mnView, dst netip.Addr) overlay.Verdict {
	peerCoA, peerBound := mn.cn.PeerCareOf(dst)
	if d := p.Data(); d[6] == ip6.ProtoMH && len(d) > ip6.HeaderLen+2 {
		// Our own signalling from the home address: a Mobility Header may
		// carry neither a Home Address option (only a BU may) nor a routing
		// header (only a BA may), so it goes through the tunnel, a BA with
		// a routing header when the peer is bound (RFC 6275 6.1, 9.5.4).
		if peerBound && mh.Type(d[ip6.HeaderLen+2]) == mh.TypeBA && !routeOptimise(p, netip.Addr{}, peerCoA) {
			mn.sig.Drop("ro.no_room")
			return overlay.Consumed
		}
		if !encapsulate(p, v.coa, mn.cfg.HomeAgent) {
			mn.sig.Drop("tunnel.no_room")
			return overlay.Consumed
		}
		mn.sig.Add("tunnel.encap", 1)
		return overlay.Continue
	}
	if v.ro[dst] {
		var rh2 netip.Addr
		if peerBound {
			rh2 = peerCoA
			mn.cn.Bindings().Touch(dst)
		}
		if !routeOptimise(p, v.coa, rh2) {
			mn.sig.Drop("ro.no_room")
			return overlay.Consumed
		}
		mn.sig.Add("ro.out", 1)
		return overlay.Continue
	}
	if peerBound {
		// The peer is route-optimised towards us but not we towards it: a
		// routing header gets the packet to its care-of address, the tunnel
		// gets it out of the visited network (the paper's step 6 BA).
		if !routeOptimise(p, netip.Addr{}, peerCoA) {
			mn.sig.Drop("ro.no_room")
			return overlay.Consumed
		}
		mn.cn.Bindings().Touch(dst)
	}
	if v.rrOnPkt && !v.known[dst] && v.scheme == SchemeStandard && dst != mn.cfg.HomeAgent && !dst.IsLinkLocalUnicast() {
		go mn.StartRR(dst)
	}
	if !encapsulate(p, v.coa, mn.cfg.HomeAgent) {
		mn.sig.Drop("tunnel.no_room")
		return overlay.Consumed
	}
	mn.sig.Add("tunnel.encap", 1)
	return overlay.Continue
}

// Inbound applies the mobile node's policy to a packet arriving.
func (mn *MobileNode) Inbound(p *overlay.Packet) overlay.Verdict {
	v := mn.view.Load()
	d := p.Data()
	tunnelledBy := netip.Addr{}
	if d[6] == ip6.ProtoIPv6 {
		outer := ip6.Header(d).Src()
		if outer != mn.cfg.HomeAgent && !v.ha2rs[outer] {
			mn.sig.Drop("tunnel.unknown_sender")
			return overlay.Consumed
		}
		if err := decapsulate(p); err != nil {
			mn.sig.Drop("tunnel.malformed")
			return overlay.Consumed
		}
		mn.sig.Add("tunnel.decap", 1)
		tunnelledBy = outer
		d = p.Data()
	}
	var c ip6.Chain
	if err := ip6.Walk(d, &c); err != nil {
		mn.sig.Drop("ipv6.chain")
		return overlay.Consumed
	}
	switch c.Upper {
	case ip6.ProtoMH:
		mn.handleMH(d, c.UpperOff, tunnelledBy)
		return overlay.Consumed
	case ip6.ProtoICMPv6:
		if c.UpperOff < len(d) && d[c.UpperOff] == 1 { // destination unreachable
			mn.unreachable(d[c.UpperOff:])
		}
	}
	h := ip6.Header(d)
	src := h.Src()
	if c.N > 0 {
		info, err := unrouteOptimise(p)
		if err != nil {
			mn.sig.Drop("ro.malformed")
			return overlay.Consumed
		}
		if info.homeAddress.IsValid() {
			if !mn.cn.CheckHomeAddress(d, info.homeAddress, info.careOf) {
				return overlay.Consumed
			}
			src = info.homeAddress
			mn.sig.Add("ro.in", 1)
		}
		if info.routedTo.IsValid() && (info.routedTo != mn.cfg.Home || info.arrivedAt != v.coa) {
			mn.sig.Drop("ro.not_for_us")
			return overlay.Consumed
		}
	}
	if v.scheme == SchemeHA2R {
		mn.noteActivity(v, ip6.Header(p.Data()).Dst())
	}
	if tunnelledBy == mn.cfg.HomeAgent && v.rrOnTun && !v.atHome && v.scheme == SchemeStandard && !v.known[src] && src != mn.cfg.HomeAgent {
		mn.StartRR(src)
	}
	return overlay.Continue
}

// handleMH dispatches Mobility Header messages that reach the mobile node.
func (mn *MobileNode) handleMH(pkt []byte, mhOff int, tunnelledBy netip.Addr) {
	var m mh.Message
	info, err := mh.ParsePacket(pkt, &m)
	if err != nil {
		if err == mh.ErrUnknownType {
			mn.sig.Drop("mh.unknown_type")
			mn.cn.sendBindingError(ip6.Header(pkt).Src(), mh.BEUnknownMHType, netip.Addr{})
			return
		}
		mn.sig.Drop("mh.malformed")
		return
	}
	if tunnelledBy == mn.cfg.HomeAgent && m.Type == mh.TypeBU && info.HomeAddress.IsValid() {
		// A peer's Binding Update reached us through our home agent: in
		// the paper's step 7 that starts Return Routability the other way.
		// (Its tests, HoTI and CoTI, do not: they are the peer's own RR.)
		defer func() {
			v := mn.view.Load()
			src := info.Src
			if info.HomeAddress.IsValid() {
				src = info.HomeAddress
			}
			if v.rrOnTun && !v.atHome && v.scheme == SchemeStandard && !v.known[src] {
				mn.StartRR(src)
			}
		}()
	}
	if mn.cn.HandleMH(pkt, info, &m) {
		return
	}
	switch m.Type {
	case mh.TypeBA:
		if info.Src == mn.cfg.HomeAgent {
			mn.sig.Received("BA.home", pkt)
			mn.homeBA(pkt, info, &m)
			return
		}
		if mn.view.Load().ha2rs[info.Src] {
			mn.sig.Received("BA.anchor", pkt)
			mn.anchorBA(info, &m)
			return
		}
		mn.sig.Received("BA", pkt)
		mn.peerBA(info, &m)
	case mh.TypeHoT:
		mn.sig.Received("HoT", pkt)
		mn.testReply(info, &m, false)
	case mh.TypeCoT:
		mn.sig.Received("CoT", pkt)
		mn.testReply(info, &m, true)
	case mh.TypeBRR:
		mn.sig.Received("BRR", pkt)
		mn.refreshRequested(info.Src)
	case mh.TypeBE:
		mn.sig.Received("BE", pkt)
		mn.bindingError(info, &m)
	case mh.TypeExperimental:
		if m.Subtype == mh.SubtypeMNAuthReply {
			mn.sig.Received("MNAuthRep", pkt)
			mn.mnAuthReply(info, &m)
			return
		}
		mn.sig.Drop("mh.unexpected")
	default:
		mn.sig.Drop("mh.unexpected")
	}
}
