package mobility

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/state"
)

// paperRig is the paper's scheme on the fake clock: a home agent, two
// HA2Rs and a mobile node, wired by destination address.
type paperRig struct {
	*mnRig
	ha         *haRig
	ar1, ar2   *fakeRouter
	x1, x2     *HA2R
	sig1, sig2 *Signals
	drop       func(from string, s sentMsg) bool // loses chosen messages
}

var (
	link1 = overlay.LinkConfig{Name: "ar1", ID: 11, Prefix: arP}
	link2 = overlay.LinkConfig{Name: "ar2", ID: 12, Prefix: ar2P}
)

func newPaperRig(t *testing.T) *paperRig {
	t.Helper()
	g := &paperRig{mnRig: newMNRig(t, SchemeHA2R)}
	seed := []byte("operator seed for the engine tests")
	var peers []HA2RPeer
	for i, ar := range []struct {
		name string
		addr netip.Addr
		l    overlay.LinkConfig
	}{{"ar1", arAddr, link1}, {"ar2", ar2, link2}} {
		r := newFakeRouter(ar.name, ar.addr, g.clk, ar.l)
		sig := newSignals(ar.name, g.clk)
		x, _ := NewHA2R(r, sig, HA2RConfig{Log: quiet, HomeAgents: []HAPeer{{Name: "ha", Address: haAddr,
			Out: auth.DeriveHA2RSA(seed, "ha", ar.name, true), In: auth.DeriveHA2RSA(seed, "ha", ar.name, false),
			SealSecret: auth.DeriveHA2RSecret(seed, "ha", ar.name)}}})
		t.Cleanup(x.Close)
		peers = append(peers, HA2RPeer{Name: ar.name, Address: ar.addr, Prefixes: []netip.Prefix{ar.l.Prefix},
			In: auth.DeriveHA2RSA(seed, "ha", ar.name, true), Out: auth.DeriveHA2RSA(seed, "ha", ar.name, false),
			SealSecret: auth.DeriveHA2RSecret(seed, "ha", ar.name)})
		if i == 0 {
			g.ar1, g.x1, g.sig1 = r, x, sig
		} else {
			g.ar2, g.x2, g.sig2 = r, x, sig
		}
	}
	clk := g.clk
	g.ha = &haRig{clk: clk, r: newFakeRouter("ha", haAddr, clk, overlay.LinkConfig{Name: "home", ID: 1, Prefix: homeP}), sig: newSignals("ha", clk)}
	ha, err := NewHomeAgent(g.ha.r, g.ha.sig, HomeAgentConfig{Log: quiet, HA2Rs: peers,
		MobileNodes: []MNCredential{{Name: "mn", Home: hoa, SPI: mnSPI, Key: mnKey}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ha.Close)
	g.ha.ha = ha
	return g
}

// pump delivers what everyone sent until nothing moves, and returns the
// mobility messages each sent, by name.
func (g *paperRig) pump(t *testing.T) map[string]map[string]int {
	t.Helper()
	sent := map[string]map[string]int{"mn": {}, "ar1": {}, "ar2": {}, "ha": {}}
	type node struct {
		name string
		o    *outbox
	}
	nodes := []node{{"mn", &g.h.outbox}, {"ar1", &g.ar1.outbox}, {"ar2", &g.ar2.outbox}, {"ha", &g.ha.r.outbox}}
	for moved := true; moved; {
		moved = false
		for _, n := range nodes {
			for _, p := range n.o.take() {
				moved = true
				var c ip6.Chain
				ip6.Walk(p, &c)
				if c.Upper == ip6.ProtoMH {
					var m mh.Message
					inner := p
					if _, ok := c.Find(ip6.ProtoAH); ok {
						inner = stripAH(p)
					}
					if _, err := mh.ParsePacket(inner, &m); err == nil {
						sent[n.name][MsgName(&m, false)]++
						if g.drop != nil && g.drop(n.name, sentMsg{pkt: p, m: m, ok: true}) {
							continue
						}
					}
				}
				g.route(n.name, p)
			}
		}
	}
	return sent
}

// stripAH returns the packet without its Authentication Header, to read it.
func stripAH(p []byte) []byte {
	out := append([]byte(nil), p[:ip6.HeaderLen]...)
	out[ip6.OffNextHeader] = p[ip6.HeaderLen]
	out = append(out, p[ip6.HeaderLen+auth.AHLen:]...)
	ip6.Header(out).SetPayloadLen(len(out) - ip6.HeaderLen)
	return out
}

func (g *paperRig) route(from string, p []byte) {
	dst := ip6.Header(p).Dst()
	pk := overlay.NewPacket(p)
	switch {
	case dst == haAddr:
		g.ha.ha.Local(pk, nil)
	case dst == arAddr || dst == overlay.LinkLocal("r", "ar1"):
		in := &link1
		if from != "mn" {
			in = nil
		}
		g.x1.Local(pk, in)
	case dst == ar2 || dst == overlay.LinkLocal("r", "ar2"):
		in := &link2
		if from != "mn" {
			in = nil
		}
		g.x2.Local(pk, in)
	default:
		g.h.hook.Inbound(pk)
	}
}

// The MN Authentication exchange through both routers, then a move: the old
// HA2R points the anchor at the new care-of address, and an idle anchor is
// released with a BU that is retransmitted until acknowledged.
func TestHA2RAnchorLifecycle(t *testing.T) {
	g := newPaperRig(t)
	g.h.attach(attachment("ar1", arP, careOf1))
	sent := g.pump(t)
	if sent["mn"]["MNAuthReq"] != 1 || sent["ar1"]["MNAuthReq"] != 1 || sent["ha"]["MNAuthRep"] != 1 || sent["ar1"]["MNAuthRep"] != 1 {
		t.Fatalf("authentication: %v", sent)
	}
	if b, ok := g.x1.Anchors().Get(careOf1); !ok || b.CareOf != careOf1 || b.Key == nil {
		t.Fatalf("ar1 anchor %+v", b)
	}
	// Move: the anchor BU makes ar1 tunnel careOf1 to careOf2.
	g.h.attach(attachment("ar2", ar2P, careOf2))
	sent = g.pump(t)
	if sent["mn"]["BU"] != 2 || sent["ar1"]["BA"] != 1 { // BU.home and BU.anchor both count as BU here
		t.Fatalf("move: %v", sent)
	}
	if b, _ := g.x1.Anchors().Get(careOf1); b.CareOf != careOf2 {
		t.Fatalf("ar1 anchors careOf1 at %s", b.CareOf)
	}
	// Idle for AnchorIdle: released, the release acknowledged, ar1 keeps
	// no anchor.
	var lostReleaseBA bool
	g.drop = func(from string, s sentMsg) bool {
		if from == "ar1" && s.m.Type == mh.TypeBA && s.m.Lifetime == 0 && !lostReleaseBA {
			lostReleaseBA = true // the first acknowledgement of the release is lost
			return true
		}
		return false
	}
	for i := 0; i < 40 && counter(g.sig, "anchor.release_acknowledged") == 0; i++ {
		g.clk.Advance(time.Second)
		g.pump(t)
	}
	if !lostReleaseBA || counter(g.sig, "anchor.release_acknowledged") != 1 || counter(g.sig1, "ha2r.anchor.release_repeated") != 1 {
		t.Fatalf("release: lost BA %v, acknowledged %d, repeated %d", lostReleaseBA,
			counter(g.sig, "anchor.release_acknowledged"), counter(g.sig1, "ha2r.anchor.release_repeated"))
	}
	if g.x1.Anchors().Len() != 0 {
		t.Error("ar1 still anchors the released address")
	}
	// Nothing left behind: no pending requests, and the remembered release
	// is forgotten after releaseMemory.
	g.clk.Advance(releaseMemory + 2*time.Second)
	if req, rel := g.x1.Pending(); req != 0 || rel != 0 {
		t.Errorf("ar1 keeps %d requests and %d releases", req, rel)
	}
}

// A relayed request the home agent never answers is forgotten after
// PendingTimeout; the mobile node retransmits with the same sequence number
// and gives the anchor up after six sends.
func TestHA2RPendingTimeoutAndMNAuthRetransmission(t *testing.T) {
	g := newPaperRig(t)
	var seqs []uint16
	g.drop = func(from string, s sentMsg) bool {
		if from == "mn" && s.m.Type == mh.TypeExperimental {
			seqs = append(seqs, s.m.Sequence)
		}
		return from == "ha" // the home agent's answers are lost
	}
	g.h.attach(attachment("ar1", arP, careOf1))
	for range 70 {
		g.pump(t)
		g.clk.Advance(time.Second)
	}
	for _, s := range seqs {
		if s != seqs[0] {
			t.Fatalf("retransmitted requests changed their sequence number: %v", seqs)
		}
	}
	if n := counter(g.sig, "anchor.gave_up"); n != 1 {
		t.Fatalf("gave up %d times", n)
	}
	if n := counter(g.sig, "mh.out.MNAuthReq"); n != maxAnchorSends {
		t.Errorf("%d MN Authentication Requests, want %d", n, maxAnchorSends)
	}
	if req, _ := g.x1.Pending(); req != 0 || counter(g.sig1, "mnauth.unanswered") == 0 {
		t.Errorf("ar1 keeps %d requests; unanswered %d", req, counter(g.sig1, "mnauth.unanswered"))
	}
}

// The AH between an HA2R and a home agent refuses a replayed packet.
func TestHA2RReplayedReplyRefused(t *testing.T) {
	g := newPaperRig(t)
	var reply []byte
	g.drop = func(from string, s sentMsg) bool {
		if from == "ha" && s.m.Type == mh.TypeExperimental && reply == nil {
			reply = append([]byte(nil), s.pkt...)
		}
		return false
	}
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	g.x1.Local(overlay.NewPacket(reply), nil)
	if dropped(g.sig1, DropMNAuthAHReplay) != 1 {
		t.Fatalf("replay not refused: %v", g.sig1.Metrics().Snapshot())
	}
}

// An anchor that carries traffic is refreshed with a fifth of its lifetime
// left, like every binding the node holds.
func TestAnchorRefresh(t *testing.T) {
	g := newPaperRig(t)
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	g.h.attach(attachment("ar2", ar2P, careOf2))
	g.pump(t)
	anchors := g.mn.scheme.(*ha2rScheme).anchors
	bound := g.clk.Now()
	for counter(g.sig, "anchor.refresh") == 0 && g.clk.Now().Sub(bound) < DefaultAnchorLifetime {
		anchors.noteActivity(careOf1)
		g.clk.Advance(time.Second)
		g.pump(t)
	}
	// Both anchors (the tunnelled one at ar1, the local one at ar2) were
	// granted 420 s: refreshed at 336 s.
	if at := g.clk.Now().Sub(bound); at < refreshAfter(DefaultAnchorLifetime) || at > refreshAfter(DefaultAnchorLifetime)+time.Second {
		t.Fatalf("refreshed after %v, want %v", at, refreshAfter(DefaultAnchorLifetime))
	}
	if b, _ := g.x1.Anchors().Get(careOf1); b.CareOf != careOf2 || b.Expires.Sub(g.clk.Now()) < 400*time.Second {
		t.Errorf("ar1's anchor after the refresh: %+v", b)
	}
}

// A home agent restarted with its state store continues where it left off:
// its bindings are back, and its AH sequence numbers continue above what
// the HA2R's replay window has seen, so the first MN Authentication after
// the restart goes through at once.
func TestHomeAgentRestartKeepsState(t *testing.T) {
	g := newPaperRig(t)
	store := &state.Memory{}
	restart := func() {
		g.ha.ha.Close()
		ha, err := NewHomeAgent(g.ha.r, g.ha.sig, HomeAgentConfig{Log: quiet, HA2Rs: g.ha.ha.cfg.HA2Rs, State: store,
			MobileNodes: []MNCredential{{Name: "mn", Home: hoa, SPI: mnSPI, Key: mnKey}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ha.Close)
		g.ha.ha = ha
	}
	restart() // from here on with a store
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	if counter(g.sig, "mnauth.completed") != 1 {
		t.Fatal("no authentication before the restart")
	}
	restart()
	if _, ok := g.ha.ha.Bindings().Lookup(hoa); !ok {
		t.Fatal("the home binding did not survive the restart")
	}
	// Away at ar2 until the idle anchor at ar1 is released, then back at
	// ar1, which has seen the home agent's replies before: a new
	// authentication there.
	g.clk.Advance(time.Second) // a fresh RFC 4285 timestamp
	g.h.attach(attachment("ar2", ar2P, careOf2))
	g.pump(t)
	for range 40 {
		g.clk.Advance(time.Second)
		g.pump(t)
	}
	if g.x1.Anchors().Len() != 0 {
		t.Fatal("the idle anchor at ar1 was not released")
	}
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	if n := counter(g.sig, "mnauth.completed"); n != 3 {
		t.Errorf("%d authentications completed, want 3 (ar1: %v)", n, g.sig1.Metrics().Snapshot())
	}
	if n := dropped(g.sig1, DropMNAuthAHReplay); n != 0 {
		t.Errorf("ar1 refused %d replies of the restarted home agent as replays", n)
	}
}

// A home agent restarted without its state (a new machine) holds no binding
// for the node; the first packet the node sends through the reverse tunnel
// makes it ask for a refresh (an authenticated Binding Refresh Request), the
// node registers again at once and says so (its SIP registration is to be
// renewed too). A forged request is ignored.
func TestHomeAgentWithoutStateAsksForRefresh(t *testing.T) {
	g := newPaperRig(t)
	restored := make(chan struct{}, 1)
	g.mn.OnHomeRestored(func() { restored <- struct{}{} })
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	g.ha.ha.Close()
	ha, err := NewHomeAgent(g.ha.r, g.ha.sig, HomeAgentConfig{Log: quiet, HA2Rs: g.ha.ha.cfg.HA2Rs,
		MobileNodes: []MNCredential{{Name: "mn", Home: hoa, SPI: mnSPI, Key: mnKey}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ha.Close)
	g.ha.ha = ha
	g.clk.Advance(time.Second)

	// A forged request (no MN-HA authenticator) changes nothing.
	g.h.deliver(mh.BuildPacket(mh.Addressing{Src: haAddr, Dst: careOf1}, 64, &mh.Message{Type: mh.TypeBRR}, nil))
	if s := g.pump(t); s["mn"]["BU"] != 0 || dropped(g.sig, DropBRRUnauthenticated) != 1 {
		t.Fatalf("a forged BRR: the node sent %v (%v)", s["mn"], g.sig.Metrics().Snapshot())
	}

	p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: cnAddr}, make([]byte, 8)))
	g.route("mn", p.Data())
	s := g.pump(t)
	if s["ha"]["BRR"] != 1 || s["mn"]["BU"] != 1 {
		t.Fatalf("the home agent sent %v, the node %v", s["ha"], s["mn"])
	}
	if b, ok := ha.Bindings().Get(hoa); !ok || b.CareOf != careOf1 {
		t.Fatalf("binding after the refresh: %+v %v", b, ok)
	}
	select {
	case <-restored:
	case <-time.After(5 * time.Second):
		t.Fatal("the node did not say its home registration was restored")
	}
	// A second packet at once: the binding is there, nothing more is sent.
	p = g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: hoa, Dst: cnAddr}, make([]byte, 8)))
	g.route("mn", p.Data())
	if s := g.pump(t); s["ha"]["BRR"] != 0 {
		t.Errorf("a second BRR: %v", s["ha"])
	}
}

