package mobility

import (
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

// The engines' per-packet work allocates nothing: counters are resolved at
// construction, views are read without locks, and nothing starts a
// goroutine per packet (which would allocate).
func TestDataPathDoesNotAllocate(t *testing.T) {
	udp := func(src, dst string) []byte {
		return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: mustAddr(src), Dst: mustAddr(dst)}, make([]byte, 200))
	}
	buf := &overlay.Packet{Buf: make([]byte, overlay.Headroom+2048)}
	load := func(pkt []byte) *overlay.Packet {
		buf.Set(buf.Buf, overlay.Headroom, copy(buf.Buf[overlay.Headroom:], pkt))
		return buf
	}

	g := newHARig(t)
	g.bu(t, homeBU(1, 40*time.Second, careOf1, g.clk.Now()))
	toHome := udp("2001:db8:c::5", "2001:db8:1::10")
	check(t, "home agent tunnel", func() { g.ha.Forward(load(toHome)) })

	p := newPaperRig(t)
	p.h.attach(attachment("ar1", arP, careOf1))
	p.pump(t)
	p.h.attach(attachment("ar2", ar2P, careOf2))
	p.pump(t)
	toOld := udp("2001:db8:c::5", careOf1.String())
	check(t, "HA2R anchor tunnel", func() { p.x1.Forward(load(toOld)) })
	fromOld := udp(careOf1.String(), "2001:db8:c::5")
	check(t, "mobile node, old care-of address", func() { p.mn.Outbound(load(fromOld)) })

	s := newRRPair(t)
	fromHome := udp(hoa.String(), "2001:db8:c::9")
	check(t, "mobile node, reverse tunnel", func() { s.mn.Outbound(load(fromHome)) })
	s.rr().start(cnAddr)
	s.pump(t)
	roOut := udp(hoa.String(), cnAddr.String())
	check(t, "mobile node, route-optimised", func() { s.mn.Outbound(load(roOut)) })
	tunnelled := ip6.Encapsulate(haAddr, careOf1, 64, udp("2001:db8:c::9", hoa.String()))
	check(t, "mobile node, from the tunnel", func() { s.mn.Inbound(load(tunnelled)) })
	// With Return Routability triggered by packets, the first packet to a
	// new peer starts it (AllocsPerRun's warm-up run); the packets after it
	// find it under way and cost nothing.
	s.mn.scheme.(*standardScheme).trigger = RROnFirstPacket | RROnTunnelled
	newPeer := udp(hoa.String(), "2001:db8:c::77")
	check(t, "packets to a peer with Return Routability under way", func() { s.mn.Outbound(load(newPeer)) })
	fromNewPeer := ip6.Encapsulate(haAddr, careOf1, 64, udp("2001:db8:c::78", hoa.String()))
	check(t, "packets from a peer with Return Routability under way", func() { s.mn.Inbound(load(fromNewPeer)) })
	if !s.rr().view.Load().started[mustAddr("2001:db8:c::77")] || !s.rr().view.Load().started[mustAddr("2001:db8:c::78")] {
		t.Error("the packets did not start Return Routability")
	}
}

func check(t *testing.T, what string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Errorf("%s: %.1f allocations per packet", what, n)
	}
}
