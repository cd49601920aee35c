package ip6

import (
	"errors"
	"net/netip"
	"testing"
)

var (
	a1 = netip.MustParseAddr("2001:db8::1")
	a2 = netip.MustParseAddr("2001:db8::2")
)

func TestComposeAndWalk(t *testing.T) {
	hbh := make([]byte, 8)
	hbh[2] = 1 // PadN
	hbh[3] = 4
	dst := make([]byte, 16)
	dst[1] = 1
	dst[2], dst[3] = 1, 12
	rt := make([]byte, 24)
	rt[1], rt[2], rt[3] = 2, 2, 1
	frag := make([]byte, 8)
	ah := make([]byte, 32)
	ah[1] = 6
	pkt := Compose(Fields{HopLimit: 9, Src: a1, Dst: a2},
		[]Ext{{ProtoHopByHop, hbh}, {ProtoDstOpts, dst}, {ProtoRouting, rt}, {ProtoFragment, frag}, {ProtoAH, ah}},
		ProtoMH, make([]byte, 16))
	if _, err := Check(pkt); err != nil {
		t.Fatal(err)
	}
	var c Chain
	if err := Walk(pkt, &c); err != nil {
		t.Fatal(err)
	}
	want := []uint8{ProtoHopByHop, ProtoDstOpts, ProtoRouting, ProtoFragment, ProtoAH}
	if c.N != len(want) || c.Upper != ProtoMH || c.UpperOff != HeaderLen+8+16+24+8+32 {
		t.Fatalf("chain %+v", c)
	}
	for i, p := range want {
		if c.Headers[i].Proto != p {
			t.Errorf("header %d is %d, want %d", i, c.Headers[i].Proto, p)
		}
	}
	if h, ok := c.Find(ProtoRouting); !ok || h.Len != 24 {
		t.Error("Find routing header")
	}
	if c.NextHeaderOffset(0) != 6 || c.NextHeaderOffset(1) != HeaderLen {
		t.Error("NextHeaderOffset")
	}
}

func TestWalkErrors(t *testing.T) {
	hbh := make([]byte, 8)
	bad := Compose(Fields{HopLimit: 1, Src: a1, Dst: a2}, []Ext{{ProtoDstOpts, make([]byte, 8)}, {ProtoHopByHop, hbh}}, ProtoNoNext, nil)
	var c Chain
	if err := Walk(bad, &c); !errors.Is(err, ErrHopByHopOrder) {
		t.Errorf("hop-by-hop second: %v", err)
	}
	trunc := Compose(Fields{HopLimit: 1, Src: a1, Dst: a2}, []Ext{{ProtoDstOpts, []byte{0, 5, 0, 0, 0, 0, 0, 0}}}, ProtoNoNext, nil)
	if err := Walk(trunc, &c); !errors.Is(err, ErrExtTruncated) {
		t.Errorf("overlong header: %v", err)
	}
	var exts []Ext
	for i := 0; i < MaxExtHeaders+1; i++ {
		exts = append(exts, Ext{ProtoDstOpts, make([]byte, 8)})
	}
	long := Compose(Fields{HopLimit: 1, Src: a1, Dst: a2}, exts, ProtoNoNext, nil)
	if err := Walk(long, &c); !errors.Is(err, ErrChainTooLong) {
		t.Errorf("long chain: %v", err)
	}
}

func TestCheck(t *testing.T) {
	p := Build(Fields{HopLimit: 1, Src: a1, Dst: a2, NextHeader: ProtoNoNext}, make([]byte, 10))
	if got, err := Check(append(p, 0, 0, 0)); err != nil || len(got) != len(p) {
		t.Error("trailing bytes are trimmed")
	}
	if _, err := Check(p[:45]); !errors.Is(err, ErrBadPayload) {
		t.Error("short payload")
	}
	p[0] = 0x45
	if _, err := Check(p); !errors.Is(err, ErrNotIPv6) {
		t.Error("version")
	}
}

func TestEncapsulation(t *testing.T) {
	inner := Build(Fields{NextHeader: ProtoNoNext, HopLimit: 7, Src: a1, Dst: a2}, []byte{1, 2, 3})
	outer := Encapsulate(a2, a1, 64, inner)
	if outer[6] != ProtoIPv6 || Header(outer).Src() != a2 {
		t.Fatal("outer header")
	}
	got, err := Decapsulate(outer)
	if err != nil || string(got) != string(inner) {
		t.Fatal("decapsulation changed the inner packet")
	}
	if _, err := Decapsulate(inner); !errors.Is(err, ErrNotTunnel) {
		t.Error("not a tunnel")
	}
}

func FuzzWalk(f *testing.F) {
	f.Add(Compose(Fields{HopLimit: 1, Src: a1, Dst: a2}, []Ext{{ProtoDstOpts, make([]byte, 8)}, {ProtoAH, append([]byte{0, 6}, make([]byte, 30)...)}}, ProtoMH, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Check(b)
		if err != nil {
			return
		}
		var c Chain
		if err := Walk(p, &c); err != nil {
			return
		}
		if c.UpperOff > len(p) {
			t.Fatalf("upper layer at %d beyond %d", c.UpperOff, len(p))
		}
		for i := 0; i < c.N; i++ {
			if h := c.Headers[i]; h.Off+h.Len > len(p) {
				t.Fatal("header beyond packet")
			}
		}
	})
}