// A tunnelled anchor whose HA2R dies: the node keeps sending through it and
// hears nothing back, probes with a quick refresh, and when that goes
// unanswered drops the anchor and says so (its calls then move with a
// re-INVITE). A live HA2R answers the probe and the anchor stays.
func TestDeadAnchorIsDropped(t *testing.T) {
	g := newPaperRig(t)
	lost := make(chan netip.Addr, 1)
	g.mn.OnAnchorLost(func(coa netip.Addr) { lost <- coa })
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	g.h.attach(attachment("ar2", ar2P, careOf2))
	g.pump(t)
	send := func() {
		p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: careOf1, Dst: cnAddr}, make([]byte, 8)))
		if h := p.Header(); h.NextHeader() != ip6.ProtoIPv6 || h.Dst() != arAddr {
			t.Fatalf("not through ar1's tunnel: %x", p.Data()[:40])
		}
	}
	// Alive: the probe is answered, the anchor stays.
	for range 4 {
		send()
		g.clk.Advance(time.Second)
		g.pump(t)
	}
	if counter(g.sig, "anchor.probe") != 1 || counter(g.sig, "anchor.lost") != 0 {
		t.Fatalf("a live HA2R: %d probes, %d lost", counter(g.sig, "anchor.probe"), counter(g.sig, "anchor.lost"))
	}
	// Dead: ar1 answers nothing from now on.
	g.drop = func(from string, _ sentMsg) bool { return from == "ar1" }
	for i := 0; i < 30 && counter(g.sig, "anchor.lost") == 0; i++ {
		send()
		g.clk.Advance(500 * time.Millisecond)
		g.pump(t)
	}
	if counter(g.sig, "anchor.lost") != 1 {
		t.Fatalf("the dead HA2R's anchor was not dropped (probes %d)", counter(g.sig, "anchor.probe"))
	}
	toldLost(t, lost, careOf1)
	for _, a := range g.mn.Status().Anchors {
		if a.CareOf == careOf1 {
			t.Fatalf("careOf1 is still an anchor: %+v", a)
		}
	}
}

