package mobility

import (
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/state"
)

// Protocol constants (RFC 6275 section 12) this package uses.
const (
	MaxRRBindingLifetime  = 420 * time.Second
	MaxNonceLifetime      = 240 * time.Second
	MaxTokenLifetime      = 210 * time.Second
	InitialBindackTimeout = time.Second
	InitialHomeBindack    = 1500 * time.Millisecond
	MaxBindackTimeout     = 32 * time.Second
	MaxUpdateRate         = 3 // Binding Updates per second to one destination
	DefaultHomeLifetime   = 420 * time.Second
	DefaultTimestampSkew  = 30 * time.Second
)

// MNCredential is a mobile node a home agent serves: its home address and
// its RFC 4285 MN-HA security association.
type MNCredential struct {
	Name string
	Home netip.Addr
	SPI  uint32
	Key  []byte
}

// HomeAgentConfig configures a home agent.
type HomeAgentConfig struct {
	MobileNodes []MNCredential
	// MaxLifetime caps granted home binding lifetimes (default 420 s).
	MaxLifetime time.Duration
	// TimestampWindow is how far a BU's identification timestamp may be
	// from the home agent's clock (RFC 4285 section 6; default 30 s).
	TimestampWindow time.Duration
	// MaxBindings bounds the binding cache (0: no limit); beyond it new
	// registrations get status 130.
	MaxBindings int
	// HA2Rs are the access routers whose MN Authentication Requests this
	// home agent answers (the paper's scheme).
	HA2Rs []HA2RPeer
	// Rand supplies MN-HA2R keys and seal nonces (crypto/rand by default).
	Rand interface{ Read([]byte) (int, error) }
	// State keeps the bindings, the RFC 4285 replay timestamps and the AH
	// sequence numbers across restarts (nil: nothing is kept, and a
	// restart loses every binding until its mobile node refreshes it).
	State state.Store
	Log   *slog.Logger
	// Bicast is how long after a binding moves to a new care-of address
	// the replaced one gets a copy of each packet (bicast.go; 0: off).
	Bicast time.Duration
}

// haState is what a home agent saves.
type haState struct {
	Bindings []savedBinding                  `json:"bindings"`
	Replay   map[uint32][numMNHAKinds]uint64 `json:"replay_timestamps"` // by SPI
	AHSeq    map[netip.Addr]uint32           `json:"ah_sequence"`       // by HA2R
}

// HomeAgent is the home agent of RFC 6275 on a router: home registration
// with RFC 4285 authentication, a binding cache, interception of packets for
// registered home addresses and the bidirectional tunnel to their care-of
// addresses. With HA2Rs configured it also authenticates mobile nodes to
// those access routers (mnauth.go).
type HomeAgent struct {
	cfg    HomeAgentConfig
	r      RouterPort
	addr   netip.Addr
	clk    clock.Clock
	log    *slog.Logger
	sig    *Signals
	errs   *errorReplies
	tunnel *tunnelEntry
	cache  *BindingCache
	home   []netip.Prefix // prefixes of the home links served

	mu     sync.Mutex
	bySPI  map[uint32]*mnRecord
	byHome map[netip.Addr]*mnRecord
	mnauth *haMNAuth
	state  *state.Saver

	stop      chan struct{}
	closeOnce sync.Once
}

// mnRecord is a mobile node the home agent serves.
type mnRecord struct {
	name string
	home netip.Addr
	cred mnhaCredential
	// lastTS is the last accepted identification timestamp of each kind
	// of message (under HomeAgent.mu): home Binding Updates and MN
	// Authentication Requests travel different paths (the latter through
	// an HA2R) and may arrive in another order than they were sent, and
	// an authenticator binds the message type, so one cannot replay as
	// the other.
	lastTS  [numMNHAKinds]uint64
	lastBRR time.Time // the last Binding Refresh Request sent (under mu)
}

// mnhaKind is a kind of MN-HA authenticated message, for replay checks.
type mnhaKind uint8

const (
	kindHomeBU mnhaKind = iota
	kindMNAuth
	numMNHAKinds
)

