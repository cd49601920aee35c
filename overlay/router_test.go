package overlay

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
)

var (
	lanPrefix = netip.MustParsePrefix("2001:db8:a::/64")
	routerEP  = netip.MustParseAddrPort("10.0.0.1:7000")
)

type rig struct {
	net  *memNet
	r    *Router
	clk  *clock.Fake
	rm   *metrics.Set
	link LinkConfig
}

func newRig(t *testing.T) *rig {
	t.Helper()
	g := &rig{net: newMemNet(), clk: clock.NewFake(time.Unix(1000, 0)), rm: &metrics.Set{}}
	g.link = LinkConfig{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}
	r, err := NewRouter(RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"), Links: []LinkConfig{g.link},
		Clock: g.clk, Metrics: g.rm}, g.net.bind(routerEP.String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	g.r = r
	return g
}

// host attaches a host called name at endpoint ep to the rig's link (over a
// real fake clock this only needs the RS/RA exchange, which is immediate).
func (g *rig) host(t *testing.T, name, ep string) *Host {
	t.Helper()
	h, err := NewHost(HostConfig{Name: name, Links: []HostLink{{Name: "lan", ID: 42, Router: routerEP}}, Clock: g.clk, Metrics: &metrics.Set{}},
		g.net.bind(ep), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.Attach("lan")
	g.clk.Advance(0)
	g.eventually(t, func() bool { _, ok := h.Current(); return ok }, "host attached")
	return h
}

func (g *rig) eventually(t *testing.T, f func() bool, what string) {
	t.Helper()
	for i := 0; i < 400; i++ {
		if f() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for: %s", what)
}

func frameOf(id uint32, typ uint8, src LinkAddr, payload []byte) []byte {
	b := make([]byte, FrameHeaderLen+len(payload))
	(&FrameHeader{Type: typ, LinkID: id, Src: src}).Put(b)
	copy(b[FrameHeaderLen:], payload)
	return b
}

func echo(src, dst netip.Addr, hl uint8) []byte {
	body := make([]byte, 16)
	body[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(body[2:], ip6.Checksum(src, dst, ip6.ProtoICMPv6, body))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: hl, Src: src, Dst: dst}, body)
}

// Hostile frames are dropped and counted, each under its own reason.
func TestRouterCountsBadFrames(t *testing.T) {
	g := newRig(t)
	attacker := netip.MustParseAddrPort("10.9.9.9:1")
	ll := NodeLinkAddr("x")
	good := echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:a::1"), 64)
	truncated := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(truncated[4:], 500) // claims more payload than there is
	spoofed := echo(netip.MustParseAddr("2001:db8:ffff::5"), netip.MustParseAddr("2001:db8:a::1"), 64)
	cases := []struct {
		frame  []byte
		reason string
	}{
		{[]byte{1, 2, 3}, "frame.short"},
		{frameOf(42, FrameTypePacket, ll, good)[1:], "frame.magic"},
		{append([]byte{FrameMagic, 9}, make([]byte, 60)...), "frame.version"},
		{func() []byte { f := frameOf(42, FrameTypePacket, ll, good); f[3] = 0x80; return f }(), "frame.flags"},
		{frameOf(42, 77, ll, good), "frame.type"},
		{frameOf(42, FrameTypePacket, ll, []byte{0x45, 0, 0, 20}), "frame.not_ipv6"},
		{frameOf(42, FrameTypePacket, ll, truncated), "ipv6.malformed"},
		{frameOf(42, FrameTypePacket, ll, good[:30]), "ipv6.malformed"},
		{frameOf(99, FrameTypePacket, ll, good), "link.unknown"},
		{frameOf(0, FrameTypePacket, ll, good), "peer.unknown"},
		{frameOf(42, FrameTypePacket, ll, spoofed), "ingress"},
		{frameOf(42, FrameTypePacket, ll, make([]byte, 70000)[:1]), "frame.not_ipv6"},
	}
	for _, c := range cases {
		before := g.rm.Get("drop." + c.reason)
		g.net.deliver(attacker, routerEP, c.frame)
		g.eventually(t, func() bool { return g.rm.Get("drop."+c.reason) == before+1 }, "drop."+c.reason)
	}
	// Still alive: a good echo request is answered.
	g.net.bind(attacker.String())
	g.net.deliver(attacker, routerEP, frameOf(42, FrameTypePacket, ll, good))
	g.eventually(t, func() bool { return g.rm.Get("packets.local") > 0 }, "router answers after hostile input")
}

// A host behind NAT whose public endpoint changes (a new mapping) keeps
// receiving: the router learns the new endpoint from its next frame.
func TestRouterFollowsNATRebinding(t *testing.T) {
	g := newRig(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	a, _ := h.Current()
	// The router reaches h1 at its endpoint.
	if ep, ok := g.r.links[42].endpointOf(a.Address); !ok || ep.String() != "10.0.0.2:5000" {
		t.Fatalf("router has %v, %v for the host", ep, ok)
	}
	// Same host, new NAT mapping: frames now come from another endpoint.
	newEP := netip.MustParseAddrPort("192.0.2.7:61000")
	got := g.net.bind(newEP.String())
	var b [FrameHeaderLen]byte
	(&FrameHeader{Type: FrameTypeKeep, LinkID: 42, Src: h.LinkAddr()}).Put(b[:])
	g.net.deliver(newEP, routerEP, b[:])
	g.eventually(t, func() bool { ep, _ := g.r.links[42].endpointOf(a.Address); return ep == newEP }, "router moved to the new endpoint")
	g.r.Send(echo(netip.MustParseAddr("2001:db8:a::1"), a.Address, 64))
	select {
	case d := <-got.ch:
		if d.from != routerEP {
			t.Errorf("frame from %v", d.from)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("nothing arrived at the new endpoint")
	}
}

// Hosts send a keepalive every Keepalive interval to hold NAT mappings.
func TestHostKeepalives(t *testing.T) {
	g := newRig(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	for i := 1; i <= 3; i++ {
		g.clk.Advance(25 * time.Second)
		g.eventually(t, func() bool { return h.Metrics().Get("keepalive.out") == uint64(i) }, "keepalive")
	}
	g.eventually(t, func() bool { return g.rm.Get("keepalive.in") == 3 }, "router saw 3 keepalives")
}

// A host that stops talking is forgotten after the member timeout, and a
// packet for it then ends in an address-unreachable error.
func TestRouterForgetsSilentHosts(t *testing.T) {
	g := newRig(t)
	h := g.host(t, "h1", "10.0.0.2:5000")
	a, _ := h.Current()
	h.Close()
	g.clk.Advance(80 * time.Second)
	if _, ok := g.r.links[42].endpointOf(a.Address); ok {
		t.Fatal("a silent host is still a neighbour after 80 s")
	}
	if g.rm.Get("hosts.expired") != 1 {
		t.Errorf("hosts.expired = %d", g.rm.Get("hosts.expired"))
	}
}

func TestPickLink(t *testing.T) {
	links := []HostLink{
		{Name: "a", Network: netip.MustParsePrefix("10.1.0.0/24")},
		{Name: "b", Network: netip.MustParsePrefix("10.2.0.0/24")},
		{Name: "c"},
	}
	set := func(as ...string) map[netip.Addr]bool {
		m := map[netip.Addr]bool{}
		for _, a := range as {
			m[netip.MustParseAddr(a)] = true
		}
		return m
	}
	cases := []struct {
		cur   string
		addrs map[netip.Addr]bool
		want  string
		ok    bool
	}{
		{"", set("10.1.0.5"), "a", true},
		{"a", set("10.1.0.5", "10.2.0.5"), "a", true}, // keep the current one
		{"a", set("10.2.0.5"), "b", true},             // Wi-Fi A gone, B there
		{"b", set("192.168.1.2"), "", false},          // nothing reachable: stay
		{"c", set("10.2.0.5"), "b", true},
	}
	for _, c := range cases {
		got, ok := pickLink(links, c.cur, c.addrs)
		if got != c.want || ok != c.ok {
			t.Errorf("pickLink(%q, %v) = %q, %v; want %q, %v", c.cur, c.addrs, got, ok, c.want, c.ok)
		}
	}
}

// FuzzRouterInput feeds arbitrary frames, as if from a host on the link,
// into a router: nothing may panic, everything is answered or counted.
func FuzzRouterInput(f *testing.F) {
	ll := NodeLinkAddr("h")
	f.Add(frameOf(42, FrameTypePacket, ll, echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:a::1"), 64)))
	f.Add(frameOf(42, FrameTypePacket, ll, echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:b::1"), 1)))
	rs, _ := buildRS(netip.MustParseAddr("fe80::5"), ll)
	f.Add(frameOf(42, FrameTypePacket, ll, rs))
	ns, _ := buildNS(netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:a::5"), ll, netip.Addr{})
	f.Add(frameOf(42, FrameTypePacket, ll, ns))
	na, _ := buildNA(netip.MustParseAddr("2001:db8:a::5"), ip6.AllNodes, ll, false, false)
	f.Add(frameOf(42, FrameTypePacket, ll, na))
	f.Add(frameOf(42, FrameTypeKeep, ll, nil))
	clk := clock.NewFake(time.Unix(0, 0))
	r, err := NewRouter(RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}}, Clock: clk,
		Peers: []Peer{{Name: "r2", Endpoint: netip.MustParseAddrPort("10.0.0.9:1"), Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:b::/64")}}}},
		nopBind{})
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("10.0.0.5:5")
	f.Fuzz(func(t *testing.T, frame []byte) {
		buf := make([]byte, Headroom+len(frame))
		copy(buf[Headroom:], frame)
		st := rx{from: from}
		r.handleFrame(buf, len(frame), clk.Now(), &st)
		r.flush(&st)
	})
}

type nopBind struct{}

func (nopBind) Open(uint16) ([]ReceiveFunc, uint16, error) { return nil, 0, nil }
func (nopBind) Send([][]byte, netip.AddrPort) error        { return nil }
func (nopBind) BatchSize() int                             { return 8 }
func (nopBind) Close() error                               { return nil }

// FuzzND feeds arbitrary neighbour discovery messages to a host and to a
// router's ND handling.
func FuzzND(f *testing.F) {
	ll := NodeLinkAddr("r")
	ra, _ := buildRA(RAParams{Prefix: lanPrefix, MTU: 1400, Router: ll, Lifetime: time.Minute}, netip.MustParseAddr("fe80::1"), ip6.AllNodes)
	f.Add(ra)
	ns, _ := buildNS(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("fe80::1"), ll, netip.Addr{})
	f.Add(ns)
	rs, _ := buildRS(netip.IPv6Unspecified(), ll)
	f.Add(rs)
	clk := clock.NewFake(time.Unix(0, 0))
	h, err := NewHost(HostConfig{Name: "h", Links: []HostLink{{Name: "lan", ID: 42, Router: routerEP}}, Clock: clk}, nopBind{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	h.Attach("lan")
	r, _ := NewRouter(RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1400}}, Clock: clk}, nopBind{})
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
		s := h.cur.Load()
		h.handleND(pkt, s, ll)
		p := NewPacket(pkt)
		r.handleND(p, r.links[42], ll, &rx{from: routerEP})
	})
}
