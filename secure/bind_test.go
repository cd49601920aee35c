package secure

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// A test node: a secure bind on a MemNet endpoint, with what it receives
// on a channel.
type testNode struct {
	name string
	key  Key
	ep   netip.AddrPort
	mem  *overlaytest.MemBind
	tap  *tapBind
	bind *Bind
	m    *metrics.Set
	got  chan received
}

type received struct {
	from  netip.AddrPort
	frame []byte
}

// tapBind records what a node sends, as an attacker on the path sees it.
type tapBind struct {
	overlay.Bind
	mu   sync.Mutex
	sent []overlaytest.Datagram // From holds the destination
	net  *overlaytest.MemNet    // set by rebind: send from via
	via  netip.AddrPort
	drop int // datagrams still to lose
	// hold keeps what is sent in held, unsent, until release.
	hold bool
	held []overlaytest.Datagram
}

func (t *tapBind) Send(bufs [][]byte, to netip.AddrPort) error {
	t.mu.Lock()
	var keep [][]byte
	for _, b := range bufs {
		t.sent = append(t.sent, overlaytest.Datagram{From: to, Data: append([]byte(nil), b...)})
		if t.drop > 0 {
			t.drop--
			continue
		}
		if t.hold {
			t.held = append(t.held, overlaytest.Datagram{From: to, Data: append([]byte(nil), b...)})
			continue
		}
		keep = append(keep, b)
	}
	bufs = keep
	net, via := t.net, t.via
	t.mu.Unlock()
	if len(bufs) == 0 {
		return nil
	}
	if net != nil {
		for _, b := range bufs {
			net.Deliver(via, to, b)
		}
		return nil
	}
	return t.Bind.Send(bufs, to)
}

// holdSends keeps what the node sends from now on until release.
func (t *tapBind) holdSends() {
	t.mu.Lock()
	t.hold = true
	t.mu.Unlock()
}

// release sends what was held and stops holding.
func (t *tapBind) release() {
	t.mu.Lock()
	held := t.held
	t.hold, t.held = false, nil
	t.mu.Unlock()
	for _, d := range held {
		t.Send([][]byte{d.Data}, d.From)
	}
}

// lose makes the next n datagrams sent get lost.
func (t *tapBind) lose(n int) {
	t.mu.Lock()
	t.drop = n
	t.mu.Unlock()
}

// rebind makes what the node sends come from via, as behind a NAT that
// picked a new mapping.
func (t *tapBind) rebind(net *overlaytest.MemNet, via netip.AddrPort) {
	t.mu.Lock()
	t.net, t.via = net, via
	t.mu.Unlock()
}

func (t *tapBind) sentTo(to netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, d := range t.sent {
		if d.From == to {
			return true
		}
	}
	return false
}

func (t *tapBind) last(kind byte) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.sent) - 1; i >= 0; i-- {
		if t.sent[i].Data[0] == kind && len(t.sent[i].Data) > headerLen+tagLen {
			return t.sent[i].Data
		}
	}
	return nil
}

func newKey(t testing.TB) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pair builds a router (known endpoint) and a host that knows it.
func pair(t *testing.T, clk clock.Clock, mutate func(*Config)) (host, router *testNode, net *overlaytest.MemNet) {
	t.Helper()
	net = overlaytest.NewMemNet()
	router = &testNode{name: "ar1", key: newKey(t), ep: netip.MustParseAddrPort("10.0.0.1:7000")}
	host = &testNode{name: "mn1", key: newKey(t), ep: netip.MustParseAddrPort("10.0.1.1:7001")}
	peersOfHost := []Peer{{Name: router.name, PublicKey: router.key.Public(), Endpoint: router.ep, Warm: true}}
	peersOfRouter := []Peer{{Name: host.name, PublicKey: host.key.Public()}}
	router.start(t, net, clk, peersOfRouter, mutate)
	host.start(t, net, clk, peersOfHost, mutate)
	return host, router, net
}

