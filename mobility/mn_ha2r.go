package mobility

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// The mobile node's side of the paper's scheme (its sections 3 and 4): on
// attaching to an HA2R it authenticates to it through its home agent and
// gets an MN-HA2R key; its care-of address becomes the preferred source of
// new sessions; after a move, the HA2R of each older care-of address that
// still carries traffic tunnels it to the new one.

type anchorState uint8

const (
	anchorAuthPending anchorState = iota // MN Authentication Request sent
	anchorReady                          // key held; the care-of address is local or tunnelled
	anchorRefused
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
	buSeq      uint16
	buLifetime time.Duration
	expires    time.Time
	lastActive atomic.Int64
	retrySchedule
}

func (a *anchorRec) stateName(current bool) string {
	switch {
	case a.state == anchorAuthPending:
		return "authenticating"
	case a.state == anchorRefused:
		return "refused"
	case current:
		return "local"
	case a.tunnel:
		return "tunnelled"
	}
	return "binding"
}

// ha2rMoved runs the scheme's part of a move. Call with mu held.
func (mn *MobileNode) ha2rMoved(prev, cur overlay.Attachment) {
	now := mn.clk.Now()
	dev := mn.h.Device()
	if a := mn.anchors[cur.Address]; a != nil && a.state == anchorReady && a.ha2r.IsValid() {
		// Back under the router that handed this address out: it is local
		// again, so its anchor (and key) is released; a fresh
		// authentication follows as for any attach.
		mn.sendAnchorBU(a, 0)
		a.stopTimer()
		delete(mn.anchors, cur.Address)
	}
	for coa, a := range mn.anchors {
		if coa == cur.Address || a.state != anchorReady || !a.ha2r.IsValid() {
			if a.state == anchorAuthPending && coa != cur.Address {
				a.stopTimer()
				delete(mn.anchors, coa)
				mn.dropAddress(coa)
			}
			continue
		}
		idle := now.Sub(time.Unix(0, a.lastActive.Load()))
		if idle > mn.cfg.AnchorIdle {
			// Nothing uses it: release instead of tunnelling.
			mn.releaseAnchor(a)
			continue
		}
		mn.sendAnchorBU(a, a.buLifetimeOr())
	}
	if dev != nil && cur.Address.IsValid() && !mn.cfg.HomePrefix.Contains(cur.Address) {
		dev.AddAddress(netip.PrefixFrom(cur.Address, 128), true)
		for coa := range mn.anchors {
			if coa != cur.Address {
				dev.SetPreferred(coa, false)
			}
		}
		if prev.Address.IsValid() && prev.Address != cur.Address && mn.anchors[prev.Address] == nil && prev.Address != mn.cfg.Home {
			mn.dropAddress(prev.Address) // no anchor to keep it alive
		}
	}
	if mn.cfg.HA2RLinks[cur.Link.Name] && !mn.cfg.HomePrefix.Contains(cur.Address) {
		a := &anchorRec{coa: cur.Address, link: cur.Link.Name, routerLL: cur.RouterLL}
		a.lastActive.Store(now.UnixNano())
		mn.anchors[cur.Address] = a
		if !mn.cfg.MNAuthOnFirstSession {
			mn.sendMNAuth(a)
		}
	}
	mn.ensureHousekeeping()
}

func (a *anchorRec) buLifetimeOr() time.Duration {
	if a.buLifetime > 0 {
		return a.buLifetime
	}
	return DefaultAnchorLifetime
}

func (mn *MobileNode) dropAddress(a netip.Addr) {
	if dev := mn.h.Device(); dev != nil && a != mn.cfg.Home {
		dev.RemoveAddress(a)
	}
}

