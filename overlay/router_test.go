package overlay_test

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
	"github.com/ha2r/mip6testbed/tun"
)

var (
	lanPrefix = netip.MustParsePrefix("2001:db8:a::/64")
	routerEP  = netip.MustParseAddrPort("10.0.0.1:7000")
	peerEP    = netip.MustParseAddrPort("10.0.0.9:7000")
	peerNet   = netip.MustParsePrefix("2001:db8:b::/64")
)

var quiet = slog.New(slog.DiscardHandler)

type rig struct {
	net  *overlaytest.MemNet
	r    *overlay.Router
	clk  *clock.Fake
	rm   *metrics.Set
	link overlay.LinkConfig
}

type rigOption func(*overlay.RouterConfig)

func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	g := &rig{net: overlaytest.NewMemNet(), clk: clock.NewFake(time.Unix(1000, 0)), rm: &metrics.Set{}}
	g.link = overlay.LinkConfig{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}
	cfg := overlay.RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"), Links: []overlay.LinkConfig{g.link},
		Peers: []overlay.Peer{{Name: "r2", Endpoint: peerEP, Prefixes: []netip.Prefix{peerNet}}},
		Clock: g.clk, Metrics: g.rm, PoisonBuffers: true, Log: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := overlay.NewRouter(cfg, g.net.Bind(routerEP.String()))
	if err != nil {
		t.Fatal(err)
	}
	g.r = r
	return g
}

func (g *rig) start(t *testing.T) {
	t.Helper()
	if err := g.r.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.r.Close() })
}

// host attaches a host called name at endpoint ep to the rig's link.
func (g *rig) host(t *testing.T, name, ep string) *overlay.Host {
	t.Helper()
	h, err := overlay.NewHost(overlay.HostConfig{Name: name, Links: []overlay.HostLink{{Name: "lan", ID: 42, Router: routerEP}},
		Clock: g.clk, Metrics: &metrics.Set{}, PoisonBuffers: true, Log: quiet}, g.net.Bind(ep), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.Attach("lan")
	g.clk.Advance(0)
	waitFor(t, func() bool { _, ok := h.Current(); return ok }, "host attached")
	a, _ := h.Current()
	// The host announces its address with an unsolicited NA once attached.
	waitFor(t, func() bool { _, ok := g.r.EndpointOf(42, a.Address); return ok }, "router learned the host")
	return h
}

// waitFor waits for a condition that the rig's goroutines make true (the
// loops run on their own goroutines even with a fake clock).
func waitFor(t *testing.T, f func() bool, what string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, what, f)
}

// datagram waits for the next datagram at b.
func datagram(t *testing.T, b *overlaytest.MemBind) overlaytest.Datagram {
	t.Helper()
	select {
	case d := <-b.Datagrams():
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram arrived")
	}
	return overlaytest.Datagram{}
}

func frameOf(id uint32, typ uint8, src overlay.LinkAddr, payload []byte) []byte {
	b := make([]byte, overlay.FrameHeaderLen+len(payload))
	(&overlay.FrameHeader{Type: typ, LinkID: id, Src: src}).Put(b)
	copy(b[overlay.FrameHeaderLen:], payload)
	return b
}

func echo(src, dst netip.Addr, hl uint8) []byte {
	body := make([]byte, 16)
	body[0] = ip6.ICMPEchoRequest
	binary.BigEndian.PutUint16(body[2:], ip6.Checksum(src, dst, ip6.ProtoICMPv6, body))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: hl, Src: src, Dst: dst}, body)
}

