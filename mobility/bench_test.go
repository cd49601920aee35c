package mobility

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

var (
	benchHome = netip.MustParsePrefix("2001:db8:1::/64")
	benchLan  = netip.MustParsePrefix("2001:db8:a::/64")
)

func benchRouter(b *testing.B, clk clock.Clock) *overlay.Router {
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "ha", Address: netip.MustParseAddr("2001:db8:1::1"), Clock: clk,
		Links: []overlay.LinkConfig{{Name: "home", ID: 1, Prefix: benchHome, MTU: 1448}},
		Peers: []overlay.Peer{{Name: "ar", Endpoint: netip.MustParseAddrPort("127.0.0.1:9"), Prefixes: []netip.Prefix{benchLan}}}}, overlaytest.NopBind{})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func nthAddr(p netip.Prefix, i int) netip.Addr {
	a := p.Addr().As16()
	binary.BigEndian.PutUint32(a[12:], uint32(i+0x100))
	return netip.AddrFrom16(a)
}

func benchCredentials(n int) []MNCredential {
	creds := make([]MNCredential, n)
	for i := range creds {
		key := make([]byte, 16)
		binary.BigEndian.PutUint32(key, uint32(i))
		creds[i] = MNCredential{Name: fmt.Sprint("mn", i), Home: nthAddr(benchHome, i), SPI: uint32(1000 + i), Key: key}
	}
	return creds
}

func benchBU(c MNCredential, seq uint16, ts time.Time) []byte {
	coa := nthAddr(benchLan, int(c.SPI))
	bu := &mh.Message{Type: mh.TypeBU, Sequence: seq, Flags: mh.FlagA | mh.FlagH, Lifetime: 100}
	bu.Options.Set(mh.OptMsgID)
	bu.Options.Timestamp = auth.NTPTime(ts)
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: c.SPI}
	return mh.BuildPacket(mh.Addressing{Src: coa, Dst: netip.MustParseAddr("2001:db8:1::1"), HomeAddress: c.Home}, 64, bu, func(x []byte) {
		a := auth.MNHAAuthenticator(c.Key, coa, c.Home, x, bu.Options.Auth.DataOff)
		copy(x[bu.Options.Auth.DataOff:], a[:])
	})
}

// BenchmarkHomeAgentBU measures authenticated home registrations processed
// per second on one core: parse, RFC 4285 verification, timestamp and
// sequence checks, binding cache update, and the authenticated BA built and
// routed (the underlay send is a no-op). Each op is a BU from a different
// mobile node, out of a population of 100,000.
func BenchmarkHomeAgentBU(b *testing.B) {
	const population = 100000
	creds := benchCredentials(population)
	clk := clock.NewFake(time.Unix(1800000000, 0))
	r := benchRouter(b, clk)
	ha, err := NewHomeAgent(r, NewSignals("ha", &metrics.Set{}, clk), HomeAgentConfig{MobileNodes: creds})
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, b.N)
	for i := range pkts {
		pkts[i] = benchBU(creds[i%population], uint16(1+i/population), clk.Now().Add(time.Duration(i)*time.Microsecond))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ha.handleMH(pkts[i])
	}
	b.StopTimer()
	if got := ha.sig.Metrics().Get("mh.out.BA.home"); got != uint64(b.N) {
		b.Fatalf("%d BAs for %d BUs (drops: %v)", got, b.N, ha.sig.Metrics().Snapshot())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "BU/s")
}

