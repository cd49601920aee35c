package mobility

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// rrPair is a standard mobile node and a correspondent wired to each other
// (the home agent's tunnel is taken as given: what the mobile node sends
// from its home address reaches the correspondent, and back).
type rrPair struct {
	*mnRig
	cnSig *Signals
	cn    *Correspondent
	toCN  outbox // what the correspondent sends
	lossy func(sentMsg) bool
}

func newRRPair(t *testing.T) *rrPair {
	g := &rrPair{mnRig: newMNRig(t, SchemeStandard)}
	g.cnSig = newSignals("cn", g.clk)
	g.cn = NewCorrespondent(g.clk, g.cnSig, quiet, func() netip.Addr { return cnAddr }, g.toCN.add)
	t.Cleanup(g.cn.Close)
	g.h.attach(attachment("ar1", arP, careOf1))
	g.h.deliver(haBA(mh.StatusAccepted, g.homeBUs(t)[0].m.Sequence, 420*time.Second, careOf1, g.clk.Now()))
	return g
}

func (g *rrPair) rr() *returnRoutability { return g.mn.scheme.(*standardScheme).rr }

// pump carries messages both ways until nothing moves, and returns what
// the mobile node sent, by type.
func (g *rrPair) pump(t *testing.T) map[mh.Type]int {
	sent := map[mh.Type]int{}
	for moved := true; moved; {
		moved = false
		for _, s := range g.h.messages(t) {
			if !s.ok || s.info.Dst == haAddr {
				continue
			}
			sent[s.m.Type]++
			moved = true
			if g.lossy != nil && g.lossy(s) {
				continue
			}
			g.cn.HandleMH(s.pkt, s.info, &s.m)
		}
		for _, p := range g.toCN.take() {
			moved = true
			g.h.deliver(p)
		}
	}
	return sent
}

// Return Routability end to end on the fake clock: tests, BU, BA; the
// binding refreshed with a fifth of its lifetime left; a Binding Error from
// the correspondent sends the node back to the tunnel.
func TestReturnRoutabilityAndRefresh(t *testing.T) {
	g := newRRPair(t)
	g.rr().start(cnAddr)
	sent := g.pump(t)
	if sent[mh.TypeHoTI] != 1 || sent[mh.TypeCoTI] != 1 || sent[mh.TypeBU] != 1 {
		t.Fatalf("sent %v", sent)
	}
	if !g.mn.scheme.routeOptimised(cnAddr) {
		t.Fatal("not route-optimised after the BA")
	}
	if b, ok := g.cn.Bindings().Get(hoa); !ok || b.CareOf != careOf1 {
		t.Fatalf("correspondent binding %+v", b)
	}
	// A packet from the home address now leaves with a Home Address option.
	p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: cnAddr}, make([]byte, 8)))
	if p.Header().Src() != careOf1 || p.Header().NextHeader() != ip6.ProtoDstOpts {
		t.Fatalf("not route-optimised: %x", p.Data()[:41])
	}
	// 420 s granted: refreshed at 336 s; the home token is older than
	// MAX_TOKEN_LIFETIME (210 s) by then, so both tests run again.
	g.clk.Advance(335 * time.Second)
	if s := g.pump(t); len(s) != 0 {
		t.Fatalf("sent %v before the refresh", s)
	}
	g.clk.Advance(time.Second)
	if s := g.pump(t); s[mh.TypeHoTI] != 1 || s[mh.TypeCoTI] != 1 || s[mh.TypeBU] != 1 {
		t.Fatalf("refresh sent %v", s)
	}
	// The correspondent lost our binding: its Binding Error (status 1)
	// ends route optimisation.
	g.cn.Bindings().Delete(hoa)
	g.h.deliver(mh.BuildPacket(mh.Addressing{Src: cnAddr, Dst: careOf1}, 64, &mh.Message{Type: mh.TypeBE, Status: mh.BEUnknownHAO, Address: hoa}, nil))
	if g.mn.scheme.routeOptimised(cnAddr) || counter(g.sig, "ro.fallback") != 1 {
		t.Fatal("still route-optimised after the Binding Error")
	}
}

// Unanswered tests are resent after 1, 2, 4, 8 and 16 s; after six sends
// the entry is given up, and a later trigger may start again.
func TestReturnRoutabilityGivesUp(t *testing.T) {
	g := newRRPair(t)
	g.lossy = func(sentMsg) bool { return true }
	g.rr().start(cnAddr)
	var times []time.Duration
	start := g.clk.Now()
	for range 70 {
		if s := g.pump(t); s[mh.TypeCoTI] > 0 {
			times = append(times, g.clk.Now().Sub(start))
		}
		g.clk.Advance(time.Second)
	}
	want := []time.Duration{0, 1, 3, 7, 15, 31}
	if len(times) != len(want) {
		t.Fatalf("CoTI sent at %v, want at %v s", times, want)
	}
	for i := range want {
		if times[i] != want[i]*time.Second {
			t.Errorf("send %d at %v, want %v", i, times[i], want[i]*time.Second)
		}
	}
	if counter(g.sig, "rr.gave_up") != 1 || g.rr().view.Load().started[cnAddr] {
		t.Fatal("the entry was not given up")
	}
	g.lossy = nil
	g.rr().start(cnAddr)
	g.pump(t)
	if !g.mn.scheme.routeOptimised(cnAddr) {
		t.Fatal("could not start again")
	}
}

