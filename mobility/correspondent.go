package mobility

import (
	"crypto/rand"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/clock"

	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// Nonce management of the Return Routability responder (RFC 6275 5.2.2,
// 9.4): a new nonce every NonceInterval, each valid for MAX_NONCE_LIFETIME.
const (
	NonceInterval = 30 * time.Second
	nonceSlots    = int(MaxNonceLifetime / NonceInterval)
)

// Correspondent is the correspondent node role of RFC 6275 section 9: the
// Return Routability responder, a binding cache of mobile nodes that
// registered with it, the Binding Acknowledgement, Binding Error and Binding
// Refresh Request. Mobile nodes are correspondents too.
type Correspondent struct {
	clk   clock.Clock
	log   *slog.Logger
	sig   *Signals
	cache *BindingCache
	// self returns the address this node answers from (its home address for
	// a mobile node); send transmits a packet through the node's own
	// outbound policy (a mobile node tunnels what it sends from home).
	self func() netip.Addr
	send func(pkt []byte)
	errs *errorReplies

	mu        sync.Mutex
	kcn       [auth.KcnLen]byte
	nonces    [nonceSlots]nonce
	nonceIdx  uint16
	nonceAt   time.Time
	refreshed map[netip.Addr]time.Time // when a BRR was last sent per binding
	stop      chan struct{}
	closeOnce sync.Once
}

type nonce struct {
	idx   uint16
	value [auth.NonceLen]byte
	at    time.Time
	valid bool
}

// NewCorrespondent returns a correspondent that answers from self() and
// sends with send.
func NewCorrespondent(clk clock.Clock, sig *Signals, log *slog.Logger, self func() netip.Addr, send func([]byte)) *Correspondent {
	c := &Correspondent{clk: clk, log: log, sig: sig, cache: NewBindingCache(clk, 0), self: self, send: send,
		errs: newErrorReplies(self, send, clk, sig), refreshed: map[netip.Addr]time.Time{}, stop: make(chan struct{})}
	rand.Read(c.kcn[:])
	c.newNonce()
	every(clk, time.Second, c.stop, func() {
		c.cache.Sweep()
		c.refreshBindings()
	})
	return c
}

// Close stops the correspondent's timers.
func (c *Correspondent) Close() { c.closeOnce.Do(func() { close(c.stop) }) }

// Bindings returns the correspondent's binding cache.
func (c *Correspondent) Bindings() *BindingCache { return c.cache }

func (c *Correspondent) newNonce() {
	c.nonceIdx++
	n := &c.nonces[int(c.nonceIdx)%nonceSlots]
	*n = nonce{idx: c.nonceIdx, at: c.clk.Now(), valid: true}
	rand.Read(n.value[:])
	c.nonceAt = n.at
}

// currentNonce returns the nonce to hand out, rolling it when due.
func (c *Correspondent) currentNonce() nonce {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clk.Now().Sub(c.nonceAt) >= NonceInterval {
		c.newNonce()
	}
	return c.nonces[int(c.nonceIdx)%nonceSlots]
}

// nonceByIndex returns a nonce that is still valid.
func (c *Correspondent) nonceByIndex(idx uint16) (nonce, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nonces[int(idx)%nonceSlots]
	if !n.valid || n.idx != idx || c.clk.Now().Sub(n.at) > MaxNonceLifetime {
		return nonce{}, false
	}
	return n, true
}

// HandleMH processes a Mobility Header message meant for the correspondent
// role and reports whether it was one.
func (c *Correspondent) HandleMH(pkt []byte, info mh.PacketInfo, m *mh.Message) bool {
	switch m.Type {
	case mh.TypeHoTI:
		c.sig.Received("HoTI", pkt)
		c.answerTest(mh.TypeHoT, info.Src, m.Cookie, false)
	case mh.TypeCoTI:
		c.sig.Received("CoTI", pkt)
		c.answerTest(mh.TypeCoT, info.Src, m.Cookie, true)
	case mh.TypeBU:
		if m.Flags&mh.FlagH != 0 {
			// Home registration sent to a node that is no home agent
			// (RFC 6275 9.5.1): status 131.
			c.sig.Received("BU.home", pkt)
			if info.HomeAddress.IsValid() {
				c.sendBA(mh.StatusHomeRegNotSupported, m.Sequence, 0, info.Src, info.HomeAddress, nil)
			}
			return true
		}
		c.sig.Received("BU", pkt)
		c.handleBU(info, m)
	default:
		return false
	}
	return true
}

// answerTest sends a Home Test or Care-of Test (RFC 6275 9.4.1, 9.4.2).
func (c *Correspondent) answerTest(t mh.Type, to netip.Addr, cookie [8]byte, careOf bool) {
	n := c.currentNonce()
	tok := auth.KeygenToken(c.kcn[:], to, n.value[:], careOf)
	m := &mh.Message{Type: t, NonceIndex: n.idx, Cookie: cookie, Token: tok}
	out := mh.BuildPacket(mh.Addressing{Src: c.self(), Dst: to}, 64, m, nil)
	c.sig.Sent(t.String(), out)
	c.send(out)
}

// handleBU processes a route-optimisation Binding Update (RFC 6275 9.5.1).
//
// Reactions: a BU without nonce indices or a valid authenticator is
// dropped silently (counted); expired nonce indices get
// status 136, 137 or 138 unauthenticated, as the key cannot be rebuilt; a
// sequence number that is not newer than the binding's gets 135.
func (c *Correspondent) handleBU(info mh.PacketInfo, m *mh.Message) {
	o := &m.Options
	// The home address is in the Home Address option, or the source when
	// there is none (RFC 6275 9.5.1): a mobile node back home deregisters
	// from its home address.
	home := info.HomeAddress
	if !home.IsValid() {
		home = info.Src
	}
	if !o.Has(mh.OptNonceIndices) || !o.Has(mh.OptBAD) {
		c.sig.Drop(DropBUIncomplete)
		return
	}
	coa := info.Src
	if o.Has(mh.OptAltCoA) {
		coa = o.AltCoA
	}
	lifetime := m.LifetimeDuration()
	dereg := lifetime == 0 || coa == home
	hn, hok := c.nonceByIndex(o.HomeNonceIndex)
	cn, cok := c.nonceByIndex(o.CareOfNonceIndex)
	status := uint8(0)
	switch {
	case !hok && (!cok && !dereg):
		status = mh.StatusExpiredNonces
	case !hok:
		status = mh.StatusExpiredHomeNonce
	case !cok && !dereg:
		status = mh.StatusExpiredCareOfNonce
	}
	if status != 0 {
		c.sig.Drop(DropBUNonceExpired)
		c.sendBA(status, m.Sequence, 0, coa, home, nil)
		return
	}
	ht := auth.KeygenToken(c.kcn[:], home, hn.value[:], false)
	var ct [auth.TokenLen]byte
	if !dereg {
		ct = auth.KeygenToken(c.kcn[:], coa, cn.value[:], true)
	}
	kbm := auth.Kbm(ht, ct, dereg)
	if !verifyBindingAuth(info, m, kbm[:], coa, info.Dst) {
		c.sig.Drop(DropBUBadAuthenticator)
		return
	}
	if b, ok := c.cache.Get(home); ok && !mh.SeqNewer(m.Sequence, b.Seq) {
		c.sig.Drop(DropBUSeqOutOfWindow)
		c.sendBA(mh.StatusSeqOutOfWindow, b.Seq, 0, coa, home, kbm[:])
		return
	}
	if dereg {
		c.cache.Delete(home)
		c.sig.Add("cn.binding.deleted", 1)
	} else {
		lifetime = min(lifetime, MaxRRBindingLifetime)
		c.cache.Put(Binding{Home: home, CareOf: coa, Seq: m.Sequence}, lifetime)
		c.mu.Lock()
		delete(c.refreshed, home)
		c.mu.Unlock()
		c.sig.Add("cn.binding.updated", 1)
	}
	if m.Flags&mh.FlagA != 0 {
		if dereg {
			lifetime = 0
		}
		c.sendBA(mh.StatusAccepted, m.Sequence, lifetime, coa, home, kbm[:])
	}
}

// sendBA sends a Binding Acknowledgement to a mobile node at coa through a
// type 2 routing header, authenticated with kbm when given.
func (c *Correspondent) sendBA(status uint8, seq uint16, lifetime time.Duration, coa, home netip.Addr, kbm []byte) {
	ba := &mh.Message{Type: mh.TypeBA, Status: status, Sequence: seq}
	ba.SetLifetime(lifetime)
	self := c.self()
	var sign func([]byte)
	if kbm != nil {
		sign = bindingAuth(ba, kbm, coa, self)
	}
	a := mh.Addressing{Src: self, Dst: coa}
	if coa != home {
		a.RoutedTo = home
	}
	out := mh.BuildPacket(a, 64, ba, sign)
	c.sig.Sent("BA", out)
	c.send(out)
}

// CheckHomeAddress applies RFC 6275 9.3.1 to a received packet that carries
// a Home Address option: without a binding that maps the home address to
// the packet's source, the packet is dropped and a Binding Error (status 1)
// goes back. It reports whether the packet may be delivered.
func (c *Correspondent) CheckHomeAddress(pkt []byte, home, careOf netip.Addr) bool {
	if c.cache.Accepts(home, careOf) {
		return true
	}
	c.sig.Drop(DropHAONoBinding)
	c.errs.bindingError(careOf, mh.BEUnknownHAO, home)
	return false
}

// RouteTo rewrites an outgoing packet to a mobile node with a binding here:
// its destination becomes the care-of address and a type 2 routing header
// carries the home address. It reports whether it did, and where the
// routing header ends (the packet's unfragmentable part) with the offset of
// the Next Header byte naming what follows it.
func (c *Correspondent) RouteTo(p *overlay.Packet) (unfrag, nextOff int, ok bool) {
	dst := p.Header().Dst()
	coa, bound := c.cache.Lookup(dst)
	if !bound {
		return 0, 0, false
	}
	if unfrag, nextOff, ok = routeOptimise(p, netip.Addr{}, coa); !ok {
		return 0, 0, false
	}
	c.cache.Touch(dst)
	c.sig.roOut.Add(1)
	return unfrag, nextOff, true
}

// PeerCareOf returns the care-of address of a mobile node bound here.
func (c *Correspondent) PeerCareOf(home netip.Addr) (netip.Addr, bool) { return c.cache.Lookup(home) }

// refreshBindings sends a Binding Refresh Request (RFC 6275 9.5.5) to mobile
// nodes whose binding is about to expire while still carrying traffic.
func (c *Correspondent) refreshBindings() {
	now := c.clk.Now()
	for _, b := range c.cache.All() {
		left := b.Expires.Sub(now)
		if left <= 0 || left > MaxRRBindingLifetime/4 {
			continue
		}
		if now.Sub(c.cache.LastUsed(b.Home)) > MaxRRBindingLifetime/2 {
			continue // not in use: let it expire
		}
		c.mu.Lock()
		last, sent := c.refreshed[b.Home]
		if sent && now.Sub(last) < left {
			c.mu.Unlock()
			continue
		}
		c.refreshed[b.Home] = now
		c.mu.Unlock()
		brr := &mh.Message{Type: mh.TypeBRR}
		// To the home address: a Mobility Header may carry a routing header
		// only in a BA (RFC 6275 6.1), so the request goes through the home agent.
		out := mh.BuildPacket(mh.Addressing{Src: c.self(), Dst: b.Home}, 64, brr, nil)
		c.sig.Sent("BRR", out)
		c.send(out)
	}
}

// forgetUnreachable drops the binding of a mobile node whose care-of
// address an ICMPv6 error reports unreachable: the quoted packet carried a
// type 2 routing header with its home address (RFC 6275 9.3.2).
func (c *Correspondent) forgetUnreachable(quoted []byte) {
	if home, _ := quotedMobilityHeaders(quoted); home.IsValid() {
		c.ForgetPeer(home)
	}
}

// ForgetPeer removes a binding (after an ICMPv6 error showed the care-of
// address is unreachable: RFC 6275 9.3.2 lets a correspondent fall back).
func (c *Correspondent) ForgetPeer(home netip.Addr) {
	if _, ok := c.cache.Delete(home); ok {
		c.sig.Add("cn.binding.dropped_unreachable", 1)
	}
}
