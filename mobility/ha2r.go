package mobility

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/state"
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
	// State keeps the anchors (with their keys) and the AH sequence numbers
	// across restarts (nil: nothing is kept).
	State state.Store
	Log   *slog.Logger
	// Bicast is how long after an anchored address's node moves the
	// address's previous place (its own link, at first) gets a copy of
	// each packet (bicast.go; 0: off).
	Bicast time.Duration
}

// ha2rState is what an HA2R saves.
type ha2rState struct {
	Anchors []savedBinding        `json:"anchors"`
	AHSeq   map[netip.Addr]uint32 `json:"ah_sequence"` // by home agent
}

// HA2R is the paper's access router that acts as home agent for the care-of
// addresses it hands out. It relays a mobile node's MN Authentication
// Request to the node's home agent under AH, installs an anchor with the
// MN-HA2R key from the reply, and once the node has moved and sent a Binding
// Update authorised with that key, tunnels packets for the old care-of
// address to the new one (and decapsulates the reverse direction).
type HA2R struct {
	cfg     HA2RConfig
	r       RouterPort
	addr    netip.Addr
	clk     clock.Clock
	log     *slog.Logger
	sig     *Signals
	errs    *errorReplies
	tunnel  *tunnelEntry
	anchors *BindingCache // anchored care-of address -> where the node is now
	ah      ahPeers
	seal    map[netip.Addr][]byte // home agent -> its seal secret

	mu      sync.Mutex
	pending map[netip.Addr]pendingAuth // by care-of address
	// released remembers anchors released lately, so that a retransmitted
	// release (its acknowledgement lost) is acknowledged again.
	released  map[netip.Addr]releasedAnchor
	stop      chan struct{}
	closeOnce sync.Once
	state     *state.Saver
}

// releasedAnchor is what the HA2R keeps of a released anchor for
// releaseMemory: enough to check and acknowledge a repeated release.
type releasedAnchor struct {
	key   []byte
	seq   uint16
	until time.Time
}

// releaseMemory covers a mobile node's whole retransmission of a release
// (1 + 2 + 4 + 8 + 16 + 32 s).
const releaseMemory = 2 * MaxBindackTimeout

// pendingAuth is an MN Authentication Request relayed to a home agent and
// not answered yet.
type pendingAuth struct {
	home netip.Addr
	seq  uint16
	ha   netip.Addr
	at   time.Time
}

// NewHA2R installs an HA2R on r; it fails only when saved state cannot be
// read.
func NewHA2R(r RouterPort, sig *Signals, cfg HA2RConfig) (*HA2R, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.PendingTimeout == 0 {
		cfg.PendingTimeout = 10 * time.Second
	}
	x := &HA2R{cfg: cfg, r: r, addr: r.Address(), clk: r.Clock(), log: cfg.Log.With("node", r.Name(), "role", "ha2r"), sig: sig,
		anchors: NewBindingCache(r.Clock(), cfg.MaxAnchors), ah: newAHPeers(), seal: map[netip.Addr][]byte{},
		pending: map[netip.Addr]pendingAuth{}, released: map[netip.Addr]releasedAnchor{}, stop: make(chan struct{})}
	x.errs = newErrorReplies(r.Address, r.Send, x.clk, sig)
	x.tunnel = newTunnelEntry(r, sig)
	x.anchors.Bicast, x.anchors.OnLinkBefore = min(cfg.Bicast, MaxBicast), true
	for _, p := range cfg.HomeAgents {
		x.ah.add(&ahPeer{addr: p.Address, in: p.In, out: p.Out})
		x.seal[p.Address] = p.SealSecret
	}
	if cfg.State != nil {
		var st ha2rState
		if err := state.Load(cfg.State, &st); err != nil {
			return nil, err
		}
		x.state = state.NewSaver(cfg.State, x.snapshot, func(err error) { x.log.Error("saving state", "err", err) })
		if n := restoreBindings(x.anchors, st.Anchors); n > 0 {
			x.sig.Add("ha2r.anchor.restored", uint64(n))
			x.log.Info("anchors restored", "count", n)
		}
		x.ah.resume(st.AHSeq, x.state.Now)
	}
	x.anchors.OnExpire = func(b Binding) {
		x.sig.Add("ha2r.anchor.expired", 1)
		x.state.Changed()
		x.log.Info("anchor expired", "care_of", b.Home, "at", b.CareOf)
	}
	every(x.clk, time.Second, x.stop, func() {
		x.anchors.Sweep()
		x.expirePending()
		x.state.Flush()
	})
	r.SetHook(x)
	return x, nil
}

