package lab

import (
	"encoding/binary"
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

// Conformance tables in the style of the TAHI Mobile IPv6 suite: a tester
// on the access link plays the mobile node with crafted packets and checks
// each answer of the home agent and of a correspondent.
const confTopo = `name: conformance
links:
  - {name: home, prefix: "2001:db8:1::/64", router: ha}
  - {name: lan, prefix: "2001:db8:a::/64", router: ar}
nodes:
  - {name: ha, role: ha, underlay: "127.0.0.1:1"}
  - {name: ar, role: ar, underlay: "127.0.0.1:2"}
  - name: mn
    role: mn
    home_agent: ha
    home_address: "2001:db8:1::10"
    mn_ha_key: {spi: 300, secret: "hex:00112233445566778899aabbccddeeff"}
    access: [{link: lan}]
    auto_attach: false
  - {name: cn, role: cn, access: [{link: lan}]}
  - {name: tester, role: cn, access: [{link: lan}]}
`

type tester struct {
	t    *testing.T
	l    *Lab
	self netip.Addr // the tester's address: the mobile node's care-of address
	hoa  netip.Addr
	ha   netip.Addr
	cn   netip.Addr
	key  []byte
	ts   time.Time
	in   chan []byte
}

func newTester(t *testing.T) *tester {
	topo, err := config.Parse("conformance.yaml", []byte(confTopo))
	if err != nil {
		t.Fatal(err)
	}
	l := startTopo(t, topo, Options{NoDelay: true})
	x := &tester{t: t, l: l, self: addrOf(t, l, "tester"), hoa: topo.NodeByName("mn").HomeAddress,
		ha: topo.NodeByName("ha").Address, cn: addrOf(t, l, "cn"), key: topo.NodeByName("mn").MNHAKey.Secret,
		ts: time.Now(), in: make(chan []byte, 256)}
	l.Node("tester").Host.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		if d == overlay.In {
			x.in <- append([]byte(nil), pkt...)
		}
	})
	return x
}

// timestamp returns a fresh, increasing identification timestamp.
func (x *tester) timestamp() uint64 {
	x.ts = x.ts.Add(time.Millisecond)
	return auth.NTPTime(x.ts)
}

// homeBU builds a home registration from the tester's address for home.
func (x *tester) homeBU(seq uint16, lifetime uint16, home netip.Addr, spi uint32, mod func(*mh.Message)) []byte {
	bu := &mh.Message{Type: mh.TypeBU, Sequence: seq, Flags: mh.FlagA | mh.FlagH, Lifetime: lifetime}
	bu.Options.Set(mh.OptMsgID)
	bu.Options.Timestamp = x.timestamp()
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: spi}
	if mod != nil {
		mod(bu)
	}
	coa := x.self
	if bu.Options.Has(mh.OptAltCoA) {
		coa = bu.Options.AltCoA
	}
	return mh.BuildPacket(mh.Addressing{Src: x.self, Dst: x.ha, HomeAddress: home}, 64, bu, func(b []byte) {
		a := auth.MNHAAuthenticator(x.key, coa, home, b, bu.Options.Auth.DataOff)
		copy(b[bu.Options.Auth.DataOff:], a[:])
	})
}

func (x *tester) send(pkt []byte) {
	if !x.l.Node("tester").Host.Send(pkt) {
		x.t.Fatal("tester is not attached")
	}
}

// next returns the next packet that matches keep, or nil after d.
func (x *tester) next(d time.Duration, keep func([]byte) bool) []byte {
	deadline := time.After(d)
	for {
		select {
		case p := <-x.in:
			if keep(p) {
				return p
			}
		case <-deadline:
			return nil
		}
	}
}

// mhOf returns the message in p (decapsulating a tunnel), or nil.
func mhOf(p []byte) (*mh.Message, mh.PacketInfo) {
	if p[6] == ip6.ProtoIPv6 {
		inner, err := ip6.Decapsulate(p)
		if err != nil {
			return nil, mh.PacketInfo{}
		}
		p = inner
	}
	var m mh.Message
	info, err := mh.ParsePacket(p, &m)
	if err != nil {
		return nil, info
	}
	return &m, info
}

func (x *tester) expectMH(typ mh.Type, d time.Duration) (*mh.Message, mh.PacketInfo) {
	x.t.Helper()
	var msg *mh.Message
	var inf mh.PacketInfo
	p := x.next(d, func(p []byte) bool {
		m, info := mhOf(p)
		if m != nil && m.Type == typ {
			msg, inf = m, info
			return true
		}
		return false
	})
	if p == nil {
		x.t.Fatalf("no %v arrived", typ)
	}
	return msg, inf
}

