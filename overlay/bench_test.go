package overlay_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

func benchRouter(b *testing.B, hook overlay.RouterHook) (*overlay.Router, *metrics.Set) {
	m := &metrics.Set{}
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []overlay.LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1448}}, Clock: clock.Real{}, Metrics: m, Log: quiet,
		Peers: []overlay.Peer{{Name: "r2", Endpoint: netip.MustParseAddrPort("10.0.0.9:1"), Prefixes: []netip.Prefix{peerNet}}}},
		overlaytest.NopBind{})
	if err != nil {
		b.Fatal(err)
	}
	if hook != nil {
		r.SetHook(hook)
	}
	return r, m
}

// bigPacket is a 1400-byte echo request from a host on the LAN to a
// prefix behind a backbone peer.
func bigPacket() []byte {
	pkt := echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:b::7"), 64)
	pkt = append(pkt, make([]byte, 1400-len(pkt))...)
	pkt[4], pkt[5] = byte((len(pkt)-40)>>8), byte(len(pkt)-40)
	return pkt
}

// forward measures the router's whole per-packet forwarding work (frame
// parse, checks, hop limit, hook, route lookup, frame rewrite, grouping for
// sendmmsg) without the syscalls, in batches of 64.
func forward(b *testing.B, hook overlay.RouterHook) {
	r, m := benchRouter(b, hook)
	const batch = 64
	frame := frameOf(42, overlay.FrameTypePacket, overlay.NodeLinkAddr("h"), bigPacket())
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, overlay.Headroom+overlay.MaxDatagram)
	}
	from := netip.MustParseAddrPort("10.0.0.5:5")
	var round overlay.Round
	now := time.Now()
	b.SetBytes(int64(len(frame) - overlay.FrameHeaderLen))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		for j := 0; j < n; j++ {
			copy(bufs[j][overlay.Headroom:], frame)
			bufs[j][overlay.Headroom+overlay.FrameHeaderLen+7] = 64 // fresh hop limit
			r.HandleFrame(&round, bufs[j], len(frame), from, now)
		}
		r.Flush(&round)
		i += n
	}
	b.StopTimer()
	if m.Get("outcome.emitted") < uint64(b.N) {
		b.Fatalf("forwarded %d of %d", m.Get("outcome.emitted"), b.N)
	}
	b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "pkt/s")
}

// BenchmarkRouterForward is the whole forwarding path; packets/s per core is
// 1e9 / (ns/op).
func BenchmarkRouterForward(b *testing.B) { forward(b, nil) }

// nopHook is a mobility engine that looks at every packet and takes none.
type nopHook struct{}

func (nopHook) Local(*overlay.Packet, *overlay.LinkConfig) overlay.Verdict { return overlay.Continue }
func (nopHook) Forward(p *overlay.Packet) overlay.Verdict {
	if _, err := p.Chain(); err != nil {
		return overlay.Consumed
	}
	return overlay.Continue
}

