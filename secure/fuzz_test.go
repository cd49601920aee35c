package secure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// fuzzPeers is a responder that knows one initiator, with messages of a
// real handshake and transport between them for the corpus.
func fuzzPeers(t testing.TB) (responder *Bind, initiation, transport []byte) {
	t.Helper()
	clk := clock.NewFake(time.Unix(1e9, 0))
	ik, rk := newKey(t), newKey(t)
	var sent [][]byte
	capture := &overlaytest.FuncBind{SendFunc: func(bufs [][]byte, _ netip.AddrPort) error {
		for _, b := range bufs {
			sent = append(sent, append([]byte(nil), b...))
		}
		return nil
	}, Batch: 8}
	ep := netip.MustParseAddrPort("10.0.0.1:7000")
	ini, err := New(capture, Config{PrivateKey: ik, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "ar1", PublicKey: rk.Public(), Endpoint: ep}}})
	if err != nil {
		t.Fatal(err)
	}
	responder, err = New(overlaytest.NopBind{}, Config{PrivateKey: rk, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "mn1", PublicKey: ik.Public()}}})
	if err != nil {
		t.Fatal(err)
	}
	ini.Send([][]byte{frame("mn1", "x")}, ep) // stages, initiates
	initiation = sent[0]
	// A second bind answers so that the initiator gets a session.
	answer, _ := New(&overlaytest.FuncBind{SendFunc: func(bufs [][]byte, _ netip.AddrPort) error {
		for _, b := range bufs {
			ini.process(append([]byte(nil), b...), ep, new(scratch))
		}
		return nil
	}}, Config{PrivateKey: rk, Clock: clk, Metrics: &metrics.Set{}, Peers: []Peer{{Name: "mn1", PublicKey: ik.Public()}}})
	answer.process(initiation, netip.MustParseAddrPort("10.0.1.1:1"), new(scratch))
	transport = sent[len(sent)-1]
	return responder, initiation, transport
}

// Whatever arrives on the underlay, the secure bind neither panics nor
// lets through a frame it cannot authenticate.
func FuzzReceive(f *testing.F) {
	responder, initiation, transport := fuzzPeers(f)
	f.Add(initiation)
	f.Add(transport)
	f.Add(frame("mn1", "in clear"))
	f.Add([]byte{typeResponse, 0, 0, 0})
	f.Add(append([]byte{typeCookie, 0, 0, 0}, make([]byte, cookieLen-4)...))
	from := netip.MustParseAddrPort("10.0.9.9:1")
	f.Fuzz(func(t *testing.T, msg []byte) {
		if frame, ok := responder.process(msg, from, new(scratch)); ok {
			t.Fatalf("a forged message opened to %x", frame)
		}
	})
}