func (x *tester) expectNoMH(typ mh.Type, d time.Duration) {
	x.t.Helper()
	if p := x.next(d, func(p []byte) bool { m, _ := mhOf(p); return m != nil && m.Type == typ }); p != nil {
		x.t.Fatalf("unexpected %v", typ)
	}
}

func TestConformanceHomeAgent(t *testing.T) {
	x := newTester(t)
	ha := x.l.Node("ha")
	bound := func() (mh.Message, bool) {
		b, ok := ha.Mobility.HomeAgent.Bindings().Get(x.hoa)
		return mh.Message{Sequence: b.Seq}, ok
	}
	steps := []struct {
		name     string
		seq      uint16
		lifetime uint16
		status   uint8
		wantSeq  uint16
		binding  bool
	}{
		{"first registration", 100, 10, mh.StatusAccepted, 100, true},
		{"same sequence number", 100, 10, mh.StatusSeqOutOfWindow, 100, true},
		{"older sequence number", 99, 10, mh.StatusSeqOutOfWindow, 100, true},
		{"next sequence number", 101, 10, mh.StatusAccepted, 101, true},
		{"32767 ahead is newer", 32868, 10, mh.StatusAccepted, 32868, true},
		{"a half-turn ahead is older", 100, 10, mh.StatusSeqOutOfWindow, 32868, true},
		{"towards the wrap", 65535, 10, mh.StatusAccepted, 65535, true},
		{"wrap-around: 0 after 65535", 0, 10, mh.StatusAccepted, 0, true},
		{"65535 is now behind", 65535, 10, mh.StatusSeqOutOfWindow, 0, true},
		{"lifetime 0 deletes the binding", 1, 0, mh.StatusAccepted, 1, false},
		{"a new binding after deletion takes any number", 40000, 10, mh.StatusAccepted, 40000, true},
	}
	for _, s := range steps {
		x.send(x.homeBU(s.seq, s.lifetime, x.hoa, 300, nil))
		ba, info := x.expectMH(mh.TypeBA, 2*time.Second)
		if ba.Status != s.status || ba.Sequence != s.wantSeq {
			t.Fatalf("%s: BA status %d seq %d, want %d seq %d", s.name, ba.Status, ba.Sequence, s.status, s.wantSeq)
		}
		if info.RoutedTo != x.hoa || !auth.VerifyMNHA(x.key, x.self, x.hoa, info.MH, ba.Options.Auth.DataOff) {
			t.Fatalf("%s: BA not routed to the home address or not authenticated", s.name)
		}
		if _, ok := bound(); ok != s.binding {
			t.Fatalf("%s: binding present = %v, want %v", s.name, ok, s.binding)
		}
	}
	// Care-of address equal to the home address deletes the binding too
	// (the BA then goes to the home address, on the home link).
	x.send(x.homeBU(40001, 10, x.hoa, 300, func(m *mh.Message) { m.Options.Set(mh.OptAltCoA); m.Options.AltCoA = x.hoa }))
	testenv.WaitFor(t, 2*time.Second, "CoA = HoA to delete the binding", func() bool { _, ok := bound(); return !ok })

	// Refused: an unknown SPI is dropped silently; a known MN asking for
	// another's home address gets 129; a wrong authenticator and a replayed
	// timestamp are dropped silently.
	x.send(x.homeBU(5, 10, x.hoa, 999, nil))
	x.expectNoMH(mh.TypeBA, 300*time.Millisecond)
	x.send(x.homeBU(6, 10, netip.MustParseAddr("2001:db8:1::99"), 300, nil))
	if ba, _ := x.expectMH(mh.TypeBA, 2*time.Second); ba.Status != mh.StatusAdminProhibited {
		t.Fatalf("another home address: status %d, want 129", ba.Status)
	}
	bad := x.homeBU(7, 10, x.hoa, 300, nil)
	bad[len(bad)-1] ^= 1
	mh.SetChecksum(bad[ip6.HeaderLen+mh.HAOHeaderLen:], x.hoa, x.ha)
	x.send(bad)
	x.expectNoMH(mh.TypeBA, 300*time.Millisecond)
	old := x.ts
	x.send(x.homeBU(8, 10, x.hoa, 300, nil))
	x.expectMH(mh.TypeBA, 2*time.Second)
	x.ts = old.Add(-time.Second) // replay an older timestamp
	x.send(x.homeBU(9, 10, x.hoa, 300, nil))
	x.expectNoMH(mh.TypeBA, 300*time.Millisecond)
	for _, c := range []string{"bu.unknown_spi", "bu.not_authorised", "bu.bad_authenticator", "bu.replayed"} {
		if ha.Metrics.Get("mobility.drop."+c) != 1 {
			t.Errorf("mobility.drop.%s = %d, want 1", c, ha.Metrics.Get("mobility.drop."+c))
		}
	}

	// An unknown MH type gets a Binding Error with status 2.
	unk := (&mh.Message{Type: mh.TypeBRR}).Marshal()
	unk[2] = 42
	mh.SetChecksum(unk, x.self, x.ha)
	x.send(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoMH, HopLimit: 64, Src: x.self, Dst: x.ha}, unk))
	if be, _ := x.expectMH(mh.TypeBE, 2*time.Second); be.Status != mh.BEUnknownMHType {
		t.Fatalf("unknown MH type: BE status %d", be.Status)
	}
	// A wrong Payload Proto and a Header Len too small get ICMPv6
	// Parameter Problems pointing at the field.
	for _, c := range []struct {
		field   int
		mod     func([]byte)
		pointer uint32
	}{
		{0, func(b []byte) { b[0] = 6 }, ip6.HeaderLen},
		{1, func(b []byte) { b[1] = 0 }, ip6.HeaderLen + 1},
	} {
		b := (&mh.Message{Type: mh.TypeHoTI}).Marshal()
		c.mod(b)
		if c.field == 1 {
			b = b[:8]
		}
		mh.SetChecksum(b, x.self, x.ha)
		x.send(ip6.Build(ip6.Fields{NextHeader: ip6.ProtoMH, HopLimit: 64, Src: x.self, Dst: x.ha}, b))
		p := x.next(2*time.Second, func(p []byte) bool { return icmpType(p) == 4 })
		if p == nil {
			t.Fatalf("no Parameter Problem for field %d", c.field)
		}
		if got := binary.BigEndian.Uint32(p[ip6.HeaderLen+4:]); got != c.pointer {
			t.Errorf("Parameter Problem points at %d, want %d", got, c.pointer)
		}
	}
}

