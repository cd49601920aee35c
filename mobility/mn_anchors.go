package mobility

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/tun"
)

// anchorSet is the mobile node's side of the paper's scheme (its sections 3
// and 4): on attaching to an HA2R it authenticates to it through its home
// agent and gets an MN-HA2R key; after a move, the HA2R of each older
// care-of address that still carries traffic tunnels it to the new one;
// an anchor whose address has gone idle is released.
type anchorSet struct {
	clk      clock.Clock
	sig      *Signals
	log      *slog.Logger
	home, ha netip.Addr
	prefix   netip.Prefix
	cred     mnhaCredential
	dev      tun.Device        // nil in engine tests
	send     func([]byte) bool // to the current router, as it is
	ha2r     map[string]bool   // access links whose routers are HA2Rs
	idle     time.Duration
	lazy     bool                 // MN Authentication on the first session, not on attach
	onReady  func()               // the current care-of address was authenticated
	onLost   func(coa netip.Addr) // an anchor's HA2R stopped answering (under mu)

	mu      sync.Mutex
	anchors map[netip.Addr]*anchorRec // by care-of address
	// releasing are anchors whose release awaits its acknowledgement; a
	// new anchor for the same address (back on its link) may exist beside.
	releasing map[netip.Addr]*anchorRec
	cur       netip.Addr // the current care-of address
	seq       uint16
	closed    bool
	stop      chan struct{}

	view atomic.Pointer[anchorView]
}

// anchorView is what the data path reads, without locks.
type anchorView struct {
	tunnelled map[netip.Addr]netip.Addr    // old care-of address -> its HA2R
	ha2rs     map[netip.Addr]bool          // HA2Rs we accept tunnels from
	active    map[netip.Addr]*atomic.Int64 // last traffic per care-of address
	ready     map[netip.Addr]bool          // care-of addresses authenticated at their HA2R
	recs      map[netip.Addr]*anchorRec    // tunnelled anchors, for their traffic clocks
	// lazyPending: the current address's authentication waits for the
	// first session.
	lazyPending bool
	// current is the address of the link the anchors were last moved to:
	// during a make-before-break move, the prepared link's, while the
	// node's traffic still leaves by the old one.
	current netip.Addr
}

type anchorState uint8

const (
	anchorAuthPending anchorState = iota // MN Authentication Request sent
	anchorReady                          // key held; the care-of address is local or tunnelled
	anchorRefused
	anchorReleasing // release BU sent, waiting for its acknowledgement (in releasing)
)

// anchorRec is the mobile node's record of one care-of address and the
// HA2R that anchors it.
type anchorRec struct {
	coa        netip.Addr
	link       string
	routerLL   netip.Addr // where the MN Authentication Request goes
	ha2r       netip.Addr // the HA2R's address, learned from its reply
	key        []byte
	state      anchorState
	tunnel     bool // the HA2R acknowledged a binding to another care-of address
	authSeq    uint16
	seq        uint16 // of the last Binding Update sent to the HA2R
	awaiting   bool   // a Binding Update is unacknowledged
	buLifetime time.Duration
	expires    time.Time
	lastActive atomic.Int64
	rt         retransmitter
	// Liveness of a tunnelled anchor: when the node last sent through its
	// HA2R, and last heard through it (a tunnelled packet, or a BA); a
	// probe is a refresh sent when the node sends but hears nothing.
	lastSent, lastHeard atomic.Int64
	probing             bool
	lastProbe           time.Time
}

// Probing a tunnelled anchor: when the node has sent through it lately but
// heard nothing through it for probeSilence, it refreshes the
// binding with a quick schedule (probeSends sends, probeInitial apart and
// doubling); unanswered, the HA2R is taken for dead (about 3.5 s after the
// probe) and the anchor dropped, so that the node's calls on the address
// move with a re-INVITE. An answered probe is not repeated for probeEvery.
const (
	probeSilence = 2 * time.Second
	probeInitial = 500 * time.Millisecond
	probeSends   = 3
	probeEvery   = 10 * time.Second
)