// Hostile frames are dropped and counted, each under its own reason.
func TestRouterCountsBadFrames(t *testing.T) {
	g := newRig(t)
	g.start(t)
	attacker := netip.MustParseAddrPort("10.9.9.9:1")
	ll := overlay.NodeLinkAddr("x")
	good := echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:a::1"), 64)
	truncated := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(truncated[4:], 500) // claims more payload than there is
	spoofed := echo(netip.MustParseAddr("2001:db8:ffff::5"), netip.MustParseAddr("2001:db8:a::1"), 64)
	cases := []struct {
		frame  []byte
		reason string
	}{
		{[]byte{1, 2, 3}, "frame.short"},
		{frameOf(42, overlay.FrameTypePacket, ll, good)[1:], "frame.magic"},
		{append([]byte{overlay.FrameMagic, 9}, make([]byte, 60)...), "frame.version"},
		{func() []byte { f := frameOf(42, overlay.FrameTypePacket, ll, good); f[3] = 0x80; return f }(), "frame.flags"},
		{frameOf(42, 77, ll, good), "frame.type"},
		{frameOf(42, overlay.FrameTypePacket, ll, []byte{0x45, 0, 0, 20}), "frame.not_ipv6"},
		{frameOf(42, overlay.FrameTypePacket, ll, truncated), "ipv6.malformed"},
		{frameOf(42, overlay.FrameTypePacket, ll, good[:30]), "ipv6.malformed"},
		{frameOf(99, overlay.FrameTypePacket, ll, good), "link.unknown"},
		{frameOf(0, overlay.FrameTypePacket, ll, good), "peer.unknown"},
		{frameOf(42, overlay.FrameTypePacket, ll, spoofed), "ingress"},
		{frameOf(42, overlay.FrameTypePacket, ll, make([]byte, 70000)[:1]), "frame.not_ipv6"},
	}
	for _, c := range cases {
		before := g.rm.Get("drop." + c.reason)
		g.net.Deliver(attacker, routerEP, c.frame)
		waitFor(t, func() bool { return g.rm.Get("drop."+c.reason) == before+1 }, "drop."+c.reason)
	}
	// Still alive: a good echo request from an announced host is answered.
	ab := g.net.Bind(attacker.String())
	g.net.Deliver(attacker, routerEP, frameOf(42, overlay.FrameTypePacket, ll, overlay.BuildNA(netip.MustParseAddr("2001:db8:a::5"), ip6.AllNodes, ll, false, false)))
	g.net.Deliver(attacker, routerEP, frameOf(42, overlay.FrameTypePacket, ll, good))
	d := datagram(t, ab)
	if d.From != routerEP || len(d.Data) < overlay.FrameHeaderLen+ip6.HeaderLen+1 || d.Data[overlay.FrameHeaderLen+ip6.HeaderLen] != ip6.ICMPEchoReply {
		t.Fatalf("answer to a good echo request after hostile input: %x", d.Data)
	}
	if n := g.rm.Get("frames.unsettled") + g.rm.Get("frames.settled_twice"); n != 0 {
		t.Errorf("%d frames not accounted for exactly once", n)
	}
}

