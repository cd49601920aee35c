package secure

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// An initiation lost on the way is sent again after the retry interval
// (a new one: fresh ephemeral and timestamp); frames staged meanwhile go
// out when the session is up.
func TestLostInitiationRetried(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	host, router, _ := pair(t, clk, func(c *Config) {
		c.Peers = withoutWarm(c.Peers)
	})
	host.tap.lose(1)
	f := frame("mn1", "waits for the session")
	host.bind.Send([][]byte{f}, router.ep)
	if host.count("secure.handshake.initiations") != 1 || router.count("secure.handshake.responses") != 0 {
		t.Fatal("the first initiation was not sent (or not lost)")
	}
	clk.Advance(time.Second)
	router.expect(t, f)
	if host.count("secure.handshake.retries") != 1 {
		t.Errorf("retries %d, want 1", host.count("secure.handshake.retries"))
	}
}

// A peer that never answers: the initiator gives up after MaxAttempts and
// drops what it staged, counted.
func TestHandshakeGivesUp(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	host, router, _ := pair(t, clk, func(c *Config) { c.Peers = withoutWarm(c.Peers); c.MaxAttempts = 3 })
	host.tap.lose(1 << 30)
	host.bind.Send([][]byte{frame("mn1", "lost")}, router.ep)
	for i := 0; i < 5; i++ {
		clk.Advance(time.Second)
	}
	if got := host.count("secure.handshake.initiations"); got != 3 {
		t.Errorf("initiations %d, want 3", got)
	}
	if host.count("secure.handshake.gave_up") != 1 || host.count("secure.drop.staged") != 1 {
		t.Errorf("gave_up %d, staged drops %d; want 1, 1", host.count("secure.handshake.gave_up"), host.count("secure.drop.staged"))
	}
}

// Sessions rekey on time and on message count while frames flow both
// ways, and not one frame is lost across the change of keys.
func TestRekeyLosesNothing(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	host, router, _ := pair(t, clk, func(c *Config) { c.RekeyAfterMessages = 50 })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mn1: %v", host.m.Snapshot())
			t.Logf("ar1: %v", router.m.Snapshot())
		}
	})
	testenv.WaitFor(t, 5*time.Second, "a session", func() bool { return router.count("secure.keepalives") >= 1 })
	const rounds = 400
	for i := 0; i < rounds; i++ {
		if i == rounds/2 {
			// Past both ends' rekey times at once, at a moment when no
			// handshake is in flight: a fake clock fires a retry timer
			// once per interval it jumps over (twenty retries at once),
			// which a real clock after a suspend does not.
			testenv.WaitFor(t, 5*time.Second, "no handshake in flight", func() bool { return idle(host) && idle(router) })
			clk.Advance(defaultRekeyAfterTime + 11*time.Second)
		}
		f := frame("mn1", "up")
		host.bind.Send([][]byte{f}, router.ep)
		router.expect(t, f)
		g := frame("ar1", "down")
		router.bind.Send([][]byte{g}, host.ep)
		host.expect(t, g)
	}
	if s := host.count("secure.sessions"); s < 5 {
		t.Errorf("the host installed %d sessions over %d frames each way with rekeying after 50 messages; want several", s, rounds)
	}
	for _, n := range []*testNode{host, router} {
		for _, c := range []string{"secure.drop.unknown_index", "secure.drop.auth", "secure.drop.expired", "secure.drop.replayed", "secure.drop.staged"} {
			if v := n.count(c); v != 0 {
				t.Errorf("%s: %s = %d", n.name, c, v)
			}
		}
	}
}

