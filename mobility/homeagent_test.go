package mobility

import (
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

type haRig struct {
	clk *clock.Fake
	r   *fakeRouter
	sig *Signals
	ha  *HomeAgent
}

func newHARig(t *testing.T) *haRig {
	t.Helper()
	clk := clock.NewFake(epoch)
	g := &haRig{clk: clk, r: newFakeRouter("ha", haAddr, clk, overlay.LinkConfig{Name: "home", ID: 1, Prefix: homeP}), sig: newSignals("ha", clk)}
	ha, err := NewHomeAgent(g.r, g.sig, HomeAgentConfig{Log: quiet, MaxLifetime: 300 * time.Second,
		MobileNodes: []MNCredential{{Name: "mn", Home: hoa, SPI: mnSPI, Key: mnKey}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ha.Close)
	g.ha = ha
	return g
}

// bu offers the home agent a BU and returns its BA, if it sent one.
func (g *haRig) bu(t *testing.T, pkt []byte) (mh.Message, bool) {
	t.Helper()
	g.ha.handleMH(pkt)
	for _, s := range g.r.messages(t) {
		if s.ok && s.m.Type == mh.TypeBA {
			if !(mnhaCredential{spi: mnSPI, key: mnKey}).verify(s.info, &s.m, s.info.Dst, hoa) {
				t.Fatal("BA not authenticated with the MN-HA key")
			}
			return s.m, true
		}
	}
	return mh.Message{}, false
}

// The home agent's sequence number window (RFC 6275 9.5.1), including
// wrap-around, deregistration, and lifetimes clamped to its maximum.
func TestHomeAgentSequenceWindow(t *testing.T) {
	g := newHARig(t)
	steps := []struct {
		name     string
		seq      uint16
		lifetime time.Duration
		status   uint8
		wantSeq  uint16
		bound    bool
	}{
		{"first registration", 100, 600 * time.Second, mh.StatusAccepted, 100, true},
		{"same number again (a retransmission whose BA was lost)", 100, 40 * time.Second, mh.StatusSeqOutOfWindow, 100, true},
		{"older", 99, 40 * time.Second, mh.StatusSeqOutOfWindow, 100, true},
		{"next", 101, 40 * time.Second, mh.StatusAccepted, 101, true},
		{"32767 ahead is newer", 32868, 40 * time.Second, mh.StatusAccepted, 32868, true},
		{"32768 back is older", 100, 40 * time.Second, mh.StatusSeqOutOfWindow, 32868, true},
		{"65535", 65535, 40 * time.Second, mh.StatusAccepted, 65535, true},
		{"0 follows 65535", 0, 40 * time.Second, mh.StatusAccepted, 0, true},
		{"65535 is now behind", 65535, 40 * time.Second, mh.StatusSeqOutOfWindow, 0, true},
		{"lifetime 0 deregisters", 1, 0, mh.StatusAccepted, 1, false},
		{"after deregistration any number", 40000, 40 * time.Second, mh.StatusAccepted, 40000, true},
	}
	for i, s := range steps {
		g.clk.Advance(time.Second) // each BU a fresh RFC 4285 timestamp
		ba, ok := g.bu(t, homeBU(s.seq, s.lifetime, careOf1, g.clk.Now()))
		if !ok || ba.Status != s.status || ba.Sequence != s.wantSeq {
			t.Fatalf("%s: BA %v status %d seq %d, want %d seq %d", s.name, ok, ba.Status, ba.Sequence, s.status, s.wantSeq)
		}
		b, bound := g.ha.Bindings().Get(hoa)
		if bound != s.bound || (bound && b.CareOf != careOf1) {
			t.Fatalf("%s: binding %+v %v", s.name, b, bound)
		}
		if i == 0 && ba.LifetimeDuration() != 300*time.Second {
			t.Errorf("granted %v, want the 300 s maximum", ba.LifetimeDuration())
		}
	}
}

// A binding lapses at the end of its lifetime; the sweep counts it.
func TestHomeAgentBindingExpiry(t *testing.T) {
	g := newHARig(t)
	g.bu(t, homeBU(1, 40*time.Second, careOf1, g.clk.Now()))
	g.clk.Advance(39 * time.Second)
	if _, ok := g.ha.Bindings().Lookup(hoa); !ok {
		t.Fatal("expired early")
	}
	g.clk.Advance(2 * time.Second)
	if g.ha.Bindings().Len() != 0 || counter(g.sig, "ha.binding.expired") != 1 {
		t.Fatalf("binding not swept at its expiry: %d left", g.ha.Bindings().Len())
	}
}

// What cannot be authenticated is dropped without an answer.
func TestHomeAgentRefusesSilently(t *testing.T) {
	g := newHARig(t)
	now := g.clk.Now()
	good := homeBU(1, 40*time.Second, careOf1, now)
	g.bu(t, good)
	cases := []struct {
		name string
		pkt  []byte
		drop Drop
	}{
		{"replayed", good, DropBUReplayed},
		{"stale timestamp", homeBU(2, 40*time.Second, careOf1, now.Add(-time.Minute)), DropBUReplayed},
		{"bad authenticator", func() []byte {
			p := homeBU(3, 40*time.Second, careOf1, now.Add(time.Second))
			p[len(p)-1] ^= 1
			mh.SetChecksum(p[ip6.HeaderLen+mh.HAOHeaderLen:], hoa, haAddr)
			return p
		}(), DropBUBadAuthenticator},
	}
	for _, c := range cases {
		if _, ok := g.bu(t, c.pkt); ok || dropped(g.sig, c.drop) == 0 {
			t.Errorf("%s: answered %v, %s = %d", c.name, ok, c.drop, dropped(g.sig, c.drop))
		}
	}
}

// Malformed signalling gets RFC 6275 9.2's reaction, once, in one place:
// silence for a bad checksum, Parameter Problem for a bad Payload Proto,
// a Binding Error for an unknown type, rate limited like ICMPv6 errors.
func TestMHReactionsAndBindingErrorRateLimit(t *testing.T) {
	g := newHARig(t)
	build := func(mod func(b []byte), fixSum bool) []byte {
		p := mh.BuildPacket(mh.Addressing{Src: careOf1, Dst: haAddr}, 64, &mh.Message{Type: mh.TypeBRR}, nil)
		b := p[ip6.HeaderLen:]
		mod(b)
		if fixSum {
			mh.SetChecksum(b, careOf1, haAddr)
		}
		return p
	}
	cases := []struct {
		name   string
		pkt    []byte
		drop   Drop
		answer uint8 // ICMPv6 type, or 0 for a Binding Error, or 255 for none
		ptr    uint32
	}{
		{"bad checksum, wrong type too", build(func(b []byte) { b[2] = 99 }, false), DropMHChecksum, 255, 0},
		{"Payload Proto not 59", build(func(b []byte) { b[0] = 6 }, true), DropMHParamProblem, ip6.ICMPParamProblem, ip6.HeaderLen},
		{"unknown MH type", build(func(b []byte) { b[2] = 99 }, true), DropMHUnknownType, 0, 0},
	}
	for _, c := range cases {
		g.ha.handleMH(c.pkt)
		sent := g.r.messages(t)
		if dropped(g.sig, c.drop) != 1 {
			t.Errorf("%s: not counted as %s", c.name, c.drop)
		}
		switch {
		case c.answer == 255 && len(sent) != 0:
			t.Errorf("%s: answered %x", c.name, sent[0].pkt)
		case c.answer == 0 && (len(sent) != 1 || !sent[0].ok || sent[0].m.Type != mh.TypeBE || sent[0].m.Status != mh.BEUnknownMHType):
			t.Errorf("%s: want one Binding Error (status 2), got %d packets", c.name, len(sent))
		case c.answer == ip6.ICMPParamProblem && (len(sent) != 1 || sent[0].pkt[ip6.HeaderLen] != ip6.ICMPParamProblem ||
			uint32(sent[0].pkt[ip6.HeaderLen+7]) != c.ptr):
			t.Errorf("%s: want a Parameter Problem pointing at %d, got %d packets", c.name, c.ptr, len(sent))
		}
	}
	// A flood of unknown types: the burst is answered, then one a tenth
	// of a second.
	flood := build(func(b []byte) { b[2] = 99 }, true)
	for range 100 {
		g.ha.handleMH(flood)
	}
	if n := len(g.r.take()); n > errorReplyBurst {
		t.Errorf("%d Binding Errors answered a burst of 100", n)
	}
	g.clk.Advance(time.Second)
	for range 100 {
		g.ha.handleMH(flood)
	}
	if n := len(g.r.take()); n < errorReplyRate-1 || n > errorReplyRate+1 {
		t.Errorf("%d Binding Errors a second later, want about %d", n, errorReplyRate)
	}
	// Never to a multicast source.
	g.clk.Advance(time.Minute)
	mc := build(func(b []byte) { b[2] = 99 }, false)
	ip6.Header(mc).SetSrc(ip6.AllNodes)
	mh.SetChecksum(mc[ip6.HeaderLen:], ip6.AllNodes, haAddr)
	g.ha.handleMH(mc)
	if n := len(g.r.take()); n != 0 {
		t.Error("a Binding Error went to a multicast address")
	}
}

// The home agent tunnels packets for a registered home address to its
// care-of address, and refuses what does not fit the path with the outer
// header (RFC 2473 7.1).
func TestHomeAgentTunnel(t *testing.T) {
	g := newHARig(t)
	g.bu(t, homeBU(1, 40*time.Second, careOf1, g.clk.Now()))
	p := overlay.NewPacket(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 60, Src: cnAddr, Dst: hoa}, make([]byte, 100)))
	if g.ha.Forward(p) != overlay.Continue || p.Header().Dst() != careOf1 || p.Header().NextHeader() != ip6.ProtoIPv6 {
		t.Fatalf("not tunnelled to the care-of address: %x", p.Data()[:40])
	}
	big := overlay.NewPacket(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 60, Src: cnAddr, Dst: hoa}, make([]byte, 1448-40)))
	if g.ha.Forward(big) != overlay.Consumed || len(g.r.tooBig) != 1 || g.r.tooBig[0] != 1448-40 {
		t.Fatalf("a full-size packet: packet too big %v", g.r.tooBig)
	}
	// The reverse tunnel takes only what comes from the registered care-of
	// address.
	inner := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: cnAddr}, make([]byte, 20))
	if v := g.ha.Local(overlay.NewPacket(ip6.Encapsulate(careOf2, haAddr, 64, inner)), nil); v != overlay.Consumed || dropped(g.sig, DropTunnelUnknownSender) != 1 {
		t.Error("reverse tunnel from an unregistered care-of address accepted")
	}
	if v := g.ha.Local(overlay.NewPacket(ip6.Encapsulate(careOf1, haAddr, 64, inner)), nil); v != overlay.Reinput {
		t.Error("reverse tunnel from the registered care-of address refused")
	}
}
