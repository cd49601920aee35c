package secure

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/internal/testenv"
)

// The window accepts each counter once, in any order within its width,
// and nothing older than the width behind the newest.
func TestReplayWindow(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	var w replayWindow
	seen := map[uint64]bool{}
	var newest uint64
	for i := 0; i < 200000; i++ {
		c := newest + uint64(r.IntN(300)) - 150
		if c > newest+150 { // wrapped below zero
			c = uint64(r.IntN(100))
		}
		if r.IntN(50) == 0 {
			c = newest + uint64(r.IntN(20000)) // a jump ahead
		}
		tooOld := newest > c && newest-c > windowSize
		want := !seen[c] && !tooOld
		if got := w.accept(c); got != want {
			t.Fatalf("seed %d: accept(%d) after newest %d = %v, want %v", seed, c, newest, got, want)
		}
		if want {
			seen[c] = true
			newest = max(newest, c)
		}
	}
}

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
	testenv.WaitFor(t, 5*time.Second, "a session", func() bool { return router.count("secure.keepalives") >= 1 })
	const rounds = 400
	for i := 0; i < rounds; i++ {
		if i == rounds/2 {
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
