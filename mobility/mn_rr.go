package mobility

import (
	"crypto/rand"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// returnRoutability is the standard scheme's Return Routability initiator
// and route optimisation (RFC 6275 11.6, 11.7.2): a binding update list
// entry per correspondent, each with its tests, its Binding Update, its
// retransmissions and its refresh.
type returnRoutability struct {
	clk      clock.Clock
	sig      *Signals
	home, ha netip.Addr
	// careOf is the current care-of address and whether the node is home.
	careOf func() (netip.Addr, bool)
	send   func([]byte) bool // to the current router, as it is
	output func([]byte)      // through the mobile node's policy (tunnelled)

	mu     sync.Mutex
	peers  map[netip.Addr]*roEntry
	closed bool

	view atomic.Pointer[rrView]
}

// rrView is what the data path reads, without locks; replaced on change.
type rrView struct {
	bound   map[netip.Addr]bool // peers holding our binding: send route-optimised
	started map[netip.Addr]bool // peers with Return Routability under way or done
	// held: peers that still hold a binding to an earlier care-of address
	// while the one for the current address is under way (after a move).
	held map[netip.Addr]heldBinding
}

type heldBinding struct {
	careOf netip.Addr
	until  time.Time
}

type roState uint8

const (
	roTesting       roState = iota // HoTI/CoTI sent, waiting for HoT/CoT
	roBUSent                       // BU sent, waiting for its BA
	roBound                        // the peer holds our binding: route-optimised
	roDeregistering                // home again: HoTI or a BU of lifetime 0 sent
)

// roEntry is a binding update list entry for a correspondent.
type roEntry struct {
	peer                  netip.Addr
	state                 roState
	homeCookie, coaCookie [8]byte
	homeTok, coaTok       [auth.TokenLen]byte
	homeIdx, coaIdx       uint16
	haveHome, haveCoA     bool
	homeAt                time.Time
	coaFor                netip.Addr // the care-of address the care-of token is for
	held                  netip.Addr // the care-of address the peer last acknowledged (until expires)
	seq                   uint16
	kbm                   [auth.KbmLen]byte
	expires               time.Time
	buSent                []time.Time // for MAX_UPDATE_RATE
	rt                    retransmitter
	refresh               schedule
}

// maxRRSends bounds how often an unanswered test or Binding Update is sent
// before the entry is dropped (a later trigger may start again).
const maxRRSends = 6

func newReturnRoutability(clk clock.Clock, sig *Signals, home, ha netip.Addr, careOf func() (netip.Addr, bool), send func([]byte) bool, output func([]byte)) *returnRoutability {
	rr := &returnRoutability{clk: clk, sig: sig, home: home, ha: ha, careOf: careOf, send: send, output: output, peers: map[netip.Addr]*roEntry{}}
	rr.publish()
	return rr
}

// publish rebuilds the data path's view. Call with mu held.
func (rr *returnRoutability) publish() {
	v := &rrView{bound: map[netip.Addr]bool{}, started: map[netip.Addr]bool{}, held: map[netip.Addr]heldBinding{}}
	for peer, e := range rr.peers {
		v.started[peer] = true
		if e.state == roBound {
			v.bound[peer] = true
		} else if e.held.IsValid() {
			v.held[peer] = heldBinding{careOf: e.held, until: e.expires}
		}
	}
	rr.view.Store(v)
}

// start starts Return Routability with peer unless it already runs.
func (rr *returnRoutability) start(peer netip.Addr) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	coa, atHome := rr.careOf()
	if rr.closed || rr.peers[peer] != nil || !coa.IsValid() || atHome {
		return
	}
	if peer == rr.home || peer == rr.ha || peer.IsMulticast() || peer.IsLinkLocalUnicast() || !peer.IsValid() {
		return
	}
	e := &roEntry{peer: peer, seq: randomSeq(), rt: newRetransmitter(rr.clk, InitialBindackTimeout, maxRRSends)}
	rr.peers[peer] = e
	rr.sig.Add("rr.started", 1)
	rr.publish()
	rr.sendTests(e)
}

// moved re-runs the tests of every entry after a move (11.7.2); a home
// keygen token that is still fresh is reused (5.2.7). At home, every peer
// that may hold our binding is deregistered (11.5.4).
func (rr *returnRoutability) moved() {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for _, e := range rr.peers {
		rr.rerun(e)
	}
	rr.publish()
}

// rerun restarts the tests for an entry. Call with mu held, then publish.
func (rr *returnRoutability) rerun(e *roEntry) {
	e.rt.reset()
	e.refresh.stop()
	coa, atHome := rr.careOf()
	switch {
	case atHome && (e.state == roBound || e.state == roBUSent || e.state == roDeregistering):
		rr.deregister(e)
		return
	case !coa.IsValid() || atHome:
		delete(rr.peers, e.peer)
		return
	}
	e.state = roTesting
	e.haveCoA = false
	if rr.clk.Now().Sub(e.homeAt) > MaxTokenLifetime {
		e.haveHome = false
	}
	rr.sendTests(e)
}