// BenchmarkDataPathStages splits the router's per-packet cost into its
// stages, each measured alone; their sum is close to RouterForward.
func BenchmarkDataPathStages(b *testing.B) {
	frame := frameOf(42, overlay.FrameTypePacket, overlay.NodeLinkAddr("h"), bigPacket())
	b.Run("frame-decode", func(b *testing.B) {
		var h overlay.FrameHeader
		b.ReportAllocs()
		for range b.N {
			if _, err := overlay.ParseFrame(frame, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ipv6-check", func(b *testing.B) {
		pkt := frame[overlay.FrameHeaderLen:]
		var c ip6.Chain
		b.ReportAllocs()
		for range b.N {
			if _, err := ip6.Check(pkt); err != nil {
				b.Fatal(err)
			}
			if err := ip6.Walk(pkt, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("route-lookup", func(b *testing.B) {
		r, _ := benchRouter(b, nil)
		dst := netip.MustParseAddr("2001:db8:b::7")
		b.ReportAllocs()
		for range b.N {
			if !r.LookupRoute(dst) {
				b.Fatal("no route")
			}
		}
	})
	b.Run("hook", func(b *testing.B) {
		p := overlay.NewPacket(frame[overlay.FrameHeaderLen:])
		var h nopHook
		b.ReportAllocs()
		for range b.N {
			p.Changed()
			if h.Forward(p) != overlay.Continue {
				b.Fatal("consumed")
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		out := make([]byte, overlay.FrameHeaderLen)
		h := overlay.FrameHeader{Type: overlay.FrameTypePacket, LinkID: 42, Src: overlay.NodeLinkAddr("r")}
		b.ReportAllocs()
		for range b.N {
			h.Put(out)
		}
	})
	b.Run("batch-send", func(b *testing.B) {
		var s overlay.BatchSend
		to := netip.MustParseAddrPort("10.0.0.9:1")
		b.ReportAllocs()
		for i := 0; i < b.N; {
			n := min(64, b.N-i)
			for range n {
				s.Add(to, frame)
			}
			if s.Flush(overlaytest.NopBind{}) != 0 {
				b.Fatal("send failed")
			}
			i += n
		}
	})
	b.Run("forward-with-hook", func(b *testing.B) { forward(b, nopHook{}) })
}

// BenchmarkRouterND measures the router's neighbour discovery work per
// message: answering a Neighbour Solicitation (parse, learn, build the
// advertisement, queue it) and a Router Solicitation, and learning from an
// unsolicited Neighbour Advertisement. None allocates.
func BenchmarkRouterND(b *testing.B) {
	ll := overlay.NodeLinkAddr("h")
	host := netip.MustParseAddr("2001:db8:a::5")
	from := netip.MustParseAddrPort("10.0.0.5:5")
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"ns-answer", overlay.BuildNS(netip.MustParseAddr("2001:db8:a::1"), host, ll)},
		{"rs-answer", overlay.BuildRS(overlay.LinkLocal("h", "lan"), ll)},
		{"na-learn", overlay.BuildNA(host, ip6.AllNodes, ll, false, false)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r, m := benchRouter(b, nil)
			var round overlay.Round
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r.HandleND(&round, c.pkt, 42, from, ll)
				if i%64 == 63 {
					r.Flush(&round)
				}
			}
			r.Flush(&round)
			if m.Get("drop.nd.invalid") != 0 {
				b.Fatal("ND refused")
			}
		})
	}
}

// BenchmarkHostReceive measures a host's per-packet receive work (frame
// parse, check, ND test, hook, device write) with a device that discards.
func BenchmarkHostReceive(b *testing.B) {
	clk := clock.NewFake(time.Unix(0, 0))
	dev := overlaytest.NewChanDevice(1400)
	h, err := overlay.NewHost(overlay.HostConfig{Name: "h", Links: []overlay.HostLink{{Name: "lan", ID: 42, Router: routerEP}}, Clock: clk, Log: quiet}, overlaytest.NopBind{}, dev)
	if err != nil {
		b.Fatal(err)
	}
	h.Attach("lan")
	ra := overlay.BuildRA(overlay.RAParams{Prefix: lanPrefix, MTU: 1400, Router: overlay.NodeLinkAddr("r"), Lifetime: time.Minute}, netip.MustParseAddr("fe80::1"), ip6.AllNodes)
	h.HandleND(ra)
	a, ok := h.Current()
	if !ok {
		b.Fatal("not attached")
	}
	pkt := echo(netip.MustParseAddr("2001:db8:b::7"), a.Address, 64)
	frame := frameOf(42, overlay.FrameTypePacket, overlay.NodeLinkAddr("r"), pkt)
	const batch = 16
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, overlay.Headroom+2048)
		sizes[i] = copy(bufs[i][overlay.Headroom:], frame)
	}
	dev.Discard = true
	var rcv overlay.HostReceive
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		h.Receive(&rcv, bufs, sizes, batch)
	}
	b.StopTimer()
	dev.Close()
}
