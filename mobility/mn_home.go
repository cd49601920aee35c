package mobility

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// homeRegistration is the mobile node's binding update list entry for its
// home agent (RFC 6275 11.7.1, 11.5.4): it registers each new care-of
// address, deregisters at home, retransmits with back-off until answered
// (11.8; forever, at MAX_BINDACK_TIMEOUT once there), and refreshes the
// binding before it expires.
type homeRegistration struct {
	clk      clock.Clock
	sig      *Signals
	log      *slog.Logger
	send     func([]byte) bool // to the current router, as it is
	announce func(netip.Addr)  // an unsolicited NA on the current link
	home     netip.Addr
	prefix   netip.Prefix
	ha       netip.Addr
	cred     mnhaCredential
	lifetime time.Duration

	mu      sync.Mutex
	seq     uint16     // the last sequence number used
	coa     netip.Addr // being registered or registered; the home address when home
	bound   bool
	expires time.Time
	rt      retransmitter
	refresh schedule
	closed  bool
	// lostAt is when the home agent last asked for a refresh (it lost the
	// binding: it restarted without its state); restored is told once the
	// new registration is acknowledged.
	lostAt   time.Time
	lost     bool
	restored func()
}

func newHomeRegistration(clk clock.Clock, sig *Signals, log *slog.Logger, h HostPort, cfg *MobileNodeConfig, seq uint16) *homeRegistration {
	return &homeRegistration{clk: clk, sig: sig, log: log, send: h.Send, announce: h.Announce, home: cfg.Home, prefix: cfg.HomePrefix, ha: cfg.HomeAgent,
		cred: mnhaCredential{spi: cfg.SPI, key: cfg.Key}, lifetime: cfg.HomeLifetime, seq: seq,
		rt: newRetransmitter(clk, InitialHomeBindack, 0)}
}

// atHome reports whether coa is on the home link.
func (h *homeRegistration) atHome(coa netip.Addr) bool {
	return coa == h.home || h.prefix.Contains(coa)
}

// moved registers coa, or deregisters when coa is on the home link.
func (h *homeRegistration) moved(coa netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !coa.IsValid() {
		return
	}
	h.coa = coa
	h.bound = false
	h.refresh.stop()
	h.rt.reset()
	h.newBU()
}

// registeredAt reports whether the home agent acknowledged coa.
func (h *homeRegistration) registeredAt(coa netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.coa == coa && h.bound
}

// newBU sends a Binding Update with a new sequence number. Call with mu.
func (h *homeRegistration) newBU() {
	h.seq++
	h.sendBU()
}

// sendBU sends (or, from the retransmission timer, resends) the Binding
// Update of sequence number h.seq: a retransmission keeps the sequence
// number (RFC 6275 11.8) and gets a fresh RFC 4285 timestamp. Call with mu.
func (h *homeRegistration) sendBU() {
	atHome := h.atHome(h.coa)
	bu := &mh.Message{Type: mh.TypeBU, Sequence: h.seq, Flags: mh.FlagA | mh.FlagH}
	a := mh.Addressing{Src: h.coa, Dst: h.ha, HomeAddress: h.home}
	careOf := h.coa
	if atHome {
		// Deregistration (11.5.4): from the home address, lifetime 0, no
		// Home Address option.
		a = mh.Addressing{Src: h.home, Dst: h.ha}
		careOf = h.home
	} else {
		bu.SetLifetime(h.lifetime)
	}
	sign := h.cred.authenticate(bu, h.clk.Now(), careOf, h.home)
	pkt := mh.BuildPacket(a, 64, bu, sign)
	h.sig.Sent("BU.home", pkt)
	h.send(pkt)
	h.rt.sent(func(gen uint64) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed || !h.rt.current(gen) {
			return
		}
		h.sig.Add("mn.home_bu.retransmit", 1)
		h.sendBU()
	})
}

// fromHomeAgent reports whether a message from the home agent is to be
// taken: the registration is open and the message carries a valid MN-HA
// authenticator over the address it reached us at; a forged one is
// dropped as drop. Call with mu held.
func (h *homeRegistration) fromHomeAgent(info mh.PacketInfo, m *mh.Message, drop Drop) bool {
	if h.closed {
		return false
	}
	if !h.cred.verify(info, m, info.Dst, h.home) {
		h.sig.Drop(drop)
		return false
	}
	return true
}

// ack takes the home agent's Binding Acknowledgement, authenticated with
// the MN-HA key over the address it reached us at.
func (h *homeRegistration) ack(info mh.PacketInfo, m *mh.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.fromHomeAgent(info, m, DropBABadAuthenticator) {
		return
	}
	switch {
	case m.Status == mh.StatusSeqOutOfWindow:
		// The home agent holds a newer number (our state was lost, or
		// theirs was kept): continue from it at once.
		h.seq = m.Sequence
		h.rt.reset()
		h.newBU()
		return
	case m.Sequence != h.seq || !h.rt.pending():
		h.sig.Drop(DropBAStale)
		return
	case m.Status >= 128:
		h.log.Warn("home registration refused", "status", m.Status)
		h.sig.Add("mn.home_refused", 1)
		h.rt.reset()
		return
	}
	h.rt.reset()
	h.bound = true
	if h.lost {
		h.lost = false
		if h.restored != nil {
			go h.restored()
		}
	}
	h.rt.initial = InitialBindackTimeout // INITIAL_BINDACK_TIMEOUT_FIRSTREG only for the first
	lifetime := m.LifetimeDuration()
	h.expires = h.clk.Now().Add(lifetime)
	if h.atHome(h.coa) {
		// The home agent stopped defending the home address on the home
		// link: say where it is now (RFC 6275 11.5.4).
		h.announce(h.home)
	}
	if lifetime > 0 {
		h.refresh.at(h.clk, refreshAfter(lifetime), func(gen uint64) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.closed || !h.refresh.current(gen) {
				return
			}
			h.bound = false
			h.sig.Add("mn.home_bu.refresh", 1)
			h.rt.reset()
			h.newBU()
		})
	}
}

// refreshRequested takes a Binding Refresh Request from the home agent,
// authenticated with the MN-HA key: the home agent got a packet through the
// reverse tunnel without holding our binding (it restarted and lost it), so
// the node registers again at once instead of at its next refresh (RFC 6275
// 11.7.4 leaves the reaction to a BRR to the node). At most once a second.
func (h *homeRegistration) refreshRequested(info mh.PacketInfo, m *mh.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.fromHomeAgent(info, m, DropBRRUnauthenticated) {
		return
	}
	now := h.clk.Now()
	if h.atHome(h.coa) || !h.coa.IsValid() || now.Sub(h.lostAt) < time.Second {
		return
	}
	h.lostAt, h.lost = now, true
	h.sig.Add("mn.home_lost", 1)
	h.log.Info("the home agent lost our binding: registering again")
	h.bound = false
	h.refresh.stop()
	h.rt.reset()
	h.newBU()
}

// state reports whether the home agent acknowledged the current
// registration, and until when it holds.
func (h *homeRegistration) state() (bound bool, expires time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bound, h.expires
}

func (h *homeRegistration) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.rt.reset()
	h.refresh.stop()
}