// Back home in the paper's scheme, an anchor that still carries a session
// is bound to the home address: the HA2R tunnels the old care-of address
// there, and what the node sends from it goes back through the HA2R.
func TestAnchorFollowsHome(t *testing.T) {
	g := newPaperRig(t)
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	g.h.attach(attachment("home1", homeP, hoa))
	g.pump(t)
	if b, _ := g.x1.Anchors().Get(careOf1); b.CareOf != hoa {
		t.Fatalf("ar1 anchors careOf1 at %s, want the home address", b.CareOf)
	}
	if c := g.mn.Contact(); c != hoa {
		t.Errorf("contact at home %s", c)
	}
	// From the old address, through ar1's tunnel, from the home address.
	p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: careOf1, Dst: cnAddr}, make([]byte, 8)))
	if h := p.Header(); h.NextHeader() != ip6.ProtoIPv6 || h.Src() != hoa || h.Dst() != arAddr {
		t.Fatalf("not tunnelled from home to ar1: %x", p.Data()[:40])
	}
	// ar1 takes it: the anchor says the node is at the home address now.
	if v := g.x1.Local(overlay.NewPacket(p.Data()), nil); v != overlay.Reinput {
		t.Errorf("ar1 refused the reverse tunnel from home: %v", g.sig1.Metrics().Snapshot())
	}
}

