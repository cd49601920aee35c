package overlay_test

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// twoLinks gives the rig's router a second access link, lan2 (ID 43).
func twoLinks(cfg *overlay.RouterConfig) {
	cfg.Links = append(cfg.Links, overlay.LinkConfig{Name: "lan2", ID: 43, Prefix: netip.MustParsePrefix("2001:db8:c::/64"), MTU: 1400})
}

// mover is a host that may use both of the rig's links.
func mover(t *testing.T, g *rig, ep string) *overlay.Host {
	return moverOn(t, g, g.net.Bind(ep))
}

func moverOn(t *testing.T, g *rig, b overlay.Bind) *overlay.Host {
	t.Helper()
	h, err := overlay.NewHost(overlay.HostConfig{Name: "mover", Links: []overlay.HostLink{
		{Name: "lan", ID: 42, Router: routerEP}, {Name: "lan2", ID: 43, Router: routerEP}},
		Clock: g.clk, Metrics: &metrics.Set{}, PoisonBuffers: true, Log: quiet}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// attach moves h to link and waits until the router can reach its new
// address there.
func attach(t *testing.T, g *rig, h *overlay.Host, link string, id uint32) netip.Addr {
	t.Helper()
	prev, _ := h.Current()
	if err := h.Attach(link); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(0)
	waitFor(t, func() bool { a, ok := h.Current(); return ok && a.Seq != prev.Seq }, "host attached to "+link)
	a, _ := h.Current()
	waitFor(t, func() bool { _, ok := g.r.EndpointOf(id, a.Address); return ok }, "router learned the host on "+link)
	return a.Address
}

// A host that moves to another link tells its old router, which then
// answers packets for the old address with Address Unreachable at once
// instead of resolving it for three seconds (RFC 4443 3.1, code 3).
func TestLeaveMakesOldAddressUnreachableAtOnce(t *testing.T) {
	g := newRig(t, twoLinks)
	g.start(t)
	peer := g.net.Bind(peerEP.String())
	h := mover(t, g, "10.0.0.2:5000")
	old := attach(t, g, h, "lan", 42)
	attach(t, g, h, "lan2", 43)
	waitFor(t, func() bool { return g.rm.Get("hosts.left") == 1 }, "the router heard the leave")
	if _, ok := g.r.EndpointOf(42, old); ok {
		t.Fatal("the router still resolves the old address")
	}

	expectAddrUnreachable(t, g, peer, old)
	if got := g.rm.Get("nd.ns.out"); got != 0 {
		t.Errorf("the router solicited a departed address (%d NS)", got)
	}
}

// expectAddrUnreachable sends an echo request for dst from the backbone
// peer and expects the router to answer with Address Unreachable.
func expectAddrUnreachable(t *testing.T, g *rig, peer *overlaytest.MemBind, dst netip.Addr) {
	t.Helper()
	src := netip.MustParseAddr("2001:db8:b::9")
	g.net.Deliver(peerEP, routerEP, frameOf(0, overlay.FrameTypePacket, overlay.LinkAddr{2}, echo(src, dst, 64)))
	d := datagram(t, peer)
	pkt := d.Data[overlay.FrameHeaderLen:]
	if len(pkt) < 42 || pkt[6] != ip6.ProtoICMPv6 || pkt[40] != ip6.ICMPDstUnreach || pkt[41] != ip6.CodeAddrUnreach {
		t.Fatalf("the router answered % x, want an Address Unreachable", pkt[:min(len(pkt), 42)])
	}
}

// lossyLeaves loses the first leave frame its host sends.
type lossyLeaves struct {
	*overlaytest.MemBind
	lost atomic.Bool
}

func (b *lossyLeaves) Send(bufs [][]byte, to netip.AddrPort) error {
	var keep [][]byte
	for _, f := range bufs {
		if len(f) >= 3 && f[2] == overlay.FrameTypeLeave && b.lost.CompareAndSwap(false, true) {
			continue
		}
		keep = append(keep, f)
	}
	return b.MemBind.Send(keep, to)
}

// A lost leave is made good by the first packet the old router sends the
// host for its old address: the host answers it with another leave.
func TestStrayFrameRepeatsLostLeave(t *testing.T) {
	g := newRig(t, twoLinks)
	g.start(t)
	peer := g.net.Bind(peerEP.String())
	b := &lossyLeaves{MemBind: g.net.Bind("10.0.0.2:5000")}
	h := moverOn(t, g, b)
	old := attach(t, g, h, "lan", 42)
	attach(t, g, h, "lan2", 43)
	if !b.lost.Load() {
		t.Fatal("the host sent no leave")
	}
	if _, ok := g.r.EndpointOf(42, old); !ok {
		t.Fatal("the router forgot the host without its leave")
	}
	// The router still sends to the host's old address; the host tells it.
	src := netip.MustParseAddr("2001:db8:b::9")
	g.net.Deliver(peerEP, routerEP, frameOf(0, overlay.FrameTypePacket, overlay.LinkAddr{2}, echo(src, old, 64)))
	waitFor(t, func() bool { return g.rm.Get("hosts.left") == 1 }, "the router heard the second leave")
	expectAddrUnreachable(t, g, peer, old)
}

// A leave that the underlay delivers after the host came back (A, B, A in a
// few milliseconds) must not disconnect it: the router compares the
// attachment numbers the frames carry.
func TestLateLeaveIsIgnored(t *testing.T) {
	g := newRig(t, twoLinks)
	g.start(t)
	h := mover(t, g, "10.0.0.2:5000")
	a1 := attach(t, g, h, "lan", 42) // attachment 1
	attach(t, g, h, "lan2", 43)      // 2
	a3 := attach(t, g, h, "lan", 42) // 3: back, same address
	if a3 != a1 {
		t.Fatalf("the host's address on lan changed: %v, then %v", a1, a3)
	}
	left := g.rm.Get("hosts.left")
	// The leave of attachment 1 arrives now, late.
	var b [overlay.FrameHeaderLen]byte
	(&overlay.FrameHeader{Type: overlay.FrameTypeLeave, LinkID: 42, Src: h.LinkAddr(), Epoch: 1}).Put(b[:])
	g.net.Deliver(netip.MustParseAddrPort("10.0.0.2:5000"), routerEP, b[:])
	waitFor(t, func() bool { return g.rm.Get("hosts.left_stale") == 1 }, "the router judged the late leave")
	if g.rm.Get("hosts.left") != left {
		t.Error("the router honoured a leave from an attachment that had ended")
	}
	if _, ok := g.r.EndpointOf(42, a3); !ok {
		t.Fatal("a late leave disconnected the host")
	}
}

// Re-attaching to the link a host is on (a Wi-Fi reconnect) leaves and
// joins in one go: the host stays reachable.
func TestReattachToSameLink(t *testing.T) {
	g := newRig(t, twoLinks)
	g.start(t)
	h := mover(t, g, "10.0.0.2:5000")
	a1 := attach(t, g, h, "lan", 42)
	a2 := attach(t, g, h, "lan", 42)
	if a1 != a2 {
		t.Fatalf("the host's address changed: %v, then %v", a1, a2)
	}
	waitFor(t, func() bool { return g.rm.Get("hosts.left")+g.rm.Get("hosts.left_stale") == 1 }, "the router judged the leave")
	if _, ok := g.r.EndpointOf(42, a2); !ok {
		t.Fatal("the router lost the host")
	}
}