func (n *testNode) start(t *testing.T, net *overlaytest.MemNet, clk clock.Clock, peers []Peer, mutate func(*Config)) {
	t.Helper()
	n.mem = net.Bind(n.ep.String())
	n.tap = &tapBind{Bind: n.mem}
	n.m = &metrics.Set{}
	cfg := Config{PrivateKey: n.key, Peers: peers, Clock: clk, Metrics: n.m}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(n.tap, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.bind = b
	n.got = make(chan received, 1024)
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, fn := range fns {
		go func() {
			bs := b.BatchSize()
			bufs := make([][]byte, bs)
			for i := range bufs {
				bufs[i] = make([]byte, overlay.MaxDatagram)
			}
			sizes, from := make([]int, bs), make([]netip.AddrPort, bs)
			for {
				k, err := fn(bufs, sizes, from)
				for i := 0; i < k; i++ {
					n.got <- received{from[i], append([]byte(nil), bufs[i][:sizes[i]]...)}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// frame is an overlay keepalive from node name carrying payload.
func frame(name string, payload string) []byte {
	b := make([]byte, overlay.FrameHeaderLen+len(payload))
	h := overlay.FrameHeader{Type: overlay.FrameTypeKeep, LinkID: 7, Src: overlay.NodeLinkAddr(name)}
	h.Put(b)
	copy(b[overlay.FrameHeaderLen:], payload)
	return b
}

func (n *testNode) expect(t *testing.T, want []byte) received {
	t.Helper()
	select {
	case r := <-n.got:
		if !bytes.Equal(r.frame, want) {
			t.Fatalf("%s received %q, want %q", n.name, r.frame, want)
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("%s received nothing", n.name)
	}
	return received{}
}

func (n *testNode) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case r := <-n.got:
		t.Fatalf("%s received %q from %v", n.name, r.frame, r.from)
	default:
	}
}

func (n *testNode) count(name string) uint64 { return n.m.Get(name) }

// waitSession waits until the host's warm handshake with the router is done.
func waitSession(t *testing.T, host, router *testNode) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "a session", func() bool {
		return host.count("secure.sessions") >= 1 && router.count("secure.keepalives") >= 1
	})
}

// A host and a router handshake and exchange frames both ways; each sees
// the other's frame as it was sent, from the other's endpoint.
func TestHandshakeAndTransport(t *testing.T) {
	host, router, _ := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	f := frame("mn1", "hello router")
	if err := host.bind.Send([][]byte{f}, router.ep); err != nil {
		t.Fatal(err)
	}
	if r := router.expect(t, f); r.from != host.ep {
		t.Errorf("router saw the frame from %v, want %v", r.from, host.ep)
	}
	g := frame("ar1", "hello host")
	if err := router.bind.Send([][]byte{g, g}, host.ep); err != nil {
		t.Fatal(err)
	}
	host.expect(t, g)
	host.expect(t, g)
	sealed := host.tap.last(typeTransport)
	if bytes.Contains(sealed, []byte("hello")) {
		t.Error("the frame crossed the underlay in clear")
	}
	if len(sealed) != len(f)+Overhead {
		t.Errorf("sealed frame is %d bytes, want %d + %d", len(sealed), len(f), Overhead)
	}
}

// A router learns nothing from a frame that does not authenticate: not a
// keepalive in clear claiming the host's link-layer address (the hijack
// of issue 15), not a captured frame replayed from the attacker's
// address, not a bit-flipped copy. Sending to the attacker's endpoint is
// refused; the host's own frames still arrive.
func TestForgedFramesTeachNothing(t *testing.T) {
	host, router, net := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	f := frame("mn1", "real")
	host.bind.Send([][]byte{f}, router.ep)
	router.expect(t, f)
	attacker := netip.MustParseAddrPort("10.0.9.9:4444")
	captured := host.tap.last(typeTransport)

	net.Deliver(attacker, router.ep, frame("mn1", "hijack in clear"))
	net.Deliver(attacker, router.ep, captured)
	flipped := append([]byte(nil), captured...)
	flipped[len(flipped)-20] ^= 1
	net.Deliver(attacker, router.ep, flipped)
	forgedIndex := append([]byte(nil), captured...)
	forgedIndex[5] ^= 0xff
	net.Deliver(attacker, router.ep, forgedIndex)
	testenv.WaitFor(t, 5*time.Second, "four drops", func() bool {
		return router.count("secure.drop.plaintext") == 1 && router.count("secure.drop.replayed") == 1 &&
			router.count("secure.drop.auth") == 1 && router.count("secure.drop.unknown_index") == 1
	})
	router.expectNothing(t)
	router.bind.Send([][]byte{frame("ar1", "to the attacker?")}, attacker)
	if router.count("secure.drop.no_peer") != 1 {
		t.Errorf("the router sent to an endpoint no authenticated frame came from (no_peer %d)", router.count("secure.drop.no_peer"))
	}
	router.bind.Send([][]byte{frame("ar1", "to the host")}, host.ep)
	host.expect(t, frame("ar1", "to the host"))

	// A spoofed router: frames from the router's own endpoint, in clear
	// and sealed under a guessed index, are dropped all the same.
	net.Deliver(router.ep, host.ep, frame("ar1", "spoofed router"))
	guessed := append([]byte(nil), captured...)
	guessed[4] ^= 0x55
	net.Deliver(router.ep, host.ep, guessed)
	testenv.WaitFor(t, 5*time.Second, "the host's drops", func() bool {
		return host.count("secure.drop.plaintext") == 1 && host.count("secure.drop.unknown_index") == 1
	})
	host.expectNothing(t)
}

// A node with valid keys of its own cannot claim another node's
// link-layer address.
func TestFrameMustClaimItsSendersLinkAddress(t *testing.T) {
	host, router, _ := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	host.bind.Send([][]byte{frame("mn2", "I am mn2")}, router.ep)
	testenv.WaitFor(t, 5*time.Second, "the drop", func() bool { return router.count("secure.drop.wrong_link_addr") == 1 })
	router.expectNothing(t)
}

// A host behind a NAT that rebinds: its sealed frames from the new
// address move the router's view of it there, and the router's answers
// follow; a replay of an old frame from yet another address moves nothing.
func TestRoamingFollowsAuthenticatedFrames(t *testing.T) {
	host, router, net := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	host.bind.Send([][]byte{frame("mn1", "before")}, router.ep)
	router.expect(t, frame("mn1", "before"))
	old := host.tap.last(typeTransport)

	moved := netip.MustParseAddrPort("10.0.2.2:9999")
	host.tap.rebind(net, moved)
	host.bind.Send([][]byte{frame("mn1", "through the NAT")}, router.ep)
	if r := router.expect(t, frame("mn1", "through the NAT")); r.from != moved {
		t.Fatalf("router saw %v, want the rebound address %v", r.from, moved)
	}
	router.bind.Send([][]byte{frame("ar1", "back")}, moved)
	if !router.tap.sentTo(moved) || router.count("secure.drop.no_peer") != 0 {
		t.Fatal("the router did not answer at the host's new address")
	}
	net.Deliver(netip.MustParseAddrPort("10.0.9.9:4444"), router.ep, old)
	testenv.WaitFor(t, 5*time.Second, "the replay drop", func() bool { return router.count("secure.drop.replayed") == 1 })
	router.bind.Send([][]byte{frame("ar1", "still at the NAT")}, moved)
	if router.count("secure.drop.no_peer") != 0 {
		t.Fatal("a replayed frame moved the host's endpoint")
	}
}

// A recorded initiation replayed later is refused by its timestamp; the
// session stays the one in use.
func TestReplayedInitiationRefused(t *testing.T) {
	host, router, net := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	init := host.tap.last(typeInitiation)
	if init == nil {
		t.Fatal("no initiation recorded")
	}
	net.Deliver(netip.MustParseAddrPort("10.0.9.9:1"), router.ep, init)
	testenv.WaitFor(t, 5*time.Second, "the refusal", func() bool { return router.count("secure.drop.stale_initiation") == 1 })
	host.bind.Send([][]byte{frame("mn1", "still here")}, router.ep)
	router.expect(t, frame("mn1", "still here"))
}
