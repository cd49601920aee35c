package mobility

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// HAPeer is a home agent as an HA2R knows it.
type HAPeer struct {
	Name    string
	Address netip.Addr
	// Out protects what the HA2R sends to the home agent, In the reverse.
	Out, In auth.SA
	// SealSecret opens the MN-HA2R keys the home agent seals for us.
	SealSecret []byte
}

// HA2RConfig configures an access router acting as HA2R.
type HA2RConfig struct {
	HomeAgents []HAPeer
	// MaxAnchors bounds the anchor table (0: no limit).
	MaxAnchors int
	// PendingTimeout forgets relayed requests the home agent never answered.
	PendingTimeout time.Duration
	Log            *slog.Logger
}

// HA2R is the paper's access router that acts as home agent for the care-of
// addresses it hands out. It relays a mobile node's MN Authentication
// Request to the node's home agent under AH, installs an anchor with the
// MN-HA2R key from the reply, and once the node has moved and sent a Binding
// Update authorised with that key, tunnels packets for the old care-of
// address to the new one (and decapsulates the reverse direction).
type HA2R struct {
	cfg      HA2RConfig
	r        *overlay.Router
	addr     netip.Addr
	clk      clock.Clock
	log      *slog.Logger
	sig      *Signals
	anchors  *BindingCache // anchored care-of address -> where the node is now
	prefixes []netip.Prefix

	mu      sync.Mutex
	peers   map[netip.Addr]*ha2rPeerState
	bySPI   map[uint32]*ha2rPeerState
	pending map[netip.Addr]pendingAuth // by care-of address
	stop    chan struct{}
}

type ha2rPeerState struct {
	peer   HAPeer
	window auth.ReplayWindow
	outSeq uint32
}

type pendingAuth struct {
	home netip.Addr
	seq  uint16
	ha   netip.Addr
	at   time.Time
}

// NewHA2R installs an HA2R on r.
func NewHA2R(r *overlay.Router, sig *Signals, cfg HA2RConfig) *HA2R {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.PendingTimeout == 0 {
		cfg.PendingTimeout = 10 * time.Second
	}
	x := &HA2R{cfg: cfg, r: r, addr: r.Address(), clk: r.Clock(), log: cfg.Log.With("node", r.Name(), "role", "ha2r"), sig: sig,
		anchors: NewBindingCache(r.Clock(), cfg.MaxAnchors), peers: map[netip.Addr]*ha2rPeerState{},
		bySPI: map[uint32]*ha2rPeerState{}, pending: map[netip.Addr]pendingAuth{}, stop: make(chan struct{})}
	for _, l := range r.Links() {
		x.prefixes = append(x.prefixes, l.Prefix)
	}
	for _, p := range cfg.HomeAgents {
		st := &ha2rPeerState{peer: p}
		x.peers[p.Address] = st
		x.bySPI[p.In.SPI] = st
	}
	x.anchors.OnExpire = func(b Binding) {
		x.sig.Add("ha2r.anchor.expired", 1)
		x.log.Info("anchor expired", "care_of", b.Home, "at", b.CareOf)
	}
	every(x.clk, time.Second, x.stop, func() {
		x.anchors.Sweep()
		x.expirePending()
	})
	r.SetHook(x)
	return x
}

// Close stops the HA2R's timers.
func (x *HA2R) Close() { close(x.stop) }

// Anchors returns the anchor table: care-of addresses this router handed
// out and authorised (Home) and where their node is now (CareOf).
func (x *HA2R) Anchors() *BindingCache { return x.anchors }

func (x *HA2R) ownsPrefix(a netip.Addr) bool {
	for _, p := range x.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Forward tunnels packets for an anchored care-of address whose node has
// moved to the node's current care-of address.
func (x *HA2R) Forward(p *overlay.Packet) overlay.Verdict {
	d := p.Data()
	dst := ip6.Header(d).Dst()
	now, ok := x.anchors.Lookup(dst)
	if !ok || now == dst {
		return overlay.Continue
	}
	return tunnelTo(p, x.r, x.sig, x.addr, now)
}

// Local handles what is addressed to the HA2R.
func (x *HA2R) Local(p *overlay.Packet, in *overlay.LinkConfig) overlay.Verdict {
	d := p.Data()
	var c ip6.Chain
	if err := ip6.Walk(d, &c); err != nil {
		return overlay.Continue
	}
	switch c.Upper {
	case ip6.ProtoIPv6:
		return untunnel(p, x.sig, x.anchors)
	case ip6.ProtoMH:
		if _, ok := c.Find(ip6.ProtoAH); ok {
			x.fromHomeAgent(d)
		} else {
			x.handleMH(d, in)
		}
		return overlay.Consumed
	}
	return overlay.Continue
}

// relayMH wraps the Mobility Header bytes of a message unchanged (the
// mobile node's authentication covers them) in a new packet.
func relayMH(mhb []byte, src, dst netip.Addr) []byte {
	b := append([]byte(nil), mhb...)
	mh.SetChecksum(b, src, dst)
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoMH, HopLimit: 64, Src: src, Dst: dst}, b)
}

