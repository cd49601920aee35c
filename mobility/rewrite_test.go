package mobility

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

var (
	hoa1 = netip.MustParseAddr("2001:db8:1::10")
	coa1 = netip.MustParseAddr("2001:db8:11::abcd")
	hoa2 = netip.MustParseAddr("2001:db8:2::20")
	coa2 = netip.MustParseAddr("2001:db8:21::beef")
)

func udpPacket(src, dst netip.Addr, exts []ip6.Ext) []byte {
	payload := make([]byte, 8+100)
	payload[0], payload[1], payload[2], payload[3] = 0x13, 0x88, 0x13, 0x89
	payload[5] = 108
	for i := 8; i < len(payload); i++ {
		payload[i] = byte(i)
	}
	sum := ip6.Checksum(src, dst, ip6.ProtoUDP, payload)
	payload[6], payload[7] = byte(sum>>8), byte(sum)
	return ip6.Compose(ip6.Fields{HopLimit: 64, Src: src, Dst: dst}, exts, ip6.ProtoUDP, payload)
}

func TestRouteOptimiseRoundTrip(t *testing.T) {
	hbh := []byte{0, 0, 1, 4, 0, 0, 0, 0}
	for _, tc := range []struct {
		name        string
		hao, rh2    bool
		exts        []ip6.Ext
		wantHeaders []uint8
	}{
		{"home address option", true, false, nil, []uint8{ip6.ProtoDstOpts}},
		{"routing header", false, true, nil, []uint8{ip6.ProtoRouting}},
		{"both, mobile to mobile", true, true, nil, []uint8{ip6.ProtoRouting, ip6.ProtoDstOpts}},
		{"both after hop-by-hop", true, true, []ip6.Ext{{Proto: ip6.ProtoHopByHop, Data: hbh}}, []uint8{ip6.ProtoHopByHop, ip6.ProtoRouting, ip6.ProtoDstOpts}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := udpPacket(hoa1, hoa2, tc.exts)
			p := overlay.NewPacket(orig)
			var c1, c2 netip.Addr
			if tc.hao {
				c1 = coa1
			}
			if tc.rh2 {
				c2 = coa2
			}
			if _, _, ok := routeOptimise(p, c1, c2); !ok {
				t.Fatal("no room")
			}
			d := p.Data()
			if _, err := ip6.Check(d); err != nil {
				t.Fatal(err)
			}
			var c ip6.Chain
			if err := ip6.Walk(d, &c); err != nil || c.Upper != ip6.ProtoUDP || c.N != len(tc.wantHeaders) {
				t.Fatalf("walk %v %+v", err, c)
			}
			for i, w := range tc.wantHeaders {
				if c.Headers[i].Proto != w {
					t.Fatalf("header %d is %d, want %d", i, c.Headers[i].Proto, w)
				}
			}
			h := ip6.Header(d)
			if tc.hao && h.Src() != coa1 || !tc.hao && h.Src() != hoa1 {
				t.Errorf("source %s", h.Src())
			}
			if tc.rh2 && h.Dst() != coa2 || !tc.rh2 && h.Dst() != hoa2 {
				t.Errorf("destination %s", h.Dst())
			}
			// What the peer's parser of MH-less packets sees.
			info, err := unrouteOptimise(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Data(), orig) {
				t.Fatalf("round trip changed the packet:\n%x\n%x", p.Data(), orig)
			}
			if tc.hao && (info.homeAddress != hoa1 || info.careOf != coa1) {
				t.Errorf("info %+v", info)
			}
			if tc.rh2 && (info.routedTo != hoa2 || info.arrivedAt != coa2) {
				t.Errorf("info %+v", info)
			}
		})
	}
}

func TestTunnelRoundTrip(t *testing.T) {
	orig := udpPacket(hoa1, hoa2, nil)
	p := overlay.NewPacket(orig)
	if !encapsulate(p, coa1, netip.MustParseAddr("2001:db8:1::1")) {
		t.Fatal("no room")
	}
	if _, err := ip6.Check(p.Data()); err != nil || p.Data()[6] != ip6.ProtoIPv6 {
		t.Fatal("outer header wrong")
	}
	if err := decapsulate(p); err != nil || !bytes.Equal(p.Data(), orig) {
		t.Fatalf("decapsulate: %v", err)
	}
	if err := decapsulate(p); err == nil {
		t.Fatal("decapsulated a packet that is not tunnelled")
	}
}

func FuzzUnrouteOptimise(f *testing.F) {
	p := overlay.NewPacket(udpPacket(hoa1, hoa2, nil))
	routeOptimise(p, coa1, coa2)
	f.Add(append([]byte(nil), p.Data()...))
	f.Add(mh.BuildPacket(mh.Addressing{Src: coa1, Dst: hoa2, HomeAddress: hoa1}, 64, &mh.Message{Type: mh.TypeBU}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ip6.Check(b)
		if err != nil {
			return
		}
		p := overlay.NewPacket(d)
		if _, err := unrouteOptimise(p); err == nil {
			if _, err := ip6.Check(p.Data()); err != nil {
				t.Fatalf("result is not a valid packet: %v", err)
			}
		}
	})
}
