package overlay

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
)

// BenchmarkRouterForward measures the router's per-packet forwarding work
// (frame parse, checks, hop limit, route lookup, frame rewrite, grouping for
// sendmmsg) without the syscalls: packets from a host on an access link to a
// prefix behind a backbone peer, in batches of 64. packets/s per core is
// 1e9 / (ns/op).
func BenchmarkRouterForward(b *testing.B) {
	clk := clock.Real{}
	r, err := NewRouter(RouterConfig{Name: "r1", Address: netip.MustParseAddr("2001:db8:a::1"),
		Links: []LinkConfig{{Name: "lan", ID: 42, Prefix: lanPrefix, MTU: 1448}}, Clock: clk,
		Peers: []Peer{{Name: "r2", Endpoint: netip.MustParseAddrPort("10.0.0.9:1"), Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:b::/64")}}}},
		nopBind{})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	pkt := echo(netip.MustParseAddr("2001:db8:a::5"), netip.MustParseAddr("2001:db8:b::7"), 64)
	pkt = append(pkt, make([]byte, 1400-len(pkt))...)
	pkt[4], pkt[5] = byte((len(pkt)-40)>>8), byte(len(pkt)-40)
	frame := frameOf(42, FrameTypePacket, NodeLinkAddr("h"), pkt)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+MaxDatagram)
	}
	from := netip.MustParseAddrPort("10.0.0.5:5")
	st := rx{from: from}
	now := time.Now()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		for j := 0; j < n; j++ {
			copy(bufs[j][Headroom:], frame)
			bufs[j][Headroom+FrameHeaderLen+7] = 64 // fresh hop limit
			r.handleFrame(bufs[j], len(frame), now, &st)
		}
		r.flush(&st)
		i += n
	}
	b.StopTimer()
	if r.m.Get("packets.forwarded") < uint64(b.N) {
		b.Fatalf("forwarded %d of %d", r.m.Get("packets.forwarded"), b.N)
	}
	b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "pkt/s")
}