// A host behind NAT whose public endpoint changes (a new mapping) keeps
// receiving: the router learns the new endpoint from its next frame.
func TestRouterFollowsNATRebinding(t *testing.T) {
	g := newRig(t)
	g.start(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	a, _ := h.Current()
	if ep, ok := g.r.EndpointOf(42, a.Address); !ok || ep.String() != "10.0.0.2:5000" {
		t.Fatalf("router has %v, %v for the host", ep, ok)
	}
	// Same host, new NAT mapping: frames now come from another endpoint.
	newEP := netip.MustParseAddrPort("192.0.2.7:61000")
	got := g.net.Bind(newEP.String())
	var b [overlay.FrameHeaderLen]byte
	(&overlay.FrameHeader{Type: overlay.FrameTypeKeep, LinkID: 42, Src: h.LinkAddr()}).Put(b[:])
	g.net.Deliver(newEP, routerEP, b[:])
	waitFor(t, func() bool { ep, _ := g.r.EndpointOf(42, a.Address); return ep == newEP }, "router moved to the new endpoint")
	g.r.Send(echo(netip.MustParseAddr("2001:db8:a::1"), a.Address, 64))
	if d := datagram(t, got); d.From != routerEP {
		t.Errorf("frame from %v", d.From)
	}
}

// Hosts send a keepalive every Keepalive interval to hold NAT mappings.
func TestHostKeepalives(t *testing.T) {
	g := newRig(t)
	g.start(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	for i := 1; i <= 3; i++ {
		g.clk.Advance(25 * time.Second)
		waitFor(t, func() bool { return h.Metrics().Get("keepalive.out") == uint64(i) }, "keepalive")
	}
	waitFor(t, func() bool { return g.rm.Get("keepalive.in") == 3 }, "router saw 3 keepalives")
}

// A host that stops talking is forgotten after the member timeout.
func TestRouterForgetsSilentHosts(t *testing.T) {
	g := newRig(t)
	g.start(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	a, _ := h.Current()
	h.Close()
	g.clk.Advance(80 * time.Second)
	if _, ok := g.r.EndpointOf(42, a.Address); ok {
		t.Fatal("a silent host is still a neighbour after 80 s")
	}
	if g.rm.Get("hosts.expired") != 1 {
		t.Errorf("hosts.expired = %d", g.rm.Get("hosts.expired"))
	}
}

// The router's TUN loop routes every packet a read returned, also when the
// read returned an error with them (tun.ErrTooManySegments: the kernel
// backend had more segments than buffers). It used to drop the whole batch.
func TestRouterTUNReadErrorKeepsPackets(t *testing.T) {
	g := newRig(t)
	dev := overlaytest.NewChanDevice(1400)
	g.r.SetDevice(dev)
	peer := g.net.Bind(peerEP.String())
	g.start(t)
	var pkts [][]byte
	for i := range 3 {
		pkts = append(pkts, echo(netip.MustParseAddr("2001:db8:a::1"), netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0b, 15: byte(i + 1)}), 64))
	}
	dev.Feed(pkts, tun.ErrTooManySegments)
	for i := range 3 {
		d := datagram(t, peer)
		if dst := ip6.Header(d.Data[overlay.FrameHeaderLen:]).Dst(); dst.As16()[15] != byte(i+1) {
			t.Errorf("packet %d went to %s", i, dst)
		}
	}
	waitFor(t, func() bool { return g.rm.Get("drop.tun.read_segments") == 1 }, "the lost segments counted")
	// The loop carries on after the error.
	dev.Feed(pkts[:1], nil)
	datagram(t, peer)
}

// A host's TUN loop does the same.
func TestHostTUNReadErrorKeepsPackets(t *testing.T) {
	g := newRig(t)
	g.start(t)
	dev := overlaytest.NewChanDevice(1400)
	h, err := overlay.NewHost(overlay.HostConfig{Name: "h1", Links: []overlay.HostLink{{Name: "lan", ID: 42, Router: routerEP}},
		Clock: g.clk, Metrics: &metrics.Set{}, Log: quiet}, g.net.Bind("10.0.0.2:5000"), dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.Attach("lan")
	g.clk.Advance(0)
	waitFor(t, func() bool { _, ok := h.Current(); return ok }, "host attached")
	a, _ := h.Current()
	before := g.rm.Get("packets.forwarded")
	pkts := [][]byte{echo(a.Address, netip.MustParseAddr("2001:db8:b::1"), 64), echo(a.Address, netip.MustParseAddr("2001:db8:b::2"), 64)}
	dev.Feed(pkts, tun.ErrTooManySegments)
	waitFor(t, func() bool { return g.rm.Get("packets.forwarded") == before+2 }, "both packets forwarded")
}

// A receive loop whose reads keep failing gives up after maxLoopErrors
// tries, pausing between them, and says so; it does not spin.
func TestReceiveLoopGivesUpOnRepeatedErrors(t *testing.T) {
	clk := clock.NewFake(time.Unix(0, 0))
	reads := make(chan struct{}, 100)
	bind := &overlaytest.FuncBind{Recv: func([][]byte, []int, []netip.AddrPort) (int, error) {
		reads <- struct{}{}
		return 0, errors.New("socket broken")
	}}
	m := &metrics.Set{}
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "r", Address: netip.MustParseAddr("2001:db8::1"), Clock: clk, Metrics: m, Log: quiet}, bind)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(0); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for m.Get("loop.stopped") == 0 {
		select {
		case <-reads:
			n++
		case <-time.After(5 * time.Second):
			t.Fatalf("after %d reads the loop neither read again nor stopped", n)
		}
		// The loop waits on the clock before the next read.
		waitFor(t, func() bool { return clk.Pending() > 2 || m.Get("loop.stopped") > 0 }, "loop pausing")
		clk.Advance(time.Second)
	}
	n += len(reads) // reads the loop made before the test saw it stop
	if n != 11 {
		t.Errorf("%d reads before giving up, want 11", n)
	}
}