// deregister removes our binding at a peer once home (RFC 6275 11.5.4): a
// Binding Update of lifetime 0 from the home address, keyed with the home
// keygen token alone (5.2.5), after a fresh Home Test if the token is
// older than MAX_TOKEN_LIFETIME. Call with mu held.
func (rr *returnRoutability) deregister(e *roEntry) {
	e.state = roDeregistering
	e.haveCoA = false
	if e.haveHome && rr.clk.Now().Sub(e.homeAt) <= MaxTokenLifetime {
		e.kbm = auth.Kbm(e.homeTok, [auth.TokenLen]byte{}, true)
		e.seq++
		rr.sendBU(e)
		return
	}
	e.haveHome = false
	rr.sendTests(e)
}

// sendTests sends the HoTI (through the home agent) and the CoTI (directly)
// that are still needed, and arms the retransmission timer; deregistering,
// only the HoTI. Call with mu.
func (rr *returnRoutability) sendTests(e *roEntry) {
	if !e.haveHome {
		rand.Read(e.homeCookie[:])
		hoti := &mh.Message{Type: mh.TypeHoTI, Cookie: e.homeCookie}
		pkt := mh.BuildPacket(mh.Addressing{Src: rr.home, Dst: e.peer}, 64, hoti, nil)
		rr.sig.Sent("HoTI", pkt)
		rr.output(pkt) // from the home address: reverse-tunnelled
	}
	if !e.haveCoA && e.state != roDeregistering {
		rand.Read(e.coaCookie[:])
		coti := &mh.Message{Type: mh.TypeCoTI, Cookie: e.coaCookie}
		e.coaFor, _ = rr.careOf()
		pkt := mh.BuildPacket(mh.Addressing{Src: e.coaFor, Dst: e.peer}, 64, coti, nil)
		rr.sig.Sent("CoTI", pkt)
		rr.send(pkt)
	}
	rr.arm(e, e.state, rr.sendTests)
}

// arm schedules resend(e) with back-off while e stays in state; after
// maxRRSends the entry is dropped.
func (rr *returnRoutability) arm(e *roEntry, state roState, resend func(*roEntry)) {
	e.rt.sent(func(gen uint64) {
		rr.mu.Lock()
		defer rr.mu.Unlock()
		if rr.closed || rr.peers[e.peer] != e || e.state != state || !e.rt.current(gen) {
			return
		}
		if e.rt.exhausted() {
			rr.sig.Add("rr.gave_up", 1)
			delete(rr.peers, e.peer)
			rr.publish()
			return
		}
		rr.sig.Add("rr.retransmit", 1)
		resend(e)
	})
}

// testReply takes a Home Test or Care-of Test.
func (rr *returnRoutability) testReply(info mh.PacketInfo, m *mh.Message, careOf bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	e := rr.peers[info.Src]
	if e == nil || (e.state != roTesting && (e.state != roDeregistering || careOf || e.haveHome)) {
		rr.sig.Drop(DropRRUnexpectedTest)
		return
	}
	if careOf {
		if m.Cookie != e.coaCookie || info.Dst != e.coaFor {
			rr.sig.Drop(DropRRBadCookie)
			return
		}
		e.coaTok, e.coaIdx, e.haveCoA = m.Token, m.NonceIndex, true
	} else {
		if m.Cookie != e.homeCookie {
			rr.sig.Drop(DropRRBadCookie)
			return
		}
		e.homeTok, e.homeIdx, e.haveHome, e.homeAt = m.Token, m.NonceIndex, true, rr.clk.Now()
	}
	if e.state == roDeregistering {
		e.kbm = auth.Kbm(e.homeTok, e.coaTok, true)
		e.rt.reset()
		e.seq++
		rr.sendBU(e)
		return
	}
	if e.haveHome && e.haveCoA {
		e.kbm = auth.Kbm(e.homeTok, e.coaTok, false)
		e.state = roBUSent
		e.rt.reset()
		e.seq++
		rr.sendBU(e)
	}
}

// sendBU sends (or resends, with the same sequence number) the
// route-optimisation Binding Update. Call with mu.
func (rr *returnRoutability) sendBU(e *roEntry) {
	now := rr.clk.Now()
	// MAX_UPDATE_RATE (RFC 6275 11.8): at most 3 BUs a second to a peer.
	recent := e.buSent[:0]
	for _, t := range e.buSent {
		if now.Sub(t) < time.Second {
			recent = append(recent, t)
		}
	}
	e.buSent = recent
	if len(e.buSent) >= MaxUpdateRate {
		rr.sig.Add("rr.rate_limited", 1)
		rr.arm(e, e.state, rr.sendBU)
		return
	}
	e.buSent = append(e.buSent, now)
	bu := &mh.Message{Type: mh.TypeBU, Sequence: e.seq, Flags: mh.FlagA}
	bu.Options.Set(mh.OptNonceIndices)
	bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = e.homeIdx, e.coaIdx
	a := mh.Addressing{Src: e.coaFor, Dst: e.peer, HomeAddress: rr.home}
	careOf := e.coaFor
	if e.state == roDeregistering {
		// From the home address, lifetime 0, care-of address = home address.
		a, careOf = mh.Addressing{Src: rr.home, Dst: e.peer}, rr.home
	} else {
		bu.SetLifetime(MaxRRBindingLifetime)
	}
	sign := bindingAuth(bu, e.kbm[:], careOf, e.peer)
	pkt := mh.BuildPacket(a, 64, bu, sign)
	rr.sig.Sent("BU", pkt)
	rr.send(pkt)
	rr.arm(e, e.state, rr.sendBU)
}