// The care-of address becomes the contact (and the preferred source) only
// once the HA2R that handed it out has authenticated the node.
func TestContactWaitsForAuthentication(t *testing.T) {
	g := newPaperRig(t)
	var lost []byte
	g.drop = func(from string, s sentMsg) bool {
		if from == "ar1" && s.m.Subtype == mh.SubtypeMNAuthReply && lost == nil {
			lost = s.pkt // hold the reply back
			return true
		}
		return false
	}
	g.h.attach(attachment("ar1", arP, careOf1))
	g.pump(t)
	if c := g.mn.Contact(); c != hoa {
		t.Fatalf("contact %s before the authentication completed, want the home address", c)
	}
	g.h.deliver(lost)
	if c := g.mn.Contact(); c != careOf1 {
		t.Fatalf("contact %s after the authentication, want %s", c, careOf1)
	}
}

// An anchor binding that is never acknowledged after a move (the old HA2R
// died meanwhile, or heavy loss ate every answer): an old address that
// sessions still use is dropped as lost, so that its calls move, instead
// of being marked refused while its sessions silently die. An idle one is
// just given up.
func TestUnacknowledgedAnchorInUseIsLost(t *testing.T) {
	for _, inUse := range []bool{true, false} {
		t.Run(map[bool]string{true: "in use", false: "idle"}[inUse], func(t *testing.T) {
			g := newPaperRig(t)
			lost := make(chan netip.Addr, 1)
			g.mn.OnAnchorLost(func(coa netip.Addr) { lost <- coa })
			g.h.attach(attachment("ar1", arP, careOf1))
			g.pump(t)
			if !inUse {
				g.clk.Advance(g.mn.cfg.AnchorIdle + time.Second)
			}
			g.drop = func(from string, _ sentMsg) bool { return from == "ar1" } // ar1 answers nothing
			g.h.attach(attachment("ar2", ar2P, careOf2))
			g.pump(t)
			for i := range 80 {
				if inUse { // a session goes on sending from the old address
					p := g.h.outbound(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: careOf1, Dst: cnAddr}, make([]byte, 8)))
					// Through ar1's tunnel from the moment the BU is out,
					// acknowledged or not.
					if h := p.Header(); i == 0 && (h.NextHeader() != ip6.ProtoIPv6 || h.Dst() != arAddr) {
						t.Fatalf("not through ar1's tunnel while its BA is awaited: %x", p.Data()[:40])
					}
				}
				g.clk.Advance(time.Second)
				g.pump(t)
			}
			if inUse {
				if counter(g.sig, "anchor.lost") != 1 {
					t.Fatalf("anchor.lost %d, gave_up %d; want the anchor lost", counter(g.sig, "anchor.lost"), counter(g.sig, "anchor.gave_up"))
				}
				toldLost(t, lost, careOf1)
				return
			}
			if counter(g.sig, "anchor.lost") != 0 || counter(g.sig, "anchor.gave_up") != 1 {
				t.Fatalf("idle anchor: lost %d, gave_up %d; want given up", counter(g.sig, "anchor.lost"), counter(g.sig, "anchor.gave_up"))
			}
		})
	}
}

// toldLost waits for the node's OnAnchorLost callback and checks that it
// named want.
func toldLost(t *testing.T, lost <-chan netip.Addr, want netip.Addr) {
	t.Helper()
	select {
	case coa := <-lost:
		if coa != want {
			t.Fatalf("lost %s, want %s", coa, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not told of the lost anchor")
	}
}