// A hook may not keep a packet past its call: the loops reuse the buffer,
// and tests run them with PoisonBuffers so that a kept reference shows.
func TestHookMustNotKeepPackets(t *testing.T) {
	g := newRig(t)
	kept := make(chan []byte, 1)
	g.r.SetHook(keeper{kept})
	g.start(t)
	g.net.Bind("10.0.0.2:5000")
	src := netip.MustParseAddr("2001:db8:a::5")
	g.net.Deliver(netip.MustParseAddrPort("10.0.0.2:5000"), routerEP,
		frameOf(42, overlay.FrameTypePacket, overlay.NodeLinkAddr("h"), echo(src, netip.MustParseAddr("2001:db8:b::1"), 64)))
	data := <-kept
	// The loop scribbles a round's buffers before it reads the next: once
	// a second frame has been handled (an atomic counter the test reads),
	// the first round's poisoning happened before, with no data race on
	// the kept bytes (reading them while polling was one).
	g.net.Deliver(netip.MustParseAddrPort("10.0.0.2:5000"), routerEP,
		frameOf(42, overlay.FrameTypePacket, overlay.NodeLinkAddr("h"), echo(src, netip.MustParseAddr("2001:db8:b::1"), 64)))
	waitFor(t, func() bool { return g.rm.Get("outcome.consumed") == 2 }, "the hook called twice")
	if data[0] != 0xdb {
		t.Errorf("the kept bytes were not poisoned after the round: %#x", data[0])
	}
}

type keeper struct{ kept chan []byte }

func (k keeper) Local(*overlay.Packet, *overlay.LinkConfig) overlay.Verdict { return overlay.Continue }
func (k keeper) Forward(p *overlay.Packet) overlay.Verdict {
	k.kept <- p.Data() // wrong on purpose: a reference, not a copy
	return overlay.Consumed
}

func TestPickLink(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	home := p("192.168.1.0/24")
	links := []overlay.HostLink{
		{Name: "a", Match: overlay.UnderlayMatch{Network: p("10.1.0.0/24")}},
		{Name: "b", Match: overlay.UnderlayMatch{Network: p("10.2.0.0/24")}},
		{Name: "c"}, // reached by node handover only
		// Two home routers on the same subnet, told apart by gateway.
		{Name: "flat", Match: overlay.UnderlayMatch{Network: home, Gateway: a("192.168.1.1")}},
		{Name: "parents", Match: overlay.UnderlayMatch{Network: home, Gateway: a("192.168.1.254")}},
		// ... and by the gateway's MAC when the gateway address is the same.
		{Name: "office", Match: overlay.UnderlayMatch{Gateway: a("192.168.1.1"), GatewayMAC: mac("3c:a6:2f:00:00:01")}},
		{Name: "phone", Match: overlay.UnderlayMatch{Interface: "usb*"}},
		{Name: "any", Match: overlay.UnderlayMatch{Default: true}},
	}
	wifi := func(addr, gw, hw string) overlay.UnderlayNet {
		u := overlay.UnderlayNet{Interface: "wlan0", Addrs: []netip.Addr{a(addr)}}
		if gw != "" {
			u.Gateway = a(gw)
		}
		u.GatewayMAC = mac(hw)
		return u
	}
	nets := func(us ...overlay.UnderlayNet) []overlay.UnderlayNet { return us }
	cases := []struct {
		cur  string
		nets []overlay.UnderlayNet
		want string
		ok   bool
	}{
		{"", nets(wifi("10.1.0.5", "", "")), "a", true},
		{"a", nets(wifi("10.1.0.5", "", ""), wifi("10.2.0.5", "", "")), "a", true}, // keep the current one
		{"a", nets(wifi("10.2.0.5", "", "")), "b", true},                           // Wi-Fi A gone, B there
		{"b", nets(wifi("172.16.0.2", "", "")), "", false},                         // nothing matches, no gateway for the default: stay
		{"c", nets(wifi("10.2.0.5", "", "")), "b", true},
		// Same subnet, different gateways: the switch is seen.
		{"", nets(wifi("192.168.1.20", "192.168.1.1", "")), "flat", true},
		{"flat", nets(wifi("192.168.1.20", "192.168.1.254", "")), "parents", true},
		{"parents", nets(wifi("192.168.1.20", "192.168.1.1", "")), "flat", true},
		// Same subnet and gateway address, another router: its MAC wins.
		{"flat", nets(wifi("192.168.1.20", "192.168.1.1", "3c:a6:2f:00:00:01")), "flat", true}, // current still matches
		{"", nets(wifi("192.168.1.20", "192.168.1.1", "3c:a6:2f:00:00:01")), "office", true},
		// An interface pattern, and a network never seen before.
		{"", nets(overlay.UnderlayNet{Interface: "usb0", Addrs: []netip.Addr{a("172.20.10.2")}}), "phone", true},
		{"", nets(wifi("100.64.3.7", "100.64.0.1", "")), "any", true},
		{"any", nets(wifi("100.64.3.7", "100.64.0.1", ""), wifi("10.2.0.5", "", "")), "any", true},
	}
	for _, c := range cases {
		got, ok := overlay.PickLink(links, c.cur, c.nets)
		if got != c.want || ok != c.ok {
			t.Errorf("pickLink(%q, %+v) = %q, %v; want %q, %v", c.cur, c.nets, got, ok, c.want, c.ok)
		}
	}
}

