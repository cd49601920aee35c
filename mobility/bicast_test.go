package mobility

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
)

// A binding that moved gives its replaced care-of address until the bicast
// window after the node is first seen using the new one (PrepareWindow
// after the change while it is not), and then no more; with the window
// off, never. An HA2R's first anchor binding replaces the anchored address
// itself (it was on the router's own link).
func TestBindingCacheBicastWindow(t *testing.T) {
	clk := clock.NewFake(epoch)
	c := NewBindingCache(clk, 0)
	c.Bicast = 200 * time.Millisecond
	c.Put(Binding{Home: hoa, CareOf: careOf1}, time.Minute)
	if _, also, _ := c.LookupBicast(hoa); also.IsValid() {
		t.Fatalf("a first home binding bicasts to %s", also)
	}
	c.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute)
	coa, also, ok := c.LookupBicast(hoa)
	if !ok || coa != careOf2 || also != careOf1 {
		t.Fatalf("right after the move: %s and %s, want %s and %s", coa, also, careOf2, careOf1)
	}
	clk.Advance(time.Second) // registrations still under way: the node has not switched
	if _, also, _ := c.LookupBicast(hoa); also != careOf1 {
		t.Fatal("the window closed before the node switched")
	}
	c.Accepts(hoa, careOf2)                                 // its first packet from the new address
	c.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute) // a refresh changes nothing
	clk.Advance(199 * time.Millisecond)
	if _, also, _ := c.LookupBicast(hoa); also != careOf1 {
		t.Fatal("the window closed early (or a refresh closed it)")
	}
	clk.Advance(time.Millisecond)
	if _, also, _ := c.LookupBicast(hoa); also.IsValid() {
		t.Fatalf("after the window: still bicasting to %s", also)
	}
	c.Put(Binding{Home: hoa, CareOf: careOf1}, time.Minute) // a node that never sends through the tunnel
	clk.Advance(PrepareWindow)
	if _, also, _ := c.LookupBicast(hoa); also.IsValid() {
		t.Fatal("still bicasting PrepareWindow after a change the node was never seen to follow")
	}

	anchors := NewBindingCache(clk, 0)
	anchors.Bicast, anchors.OnLinkBefore = 200*time.Millisecond, true
	anchors.Put(Binding{Home: careOf1, CareOf: careOf2}, time.Minute)
	if _, also, _ := anchors.LookupBicast(careOf1); also != careOf1 {
		t.Fatalf("an anchor's first binding bicasts to %s, want the anchored address on the router's link", also)
	}
	if !anchors.Accepts(careOf1, careOf1) {
		t.Fatal("the anchored address, just left, is not taken as a reverse tunnel's sender")
	}

	off := NewBindingCache(clk, 0)
	off.Put(Binding{Home: hoa, CareOf: careOf1}, time.Minute)
	off.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute)
	if _, also, _ := off.LookupBicast(hoa); also.IsValid() {
		t.Fatal("bicasting with the window off")
	}
}

// Both copies of a bicast packet decapsulate to the original; the exit
// takes the first and drops the second, counted; another number from the
// same sender, or the same number from another, is new; a sender silent
// for longer than duplicateIdle starts afresh (it may have restarted).
func TestBicastDuplicatesDropped(t *testing.T) {
	clk := clock.NewFake(epoch)
	m := &metrics.Set{}
	sig := NewSignals("mn", m, clk)
	dups := newDuplicates(clk)
	orig := udpPacket(hoa1, hoa2, nil)
	anchor, other := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::1")
	copyOf := func(from, to netip.Addr, seq uint32) *overlay.Packet {
		p := overlay.NewPacket(orig)
		if !encapsulateSeq(p, from, to, seq) {
			t.Fatal("no room")
		}
		if _, err := ip6.Check(p.Data()); err != nil || !isTunnelled(p) {
			t.Fatalf("the bicast copy is not a well-formed tunnel packet: %v", err)
		}
		return p
	}
	take := func(p *overlay.Packet) bool { return takeTunnelled(p, tunnelOuter(p.Data()), dups, false, sig) }
	first := copyOf(anchor, coa1, 7)
	if !take(first) || !bytes.Equal(first.Data(), orig) {
		t.Fatal("the first copy was not taken whole")
	}
	if take(copyOf(anchor, coa2, 7)) {
		t.Fatal("the second copy was taken")
	}
	if got := m.Get("mobility.drop.tunnel.bicast_duplicate"); got != 1 {
		t.Errorf("duplicates counted %d, want 1", got)
	}
	if !take(copyOf(anchor, coa1, 8)) || !take(copyOf(other, coa1, 7)) {
		t.Fatal("a new number, or the same number from another sender, was dropped")
	}
	plain := overlay.NewPacket(orig)
	encapsulate(plain, anchor, coa1)
	if !take(plain) {
		t.Fatal("a packet without the option was dropped")
	}
	clk.Advance(duplicateIdle + time.Second)
	if !take(copyOf(anchor, coa1, 7)) {
		t.Fatal("a sender silent for longer than duplicateIdle was not started afresh")
	}
}

// BenchmarkBicast measures what bicasting costs a tunnel's two ends per
// packet (1,280 bytes): the entry point's plain encapsulation against
// sending two numbered copies (the second routed by the router: its
// route lookup and frame), and the exit's plain decapsulation against
// taking a pair of copies (the duplicate filter's lock, map and window).
func BenchmarkBicast(b *testing.B) {
	clk := clock.NewFake(epoch)
	r := benchRouter(b, clk)
	sig := NewSignals("ha", &metrics.Set{}, clk)
	t := newTunnelEntry(r, sig)
	coaNew, coaOld := nthAddr(benchLan, 1), nthAddr(benchLan, 2)
	pk := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64, Src: netip.MustParseAddr("2001:db8:c::5"), Dst: nthAddr(benchHome, 1)}, make([]byte, 1240))
	p := &overlay.Packet{Buf: make([]byte, overlay.Headroom+2048)}
	load := func(x []byte) { p.Off, p.Len = overlay.Headroom, copy(p.Buf[overlay.Headroom:], x) }
	b.Run("entry/plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(pk)
			t.forward(p, coaNew)
		}
	})
	b.Run("entry/bicast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(pk)
			t.forwardBicast(p, coaNew, coaOld)
		}
	})
	plain := overlay.NewPacket(pk)
	encapsulate(plain, r.Address(), coaNew)
	tagged := overlay.NewPacket(pk)
	encapsulateSeq(tagged, r.Address(), coaNew, 0)
	dups := newDuplicates(clk)
	b.Run("exit/plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(plain.Data())
			takeTunnelled(p, tunnelOuter(p.Data()), dups, false, sig)
		}
	})
	b.Run("exit/bicast-pair", func(b *testing.B) {
		b.ReportAllocs()
		var seq uint32
		for b.Loop() {
			seq++
			for range 2 {
				load(tagged.Data())
				binary.BigEndian.PutUint32(p.Buf[p.Off+ip6.HeaderLen+4:], seq)
				takeTunnelled(p, tunnelOuter(p.Data()), dups, false, sig)
			}
		}
	})
}
