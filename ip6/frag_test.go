package ip6

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// A tunnel packet of the minimum MTU plus its outer header, fragmented for
// a 1280-byte link and reassembled in any order, is what went in.
func TestFragmentReassemble(t *testing.T) {
	inner := Build(Fields{NextHeader: ProtoUDP, HopLimit: 64, Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, make([]byte, MinMTU-HeaderLen))
	for i := range inner[HeaderLen:] {
		inner[HeaderLen+i] = byte(i)
	}
	outer := Encapsulate(netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:11::5"), 64, inner)
	frags, err := Fragment(outer, HeaderLen, OffNextHeader, MinMTU, 77)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	for _, f := range frags {
		if len(f) > MinMTU {
			t.Fatalf("fragment of %d bytes", len(f))
		}
		var c Chain
		if err := Walk(f, &c); err != nil || c.Headers[0].Proto != ProtoFragment {
			t.Fatalf("fragment chain: %v %+v", err, c)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		order := rng.Perm(len(frags))
		var r Reassembler
		var got []byte
		for i, j := range order {
			out, err := r.Add(frags[j], HeaderLen, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if (out != nil) != (i == len(order)-1) {
				t.Fatalf("round %d: complete after %d of %d", round, i+1, len(frags))
			}
			got = out
		}
		if !bytes.Equal(got, outer) {
			t.Fatalf("round %d: reassembled packet differs", round)
		}
		if r.Pending() != 0 {
			t.Fatal("state left after reassembly")
		}
	}
	// Overlaps and stale halves are dropped.
	var r Reassembler
	r.Add(frags[0], HeaderLen, time.Unix(0, 0))
	if _, err := r.Add(frags[0], HeaderLen, time.Unix(0, 0)); err == nil {
		t.Error("a duplicate fragment was accepted")
	}
	r.Add(frags[0], HeaderLen, time.Unix(0, 0))
	if out, _ := r.Add(frags[1], HeaderLen, time.Unix(100, 0)); out != nil || r.Pending() != 1 {
		t.Error("a fragment completed a packet whose first half had timed out")
	}
}

func FuzzReassemble(f *testing.F) {
	outer := Encapsulate(netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:11::5"), 64, make([]byte, 1300))
	frags, _ := Fragment(outer, HeaderLen, OffNextHeader, MinMTU, 9)
	f.Add(frags[0], frags[1])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var r Reassembler
		for _, p := range [][]byte{a, b} {
			if _, err := Check(p); err != nil {
				continue
			}
			var c Chain
			if Walk(p, &c) != nil {
				continue
			}
			if h, ok := c.Find(ProtoFragment); ok {
				if out, err := r.Add(p, h.Off, time.Unix(0, 0)); err == nil && out != nil {
					if _, err := Check(out); err != nil {
						t.Fatalf("reassembled an invalid packet: %v", err)
					}
				}
			}
		}
	})
}
