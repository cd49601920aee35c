package mobility

import (
	"crypto/rand"
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// The Return Routability initiator and route optimisation of the mobile
// node (RFC 6275 11.6, 11.7.2).

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
	retrySchedule
}

// maxRRTries bounds how often an unanswered test is retried before the
// entry is dropped (a later trigger may start again).
const maxRRTries = 6

// StartRR starts Return Routability with peer unless it already runs.
func (mn *MobileNode) StartRR(peer netip.Addr) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if mn.closed || mn.peers[peer] != nil || !mn.att.Address.IsValid() || mn.cfg.HomePrefix.Contains(mn.att.Address) {
		return
	}
	if peer == mn.cfg.Home || peer == mn.cfg.HomeAgent || peer.IsMulticast() || peer.IsLinkLocalUnicast() {
		return
	}
	e := &roEntry{peer: peer}
	mn.peers[peer] = e
	mn.sig.Add("rr.started", 1)
	mn.publish()
	mn.sendTests(e)
}

// rerunRR restarts the tests for an entry after a move or on request; a home
// keygen token that is still fresh is reused (RFC 6275 5.2.7).
func (mn *MobileNode) rerunRR(e *roEntry) {
	e.stopTimer()
	if !mn.att.Address.IsValid() || mn.cfg.HomePrefix.Contains(mn.att.Address) {
		// Home: route optimisation ends; the peer's binding lapses.
		delete(mn.peers, e.peer)
		mn.publish()
		return
	}
	e.state = roTesting
	e.haveCoA = false
	if mn.clk.Now().Sub(e.homeAt) > MaxTokenLifetime {
		e.haveHome = false
	}
	e.backoff, e.tries = 0, 0
	mn.publish()
	mn.sendTests(e)
}

// sendTests sends the HoTI (through the home agent) and the CoTI (directly)
// that are still needed, and arms the retransmission timer. Call with mu.
func (mn *MobileNode) sendTests(e *roEntry) {
	if !e.haveHome {
		rand.Read(e.homeCookie[:])
		hoti := &mh.Message{Type: mh.TypeHoTI, Cookie: e.homeCookie}
		pkt := mh.BuildPacket(mh.Addressing{Src: mn.cfg.Home, Dst: e.peer}, 64, hoti, nil)
		mn.sig.Sent("HoTI", pkt)
		mn.output(pkt) // from the home address: reverse-tunnelled
	}
	if !e.haveCoA {
		rand.Read(e.coaCookie[:])
		coti := &mh.Message{Type: mh.TypeCoTI, Cookie: e.coaCookie}
		e.coaFor = mn.att.Address
		pkt := mh.BuildPacket(mh.Addressing{Src: e.coaFor, Dst: e.peer}, 64, coti, nil)
		mn.sig.Sent("CoTI", pkt)
		mn.h.Send(pkt)
	}
	mn.armRetry(e, func() { mn.sendTests(e) }, roTesting)
}

// armRetry schedules f with exponential back-off while e stays in state.
func (mn *MobileNode) armRetry(e *roEntry, f func(), state roState) {
	peer := e.peer
	e.timer = mn.clk.AfterFunc(e.next(InitialBindackTimeout), func() {
		mn.mu.Lock()
		defer mn.mu.Unlock()
		if mn.closed || mn.peers[peer] != e || e.state != state {
			return
		}
		if e.tries >= maxRRTries {
			mn.sig.Add("rr.gave_up", 1)
			delete(mn.peers, peer)
			mn.publish()
			return
		}
		mn.sig.Add("rr.retransmit", 1)
		f()
	})
}

// testReply takes a Home Test or Care-of Test.
func (mn *MobileNode) testReply(info mh.PacketInfo, m *mh.Message, careOf bool) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	e := mn.peers[info.Src]
	if e == nil || e.state != roTesting {
		mn.sig.Drop("rr.unexpected_test")
		return
	}
	if careOf {
		if m.Cookie != e.coaCookie || info.Dst != e.coaFor {
			mn.sig.Drop("rr.bad_cookie")
			return
		}
		e.coaTok, e.coaIdx, e.haveCoA = m.Token, m.NonceIndex, true
	} else {
		if m.Cookie != e.homeCookie {
			mn.sig.Drop("rr.bad_cookie")
			return
		}
		e.homeTok, e.homeIdx, e.haveHome, e.homeAt = m.Token, m.NonceIndex, true, mn.clk.Now()
	}
	if e.haveHome && e.haveCoA {
		e.kbm = auth.Kbm(e.homeTok, e.coaTok, false)
		e.state = roBUSent
		e.backoff, e.tries = 0, 0
		mn.sendPeerBU(e)
	}
}