// NewHomeAgent installs a home agent on r.
func NewHomeAgent(r RouterPort, sig *Signals, cfg HomeAgentConfig) (*HomeAgent, error) {
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultHomeLifetime
	}
	if cfg.TimestampWindow == 0 {
		cfg.TimestampWindow = DefaultTimestampSkew
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ha := &HomeAgent{
		cfg: cfg, r: r, addr: r.Address(), clk: r.Clock(), log: cfg.Log.With("node", r.Name(), "role", "ha"),
		sig: sig, cache: NewBindingCache(r.Clock(), cfg.MaxBindings), bySPI: map[uint32]*mnRecord{}, byHome: map[netip.Addr]*mnRecord{},
		stop: make(chan struct{}),
	}
	ha.errs = newErrorReplies(r.Address, r.Send, ha.clk, sig)
	ha.tunnel = newTunnelEntry(r, sig)
	ha.cache.Bicast = min(cfg.Bicast, MaxBicast)
	for _, l := range r.Links() {
		ha.home = append(ha.home, l.Prefix)
	}
	for _, c := range cfg.MobileNodes {
		if _, dup := ha.bySPI[c.SPI]; dup {
			return nil, errors.New("mobility: two mobile nodes share SPI " + strconv.Itoa(int(c.SPI)))
		}
		rec := &mnRecord{name: c.Name, home: c.Home, cred: mnhaCredential{spi: c.SPI, key: c.Key}}
		ha.bySPI[c.SPI] = rec
		ha.byHome[c.Home] = rec
	}
	if len(cfg.HA2Rs) > 0 {
		ha.mnauth = newHAMNAuth(ha, cfg.HA2Rs)
	}
	if err := ha.restore(); err != nil {
		return nil, err
	}
	ha.cache.OnExpire = func(b Binding) {
		ha.sig.Add("ha.binding.expired", 1)
		ha.state.Changed()
		ha.log.Info("home binding expired", "home", b.Home, "care_of", b.CareOf)
	}
	every(ha.clk, time.Second, ha.stop, func() {
		ha.cache.Sweep()
		ha.state.Flush()
	})
	r.SetHook(ha)
	return ha, nil
}

// restore takes up the state a previous run saved, and saves from now on.
func (ha *HomeAgent) restore() error {
	if ha.cfg.State == nil {
		return nil
	}
	var st haState
	if err := state.Load(ha.cfg.State, &st); err != nil {
		return err
	}
	ha.state = state.NewSaver(ha.cfg.State, ha.snapshot, func(err error) {
		ha.log.Error("saving state", "err", err)
	})
	n := restoreBindings(ha.cache, st.Bindings)
	for spi, ts := range st.Replay {
		if rec := ha.bySPI[spi]; rec != nil {
			rec.lastTS = ts
		}
	}
	if ha.mnauth != nil {
		ha.mnauth.ah.resume(st.AHSeq, ha.state.Now)
	}
	if n > 0 {
		ha.sig.Add("ha.binding.restored", uint64(n))
		ha.log.Info("bindings restored", "count", n)
	}
	return nil
}

func (ha *HomeAgent) snapshot() any {
	st := haState{Bindings: saveBindings(ha.cache), Replay: map[uint32][numMNHAKinds]uint64{}}
	ha.mu.Lock()
	for spi, rec := range ha.bySPI {
		if rec.lastTS != [numMNHAKinds]uint64{} {
			st.Replay[spi] = rec.lastTS
		}
	}
	ha.mu.Unlock()
	if ha.mnauth != nil {
		st.AHSeq = ha.mnauth.ah.reservations()
	}
	return st
}

// Close stops the home agent's timers and saves its state.
func (ha *HomeAgent) Close() {
	ha.closeOnce.Do(func() {
		close(ha.stop)
		ha.state.Now()
	})
}

// Bindings returns the binding cache.
func (ha *HomeAgent) Bindings() *BindingCache { return ha.cache }