// handleMH processes signalling from mobile nodes.
func (x *HA2R) handleMH(pkt []byte, in *overlay.LinkConfig) {
	var m mh.Message
	info, err := mh.ParsePacket(pkt, &m)
	if err != nil {
		if errors.Is(err, mh.ErrUnknownType) {
			x.sig.Drop("mh.unknown_type")
			be := &mh.Message{Type: mh.TypeBE, Status: mh.BEUnknownMHType, Address: netip.IPv6Unspecified()}
			out := mh.BuildPacket(mh.Addressing{Src: x.addr, Dst: ip6.Header(pkt).Src()}, 64, be, nil)
			x.sig.Sent("BE", out)
			x.r.Send(out)
			return
		}
		x.sig.Drop("mh.malformed")
		return
	}
	switch {
	case m.Type == mh.TypeExperimental && m.Subtype == mh.SubtypeMNAuthRequest:
		x.sig.Received("MNAuthReq", pkt)
		x.relayRequest(info, &m, in)
	case m.Type == mh.TypeBU && m.Flags&mh.FlagH != 0:
		x.sig.Received("BU.anchor", pkt)
		x.anchorUpdate(info, &m)
	default:
		x.sig.Received(MsgName(&m, false), pkt)
		x.sig.Drop("mh.unexpected")
	}
}

// relayRequest checks an MN Authentication Request from a node on our link
// and relays it to its home agent under AH.
//
// Reactions, all silent drops (counted), since nothing here is authenticated
// yet: a request that did not come over one of our access links, whose
// care-of address is not the sender's or not from our prefixes (we only
// vouch for addresses we hand out), or that names a home agent we share no
// security association with.
func (x *HA2R) relayRequest(info mh.PacketInfo, m *mh.Message, in *overlay.LinkConfig) {
	o := &m.Options
	ha, _ := o.ExpAddr(mh.ExpHAAddress)
	home, _ := o.ExpAddr(mh.ExpHomeAddr)
	switch {
	case in == nil:
		x.sig.Drop("mnauth.not_on_link")
		return
	case !o.Has(mh.OptAltCoA) || o.AltCoA != info.Src || !in.Prefix.Contains(info.Src):
		x.sig.Drop("mnauth.foreign_care_of")
		return
	case !home.IsValid():
		x.sig.Drop("mnauth.incomplete")
		return
	}
	x.mu.Lock()
	peer, ok := x.peers[ha]
	if ok {
		x.pending[info.Src] = pendingAuth{home: home, seq: m.Sequence, ha: ha, at: x.clk.Now()}
		peer.outSeq++
	}
	seq := uint32(0)
	if ok {
		seq = peer.outSeq
	}
	x.mu.Unlock()
	if !ok {
		x.sig.Drop("mnauth.unknown_home_agent")
		return
	}
	out, err := peer.peer.Out.Protect(relayMH(info.MH, x.addr, ha), seq)
	if err != nil {
		x.sig.Drop("mnauth.ah_seq_exhausted")
		return
	}
	x.sig.Sent("MNAuthReq", out)
	x.r.Send(out)
}

