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
}

type roState uint8

const (
	roTesting roState = iota // HoTI/CoTI sent, waiting for HoT/CoT
	roBUSent                 // BU sent, waiting for its BA
	roBound                  // the peer holds our binding: route-optimised
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
	v := &rrView{bound: map[netip.Addr]bool{}, started: map[netip.Addr]bool{}}
	for peer, e := range rr.peers {
		v.started[peer] = true
		if e.state == roBound {
			v.bound[peer] = true
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
// keygen token that is still fresh is reused (5.2.7). At home, route
// optimisation ends (the entries go; deregistration at correspondents is
// the home-return rule).
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
	if !coa.IsValid() || atHome {
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

// sendTests sends the HoTI (through the home agent) and the CoTI (directly)
// that are still needed, and arms the retransmission timer. Call with mu.
func (rr *returnRoutability) sendTests(e *roEntry) {
	if !e.haveHome {
		rand.Read(e.homeCookie[:])
		hoti := &mh.Message{Type: mh.TypeHoTI, Cookie: e.homeCookie}
		pkt := mh.BuildPacket(mh.Addressing{Src: rr.home, Dst: e.peer}, 64, hoti, nil)
		rr.sig.Sent("HoTI", pkt)
		rr.output(pkt) // from the home address: reverse-tunnelled
	}
	if !e.haveCoA {
		rand.Read(e.coaCookie[:])
		coti := &mh.Message{Type: mh.TypeCoTI, Cookie: e.coaCookie}
		e.coaFor, _ = rr.careOf()
		pkt := mh.BuildPacket(mh.Addressing{Src: e.coaFor, Dst: e.peer}, 64, coti, nil)
		rr.sig.Sent("CoTI", pkt)
		rr.send(pkt)
	}
	rr.arm(e, roTesting, rr.sendTests)
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
	if e == nil || e.state != roTesting {
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
		rr.arm(e, roBUSent, rr.sendBU)
		return
	}
	e.buSent = append(e.buSent, now)
	bu := &mh.Message{Type: mh.TypeBU, Sequence: e.seq, Flags: mh.FlagA}
	bu.SetLifetime(MaxRRBindingLifetime)
	bu.Options.Set(mh.OptNonceIndices)
	bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = e.homeIdx, e.coaIdx
	sign := bindingAuth(bu, e.kbm[:], e.coaFor, e.peer)
	pkt := mh.BuildPacket(mh.Addressing{Src: e.coaFor, Dst: e.peer, HomeAddress: rr.home}, 64, bu, sign)
	rr.sig.Sent("BU", pkt)
	rr.send(pkt)
	rr.arm(e, roBUSent, rr.sendBU)
}

// ack takes a correspondent's Binding Acknowledgement.
func (rr *returnRoutability) ack(info mh.PacketInfo, m *mh.Message) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	e := rr.peers[info.Src]
	if e == nil || e.state != roBUSent {
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
		e.state = roTesting
		e.rt.reset()
		rr.sendTests(e)
		return
	}
	if !verifyBindingAuth(info, m, e.kbm[:], e.coaFor, info.Src) {
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
	}
	e.state = roBound
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