// maxAnchorSends bounds how often an unanswered MN Authentication Request
// or anchor Binding Update is sent before the anchor is given up.
const maxAnchorSends = 6

func (a *anchorRec) stateName(current bool) string {
	switch {
	case a.state == anchorAuthPending:
		return "authenticating"
	case a.state == anchorRefused:
		return "refused"
	case a.state == anchorReleasing:
		return "releasing"
	case current:
		return "local"
	case a.tunnel:
		return "tunnelled"
	}
	return "binding"
}

func newAnchorSet(clk clock.Clock, sig *Signals, log *slog.Logger, dev tun.Device, send func([]byte) bool, cfg *MobileNodeConfig) *anchorSet {
	s := &anchorSet{clk: clk, sig: sig, log: log, home: cfg.Home, ha: cfg.HomeAgent, prefix: cfg.HomePrefix,
		cred: mnhaCredential{spi: cfg.SPI, key: cfg.Key}, dev: dev, send: send, ha2r: cfg.HA2RLinks,
		idle: cfg.AnchorIdle, lazy: cfg.MNAuthOnFirstSession, anchors: map[netip.Addr]*anchorRec{},
		releasing: map[netip.Addr]*anchorRec{}, seq: randomSeq(),
		stop: make(chan struct{})}
	s.publish()
	every(clk, time.Second, s.stop, s.upkeep)
	return s
}

// publish rebuilds the data path's view. Call with mu held.
func (s *anchorSet) publish() {
	v := &anchorView{tunnelled: map[netip.Addr]netip.Addr{}, ha2rs: map[netip.Addr]bool{},
		active: map[netip.Addr]*atomic.Int64{}, ready: map[netip.Addr]bool{}, recs: map[netip.Addr]*anchorRec{}, current: s.cur}
	for coa, a := range s.anchors {
		if a.ha2r.IsValid() {
			v.ha2rs[a.ha2r] = true
		}
		v.active[coa] = &a.lastActive
		if a.state == anchorReady {
			v.ready[coa] = true
			// Through the tunnel from the moment the Binding Update is out,
			// not only once it is acknowledged: the HA2R takes what arrives
			// after the update, and what arrives before costs nothing
			// (under loss, waiting for the BA stopped one direction of a
			// call for as long as the BAs were lost).
			if (a.tunnel || a.awaiting) && coa != s.cur {
				v.tunnelled[coa] = a.ha2r
				v.recs[coa] = a
			}
		}
	}
	for _, a := range s.releasing {
		v.ha2rs[a.ha2r] = true // its acknowledgement is still to come
	}
	if a := s.anchors[s.cur]; a != nil && a.state == anchorAuthPending && !a.rt.pending() {
		v.lazyPending = true
	}
	s.view.Store(v)
}

// moved runs the scheme's part of a move to cur (the care-of address on
// the new link; a home address when home).
func (s *anchorSet) moved(cur overlay.Attachment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	prev := s.cur
	s.cur = cur.Address
	now := s.clk.Now()
	// Back under the router that handed this address out, with its key
	// still held: the anchor points at the address itself again (the HA2R
	// stops tunnelling it) and no new authentication is needed.
	back := s.anchors[cur.Address]
	if back != nil && back.state != anchorReady {
		back = nil
	}
	for coa, a := range s.anchors {
		switch {
		case coa == cur.Address:
		case a.state != anchorReady:
			// An authentication or refusal for a link we left: forget it.
			a.rt.reset()
			delete(s.anchors, coa)
			s.dropAddress(coa)
		case now.Sub(time.Unix(0, a.lastActive.Load())) > s.idle:
			s.release(a) // nothing uses it: release instead of tunnelling
		default:
			s.bind(a, a.lifetimeOr())
		}
	}
	s.addresses(prev, cur.Address)
	if back != nil {
		s.bind(back, back.lifetimeOr())
		s.publish()
		s.preferCareOf(back.coa)
		return
	}
	if s.ha2r[cur.Link.Name] && !s.prefix.Contains(cur.Address) {
		if old := s.anchors[cur.Address]; old != nil {
			old.rt.reset() // an unfinished authentication here: start afresh
		}
		a := &anchorRec{coa: cur.Address, link: cur.Link.Name, routerLL: cur.RouterLL,
			rt: newRetransmitter(s.clk, InitialBindackTimeout, maxAnchorSends)}
		a.lastActive.Store(now.UnixNano())
		s.anchors[cur.Address] = a
		if !s.lazy {
			s.seq++
			s.authenticate(a)
		}
	}
	s.publish()
}