// idle says n has no handshake in flight with any peer.
func idle(n *testNode) bool {
	for _, p := range n.bind.peers {
		p.mu.Lock()
		busy := p.hs != nil
		p.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

func withoutWarm(peers []Peer) []Peer {
	out := append([]Peer(nil), peers...)
	for i := range out {
		out[i].Warm = false
	}
	return out
}

// A router that restarts has forgotten its sessions: the host's next
// frame gets an unknown-session answer, the host handshakes again at
// once, and what it sends after that arrives.
func TestRestartedPeerAsksForHandshake(t *testing.T) {
	host, router, net := pair(t, clock.Real{}, nil)
	waitSession(t, host, router)
	router.bind.Close()
	restarted := &testNode{name: router.name, key: router.key, ep: router.ep}
	restarted.start(t, net, clock.Real{}, []Peer{{Name: host.name, PublicKey: host.key.Public()}}, nil)
	host.bind.Send([][]byte{frame("mn1", "into the void")}, router.ep)
	testenv.WaitFor(t, 5*time.Second, "a new session", func() bool {
		return host.count("secure.unknown_session.heeded") == 1 && restarted.count("secure.keepalives") >= 1
	})
	host.bind.Send([][]byte{frame("mn1", "after the restart")}, router.ep)
	restarted.expect(t, frame("mn1", "after the restart"))
}

// Under a flood of initiations: the router's budget (here 1 a second) is
// spent by an initiation from a key it does not know; the host's own
// initiation then gets a cookie reply instead of a handshake, initiates
// again with mac2, and is answered from the budget a flood cannot spend,
// while the flood's further initiations (no cookie at their address) get
// nothing but cookie replies.
func TestCookieUnderFlood(t *testing.T) {
	host, router, net := pair(t, clock.Real{}, func(c *Config) {
		c.Peers = withoutWarm(c.Peers)
		c.HandshakesPerSecond = 1
	})
	stranger, err := New(overlaytest.NopBind{}, Config{PrivateKey: newKey(t), Peers: []Peer{{Name: "ar1", PublicKey: router.key.Public()}}})
	if err != nil {
		t.Fatal(err)
	}
	flooder := netip.MustParseAddrPort("10.0.9.9:4444")
	for range 3 {
		_, msg, err := stranger.createInitiation(stranger.peers[router.key.Public()])
		if err != nil {
			t.Fatal(err)
		}
		net.Deliver(flooder, router.ep, msg)
	}
	testenv.WaitFor(t, 5*time.Second, "the flood to spend the budget", func() bool {
		return router.count("secure.drop.unknown_key") == 1 && router.count("secure.drop.rate_limited") == 2
	})
	f := frame("mn1", "through the flood")
	host.bind.Send([][]byte{f}, router.ep)
	router.expect(t, f)
	if host.count("secure.cookie.received") != 1 || router.count("secure.cookie.admitted") != 1 {
		t.Errorf("cookie received %d, admitted with mac2 %d; want 1, 1", host.count("secure.cookie.received"), router.count("secure.cookie.admitted"))
	}
	if router.count("secure.cookie.sent") < 3 {
		t.Errorf("cookie replies sent %d, want one to each initiation past the budget", router.count("secure.cookie.sent"))
	}
}

// Two initiations that cross on the wire (both ends rekey at once) end in
// one session that both ends send under: the lower key's initiation is
// answered, the other is dropped, and the higher key's end abandons its
// own. Answered both, each end would hold as current the session the
// other initiated, and retire at the next rekey the one the other still
// sent under (frames lost; seen in TestRekeyLosesNothing).
func TestCrossedInitiationsSettleOnOne(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	host, router, net := pair(t, clk, nil)
	waitSession(t, host, router)
	hp, rp := host.bind.peers[router.key.Public()], router.bind.peers[host.key.Public()]
	hostKeepalives, routerKeepalives := host.count("secure.keepalives"), router.count("secure.keepalives")
	host.tap.lose(1)
	router.tap.lose(1)
	host.bind.sendInitiation(hp, router.ep)
	router.bind.sendInitiation(rp, host.ep)
	hostInit, routerInit := host.tap.last(typeInitiation), router.tap.last(typeInitiation)
	lower, higher, higherKeepalives := host, router, routerKeepalives
	hk, rk := host.key.Public(), router.key.Public()
	if bytes.Compare(rk[:], hk[:]) < 0 {
		lower, higher, higherKeepalives = router, host, hostKeepalives
	}
	// Each end takes the other's initiation before any answer leaves:
	// the answers are held until both have.
	responses := lower.count("secure.handshake.responses") + higher.count("secure.handshake.responses")
	host.tap.holdSends()
	router.tap.holdSends()
	net.Deliver(host.ep, router.ep, hostInit)
	net.Deliver(router.ep, host.ep, routerInit)
	testenv.WaitFor(t, 5*time.Second, "both initiations taken", func() bool {
		return lower.count("secure.handshake.crossed") == 1 && higher.count("secure.handshake.responses") > 0 &&
			lower.count("secure.handshake.responses")+higher.count("secure.handshake.responses") > responses
	})
	host.tap.release()
	router.tap.release()
	testenv.WaitFor(t, 5*time.Second, "the crossing settled", func() bool {
		return higher.count("secure.keepalives") > higherKeepalives
	})
	if got := lower.count("secure.handshake.responses") + higher.count("secure.handshake.responses") - 1; got != 1 {
		t.Errorf("%d responses to the two crossed initiations, want 1", got) // 1: the warm handshake's
	}
	if hc, rc := hp.current.Load(), rp.current.Load(); hc.localIndex != rc.remoteIndex || hc.remoteIndex != rc.localIndex {
		t.Errorf("the ends hold different sessions: host %d->%d, router %d->%d", hc.localIndex, hc.remoteIndex, rc.localIndex, rc.remoteIndex)
	}
	f, g := frame("mn1", "up"), frame("ar1", "down")
	host.bind.Send([][]byte{f}, router.ep)
	router.expect(t, f)
	router.bind.Send([][]byte{g}, host.ep)
	host.expect(t, g)
	if higher.count("secure.handshake.crossed") != 0 || lower.count("secure.drop.stale_response")+higher.count("secure.drop.stale_response") != 0 {
		t.Errorf("crossed at the higher key's end %d, stale responses %d %d; want 0", higher.count("secure.handshake.crossed"),
			lower.count("secure.drop.stale_response"), higher.count("secure.drop.stale_response"))
	}
}