// sendMNAuth sends (or resends) the MN Authentication Request for anchor a
// to its router. Call with mu held.
func (mn *MobileNode) sendMNAuth(a *anchorRec) {
	mn.seq++
	a.authSeq = mn.seq
	a.state = anchorAuthPending
	req := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: a.authSeq,
		Flags: mh.FlagA, Lifetime: lifetimeUnits(DefaultAnchorLifetime)}
	req.Options.Set(mh.OptAltCoA)
	req.Options.AltCoA = a.coa
	req.Options.AddExpAddr(mh.ExpHAAddress, mn.cfg.HomeAgent)
	req.Options.AddExpAddr(mh.ExpHomeAddr, mn.cfg.Home)
	req.Options.Set(mh.OptMsgID)
	req.Options.Timestamp = auth.NTPTime(mn.clk.Now())
	req.Options.Set(mh.OptAuth)
	req.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: mn.cfg.SPI}
	pkt := mh.BuildPacket(mh.Addressing{Src: a.coa, Dst: a.routerLL}, 64, req, func(b []byte) {
		x := auth.MNHAAuthenticator(mn.cfg.Key, a.coa, mn.cfg.Home, b, req.Options.Auth.DataOff)
		copy(b[req.Options.Auth.DataOff:], x[:])
	})
	mn.sig.Sent("MNAuthReq", pkt)
	mn.h.Send(pkt)
	mn.armAnchorRetry(a, func() { mn.sendMNAuth(a) }, func() bool { return a.state == anchorAuthPending })
}

// armAnchorRetry retransmits with exponential back-off while pending().
func (mn *MobileNode) armAnchorRetry(a *anchorRec, f func(), pending func() bool) {
	coa := a.coa
	a.timer = mn.clk.AfterFunc(a.next(InitialBindackTimeout), func() {
		mn.mu.Lock()
		defer mn.mu.Unlock()
		if mn.closed || mn.anchors[coa] != a || !pending() {
			return
		}
		if a.tries >= maxRRTries {
			mn.sig.Add("anchor.gave_up", 1)
			a.state = anchorRefused
			return
		}
		mn.sig.Add("anchor.retransmit", 1)
		f()
	})
}

// mnAuthReply takes the MN Authentication Reply the HA2R passed on.
func (mn *MobileNode) mnAuthReply(info mh.PacketInfo, m *mh.Message) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	o := &m.Options
	a := mn.anchors[o.AltCoA]
	if a == nil || a.state != anchorAuthPending || m.Sequence != a.authSeq {
		mn.sig.Drop("mnauth.unexpected_reply")
		return
	}
	if m.Status != mh.StatusAccepted {
		// An unauthenticated refusal can only end the retries early.
		mn.sig.Add("mnauth.refused", 1)
		a.state = anchorRefused
		a.stopTimer()
		return
	}
	if !o.Has(mh.OptAuth) || o.Auth.SPI != mn.cfg.SPI || len(o.Auth.Data) != mh.AuthenticatorLen ||
		!auth.VerifyMNHA(mn.cfg.Key, a.coa, mn.cfg.Home, info.MH, o.Auth.DataOff) {
		mn.sig.Drop("mnauth.bad_reply")
		return
	}
	sealed, ok := o.Exp(mh.ExpKeyForMN)
	if !ok {
		mn.sig.Drop("mnauth.no_key")
		return
	}
	key, err := auth.OpenKey(mn.cfg.Key, auth.ForMN, mn.cfg.Home, a.coa, m.Sequence, sealed)
	if err != nil {
		mn.sig.Drop("mnauth.key_does_not_open")
		return
	}
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	a.key, a.ha2r, a.state, a.expires, a.buLifetime = key, info.Src, anchorReady, mn.clk.Now().Add(lifetime), lifetime
	a.backoff, a.tries = 0, 0
	a.stopTimer()
	mn.sig.Add("mnauth.completed", 1)
	mn.publish()
}

// sendAnchorBU binds anchor a's care-of address to the current one (or, with
// lifetime 0, releases it) at its HA2R, authorised with the MN-HA2R key in
// place of Kbm. Call with mu held.
func (mn *MobileNode) sendAnchorBU(a *anchorRec, lifetime time.Duration) {
	cur := mn.att.Address
	if !cur.IsValid() || mn.cfg.HomePrefix.Contains(cur) {
		return
	}
	mn.seq++
	a.buSeq = mn.seq
	bu := &mh.Message{Type: mh.TypeBU, Sequence: a.buSeq, Flags: mh.FlagA | mh.FlagH, Lifetime: lifetimeUnits(lifetime)}
	bu.Options.Set(mh.OptBAD)
	key, ha2r := a.key, a.ha2r
	pkt := mh.BuildPacket(mh.Addressing{Src: cur, Dst: ha2r, HomeAddress: a.coa}, 64, bu, func(b []byte) {
		x := auth.BindingAuthenticator(key, cur, ha2r, b, bu.Options.AuthenticatorOff)
		copy(b[bu.Options.AuthenticatorOff:], x[:])
	})
	mn.sig.Sent("BU.anchor", pkt)
	mn.h.Send(pkt)
	seq := a.buSeq
	if lifetime > 0 {
		mn.armAnchorRetry(a, func() { mn.sendAnchorBU(a, lifetime) }, func() bool { return a.buSeq == seq })
	}
}