// BenchmarkHomeAgentMemory reports the heap a home agent holds per binding
// once 100,000 mobile nodes have registered (credentials excluded).
func BenchmarkHomeAgentMemory(b *testing.B) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		creds := benchCredentials(n)
		clk := clock.NewFake(time.Unix(1800000000, 0))
		r := benchRouter(b, clk)
		pkts := make([][]byte, n)
		for j := range pkts {
			pkts[j] = benchBU(creds[j], 1, clk.Now())
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ha, _ := NewHomeAgent(r, NewSignals("ha", &metrics.Set{}, clk), HomeAgentConfig{MobileNodes: creds})
		for _, p := range pkts {
			ha.handleMH(p)
		}
		pkts = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		if ha.Bindings().Len() != n {
			b.Fatalf("%d bindings", ha.Bindings().Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/binding")
		runtime.KeepAlive(creds)
		runtime.KeepAlive(ha)
	}
}

func benchHA2R(b *testing.B, clk clock.Clock, n int) (*HA2R, *overlay.Router) {
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "ar", Address: netip.MustParseAddr("2001:db8:a::1"), Clock: clk,
		Links: []overlay.LinkConfig{{Name: "lan", ID: 2, Prefix: benchLan, MTU: 1448}},
		Peers: []overlay.Peer{{Name: "ar2", Endpoint: netip.MustParseAddrPort("127.0.0.1:9"), Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:b::/64"), netip.MustParsePrefix("2001:db8:c::/64")}}}}, overlaytest.NopBind{})
	if err != nil {
		b.Fatal(err)
	}
	x, _ := NewHA2R(r, NewSignals("ar", &metrics.Set{}, clk), HA2RConfig{})
	key := make([]byte, 32)
	for i := 0; i < n; i++ {
		// Each anchored care-of address points at a care-of address under
		// another router: every packet for it is tunnelled.
		x.anchors.Put(Binding{Home: nthAddr(benchLan, i), CareOf: nthAddr(netip.MustParsePrefix("2001:db8:b::/64"), i), Seq: 1, Key: append([]byte(nil), key...)}, time.Hour)
	}
	return x, r
}

// BenchmarkHA2RTunnelForward measures the HA2R's forwarding rate into the
// tunnel with 100,000 anchors: the anchor lookup and the encapsulation of a
// 1,280-byte packet (the router's frame and route work is in
// overlay.BenchmarkRouterForward).
func BenchmarkHA2RTunnelForward(b *testing.B) {
	const n = 100000
	clk := clock.NewFake(time.Unix(1800000000, 0))
	x, _ := benchHA2R(b, clk, n)
	pkts := make([][]byte, 1024)
	for i := range pkts {
		src, dst := netip.MustParseAddr("2001:db8:c::5"), nthAddr(benchLan, i*97%n)
		pkts[i] = ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: src, Dst: dst}, make([]byte, 1240))
	}
	p := &overlay.Packet{Buf: make([]byte, overlay.Headroom+2048)}
	b.SetBytes(1280)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pk := pkts[i%len(pkts)]
		p.Off, p.Len = overlay.Headroom, copy(p.Buf[overlay.Headroom:], pk)
		if x.Forward(p) != overlay.Continue || p.Len != len(pk)+ip6.HeaderLen {
			b.Fatal("not tunnelled")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
}

// BenchmarkHA2RAnchorMemory reports the heap an HA2R holds per anchor with
// 100,000 anchors (each with its 32-byte key).
func BenchmarkHA2RAnchorMemory(b *testing.B) {
	const n = 100000
	for i := 0; i < b.N; i++ {
		clk := clock.NewFake(time.Unix(1800000000, 0))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		x, r := benchHA2R(b, clk, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if x.Anchors().Len() != n {
			b.Fatal("anchors missing")
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/anchor")
		runtime.KeepAlive(x)
		runtime.KeepAlive(r)
	}
}

// BenchmarkHomeAgentMNAuth measures MN Authentication exchanges per second
// at a home agent: AH verification, RFC 4285 verification, key generation,
// sealing the key twice, the authenticated reply and its AH.
func BenchmarkHomeAgentMNAuth(b *testing.B) {
	const population = 100000
	creds := benchCredentials(population)
	clk := clock.NewFake(time.Unix(1800000000, 0))
	r := benchRouter(b, clk)
	seed := []byte("benchmark operator seed.........")
	arAddr := netip.MustParseAddr("2001:db8:a::1")
	peer := HA2RPeer{Name: "ar", Address: arAddr, Prefixes: []netip.Prefix{benchLan},
		In: auth.DeriveHA2RSA(seed, "ha", "ar", true), Out: auth.DeriveHA2RSA(seed, "ha", "ar", false), SealSecret: auth.DeriveHA2RSecret(seed, "ha", "ar")}
	ha, err := NewHomeAgent(r, NewSignals("ha", &metrics.Set{}, clk), HomeAgentConfig{MobileNodes: creds, HA2Rs: []HA2RPeer{peer}})
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, b.N)
	for i := range pkts {
		c := creds[i%population]
		coa := nthAddr(benchLan, i%population)
		m := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: uint16(1 + i/population), Flags: mh.FlagA, Lifetime: 100}
		m.Options.Set(mh.OptAltCoA)
		m.Options.AltCoA = coa
		m.Options.AddExpAddr(mh.ExpHAAddress, r.Address())
		m.Options.AddExpAddr(mh.ExpHomeAddr, c.Home)
		m.Options.Set(mh.OptMsgID)
		m.Options.Timestamp = auth.NTPTime(clk.Now().Add(time.Duration(i) * time.Microsecond))
		m.Options.Set(mh.OptAuth)
		m.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: c.SPI}
		pkt := mh.BuildPacket(mh.Addressing{Src: arAddr, Dst: r.Address()}, 64, m, func(x []byte) {
			a := auth.MNHAAuthenticator(c.Key, coa, c.Home, x, m.Options.Auth.DataOff)
			copy(x[m.Options.Auth.DataOff:], a[:])
		})
		pkts[i], _ = peer.In.Protect(pkt, uint32(i+1))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ha.mnauth.handleRelayed(pkts[i])
	}
	b.StopTimer()
	if got := ha.sig.Metrics().Get("mnauth.accepted"); got != uint64(b.N) {
		b.Fatalf("%d accepted of %d (%v)", got, b.N, ha.sig.Metrics().Snapshot())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}
