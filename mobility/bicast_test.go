package mobility

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
)

// A binding that moved gives its replaced care-of address for the bicast
// window and then no more; with the window off, never. An HA2R's first
// anchor binding replaces the anchored address itself (it was on the
// router's own link).
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
	c.Put(Binding{Home: hoa, CareOf: careOf2}, time.Minute) // a refresh changes nothing
	clk.Advance(199 * time.Millisecond)
	if _, also, _ := c.LookupBicast(hoa); also != careOf1 {
		t.Fatal("the window closed early (or a refresh closed it)")
	}
	clk.Advance(time.Millisecond)
	if _, also, _ := c.LookupBicast(hoa); also.IsValid() {
		t.Fatalf("after the window: still bicasting to %s", also)
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
	take := func(p *overlay.Packet) bool { return takeTunnelled(p, dups, false, sig) }
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