// ack takes a correspondent's Binding Acknowledgement.
func (rr *returnRoutability) ack(info mh.PacketInfo, m *mh.Message) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	e := rr.peers[info.Src]
	if e == nil || (e.state != roBUSent && e.state != roDeregistering) {
		rr.sig.Drop(DropBAUnexpected)
		return
	}
	switch m.Status {
	case mh.StatusExpiredHomeNonce, mh.StatusExpiredCareOfNonce, mh.StatusExpiredNonces:
		// Unauthenticated by necessity; it only makes us test again.
		if m.Status != mh.StatusExpiredCareOfNonce {
			e.haveHome = false
		}
		if m.Status != mh.StatusExpiredHomeNonce {
			e.haveCoA = false
		}
		if e.state != roDeregistering {
			e.state = roTesting
		}
		e.rt.reset()
		rr.sendTests(e)
		return
	}
	careOf := e.coaFor
	if e.state == roDeregistering {
		careOf = rr.home
	}
	if !verifyBindingAuth(info, m, e.kbm[:], careOf, info.Src) {
		rr.sig.Drop(DropBABadAuthenticator)
		return
	}
	switch {
	case m.Status == mh.StatusSeqOutOfWindow:
		e.seq = m.Sequence + 1
		e.rt.reset()
		rr.sendBU(e)
		return
	case m.Sequence != e.seq:
		rr.sig.Drop(DropBAStale)
		return
	case m.Status >= 128:
		rr.sig.Add("rr.refused", 1)
		e.rt.reset()
		delete(rr.peers, e.peer)
		rr.publish()
		return
	case e.state == roDeregistering:
		rr.sig.Add("rr.deregistered", 1)
		e.rt.reset()
		delete(rr.peers, e.peer)
		rr.publish()
		return
	}
	e.state = roBound
	e.held = careOf
	e.rt.reset()
	lifetime := m.LifetimeDuration()
	e.expires = rr.clk.Now().Add(lifetime)
	rr.sig.Add("rr.completed", 1)
	rr.publish()
	if lifetime > 0 {
		e.refresh.at(rr.clk, refreshAfter(lifetime), func(gen uint64) {
			rr.mu.Lock()
			defer rr.mu.Unlock()
			if rr.closed || rr.peers[e.peer] != e || !e.refresh.current(gen) {
				return
			}
			rr.sig.Add("rr.refresh", 1)
			rr.rerun(e)
			rr.publish()
		})
	}
}

// refreshRequested answers a Binding Refresh Request (RFC 6275 11.7.4).
func (rr *returnRoutability) refreshRequested(peer netip.Addr) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if e := rr.peers[peer]; e != nil {
		rr.rerun(e)
		rr.publish()
	}
}

// fallBack drops the entry for peer: packets to it go through the tunnels
// again (a Binding Error, RFC 6275 11.3.6, or an ICMPv6 error about a
// route-optimised packet, 11.3.5 and the paper's step 9).
func (rr *returnRoutability) fallBack(peer netip.Addr) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if e := rr.peers[peer]; e != nil {
		e.rt.reset()
		e.refresh.stop()
		delete(rr.peers, peer)
		rr.sig.Add("ro.fallback", 1)
		rr.publish()
	}
}

// BULEntry is one binding update list entry for status output.
type BULEntry struct {
	Peer    netip.Addr `json:"peer"`
	State   string     `json:"state"`
	CareOf  netip.Addr `json:"care_of_address"`
	Seq     uint16     `json:"seq"`
	Expires time.Time  `json:"expires,omitempty"`
}

var roStateNames = [...]string{roTesting: "testing", roBUSent: "binding", roBound: "bound", roDeregistering: "deregistering"}

// entries describes the binding update list.
func (rr *returnRoutability) entries() []BULEntry {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out []BULEntry
	for p, e := range rr.peers {
		out = append(out, BULEntry{Peer: p, State: roStateNames[e.state], CareOf: e.coaFor, Seq: e.seq, Expires: e.expires})
	}
	return out
}

// boundPeers reports the peers route optimisation is done with.
func (rr *returnRoutability) boundPeers() []string {
	var out []string
	for p := range rr.view.Load().bound {
		out = append(out, p.String())
	}
	return out
}

func (rr *returnRoutability) close() {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.closed = true
	for _, e := range rr.peers {
		e.rt.reset()
		e.refresh.stop()
	}
}