// fromHomeAgent processes an AH-protected MN Authentication Reply: verify
// the AH, open our copy of the key, install the anchor, pass the reply on.
// Anything that fails the AH or does not match a request we relayed is
// dropped silently (counted).
func (x *HA2R) fromHomeAgent(pkt []byte) {
	src := ip6.Header(pkt).Src()
	var peer *ha2rPeerState
	inner, _, err := auth.Open(pkt, func(spi uint32) (*auth.SA, *auth.ReplayWindow, bool) {
		x.mu.Lock()
		defer x.mu.Unlock()
		st, ok := x.bySPI[spi]
		if !ok {
			return nil, nil, false
		}
		peer = st
		return &st.peer.In, &st.window, true
	})
	if err != nil {
		x.sig.Drop("mnauth.ah_bad")
		return
	}
	if peer.peer.Address != src {
		x.sig.Drop("mnauth.ah_wrong_sender")
		return
	}
	var m mh.Message
	info, err := mh.ParsePacket(inner, &m)
	if err != nil || m.Type != mh.TypeExperimental || m.Subtype != mh.SubtypeMNAuthReply {
		x.sig.Drop("mnauth.malformed")
		return
	}
	x.sig.Received("MNAuthRep", pkt)
	coa := m.Options.AltCoA
	x.mu.Lock()
	pend, ok := x.pending[coa]
	if ok && pend.seq == m.Sequence && pend.ha == src {
		delete(x.pending, coa)
	} else {
		ok = false
	}
	x.mu.Unlock()
	if !ok {
		x.sig.Drop("mnauth.unmatched_reply")
		return
	}
	if m.Status == mh.StatusAccepted {
		sealed, has := m.Options.Exp(mh.ExpKeyForHA2R)
		if !has {
			x.sig.Drop("mnauth.no_key")
			return
		}
		key, err := auth.OpenKey(peer.peer.SealSecret, auth.ForHA2R, pend.home, coa, m.Sequence, sealed)
		if err != nil {
			x.sig.Drop("mnauth.key_does_not_open")
			return
		}
		lifetime := time.Duration(m.Lifetime) * 4 * time.Second
		if !x.anchors.Put(Binding{Home: coa, CareOf: coa, Seq: m.Sequence, Key: key, Peer: pend.home.String()}, lifetime) {
			x.sig.Drop("ha2r.anchors_full")
			return
		}
		x.sig.Add("ha2r.anchor.created", 1)
		x.log.Debug("anchor", "care_of", coa, "home", pend.home, "lifetime", lifetime)
	}
	out := relayMH(info.MH, x.addr, coa)
	x.sig.Sent("MNAuthRep", out)
	x.r.Send(out)
}

// anchorUpdate processes a Binding Update for an anchored care-of address,
// authorised with the MN-HA2R key: it points the anchor at the node's new
// care-of address, refreshes a local one, or (lifetime 0) releases it with
// its key.
//
// Reactions: no anchor for the address, or a bad authenticator: silent drop
// (counted); the sender proved nothing. A sequence number that is not newer
// gets status 135.
func (x *HA2R) anchorUpdate(info mh.PacketInfo, m *mh.Message) {
	anchored := info.HomeAddress
	if !anchored.IsValid() {
		anchored = info.Src
	}
	b, ok := x.anchors.Get(anchored)
	if !ok || b.Key == nil {
		x.sig.Drop("bu.no_anchor")
		return
	}
	coa := info.Src
	if m.Options.Has(mh.OptAltCoA) {
		coa = m.Options.AltCoA
	}
	if !m.Options.Has(mh.OptBAD) || !auth.VerifyBinding(b.Key, coa, info.Dst, info.MH, m.Options.AuthenticatorOff) {
		x.sig.Drop("bu.bad_authenticator")
		return
	}
	if !mh.SeqNewer(m.Sequence, b.Seq) {
		x.sig.Drop("bu.seq_out_of_window")
		x.sendAnchorBA(b.Key, mh.StatusSeqOutOfWindow, b.Seq, 0, coa, anchored)
		return
	}
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	if lifetime > DefaultAnchorLifetime {
		lifetime = DefaultAnchorLifetime
	}
	key := b.Key
	if lifetime == 0 {
		x.anchors.Delete(anchored)
		x.sig.Add("ha2r.anchor.released", 1)
		x.log.Debug("anchor released", "care_of", anchored)
	} else {
		x.anchors.Put(Binding{Home: anchored, CareOf: coa, Seq: m.Sequence, Key: key, Peer: b.Peer}, lifetime)
		if coa != anchored {
			x.r.ForgetNeighbour(anchored) // the node left the link
			x.sig.Add("ha2r.anchor.moved", 1)
		} else {
			x.sig.Add("ha2r.anchor.refreshed", 1)
		}
	}
	if m.Flags&mh.FlagA != 0 {
		x.sendAnchorBA(key, mh.StatusAccepted, m.Sequence, lifetime, coa, anchored)
	}
}

func (x *HA2R) sendAnchorBA(key []byte, status uint8, seq uint16, lifetime time.Duration, coa, anchored netip.Addr) {
	ba := &mh.Message{Type: mh.TypeBA, Status: status, Sequence: seq, Lifetime: lifetimeUnits(lifetime)}
	ba.Options.Set(mh.OptBAD)
	a := mh.Addressing{Src: x.addr, Dst: coa}
	if coa != anchored {
		a.RoutedTo = anchored
	}
	self := x.addr
	out := mh.BuildPacket(a, 64, ba, func(b []byte) {
		v := auth.BindingAuthenticator(key, coa, self, b, ba.Options.AuthenticatorOff)
		copy(b[ba.Options.AuthenticatorOff:], v[:])
	})
	x.sig.Sent("BA.anchor", out)
	x.r.Send(out)
}

func (x *HA2R) expirePending() {
	now := x.clk.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	for coa, p := range x.pending {
		if now.Sub(p.at) > x.cfg.PendingTimeout {
			delete(x.pending, coa)
			x.sig.Add("mnauth.unanswered", 1)
		}
	}
}