// settled reports whether a move to next can go ahead without loss: every
// old address's anchor binding is acknowledged, and next's HA2R (if it is
// one) has authenticated the node.
func (s *anchorSet) settled(next overlay.Attachment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for coa, a := range s.anchors {
		switch {
		case coa == next.Address:
			if a.state != anchorReady {
				return false
			}
		case a.state == anchorReady && a.awaiting:
			return false
		}
	}
	return true
}

// addresses keeps the device's addresses in step with a move from prev to
// cur. New sessions use the care-of address only once the node is
// authenticated at the HA2R that handed it out (the paper's order of
// steps 2 and 3): until then, on a router that is no HA2R, and at home, the
// home address is the preferred one. Older care-of addresses stay on the
// device, not preferred, while an anchor keeps them alive.
func (s *anchorSet) addresses(prev, cur netip.Addr) {
	if s.dev == nil || !cur.IsValid() {
		return
	}
	if !s.prefix.Contains(cur) {
		s.dev.AddAddress(netip.PrefixFrom(cur, 128), false)
	}
	s.dev.SetPreferred(s.home, true)
	for coa := range s.anchors {
		if coa != cur {
			s.dev.SetPreferred(coa, false)
		}
	}
	if prev.IsValid() && prev != cur && s.anchors[prev] == nil {
		s.dropAddress(prev) // no anchor to keep it alive
	}
}

// preferCareOf makes the current care-of address the source of new
// sessions once it is authenticated. Call with mu held.
func (s *anchorSet) preferCareOf(coa netip.Addr) {
	if s.dev != nil {
		s.dev.SetPreferred(coa, true)
		s.dev.SetPreferred(s.home, false)
	}
	if s.onReady != nil {
		s.onReady()
	}
}

func (a *anchorRec) lifetimeOr() time.Duration {
	if a.buLifetime > 0 {
		return a.buLifetime
	}
	return DefaultAnchorLifetime
}

func (s *anchorSet) dropAddress(a netip.Addr) {
	if s.dev != nil && a != s.home {
		s.dev.RemoveAddress(a)
	}
}

// authenticate sends (or, with the same sequence number, resends) the MN
// Authentication Request for anchor a to its router. Call with mu held.
func (s *anchorSet) authenticate(a *anchorRec) {
	a.authSeq = s.seq
	a.state = anchorAuthPending
	req := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: a.authSeq, Flags: mh.FlagA}
	req.SetLifetime(DefaultAnchorLifetime)
	req.Options.Set(mh.OptAltCoA)
	req.Options.AltCoA = a.coa
	req.Options.AddExpAddr(mh.ExpHAAddress, s.ha)
	req.Options.AddExpAddr(mh.ExpHomeAddr, s.home)
	sign := s.cred.authenticate(req, s.clk.Now(), a.coa, s.home)
	pkt := mh.BuildPacket(mh.Addressing{Src: a.coa, Dst: a.routerLL}, 64, req, sign)
	s.sig.Sent("MNAuthReq", pkt)
	s.send(pkt)
	s.arm(a, func() { s.authenticate(a) })
}

