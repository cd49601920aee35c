package secure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// handshakePair is an initiator, the responder it knows, and the
// initiator's record of it, on a fake clock and no underlay.
func handshakePair(b *testing.B) (ini, res *Bind, p *peer) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	ik, rk := newKey(b), newKey(b)
	ini, _ = New(overlaytest.NopBind{}, Config{PrivateKey: ik, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "ar1", PublicKey: rk.Public()}}})
	res, _ = New(overlaytest.NopBind{}, Config{PrivateKey: rk, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "mn1", PublicKey: ik.Public()}}})
	return ini, res, ini.peers[rk.Public()]
}

// BenchmarkHandshake is one whole Noise IK handshake: the initiator's
// first message, the responder's answer, the initiator's completion (both
// sides' CPU, in one goroutine).
func BenchmarkHandshake(b *testing.B) {
	ini, res, p := handshakePair(b)
	b.ReportAllocs()
	for b.Loop() {
		hs, msg, err := ini.createInitiation(p)
		if err != nil {
			b.Fatal(err)
		}
		_, reply, err := res.consumeInitiation(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ini.consumeResponse(hs, reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRespond is what one initiation costs the node that answers it:
// the price of a handshake flood per message that passes mac1.
func BenchmarkRespond(b *testing.B) {
	ini, res, p := handshakePair(b)
	msgs := make([][]byte, 0, 1024)
	for range cap(msgs) {
		_, msg, _ := ini.createInitiation(p)
		msgs = append(msgs, msg)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Past the first round every initiation is stale: refused after
		// the Diffie-Hellmans, which is what a replay flood costs.
		res.consumeInitiation(msgs[i%len(msgs)])
	}
}

// sessionPair returns a host bind with a session to a router bind, both
// over NopBinds, and the router's endpoint.
func sessionPair(b testing.TB) (host, router *Bind, ep netip.AddrPort) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	hk, rk := newKey(b), newKey(b)
	ep = netip.MustParseAddrPort("10.0.0.1:7000")
	hostEP := netip.MustParseAddrPort("10.0.1.1:7001")
	router, _ = New(overlaytest.NopBind{}, Config{PrivateKey: rk, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "mn1", PublicKey: hk.Public()}}})
	var toRouter [][]byte
	host, _ = New(&overlaytest.FuncBind{SendFunc: func(bufs [][]byte, _ netip.AddrPort) error {
		for _, m := range bufs {
			toRouter = append(toRouter, append([]byte(nil), m...))
		}
		return nil
	}}, Config{PrivateKey: hk, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "ar1", PublicKey: rk.Public(), Endpoint: ep}}})
	hs, msg, _ := host.createInitiation(host.peers[rk.Public()])
	kp, reply, err := router.consumeInitiation(msg)
	if err != nil {
		b.Fatal(err)
	}
	router.offer(kp.peer, kp, hostEP)
	hkp, err := host.consumeResponse(hs, reply)
	if err != nil {
		b.Fatal(err)
	}
	host.byIndex[hkp.localIndex] = hkp
	host.peers[rk.Public()].current.Store(hkp)
	return host, router, ep
}

// BenchmarkSeal1400 seals a 1400-byte frame (AES-256-GCM and framing).
func BenchmarkSeal1400(b *testing.B) {
	host, _, ep := sessionPair(b)
	f := frame("mn1", string(make([]byte, 1384)))
	bufs := [][]byte{f}
	host.inner = overlaytest.NopBind{}
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		host.Send(bufs, ep)
	}
}

// BenchmarkForged is what a forged transport message costs a node: with
// an index it does not know (a blind forger), and with a live index
// (one that saw the session's traffic) but a wrong tag.
func BenchmarkForged(b *testing.B) {
	_, router, _ := sessionPair(b)
	var live uint32
	for idx := range router.byIndex {
		live = idx
	}
	from := netip.MustParseAddrPort("10.0.9.9:1")
	for _, tc := range []struct {
		name  string
		index uint32
	}{{"unknown-index", live + 1}, {"live-index", live}} {
		b.Run(tc.name, func(b *testing.B) {
			msg := make([]byte, headerLen+1400+tagLen)
			orig := make([]byte, len(msg))
			putTransportHeader(orig, tc.index, 1)
			sc := new(scratch)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				copy(msg, orig)
				if _, ok := router.process(msg, from, sc); ok {
					b.Fatal("forged message opened")
				}
			}
		})
	}
}

// TestOpenAllocatesNothing: a transport message from the session's known
// endpoint opens without an allocation (learning the endpoint once put
// every message's sender address on the heap).
func TestOpenAllocatesNothing(t *testing.T) {
	host, router, ep := sessionPair(t)
	var sealed [][]byte
	host.inner = &overlaytest.FuncBind{SendFunc: func(bufs [][]byte, _ netip.AddrPort) error {
		for _, m := range bufs {
			sealed = append(sealed, append([]byte(nil), m...))
		}
		return nil
	}}
	const runs = 100
	f := frame("mn1", string(make([]byte, 1000)))
	for range runs + 1 { // AllocsPerRun calls once more to warm up
		if err := host.Send([][]byte{f}, ep); err != nil {
			t.Fatal(err)
		}
	}
	from := netip.MustParseAddrPort("10.0.1.1:7001")
	sc := new(scratch)
	i, opened := 0, 0
	allocs := testing.AllocsPerRun(runs, func() {
		if _, ok := router.process(sealed[i], from, sc); ok {
			opened++
		}
		i++
	})
	if opened != runs+1 {
		t.Fatalf("%d of %d sealed messages opened", opened, runs+1)
	}
	if allocs != 0 {
		t.Errorf("opening a message allocates %.1f times, want 0", allocs)
	}
}