// sendPeerBU sends the route-optimisation Binding Update. Call with mu.
func (mn *MobileNode) sendPeerBU(e *roEntry) {
	now := mn.clk.Now()
	// MAX_UPDATE_RATE (RFC 6275 11.8): at most 3 BUs a second to a peer.
	recent := e.buSent[:0]
	for _, t := range e.buSent {
		if now.Sub(t) < time.Second {
			recent = append(recent, t)
		}
	}
	e.buSent = recent
	if len(e.buSent) >= MaxUpdateRate {
		mn.sig.Add("rr.rate_limited", 1)
		mn.armRetry(e, func() { mn.sendPeerBU(e) }, roBUSent)
		return
	}
	e.buSent = append(e.buSent, now)
	mn.seq++
	e.seq = mn.seq
	bu := &mh.Message{Type: mh.TypeBU, Sequence: e.seq, Flags: mh.FlagA, Lifetime: lifetimeUnits(MaxRRBindingLifetime)}
	bu.Options.Set(mh.OptNonceIndices)
	bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = e.homeIdx, e.coaIdx
	bu.Options.Set(mh.OptBAD)
	coa := e.coaFor
	pkt := mh.BuildPacket(mh.Addressing{Src: coa, Dst: e.peer, HomeAddress: mn.cfg.Home}, 64, bu, func(b []byte) {
		x := auth.BindingAuthenticator(e.kbm[:], coa, e.peer, b, bu.Options.AuthenticatorOff)
		copy(b[bu.Options.AuthenticatorOff:], x[:])
	})
	mn.sig.Sent("BU", pkt)
	mn.h.Send(pkt)
	mn.armRetry(e, func() { mn.sendPeerBU(e) }, roBUSent)
}

// peerBA takes a correspondent's Binding Acknowledgement.
func (mn *MobileNode) peerBA(info mh.PacketInfo, m *mh.Message) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	e := mn.peers[info.Src]
	if e == nil || e.state != roBUSent {
		mn.sig.Drop("ba.unexpected")
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
		e.state, e.backoff, e.tries = roTesting, 0, 0
		mn.sendTests(e)
		return
	}
	if !m.Options.Has(mh.OptBAD) || !auth.VerifyBinding(e.kbm[:], e.coaFor, info.Src, info.MH, m.Options.AuthenticatorOff) {
		mn.sig.Drop("ba.bad_authenticator")
		return
	}
	switch {
	case m.Status == mh.StatusSeqOutOfWindow:
		mn.seq = m.Sequence
		mn.sendPeerBU(e)
		return
	case m.Sequence != e.seq:
		mn.sig.Drop("ba.stale")
		return
	case m.Status >= 128:
		mn.sig.Add("rr.refused", 1)
		delete(mn.peers, e.peer)
		e.stopTimer()
		mn.publish()
		return
	}
	e.state = roBound
	e.backoff, e.tries = 0, 0
	e.stopTimer()
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	e.expires = mn.clk.Now().Add(lifetime)
	mn.sig.Add("rr.completed", 1)
	mn.publish()
	if lifetime > 0 {
		peer := e.peer
		e.timer = mn.clk.AfterFunc(lifetime-max(lifetime/5, 2*time.Second), func() {
			mn.mu.Lock()
			defer mn.mu.Unlock()
			if mn.closed || mn.peers[peer] != e {
				return
			}
			mn.sig.Add("rr.refresh", 1)
			mn.rerunRR(e)
		})
	}
}

// refreshRequested answers a Binding Refresh Request (RFC 6275 11.7.4).
func (mn *MobileNode) refreshRequested(peer netip.Addr) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if e := mn.peers[peer]; e != nil {
		mn.rerunRR(e)
	}
}

// bindingError handles a Binding Error: status 1 means the peer has no
// binding for us, so we fall back to the tunnel (RFC 6275 11.3.6).
func (mn *MobileNode) bindingError(info mh.PacketInfo, m *mh.Message) {
	if m.Status != mh.BEUnknownHAO || m.Address != mn.cfg.Home {
		return
	}
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if e := mn.peers[info.Src]; e != nil {
		e.stopTimer()
		delete(mn.peers, info.Src)
		mn.sig.Add("ro.fallback", 1)
		mn.publish()
	}
}

// unreachable reacts to an ICMPv6 destination unreachable about a
// route-optimised packet: the route-optimised path is dropped and packets go
// through the tunnels again (RFC 6275 11.3.5, and the paper's step 9).
func (mn *MobileNode) unreachable(icmp []byte) {
	if len(icmp) < 8+ip6.HeaderLen {
		return
	}
	quoted := icmp[8:]
	var c ip6.Chain
	if ip6.Walk(quoted, &c) != nil && c.N == 0 {
		return
	}
	for i := 0; i < c.N; i++ {
		e := c.Headers[i]
		if e.Off+e.Len > len(quoted) {
			return
		}
		switch e.Proto {
		case ip6.ProtoRouting:
			if home, _, err := mh.ParseRH2(quoted[e.Off : e.Off+e.Len]); err == nil {
				mn.cn.ForgetPeer(home)
			}
		case ip6.ProtoDstOpts:
			if _, _, err := mh.ParseHAO(quoted[e.Off : e.Off+e.Len]); err == nil {
				peer := ip6.Header(quoted).Dst()
				mn.mu.Lock()
				if en := mn.peers[peer]; en != nil {
					en.stopTimer()
					delete(mn.peers, peer)
					mn.sig.Add("ro.fallback", 1)
					mn.publish()
				}
				mn.mu.Unlock()
			}
		}
	}
}