// arm retransmits with back-off until resend's message is answered; after
// maxAnchorSends the anchor is given up.
func (s *anchorSet) arm(a *anchorRec, resend func()) {
	a.rt.sent(func(gen uint64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || !s.holds(a) || !a.rt.current(gen) {
			return
		}
		// An old address whose anchor stops answering (a probe, or the
		// binding after a move) while sessions use it: its calls move to
		// the current address. One still idle is just given up.
		if a.rt.exhausted() && (a.probing || (a.coa != s.cur && a.state != anchorReleasing && s.inUse(a))) {
			s.lost(a)
			return
		}
		if a.rt.exhausted() {
			s.sig.Add("anchor.gave_up", 1)
			if a.state == anchorReleasing {
				delete(s.releasing, a.coa)
			} else {
				a.state = anchorRefused
			}
			a.rt.reset()
			a.awaiting = false
			s.publish()
			return
		}
		s.sig.Add("anchor.retransmit", 1)
		resend()
	})
}

// inUse reports whether sessions used a's address within the idle time.
func (s *anchorSet) inUse(a *anchorRec) bool {
	return s.clk.Now().Sub(time.Unix(0, a.lastActive.Load())) <= s.idle
}

// holds reports whether a is still one of the set's records.
func (s *anchorSet) holds(a *anchorRec) bool {
	return s.anchors[a.coa] == a || s.releasing[a.coa] == a
}

// authReply takes the MN Authentication Reply the HA2R passed on.
func (s *anchorSet) authReply(info mh.PacketInfo, m *mh.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &m.Options
	a := s.anchors[o.AltCoA]
	if a == nil || a.state != anchorAuthPending || m.Sequence != a.authSeq {
		s.sig.Drop(DropMNAuthUnexpectedReply)
		return
	}
	if m.Status != mh.StatusAccepted {
		// An unauthenticated refusal can only end the retries early.
		s.sig.Add("mnauth.refused", 1)
		a.state = anchorRefused
		a.rt.reset()
		s.publish()
		return
	}
	if !s.cred.verify(info, m, a.coa, s.home) {
		s.sig.Drop(DropMNAuthBadReply)
		return
	}
	sealed, ok := o.Exp(mh.ExpKeyForMN)
	if !ok {
		s.sig.Drop(DropMNAuthNoKey)
		return
	}
	key, err := auth.OpenKey(s.cred.key, auth.ForMN, s.home, a.coa, m.Sequence, sealed)
	if err != nil {
		s.sig.Drop(DropMNAuthKeyDoesNotOpen)
		return
	}
	lifetime := m.LifetimeDuration()
	a.key, a.ha2r, a.state, a.expires, a.buLifetime = key, info.Src, anchorReady, s.clk.Now().Add(lifetime), lifetime
	a.seq = a.authSeq // the HA2R's anchor starts from the request's number
	a.rt.reset()
	s.sig.Add("mnauth.completed", 1)
	s.publish()
	if a.coa == s.cur {
		s.preferCareOf(a.coa)
	}
}

// bind points anchor a's care-of address at the current one at its HA2R
// (or refreshes a local one), authorised with the MN-HA2R key in place of
// Kbm. At home the current address is the home address: the HA2R then
// tunnels to it, and sessions on old care-of addresses go on from home.
// Call with mu held.
func (s *anchorSet) bind(a *anchorRec, lifetime time.Duration) {
	if !s.cur.IsValid() {
		return
	}
	a.seq++
	a.rt.reset()
	s.sendBU(a, lifetime)
}