// The correspondent's nonces live MAX_NONCE_LIFETIME (240 s): a BU whose
// indices are older gets status 138 (both expired) or 136/137, and the
// mobile node tests again.
func TestCorrespondentNonceExpiry(t *testing.T) {
	g := newRRPair(t)
	var bu sentMsg
	g.lossy = func(s sentMsg) bool {
		if s.m.Type == mh.TypeBU && bu.pkt == nil {
			bu = s
			return true // hold the first BU back
		}
		return false
	}
	g.rr().start(cnAddr)
	g.pump(t)
	if bu.pkt == nil {
		t.Fatal("no BU")
	}
	g.clk.Advance(MaxNonceLifetime + NonceInterval)
	g.cn.HandleMH(bu.pkt, bu.info, &bu.m)
	var ba mh.Message
	for _, p := range g.toCN.take() {
		var m mh.Message
		if _, err := mh.ParsePacket(p, &m); err == nil && m.Type == mh.TypeBA {
			ba = m
		}
	}
	if ba.Status != mh.StatusExpiredNonces {
		t.Fatalf("BA status %d for expired nonces, want %d", ba.Status, mh.StatusExpiredNonces)
	}
	if dropped(g.cnSig, DropBUNonceExpired) != 1 {
		t.Error("not counted")
	}
}

// A packet with a Home Address option from a node without a binding is
// dropped and answered with a Binding Error (RFC 6275 9.3.1).
func TestCorrespondentHomeAddressWithoutBinding(t *testing.T) {
	g := newRRPair(t)
	pkt := overlay.NewPacket(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: cnAddr, Dst: careOf1}, make([]byte, 8)))
	routeOptimise(pkt, careOf2, netip.Addr{})
	if g.cn.CheckHomeAddress(pkt.Data(), cnAddr, careOf2) {
		t.Fatal("accepted")
	}
	var be mh.Message
	if ps := g.toCN.take(); len(ps) != 1 {
		t.Fatalf("%d answers", len(ps))
	} else if _, err := mh.ParsePacket(ps[0], &be); err != nil || be.Type != mh.TypeBE || be.Status != mh.BEUnknownHAO {
		t.Fatalf("answer %+v %v", be, err)
	}
}

// Back home, the mobile node deregisters at the correspondent (RFC 6275
// 11.5.4): a BU of lifetime 0 from the home address, keyed with the home
// keygen token alone, after a fresh Home Test once the token is older than
// MAX_TOKEN_LIFETIME; the correspondent drops its binding, and the node
// sends from home without route optimisation.
func TestReturnRoutabilityDeregistersAtHome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		wantHoTI int
	}{
		{"fresh home token", 0, 0},
		{"home token too old", MaxTokenLifetime + time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newRRPair(t)
			g.rr().start(cnAddr)
			g.pump(t)
			if _, ok := g.cn.Bindings().Get(hoa); !ok {
				t.Fatal("no binding at the correspondent")
			}
			g.clk.Advance(tc.wait)
			g.h.attach(attachment("home1", homeP, hoa))
			sent := g.pump(t)
			if sent[mh.TypeHoTI] != tc.wantHoTI || sent[mh.TypeCoTI] != 0 || sent[mh.TypeBU] != 1 {
				t.Fatalf("deregistration sent %v", sent)
			}
			if _, ok := g.cn.Bindings().Get(hoa); ok {
				t.Error("the correspondent kept the binding")
			}
			if counter(g.sig, "rr.deregistered") != 1 || g.rr().view.Load().started[cnAddr] {
				t.Error("the entry was not closed after the acknowledgement")
			}
			p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: cnAddr}, make([]byte, 8)))
			if p.Header().Src() != hoa || p.Header().NextHeader() != ip6.ProtoUDP {
				t.Errorf("a packet from home was rewritten: %x", p.Data()[:41])
			}
		})
	}
}

// An ICMPv6 error that reaches the node through its home agent's tunnel
// (a router's answer to a packet it sent from its home address) starts no
// Return Routability with the router: errors are not sessions. It used to
// start a test run with the router that sent it.
func TestTunnelledErrorStartsNoReturnRoutability(t *testing.T) {
	g := newRRPair(t)
	g.mn.scheme.(*standardScheme).trigger = RROnTunnelled
	router := netip.MustParseAddr("2001:db8:11::1")
	quoted := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: netip.MustParseAddr("2001:db8:11::77")}, make([]byte, 8))
	icmp := append([]byte{ip6.ICMPDstUnreach, ip6.CodeAddrUnreach, 0, 0, 0, 0, 0, 0}, quoted...)
	errPkt := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 64, Src: router, Dst: hoa}, icmp)
	p := overlay.NewPacket(errPkt)
	if !encapsulate(p, haAddr, careOf1) {
		t.Fatal("encapsulate")
	}
	g.h.deliver(p.Data())
	if s := g.pump(t); s[mh.TypeHoTI] != 0 || counter(g.sig, "rr.started") != 0 {
		t.Fatalf("an ICMPv6 error started Return Routability: sent %v", s)
	}
	// A tunnelled packet of a session does.
	p = overlay.NewPacket(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: cnAddr, Dst: hoa}, make([]byte, 8)))
	encapsulate(p, haAddr, careOf1)
	g.h.deliver(p.Data())
	if counter(g.sig, "rr.started") != 1 {
		t.Fatal("a tunnelled session packet started no Return Routability")
	}
}