func (ha *HomeAgent) isHome(a netip.Addr) bool {
	for _, p := range ha.home {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Forward intercepts packets for registered home addresses and tunnels them
// to the care-of address (RFC 6275 10.4.2), as proxy neighbour discovery
// would on a real home link.
func (ha *HomeAgent) Forward(p *overlay.Packet) overlay.Verdict {
	coa, also, ok := ha.cache.LookupBicast(p.Header().Dst())
	if !ok || ha.tunnel.ownTunnelled(p) {
		return overlay.Continue
	}
	if also.IsValid() {
		return ha.tunnel.forwardBicast(p, coa, also)
	}
	return ha.tunnel.forward(p, coa)
}

// Local handles what is addressed to the home agent: Mobility Header
// messages and the reverse tunnel.
func (ha *HomeAgent) Local(p *overlay.Packet, in *overlay.LinkConfig) overlay.Verdict {
	c, err := p.Chain()
	if err != nil {
		return overlay.Continue
	}
	if v, done := ha.tunnel.exit(p, c); done {
		return v
	}
	switch c.Upper {
	case ip6.ProtoIPv6:
		return ha.tunnel.untunnel(p, ha.cache, ha.bindingLost)
	case ip6.ProtoMH:
		if _, ok := c.Find(ip6.ProtoAH); ok && ha.mnauth != nil {
			ha.mnauth.handleRelayed(p.Data())
			return overlay.Consumed
		}
		ha.handleMH(p.Data())
		return overlay.Consumed
	}
	return overlay.Continue
}

// bindingLost answers a packet one of our mobile nodes sent through the
// reverse tunnel without a binding here (the home agent restarted and lost
// its state, or the binding expired) with a Binding Refresh Request,
// authenticated with the node's MN-HA key, to the care-of address it came
// from: the node registers again at once instead of at its next refresh.
// At most one a second per node, so that a forged packet makes the home
// agent send little.
func (ha *HomeAgent) bindingLost(home, coa netip.Addr) {
	now := ha.clk.Now()
	ha.mu.Lock()
	rec := ha.byHome[home]
	if rec == nil || now.Sub(rec.lastBRR) < time.Second {
		ha.mu.Unlock()
		return
	}
	rec.lastBRR = now
	ha.mu.Unlock()
	brr := &mh.Message{Type: mh.TypeBRR}
	sign := rec.cred.authenticate(brr, now, coa, home)
	// Straight to the care-of address: a Mobility Header other than a BA
	// never carries a type 2 routing header (RFC 6275 6.1).
	out := mh.BuildPacket(mh.Addressing{Src: ha.addr, Dst: coa}, 64, brr, sign)
	ha.sig.Sent("BRR.home", out)
	ha.r.Send(out)
}

// handleMH processes a Mobility Header message sent to the home agent.
func (ha *HomeAgent) handleMH(pkt []byte) {
	var m mh.Message
	info, ok := receiveMH(pkt, &m, ha.sig, ha.errs)
	if !ok {
		return
	}
	switch {
	case m.Type == mh.TypeBU && m.Flags&mh.FlagH != 0:
		ha.sig.Received(MsgName(&m, true), pkt)
		ha.homeRegistration(info, &m)
	case m.Type == mh.TypeExperimental && m.Subtype == mh.SubtypeMNAuthRequest:
		// MN Authentication Requests reach a home agent only through an
		// HA2R, under AH (handled above); one sent directly is refused.
		ha.sig.Received(MsgName(&m, false), pkt)
		ha.sig.Drop(DropMNAuthWithoutAH)
	default:
		ha.sig.Received(MsgName(&m, false), pkt)
		ha.sig.Drop(DropMHUnexpected)
	}
}

// homeRegistration processes a home registration Binding Update (RFC 6275
// 10.3.1) authenticated with the RFC 4285 MN-HA option.
//
// Reactions: a BU that cannot be authenticated (no option, unknown SPI, bad
// authenticator, stale or replayed timestamp) is dropped silently and
// counted: answering would let anyone make the home agent send packets. An
// authenticated BU that may not be honoured gets a Binding Acknowledgement
// with the RFC 6275 status: 129 (the SPI belongs to another home address),
// 132 (not on a home link of this agent), 130 (cache full), 135 (sequence
// number not newer, RFC 6275 9.5.1: also a retransmission of the BU that
// made the binding, whose acknowledgement was lost; the mobile node then
// continues from the number the BA carries).
func (ha *HomeAgent) homeRegistration(info mh.PacketInfo, m *mh.Message) {
	if !hasMNHA(m) {
		ha.sig.Drop(DropBUUnauthenticated)
		return
	}
	ha.mu.Lock()
	rec, ok := ha.bySPI[m.Options.Auth.SPI]
	ha.mu.Unlock()
	if !ok {
		ha.sig.Drop(DropBUUnknownSPI)
		return
	}
	home := info.HomeAddress
	if !home.IsValid() {
		home = info.Src // a mobile node at home deregisters from its home address
	}
	coa := info.Src
	if m.Options.Has(mh.OptAltCoA) {
		coa = m.Options.AltCoA
	}
	if !rec.cred.verify(info, m, coa, home) {
		ha.sig.Drop(DropBUBadAuthenticator)
		return
	}
	if !ha.fresh(rec, &m.Options, kindHomeBU) {
		ha.sig.Drop(DropBUReplayed)
		return
	}
	reply := func(status uint8, seq uint16, lifetime time.Duration) {
		if status == mh.StatusAccepted && m.Flags&mh.FlagA == 0 {
			return
		}
		ha.sendHomeBA(rec, status, seq, lifetime, coa, home)
	}
	switch {
	case rec.home != home:
		ha.sig.Drop(DropBUNotAuthorised)
		reply(mh.StatusAdminProhibited, m.Sequence, 0)
		return
	case !ha.isHome(home):
		reply(mh.StatusNotHomeSubnet, m.Sequence, 0)
		return
	}
	lifetime := min(m.LifetimeDuration(), ha.cfg.MaxLifetime)
	if b, ok := ha.cache.Get(home); ok && !mh.SeqNewer(m.Sequence, b.Seq) {
		ha.sig.Drop(DropBUSeqOutOfWindow)
		reply(mh.StatusSeqOutOfWindow, b.Seq, 0)
		return
	}
	if lifetime == 0 || coa == home {
		// Deregistration (RFC 6275 10.3.2): the mobile node is home.
		if _, had := ha.cache.Delete(home); had {
			ha.sig.Add("ha.binding.deleted", 1)
			ha.state.Changed()
		}
		ha.log.Info("home binding deleted", "home", home)
		reply(mh.StatusAccepted, m.Sequence, 0)
		return
	}
	if !ha.cache.Put(Binding{Home: home, CareOf: coa, Seq: m.Sequence, Peer: rec.name}, lifetime) {
		reply(mh.StatusInsufficientResources, m.Sequence, 0)
		return
	}
	ha.r.ForgetNeighbour(home) // from now on its packets are tunnelled, not sent on the home link
	ha.sig.Add("ha.binding.updated", 1)
	ha.state.Changed()
	ha.log.Debug("home binding", "home", home, "care_of", coa, "lifetime", lifetime)
	reply(mh.StatusAccepted, m.Sequence, lifetime)
}

// sendHomeBA sends a Binding Acknowledgement authenticated with the MN-HA
// key, through a type 2 routing header when the mobile node is away.
func (ha *HomeAgent) sendHomeBA(rec *mnRecord, status uint8, seq uint16, lifetime time.Duration, coa, home netip.Addr) {
	ba := &mh.Message{Type: mh.TypeBA, Status: status, Sequence: seq}
	ba.SetLifetime(lifetime)
	sign := rec.cred.authenticate(ba, ha.clk.Now(), coa, home)
	a := mh.Addressing{Src: ha.addr, Dst: coa}
	if coa != home {
		a.RoutedTo = home
	}
	out := mh.BuildPacket(a, 64, ba, sign)
	ha.sig.Sent(MsgName(ba, true), out)
	ha.r.Send(out)
}

// fresh reports whether a message's identification timestamp (RFC 4285
// section 6) is within the window and newer than the last one of its kind
// accepted from the mobile node, and if so remembers it.
func (ha *HomeAgent) fresh(rec *mnRecord, o *mh.Options, kind mnhaKind) bool {
	now := ha.clk.Now()
	ha.mu.Lock()
	defer ha.mu.Unlock()
	if !o.Has(mh.OptMsgID) || !auth.Fresh(o.Timestamp, now, ha.cfg.TimestampWindow) || o.Timestamp <= rec.lastTS[kind] {
		return false
	}
	rec.lastTS[kind] = o.Timestamp
	ha.state.Changed()
	return true
}