// release deregisters an anchor (a Binding Update with lifetime 0,
// retransmitted until acknowledged) and forgets its care-of address.
// Call with mu held.
func (s *anchorSet) release(a *anchorRec) {
	delete(s.anchors, a.coa)
	a.state = anchorReleasing
	a.seq++
	a.rt.reset()
	if a.coa != s.cur {
		s.dropAddress(a.coa)
	}
	s.sig.Add("anchor.released", 1)
	if !s.cur.IsValid() {
		return // nowhere to send from: the anchor lapses at its HA2R
	}
	if old := s.releasing[a.coa]; old != nil {
		old.rt.reset()
	}
	s.releasing[a.coa] = a
	s.sendBU(a, 0)
	s.publish()
}

// sendBU sends (or resends) anchor a's Binding Update of sequence a.seq
// from the current care-of address. Call with mu held.
func (s *anchorSet) sendBU(a *anchorRec, lifetime time.Duration) {
	cur := s.cur
	bu := &mh.Message{Type: mh.TypeBU, Sequence: a.seq, Flags: mh.FlagA | mh.FlagH}
	bu.SetLifetime(lifetime)
	sign := bindingAuth(bu, a.key, cur, a.ha2r)
	pkt := mh.BuildPacket(mh.Addressing{Src: cur, Dst: a.ha2r, HomeAddress: a.coa}, 64, bu, sign)
	s.sig.Sent("BU.anchor", pkt)
	s.send(pkt)
	a.awaiting = true
	s.arm(a, func() { s.sendBU(a, lifetime) })
}

// ack takes an HA2R's Binding Acknowledgement.
func (s *anchorSet) ack(info mh.PacketInfo, m *mh.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	anchored := info.RoutedTo
	if !anchored.IsValid() {
		anchored = info.Dst
	}
	a := s.anchors[anchored]
	if r := s.releasing[anchored]; r != nil && m.Sequence == r.seq {
		a = r
	}
	if a == nil || a.key == nil || !a.awaiting || m.Sequence != a.seq {
		s.sig.Drop(DropAnchorUnexpectedBA)
		return
	}
	if !verifyBindingAuth(info, m, a.key, info.Dst, info.Src) {
		s.sig.Drop(DropAnchorBadBA)
		return
	}
	a.awaiting = false
	a.rt.reset()
	a.lastHeard.Store(s.clk.Now().UnixNano())
	if a.probing {
		a.probing = false
		a.rt = newRetransmitter(s.clk, InitialBindackTimeout, maxAnchorSends)
	}
	if m.Status == mh.StatusSeqOutOfWindow {
		// The HA2R holds a newer number (RFC 6275 9.5.1): continue from it.
		lifetime := a.lifetimeOr()
		if a.state == anchorReleasing {
			lifetime = 0
		}
		a.seq = m.Sequence + 1
		s.sendBU(a, lifetime)
		return
	}
	if a.state == anchorReleasing {
		delete(s.releasing, a.coa)
		s.sig.Add("anchor.release_acknowledged", 1)
		s.publish()
		return
	}
	if m.Status != mh.StatusAccepted {
		s.sig.Add("anchor.refused", 1)
		return
	}
	a.expires = s.clk.Now().Add(m.LifetimeDuration())
	a.tunnel = a.coa != s.cur
	s.sig.Add("anchor.bound", 1)
	s.publish()
}

// upkeep releases anchors whose sessions ended and refreshes the rest
// before they expire.
func (s *anchorSet) upkeep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.clk.Now()
	changed := false
	for coa, a := range s.anchors {
		if a.state != anchorReady || a.awaiting {
			continue
		}
		if coa != s.cur && now.Sub(time.Unix(0, a.lastActive.Load())) > s.idle {
			s.release(a)
			changed = true
			continue
		}
		if now.After(a.expires.Add(-a.lifetimeOr() + refreshAfter(a.lifetimeOr()))) {
			s.sig.Add("anchor.refresh", 1)
			s.bind(a, a.lifetimeOr())
		}
	}
	for coa, a := range s.anchors {
		if a.state == anchorReady && a.tunnel && coa != s.cur && !a.awaiting && s.silent(a, now) {
			a.probing, a.lastProbe = true, now
			a.rt = newRetransmitter(s.clk, probeInitial, probeSends)
			s.sig.Add("anchor.probe", 1)
			s.bind(a, a.lifetimeOr())
		}
	}
	if changed {
		s.publish()
	}
}