func (x *HA2R) snapshot() any {
	return ha2rState{Anchors: saveBindings(x.anchors), AHSeq: x.ah.reservations()}
}

// Close stops the HA2R's timers and saves its state.
func (x *HA2R) Close() {
	x.closeOnce.Do(func() {
		close(x.stop)
		x.state.Now()
	})
}

// Anchors returns the anchor table: care-of addresses this router handed
// out and authorised (Home) and where their node is now (CareOf).
func (x *HA2R) Anchors() *BindingCache { return x.anchors }

// Forward tunnels packets for an anchored care-of address whose node has
// moved to the node's current care-of address.
func (x *HA2R) Forward(p *overlay.Packet) overlay.Verdict {
	dst := p.Header().Dst()
	now, also, ok := x.anchors.LookupBicast(dst)
	if !ok || now == dst || x.tunnel.ownTunnelled(p) {
		return overlay.Continue
	}
	if also.IsValid() {
		return x.tunnel.forwardBicast(p, now, also)
	}
	return x.tunnel.forward(p, now)
}

// Local handles what is addressed to the HA2R.
func (x *HA2R) Local(p *overlay.Packet, in *overlay.LinkConfig) overlay.Verdict {
	c, err := p.Chain()
	if err != nil {
		return overlay.Continue
	}
	if v, done := x.tunnel.exit(p, c); done {
		return v
	}
	switch c.Upper {
	case ip6.ProtoIPv6:
		return x.tunnel.untunnel(p, x.anchors, nil)
	case ip6.ProtoMH:
		if _, ok := c.Find(ip6.ProtoAH); ok {
			x.fromHomeAgent(p.Data())
		} else {
			x.handleMH(p.Data(), in)
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
	info, ok := receiveMH(pkt, &m, x.sig, x.errs)
	if !ok {
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
		x.sig.Drop(DropMHUnexpected)
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
		x.sig.Drop(DropMNAuthNotOnLink)
		return
	case !o.Has(mh.OptAltCoA) || o.AltCoA != info.Src || !in.Prefix.Contains(info.Src):
		x.sig.Drop(DropMNAuthForeignCareOf)
		return
	case !home.IsValid():
		x.sig.Drop(DropMNAuthIncomplete)
		return
	}
	peer, ok := x.ah.byAddr[ha]
	if !ok {
		x.sig.Drop(DropMNAuthUnknownHomeAgent)
		return
	}
	x.mu.Lock()
	x.pending[info.Src] = pendingAuth{home: home, seq: m.Sequence, ha: ha, at: x.clk.Now()}
	x.mu.Unlock()
	out, err := peer.protect(relayMH(info.MH, x.addr, ha))
	if err != nil {
		x.sig.Drop(DropMNAuthAHSeqExhausted)
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
	inner, peer, err := x.ah.open(pkt)
	if err != nil {
		x.sig.Drop(ahDrop(err))
		return
	}
	var m mh.Message
	info, err := mh.ParsePacket(inner, &m)
	if err != nil || m.Type != mh.TypeExperimental || m.Subtype != mh.SubtypeMNAuthReply {
		x.sig.Drop(DropMNAuthMalformed)
		return
	}
	x.sig.Received("MNAuthRep", pkt)
	coa := m.Options.AltCoA
	x.mu.Lock()
	pend, ok := x.pending[coa]
	if ok && pend.seq == m.Sequence && pend.ha == peer.addr {
		delete(x.pending, coa)
	} else {
		ok = false
	}
	x.mu.Unlock()
	if !ok {
		x.sig.Drop(DropMNAuthUnmatchedReply)
		return
	}
	if m.Status == mh.StatusAccepted {
		sealed, has := m.Options.Exp(mh.ExpKeyForHA2R)
		if !has {
			x.sig.Drop(DropMNAuthNoKey)
			return
		}
		key, err := auth.OpenKey(x.seal[peer.addr], auth.ForHA2R, pend.home, coa, m.Sequence, sealed)
		if err != nil {
			x.sig.Drop(DropMNAuthKeyDoesNotOpen)
			return
		}
		lifetime := m.LifetimeDuration()
		if !x.anchors.Put(Binding{Home: coa, CareOf: coa, Seq: m.Sequence, Key: key, Peer: pend.home.String()}, lifetime) {
			x.sig.Drop(DropHA2RAnchorsFull)
			return
		}
		x.sig.Add("ha2r.anchor.created", 1)
		x.state.Changed()
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
// gets status 135 (RFC 6275 9.5.1). A repeated release of an anchor
// released lately is acknowledged again.
func (x *HA2R) anchorUpdate(info mh.PacketInfo, m *mh.Message) {
	anchored := info.HomeAddress
	if !anchored.IsValid() {
		anchored = info.Src
	}
	coa := info.Src
	if m.Options.Has(mh.OptAltCoA) {
		coa = m.Options.AltCoA
	}
	b, ok := x.anchors.Get(anchored)
	if !ok || b.Key == nil {
		x.repeatedRelease(info, m, anchored, coa)
		return
	}
	if !verifyBindingAuth(info, m, b.Key, coa, info.Dst) {
		x.sig.Drop(DropBUBadAuthenticator)
		return
	}
	lifetime := min(m.LifetimeDuration(), DefaultAnchorLifetime)
	if !mh.SeqNewer(m.Sequence, b.Seq) {
		x.sig.Drop(DropBUSeqOutOfWindow)
		x.sendAnchorBA(b.Key, mh.StatusSeqOutOfWindow, b.Seq, 0, coa, anchored)
		return
	}
	if lifetime == 0 {
		x.anchors.Delete(anchored)
		x.mu.Lock()
		x.released[anchored] = releasedAnchor{key: b.Key, seq: m.Sequence, until: x.clk.Now().Add(releaseMemory)}
		x.mu.Unlock()
		x.sig.Add("ha2r.anchor.released", 1)
		x.state.Changed()
		x.log.Debug("anchor released", "care_of", anchored)
	} else {
		x.anchors.Put(Binding{Home: anchored, CareOf: coa, Seq: m.Sequence, Key: b.Key, Peer: b.Peer}, lifetime)
		x.state.Changed()
		if coa != anchored {
			x.r.ForgetNeighbour(anchored) // the node left the link
			x.sig.Add("ha2r.anchor.moved", 1)
		} else {
			x.sig.Add("ha2r.anchor.refreshed", 1)
		}
	}
	if m.Flags&mh.FlagA != 0 {
		x.sendAnchorBA(b.Key, mh.StatusAccepted, m.Sequence, lifetime, coa, anchored)
	}
}

// repeatedRelease answers a release for an anchor that is gone: if it was
// released lately with this key, the release is acknowledged again (the
// first acknowledgement was lost); anything else is dropped.
func (x *HA2R) repeatedRelease(info mh.PacketInfo, m *mh.Message, anchored, coa netip.Addr) {
	x.mu.Lock()
	r, ok := x.released[anchored]
	x.mu.Unlock()
	if !ok || m.Lifetime != 0 || !verifyBindingAuth(info, m, r.key, coa, info.Dst) {
		x.sig.Drop(DropBUNoAnchor)
		return
	}
	x.sig.Add("ha2r.anchor.release_repeated", 1)
	if m.Flags&mh.FlagA != 0 {
		x.sendAnchorBA(r.key, mh.StatusAccepted, m.Sequence, 0, coa, anchored)
	}
}

func (x *HA2R) sendAnchorBA(key []byte, status uint8, seq uint16, lifetime time.Duration, coa, anchored netip.Addr) {
	ba := &mh.Message{Type: mh.TypeBA, Status: status, Sequence: seq}
	ba.SetLifetime(lifetime)
	sign := bindingAuth(ba, key, coa, x.addr)
	a := mh.Addressing{Src: x.addr, Dst: coa}
	if coa != anchored {
		a.RoutedTo = anchored
	}
	out := mh.BuildPacket(a, 64, ba, sign)
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
	for coa, r := range x.released {
		if now.After(r.until) {
			delete(x.released, coa)
		}
	}
}

// Pending reports how many relayed MN Authentication Requests await their
// home agent's answer, and how many released anchors are remembered.
func (x *HA2R) Pending() (requests, released int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.pending), len(x.released)
}