// The link held in reserve is reached through another network than the
// current link: none while the machine has one network (a default link
// would match it too, but it is the same path), the best other one when a
// second network is up.
func TestSpareLink(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	links := []overlay.HostLink{
		{Name: "wifi", Match: overlay.UnderlayMatch{Interface: "wl*"}},
		{Name: "phone", Match: overlay.UnderlayMatch{Interface: "usb*"}},
		{Name: "lab", Match: overlay.UnderlayMatch{Network: p("10.9.0.0/24")}},
		{Name: "any", Match: overlay.UnderlayMatch{Default: true}},
	}
	wl := overlay.UnderlayNet{Interface: "wlan0", Addrs: []netip.Addr{a("192.168.1.20")}, Gateway: a("192.168.1.1")}
	usb := overlay.UnderlayNet{Interface: "usb0", Addrs: []netip.Addr{a("172.20.10.2")}, Gateway: a("172.20.10.1")}
	cases := []struct {
		cur  string
		nets []overlay.UnderlayNet
		want string
		ok   bool
	}{
		{"wifi", []overlay.UnderlayNet{wl}, "", false},
		{"wifi", []overlay.UnderlayNet{wl, usb}, "phone", true},
		{"phone", []overlay.UnderlayNet{wl, usb}, "wifi", true},
		{"wifi", []overlay.UnderlayNet{wl, {Interface: "eth0", Addrs: []netip.Addr{a("100.64.0.9")}, Gateway: a("100.64.0.1")}}, "any", true},
	}
	for _, c := range cases {
		got, ok := overlay.SpareLink(links, c.cur, c.nets)
		if got != c.want || ok != c.ok {
			t.Errorf("spareLink(%q, %v) = %q, %v; want %q, %v", c.cur, c.nets, got, ok, c.want, c.ok)
		}
	}
}

// Every ND message the overlay builds parses back to what was put in.
func TestNDRoundTrip(t *testing.T) {
	ll := overlay.NodeLinkAddr("r")
	rl := netip.MustParseAddr("fe80::1")
	typ, _, prefix, mtu, err := overlay.ParseNDForTest(overlay.BuildRA(overlay.RAParams{Prefix: lanPrefix, MTU: 1280, Router: ll, Lifetime: time.Minute}, rl, ip6.AllNodes))
	if err != nil || typ != ip6.ICMPRouterAdv || prefix != lanPrefix || mtu != 1280 {
		t.Errorf("RA: %d %s %d %v", typ, prefix, mtu, err)
	}
	target := netip.MustParseAddr("2001:db8:a::5")
	if typ, tgt, _, _, err := overlay.ParseNDForTest(overlay.BuildNS(target, rl, ll)); err != nil || typ != ip6.ICMPNeighborSol || tgt != target {
		t.Errorf("NS: %d %s %v", typ, tgt, err)
	}
	if typ, tgt, _, _, err := overlay.ParseNDForTest(overlay.BuildNA(target, ip6.AllNodes, ll, false, false)); err != nil || typ != ip6.ICMPNeighborAdv || tgt != target {
		t.Errorf("NA: %d %s %v", typ, tgt, err)
	}
	if typ, _, _, _, err := overlay.ParseNDForTest(overlay.BuildRS(netip.IPv6Unspecified(), ll)); err != nil || typ != ip6.ICMPRouterSol {
		t.Errorf("RS: %d %v", typ, err)
	}
	bad := overlay.BuildNS(target, rl, ll)
	bad[7] = 64 // hop limit
	if _, _, _, _, err := overlay.ParseNDForTest(bad); err == nil {
		t.Error("an NS with hop limit 64 was accepted")
	}
}