// silent reports whether the node sends through tunnelled anchor a but has
// heard nothing through it for probeSilence (and has not probed lately).
func (s *anchorSet) silent(a *anchorRec, now time.Time) bool {
	since := func(t int64) time.Duration { return now.Sub(time.Unix(0, t)) }
	return since(a.lastSent.Load()) < probeSilence && since(a.lastHeard.Load()) > probeSilence && now.Sub(a.lastProbe) > probeEvery
}

// lost drops an anchor whose HA2R did not answer its probe: the address is
// gone (packets from it would go nowhere), and the node's calls on it are
// told to move. Call with mu held.
func (s *anchorSet) lost(a *anchorRec) {
	s.sig.Add("anchor.lost", 1)
	s.log.Warn("the HA2R anchoring an old care-of address does not answer: dropping it", "care_of", a.coa, "ha2r", a.ha2r)
	a.rt.reset()
	delete(s.anchors, a.coa)
	s.dropAddress(a.coa)
	s.publish()
	if f := s.onLost; f != nil {
		go f(a.coa)
	}
}

// careOfRoute decides a packet from a care-of address src when the node is
// at cur: the current one goes out directly; an older one that its HA2R
// anchors is tunnelled to that HA2R so the session keeps its address; any
// other is dropped.
func (s *anchorSet) careOfRoute(src, cur netip.Addr) (netip.Addr, bool) {
	v := s.view.Load()
	if act := v.active[src]; act != nil {
		act.Store(s.clk.Now().UnixNano())
	}
	if src == cur {
		s.firstSession()
		return netip.Addr{}, true
	}
	if src == v.current {
		// The address of a link being prepared: it leaves by that link as
		// it is (the host picks the link by source).
		return netip.Addr{}, true
	}
	ha2r, ok := v.tunnelled[src]
	if ok {
		v.recs[src].lastSent.Store(s.clk.Now().UnixNano())
	}
	return ha2r, ok
}

// heard notes a packet for old care-of address dst that came through its
// HA2R's tunnel.
func (s *anchorSet) heard(tunnelledBy, dst netip.Addr) {
	if a := s.view.Load().recs[dst]; a != nil && a.ha2r == tunnelledBy {
		a.lastHeard.Store(s.clk.Now().UnixNano())
	}
}

// firstSession starts the MN Authentication that was put off until the
// node's first session after attaching (mn_auth: first_session).
func (s *anchorSet) firstSession() {
	if !s.lazy || !s.view.Load().lazyPending {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.anchors[s.cur]; a != nil && a.state == anchorAuthPending && !a.rt.pending() {
		s.seq++
		s.authenticate(a)
		s.publish()
	}
}

// noteActivity records inbound traffic on a care-of address.
func (s *anchorSet) noteActivity(dst netip.Addr) {
	if act := s.view.Load().active[dst]; act != nil {
		act.Store(s.clk.Now().UnixNano())
	}
}

// docs describes the anchors for status output.
func (s *anchorSet) docs() []AnchorDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clk.Now()
	var out []AnchorDoc
	for _, set := range []map[netip.Addr]*anchorRec{s.anchors, s.releasing} {
		for coa, a := range set {
			out = append(out, AnchorDoc{CareOf: coa, HA2R: a.ha2r, State: a.stateName(coa == s.cur), Expires: a.expires,
				IdleSecs: now.Sub(time.Unix(0, a.lastActive.Load())).Seconds()})
		}
	}
	return out
}

func (s *anchorSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, a := range s.anchors {
		a.rt.reset()
	}
	for _, a := range s.releasing {
		a.rt.reset()
	}
	close(s.stop)
}