func TestConformanceCorrespondent(t *testing.T) {
	x := newTester(t)
	cn := x.l.Node("cn")
	// A packet with a Home Address option and no binding: Binding Error 1.
	p := overlay.NewPacket(udpTo(x.hoa, x.cn))
	if !routeOptimiseForTest(p, x.self) {
		t.Fatal("no room")
	}
	x.send(p.Data())
	be, _ := x.expectMH(mh.TypeBE, 2*time.Second)
	if be.Status != mh.BEUnknownHAO || be.Address != x.hoa {
		t.Fatalf("BE status %d for %s", be.Status, be.Address)
	}
	if cn.Metrics.Get("mobility.drop.hao.no_binding") != 1 {
		t.Error("the packet without binding was not counted as dropped")
	}

	// The tester registers as the mobile node so that its home address
	// reaches it through the home agent, as a HoTI/HoT needs.
	x.send(x.homeBU(1, 30, x.hoa, 300, nil))
	x.expectMH(mh.TypeBA, 2*time.Second)
	tunnel := func(inner []byte) []byte { return ip6.Encapsulate(x.self, x.ha, 64, inner) }

	// A HoTI with a bad checksum is dropped; a good one is answered.
	hoti := mh.BuildPacket(mh.Addressing{Src: x.hoa, Dst: x.cn}, 64, &mh.Message{Type: mh.TypeHoTI, Cookie: [8]byte{1}}, nil)
	hoti[len(hoti)-1] ^= 0xff
	x.send(tunnel(hoti))
	x.expectNoMH(mh.TypeHoT, 300*time.Millisecond)
	if cn.Metrics.Get("mobility.drop.mh.checksum") != 1 {
		t.Error("bad-checksum HoTI not counted")
	}
	hoti = mh.BuildPacket(mh.Addressing{Src: x.hoa, Dst: x.cn}, 64, &mh.Message{Type: mh.TypeHoTI, Cookie: [8]byte{1}}, nil)
	x.send(tunnel(hoti))
	hot, _ := x.expectMH(mh.TypeHoT, 2*time.Second)
	x.send(mh.BuildPacket(mh.Addressing{Src: x.self, Dst: x.cn}, 64, &mh.Message{Type: mh.TypeCoTI, Cookie: [8]byte{2}}, nil))
	cot, _ := x.expectMH(mh.TypeCoT, 2*time.Second)
	if hot.Cookie != [8]byte{1} || cot.Cookie != [8]byte{2} {
		t.Fatal("cookies not echoed")
	}
	kbm := auth.Kbm(hot.Token, cot.Token, false)
	roBU := func(seq, hIdx, cIdx uint16, key []byte) []byte {
		bu := &mh.Message{Type: mh.TypeBU, Sequence: seq, Flags: mh.FlagA, Lifetime: 10}
		bu.Options.Set(mh.OptNonceIndices)
		bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = hIdx, cIdx
		bu.Options.Set(mh.OptBAD)
		return mh.BuildPacket(mh.Addressing{Src: x.self, Dst: x.cn, HomeAddress: x.hoa}, 64, bu, func(b []byte) {
			a := auth.BindingAuthenticator(key, x.self, x.cn, b, bu.Options.AuthenticatorOff)
			copy(b[bu.Options.AuthenticatorOff:], a[:])
		})
	}
	// Wrong authenticator: dropped silently.
	x.send(roBU(10, hot.NonceIndex, cot.NonceIndex, make([]byte, 20)))
	x.expectNoMH(mh.TypeBA, 300*time.Millisecond)
	if cn.Metrics.Get("mobility.drop.bu.bad_authenticator") != 1 {
		t.Error("wrong authenticator not counted")
	}
	// Expired (unknown) nonce indices: 136, 137, 138.
	for _, c := range []struct {
		h, c   uint16
		status uint8
	}{
		{hot.NonceIndex + 100, cot.NonceIndex, mh.StatusExpiredHomeNonce},
		{hot.NonceIndex, cot.NonceIndex + 100, mh.StatusExpiredCareOfNonce},
		{hot.NonceIndex + 100, cot.NonceIndex + 100, mh.StatusExpiredNonces},
	} {
		x.send(roBU(11, c.h, c.c, kbm[:]))
		if ba, _ := x.expectMH(mh.TypeBA, 2*time.Second); ba.Status != c.status {
			t.Errorf("nonce indices %d/%d: status %d, want %d", c.h, c.c, ba.Status, c.status)
		}
	}
	// The right one is accepted, acknowledged with an authenticator, and
	// the home address option is honoured afterwards.
	x.send(roBU(12, hot.NonceIndex, cot.NonceIndex, kbm[:]))
	ba, info := x.expectMH(mh.TypeBA, 2*time.Second)
	if ba.Status != 0 || !auth.VerifyBinding(kbm[:], x.self, x.cn, info.MH, ba.Options.AuthenticatorOff) || info.RoutedTo != x.hoa {
		t.Fatalf("BA status %d, routed to %s", ba.Status, info.RoutedTo)
	}
	x.send(roBU(12, hot.NonceIndex, cot.NonceIndex, kbm[:]))
	if ba, _ := x.expectMH(mh.TypeBA, 2*time.Second); ba.Status != mh.StatusSeqOutOfWindow {
		t.Errorf("repeated sequence number: status %d, want 135", ba.Status)
	}
	before := cn.Metrics.Get("ro.in")
	p = overlay.NewPacket(udpTo(x.hoa, x.cn))
	routeOptimiseForTest(p, x.self)
	x.send(p.Data())
	waitCounter(t, x.l, "cn", "ro.in", before+1, 2*time.Second)
	// Lifetime 0 deletes the correspondent's binding.
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 13, Flags: mh.FlagA}
	bu.Options.Set(mh.OptNonceIndices)
	bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = hot.NonceIndex, cot.NonceIndex
	bu.Options.Set(mh.OptBAD)
	kbmDereg := auth.Kbm(hot.Token, cot.Token, true)
	x.send(mh.BuildPacket(mh.Addressing{Src: x.self, Dst: x.cn, HomeAddress: x.hoa}, 64, bu, func(b []byte) {
		a := auth.BindingAuthenticator(kbmDereg[:], x.self, x.cn, b, bu.Options.AuthenticatorOff)
		copy(b[bu.Options.AuthenticatorOff:], a[:])
	}))
	if ba, _ := x.expectMH(mh.TypeBA, 2*time.Second); ba.Status != 0 {
		t.Fatalf("deregistration: status %d", ba.Status)
	}
	if _, ok := cn.Mobility.Correspondent.Correspondent().Bindings().Get(x.hoa); ok {
		t.Error("lifetime 0 did not delete the correspondent's binding")
	}
}

func udpTo(src, dst netip.Addr) []byte {
	payload := make([]byte, 20)
	binary.BigEndian.PutUint16(payload[0:], 4000)
	binary.BigEndian.PutUint16(payload[2:], 4001)
	binary.BigEndian.PutUint16(payload[4:], uint16(len(payload)))
	binary.BigEndian.PutUint16(payload[6:], ip6.Checksum(src, dst, ip6.ProtoUDP, payload))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: src, Dst: dst}, payload)
}

// routeOptimiseForTest adds a Home Address option: the packet's source
// becomes careOf and its old source goes into the option.
func routeOptimiseForTest(p *overlay.Packet, careOf netip.Addr) bool {
	d := p.Data()
	h := ip6.Header(d)
	opt := make([]byte, mh.HAOHeaderLen)
	mh.PutHAODestOpts(opt, 0, h.Src())
	out := ip6.Compose(ip6.Fields{HopLimit: h.HopLimit(), Src: careOf, Dst: h.Dst()},
		[]ip6.Ext{{Proto: ip6.ProtoDstOpts, Data: opt}}, h.NextHeader(), d[ip6.HeaderLen:])
	p.Replace(out)
	return true
}