// releaseAnchor deregisters an anchor and forgets its care-of address.
func (mn *MobileNode) releaseAnchor(a *anchorRec) {
	mn.sendAnchorBU(a, 0)
	a.stopTimer()
	delete(mn.anchors, a.coa)
	mn.dropAddress(a.coa)
	mn.sig.Add("anchor.released", 1)
}

// anchorBA takes an HA2R's Binding Acknowledgement.
func (mn *MobileNode) anchorBA(info mh.PacketInfo, m *mh.Message) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	anchored := info.RoutedTo
	if !anchored.IsValid() {
		anchored = info.Dst
	}
	a := mn.anchors[anchored]
	if a == nil || a.key == nil || m.Sequence != a.buSeq {
		mn.sig.Drop("anchor.unexpected_ba")
		return
	}
	if !m.Options.Has(mh.OptBAD) || !auth.VerifyBinding(a.key, info.Dst, info.Src, info.MH, m.Options.AuthenticatorOff) {
		mn.sig.Drop("anchor.bad_ba")
		return
	}
	a.buSeq = 0 // acknowledged: stop retransmitting
	a.stopTimer()
	a.backoff, a.tries = 0, 0
	if m.Status != mh.StatusAccepted {
		mn.sig.Add("anchor.refused", 1)
		return
	}
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	a.expires = mn.clk.Now().Add(lifetime)
	a.tunnel = a.coa != mn.att.Address
	mn.sig.Add("anchor.bound", 1)
	mn.publish()
}

// ensureHousekeeping starts the periodic anchor upkeep once.
func (mn *MobileNode) ensureHousekeeping() {
	if mn.housekeeping {
		return
	}
	mn.housekeeping = true
	stop := make(chan struct{})
	mn.stopHK = stop
	every(mn.clk, time.Second, stop, mn.anchorUpkeep)
}

// anchorUpkeep releases anchors whose sessions ended and refreshes the rest
// before they expire.
func (mn *MobileNode) anchorUpkeep() {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if mn.closed {
		return
	}
	now := mn.clk.Now()
	for coa, a := range mn.anchors {
		if a.state != anchorReady || !a.ha2r.IsValid() {
			continue
		}
		if coa != mn.att.Address && now.Sub(time.Unix(0, a.lastActive.Load())) > mn.cfg.AnchorIdle {
			mn.releaseAnchor(a)
			mn.publish()
			continue
		}
		if left := a.expires.Sub(now); left < a.buLifetimeOr()/4 && a.buSeq == 0 {
			mn.sig.Add("anchor.refresh", 1)
			mn.sendAnchorBU(a, a.buLifetimeOr())
		}
	}
}

// outboundCareOf handles a packet from a care-of address (ha2r scheme):
// the current one goes out directly; an older one that its HA2R anchors is
// tunnelled to that HA2R so the session keeps its address.
func (mn *MobileNode) outboundCareOf(p *overlay.Packet, v *mnView, src netip.Addr) overlay.Verdict {
	if act := v.active[src]; act != nil {
		act.Store(mn.clk.Now().UnixNano())
	}
	if src == v.coa {
		if mn.cfg.MNAuthOnFirstSession {
			mn.authOnFirstSession(src)
		}
		return overlay.Continue
	}
	ha2r, ok := v.anchored[src]
	if !ok {
		mn.sig.Drop("anchor.not_ready")
		return overlay.Consumed
	}
	if !encapsulate(p, v.coa, ha2r) {
		mn.sig.Drop("tunnel.no_room")
		return overlay.Consumed
	}
	mn.sig.Add("tunnel.encap.anchor", 1)
	return overlay.Continue
}

// authOnFirstSession starts the MN Authentication when the first session
// uses the care-of address (the option of delaying it).
func (mn *MobileNode) authOnFirstSession(coa netip.Addr) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if a := mn.anchors[coa]; a != nil && a.state == anchorAuthPending && a.tries == 0 {
		mn.sendMNAuth(a)
	}
}

// noteActivity records inbound traffic on a care-of address.
func (mn *MobileNode) noteActivity(v *mnView, dst netip.Addr) {
	if act := v.active[dst]; act != nil {
		act.Store(mn.clk.Now().UnixNano())
	}
}
