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
)

type nopBind struct{}

func (nopBind) Open(uint16) ([]overlay.ReceiveFunc, uint16, error) { return nil, 0, nil }
func (nopBind) Send([][]byte, netip.AddrPort) error                 { return nil }
func (nopBind) BatchSize() int                                      { return 64 }
func (nopBind) Close() error                                        { return nil }

var (
	benchHome = netip.MustParsePrefix("2001:db8:1::/64")
	benchLan  = netip.MustParsePrefix("2001:db8:a::/64")
)

func benchRouter(b *testing.B, clk clock.Clock) *overlay.Router {
	r, err := overlay.NewRouter(overlay.RouterConfig{Name: "ha", Address: netip.MustParseAddr("2001:db8:1::1"), Clock: clk,
		Links: []overlay.LinkConfig{{Name: "home", ID: 1, Prefix: benchHome, MTU: 1448}},
		Peers: []overlay.Peer{{Name: "ar", Endpoint: netip.MustParseAddrPort("127.0.0.1:9"), Prefixes: []netip.Prefix{benchLan}}}}, nopBind{})
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
		ha.handleMH(pkts[i], ip6.HeaderLen+mh.HAOHeaderLen)
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
			ha.handleMH(p, ip6.HeaderLen+mh.HAOHeaderLen)
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
