package lab

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

const ha2rTopo = `name: ha2r-refusals
ha2r_key_seed: hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
links:
  - {name: home, prefix: "2001:db8:1::/64", router: ha}
  - {name: lan, prefix: "2001:db8:a::/64", router: ar}
nodes:
  - {name: ha, role: ha, underlay: "127.0.0.1:1"}
  - {name: ar, role: ar, underlay: "127.0.0.1:2", ha2r: true}
  - name: mn
    role: mn
    home_agent: ha
    home_address: "2001:db8:1::10"
    mn_ha_key: {spi: 300, secret: "hex:00112233445566778899aabbccddeeff"}
    access: [{link: lan}]
    auto_attach: false
  - {name: tester, role: cn, access: [{link: lan}]}
`

// Every way of getting an HA2R anchor without the right credentials is
// refused, counted, and leaves no anchor behind.
func TestHA2RRefusals(t *testing.T) {
	topo, err := config.Parse("ha2r.yaml", []byte(ha2rTopo))
	if err != nil {
		t.Fatal(err)
	}
	l := startTopo(t, topo, Options{NoDelay: true})
	x := &tester{t: t, l: l, self: addrOf(t, l, "tester"), hoa: topo.NodeByName("mn").HomeAddress,
		ha: topo.NodeByName("ha").Address, key: topo.NodeByName("mn").MNHAKey.Secret, ts: time.Now(), in: make(chan []byte, 256)}
	l.Node("tester").Host.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		if d == overlay.In {
			x.in <- append([]byte(nil), pkt...)
		}
	})
	arAddr := topo.NodeByName("ar").Address
	arLL := overlay.LinkLocal("ar", "lan")
	ha, ar := l.Node("ha").Metrics, l.Node("ar").Metrics
	anchors := l.Node("ar").Mobility.HA2R.Anchors()

	request := func(seq uint16, mod func(*mh.Message), key []byte) []byte {
		m := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: seq, Flags: mh.FlagA, Lifetime: 50}
		m.Options.Set(mh.OptAltCoA)
		m.Options.AltCoA = x.self
		m.Options.AddExpAddr(mh.ExpHAAddress, x.ha)
		m.Options.AddExpAddr(mh.ExpHomeAddr, x.hoa)
		m.Options.Set(mh.OptMsgID)
		m.Options.Timestamp = x.timestamp()
		m.Options.Set(mh.OptAuth)
		m.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 300}
		if mod != nil {
			mod(m)
		}
		return mh.BuildPacket(mh.Addressing{Src: x.self, Dst: arLL}, 64, m, func(b []byte) {
			a := auth.MNHAAuthenticator(key, m.Options.AltCoA, x.hoa, b, m.Options.Auth.DataOff)
			copy(b[m.Options.Auth.DataOff:], a[:])
		})
	}
	expectReply := func(name string, status uint8) {
		t.Helper()
		m, _ := x.expectMH(mh.TypeExperimental, 2*time.Second)
		if m.Subtype != mh.SubtypeMNAuthReply || m.Status != status {
			t.Fatalf("%s: reply subtype %d status %d, want status %d", name, m.Subtype, m.Status, status)
		}
		if status != 0 {
			if _, ok := m.Options.Exp(mh.ExpKeyForMN); ok {
				t.Fatalf("%s: a refusal carries a key", name)
			}
		}
	}
	noAnchor := func(name string) {
		t.Helper()
		if anchors.Len() != 0 {
			t.Fatalf("%s: the HA2R holds %d anchors", name, anchors.Len())
		}
	}
	count := func(name string, m interface{ Get(string) uint64 }, counter string, want uint64) {
		t.Helper()
		testenv.WaitFor(t, 2*time.Second, name+": "+counter, func() bool { return m.Get(counter) >= want })
	}

	// Forged mobile-node authentication: answered with 129, no key, no anchor.
	x.send(request(1, nil, []byte("not the MN-HA key")))
	expectReply("bad MN authentication", mh.StatusAdminProhibited)
	count("bad MN authentication", ha, "mobility.drop.mnauth.bad_authenticator", 1)
	noAnchor("bad MN authentication")
	// Unknown mobile node.
	x.send(request(2, func(m *mh.Message) { m.Options.Auth.SPI = 999 }, x.key))
	expectReply("unknown MN", mh.StatusAdminProhibited)
	count("unknown MN", ha, "mobility.drop.mnauth.unknown_mn", 1)
	noAnchor("unknown MN")
	// A care-of address that is not the sender's: the HA2R will not vouch.
	x.send(request(3, func(m *mh.Message) { m.Options.AltCoA = netip.MustParseAddr("2001:db8:a::99") }, x.key))
	count("foreign care-of address", ar, "mobility.drop.mnauth.foreign_care_of", 1)
	// A home agent the HA2R has no security association with.
	x.send(request(4, func(m *mh.Message) {
		m.Options.Experimental = m.Options.Experimental[:0]
		m.Options.AddExpAddr(mh.ExpHAAddress, netip.MustParseAddr("2001:db8:1::77"))
		m.Options.AddExpAddr(mh.ExpHomeAddr, x.hoa)
	}, x.key))
	count("unknown home agent", ar, "mobility.drop.mnauth.unknown_home_agent", 1)
	noAnchor("unknown home agent")

	// Straight to the home agent, without the HA2R's AH.
	direct := request(5, nil, x.key)
	ip6.Header(direct).SetDst(x.ha)
	mh.SetChecksum(direct[ip6.HeaderLen:], x.self, x.ha)
	x.send(direct)
	count("no AH", ha, "mobility.drop.mnauth.without_ah", 1)
	// An AH from an HA2R the home agent does not know (unknown SPI), and one
	// with the right SPI but the wrong key.
	relayed := relayForTest(request(6, nil, x.key), arAddr, x.ha)
	stranger := auth.DeriveHA2RSA([]byte("another operator's seed........."), "ha", "ar", true)
	p, _ := stranger.Protect(relayed, 1)
	x.send(p)
	count("unknown HA2R", ha, "mobility.drop.mnauth.ah_unknown_spi", 1)
	real := auth.DeriveHA2RSA(topo.HA2RKeySeed, "ha", "ar", true)
	forged := auth.SA{SPI: real.SPI, Key: []byte("a guess at the key..............")}
	p, _ = forged.Protect(relayed, 1000) // a fresh sequence number: the ICV is what fails
	x.send(p)
	count("bad AH", ha, "mobility.drop.mnauth.ah_bad", 1)
	noAnchor("bad AH")

	// A genuine exchange, recorded on the way to the home agent ...
	var captured []byte
	l.Node("ar").Router.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		if d == overlay.Out && captured == nil && pkt[6] == ip6.ProtoAH {
			captured = append([]byte(nil), pkt...)
		}
	})
	good := request(7, nil, x.key)
	x.send(good)
	expectReply("genuine request", mh.StatusAccepted)
	if anchors.Len() != 1 {
		t.Fatalf("no anchor after a genuine exchange")
	}
	l.Node("ar").Router.SetTap(nil)
	// ... replayed: the AH sequence number gives it away ...
	x.send(captured)
	count("replayed AH", ha, "mobility.drop.mnauth.ah_replay", 1)
	// ... and the mobile node's request replayed through the honest HA2R
	// has a stale timestamp: refused.
	x.send(good)
	expectReply("replayed request", mh.StatusAdminProhibited)
	count("replayed request", ha, "mobility.drop.mnauth.replayed", 1)

	// A BU to the HA2R without the MN-HA2R key is refused; so is one for an
	// address it never anchored; and it decapsulates nothing for either.
	bu := func(anchored netip.Addr, key []byte) []byte {
		m := &mh.Message{Type: mh.TypeBU, Sequence: 100, Flags: mh.FlagA | mh.FlagH, Lifetime: 10}
		m.Options.Set(mh.OptBAD)
		return mh.BuildPacket(mh.Addressing{Src: x.self, Dst: arAddr, HomeAddress: anchored}, 64, m, func(b []byte) {
			a := auth.BindingAuthenticator(key, x.self, arAddr, b, m.Options.AuthenticatorOff)
			copy(b[m.Options.AuthenticatorOff:], a[:])
		})
	}
	x.send(bu(x.self, make([]byte, 32)))
	count("BU without the key", ar, "mobility.drop.bu.bad_authenticator", 1)
	x.send(bu(netip.MustParseAddr("2001:db8:a::dead"), make([]byte, 32)))
	count("BU for an address never anchored", ar, "mobility.drop.bu.no_anchor", 1)
	x.expectNoMH(mh.TypeBA, 200*time.Millisecond)
	inner := udpTo(netip.MustParseAddr("2001:db8:a::dead"), x.ha)
	x.send(ip6.Encapsulate(x.self, arAddr, 64, inner))
	count("tunnel for an unanchored address", ar, "mobility.drop.tunnel.unknown_sender", 1)
	if ar.Get("tunnel.decap") != 0 || ar.Get("tunnel.encap") != 0 {
		t.Error("the HA2R tunnelled something it never authorised")
	}
}

// relayForTest wraps an MN Authentication Request's Mobility Header in a
// packet from the HA2R to the home agent, as the HA2R relays it.
func relayForTest(pkt []byte, src, dst netip.Addr) []byte {
	var m mh.Message
	info, _ := mh.ParsePacket(pkt, &m)
	b := append([]byte(nil), info.MH...)
	mh.SetChecksum(b, src, dst)
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoMH, HopLimit: 64, Src: src, Dst: dst}, b)
}