// FuzzRouterInput feeds arbitrary frames, as if from a host on the link,
// into a router: nothing may panic, and each frame is accounted for exactly
// once, as a drop under its reason or as one outcome.
func FuzzRouterInput(f *testing.F) {
	ll := overlay.NodeLinkAddr("h")
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:a::1"), 64)))
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:b::1"), 1)))
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, overlay.BuildRS(netip.MustParseAddr("fe80::5"), ll)))
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, overlay.BuildNS(netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:a::5"), ll)))
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, overlay.BuildNA(netip.MustParseAddr("2001:db8:a::5"), ip6.AllNodes, ll, false, false)))
	f.Add(frameOf(42, overlay.FrameTypeKeep, ll, nil))
	f.Add(frameOf(42, overlay.FrameTypePacket, ll, echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:a::77"), 64)))
	clk := clock.NewFake(time.Unix(0, 0))
	m := &metrics.Set{}
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []overlay.LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}}, Clock: clk, Metrics: m, Log: quiet,
		Peers: []overlay.Peer{{Name: "r2", Endpoint: netip.MustParseAddrPort("10.0.0.9:1"), Prefixes: []netip.Prefix{peerNet}}}},
		overlaytest.NopBind{})
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("10.0.0.5:5")
	f.Fuzz(func(t *testing.T, frame []byte) {
		buf := make([]byte, overlay.Headroom+len(frame))
		copy(buf[overlay.Headroom:], frame)
		var round overlay.Round
		outcomes := func() uint64 {
			var n uint64
			for _, o := range []string{"drop", "keepalive", "nd", "emitted", "device", "resolving", "consumed", "answered"} {
				n += m.Get("outcome." + o)
			}
			return n + m.Get("keepalive.in")
		}
		before, unsettled, twice := outcomes(), m.Get("frames.unsettled"), m.Get("frames.settled_twice")
		r.HandleFrame(&round, buf, len(frame), from, clk.Now())
		r.Flush(&round)
		if m.Get("frames.unsettled") != unsettled || m.Get("frames.settled_twice") != twice {
			t.Fatalf("frame %x not accounted for exactly once (unsettled %d, twice %d)", frame,
				m.Get("frames.unsettled")-unsettled, m.Get("frames.settled_twice")-twice)
		}
		if outcomes() == before {
			t.Fatalf("frame %x left no outcome", frame)
		}
	})
}

// FuzzND feeds arbitrary neighbour discovery messages to a host and to a
// router's ND handling.
func FuzzND(f *testing.F) {
	ll := overlay.NodeLinkAddr("r")
	f.Add(overlay.BuildRA(overlay.RAParams{Prefix: lanPrefix, MTU: 1400, Router: ll, Lifetime: time.Minute}, netip.MustParseAddr("fe80::1"), ip6.AllNodes)[ip6.HeaderLen:])
	f.Add(overlay.BuildNS(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("fe80::1"), ll)[ip6.HeaderLen:])
	f.Add(overlay.BuildRS(netip.IPv6Unspecified(), ll)[ip6.HeaderLen:])
	clk := clock.NewFake(time.Unix(0, 0))
	h, err := overlay.NewHost(overlay.HostConfig{Name: "h", Links: []overlay.HostLink{{Name: "lan", ID: 42, Router: routerEP}}, Clock: clk, Log: quiet}, overlaytest.NopBind{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	h.Attach("lan")
	r, _ := overlay.NewRouter(overlay.RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []overlay.LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}}, Clock: clk, Log: quiet}, overlaytest.NopBind{})
	f.Fuzz(func(t *testing.T, body []byte) {
		// Wrap the fuzzed ICMPv6 body in a valid header with a right checksum,
		// so that the fuzzer explores the ND parser rather than the checksum.
		if len(body) < 4 {
			return
		}
		src, dst := netip.MustParseAddr("fe80::1"), ip6.AllNodes
		b := append([]byte(nil), body...)
		b[2], b[3] = 0, 0
		binary.BigEndian.PutUint16(b[2:], ip6.Checksum(src, dst, ip6.ProtoICMPv6, b))
		pkt := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 255, Src: src, Dst: dst}, b)
		h.HandleND(pkt)
		var round overlay.Round
		r.HandleND(&round, pkt, 42, routerEP, ll)
		r.Flush(&round)
	})
}
