package mh

import (
	"errors"
	"net/netip"

	"github.com/ha2r/mip6testbed/ip6"
)

// Addressing says how a Mobility Header packet is addressed.
type Addressing struct {
	Src, Dst netip.Addr
	// HomeAddress, if valid, is carried in a Home Address option (a BU sent
	// from a care-of address): Src is then the care-of address.
	HomeAddress netip.Addr
	// RoutedTo, if valid, is carried in a type 2 routing header (a BA to a
	// mobile node away from home): Dst is then its care-of address.
	RoutedTo netip.Addr
}

// pseudo returns the addresses the checksum and upper layer see.
func (a Addressing) pseudo() (src, dst netip.Addr) {
	src, dst = a.Src, a.Dst
	if a.HomeAddress.IsValid() {
		src = a.HomeAddress
	}
	if a.RoutedTo.IsValid() {
		dst = a.RoutedTo
	}
	return src, dst
}

// BuildPacket returns an IPv6 packet carrying m. sign, if not nil, is
// called with the encoded Mobility Header (checksum still zero) to fill in
// authenticators before the checksum is computed.
func BuildPacket(a Addressing, hopLimit uint8, m *Message, sign func(mhb []byte)) []byte {
	mhb := m.Marshal()
	if sign != nil {
		sign(mhb)
	}
	ps, pd := a.pseudo()
	SetChecksum(mhb, ps, pd)
	var exts []ip6.Ext
	if a.RoutedTo.IsValid() {
		r := make([]byte, RH2Len)
		PutRH2(r, 0, a.RoutedTo)
		exts = append(exts, ip6.Ext{Proto: ip6.ProtoRouting, Data: r})
	}
	if a.HomeAddress.IsValid() {
		d := make([]byte, HAOHeaderLen)
		PutHAODestOpts(d, 0, a.HomeAddress)
		exts = append(exts, ip6.Ext{Proto: ip6.ProtoDstOpts, Data: d})
	}
	return ip6.Compose(ip6.Fields{HopLimit: hopLimit, Src: a.Src, Dst: a.Dst}, exts, ip6.ProtoMH, mhb)
}

// PacketInfo is what ParsePacket learned about a packet's addressing.
type PacketInfo struct {
	Addressing
	MH    []byte // the Mobility Header bytes
	MHOff int    // its offset in the packet
}

// Errors of ParsePacket beyond those of Parse.
var (
	ErrNoMH          = errors.New("mh: packet does not carry a Mobility Header")
	ErrHAONotAllowed = errors.New("mh: Home Address option on a message other than a Binding Update")
	ErrRH2NotAllowed = errors.New("mh: type 2 routing header on a message other than a Binding Acknowledgement")
)

// ParsePacket walks a checked IPv6 packet to its Mobility Header, decodes the
// Home Address option and type 2 routing header if present, verifies the
// checksum against the addresses RFC 6275 6.1.1 names (before anything
// else about the message, as 9.2 orders), and parses the message into m. It applies 6.1: only a BU may carry a Home Address option,
// only a BA a type 2 routing header. (Experimental messages follow the BU
// and BA rules of the message they stand for: a request may carry a Home
// Address option, a reply a routing header.)
func ParsePacket(pkt []byte, m *Message) (PacketInfo, error) {
	var info PacketInfo
	var c ip6.Chain
	if err := ip6.Walk(pkt, &c); err != nil {
		return info, err
	}
	if c.Upper != ip6.ProtoMH || c.Fragmented {
		return info, ErrNoMH
	}
	h := ip6.Header(pkt)
	info.Src, info.Dst = h.Src(), h.Dst()
	for i := 0; i < c.N; i++ {
		e := c.Headers[i]
		b := pkt[e.Off : e.Off+e.Len]
		switch e.Proto {
		case ip6.ProtoDstOpts:
			a, _, err := ParseHAO(b)
			if err == nil {
				info.HomeAddress = a
			} else if !errors.Is(err, ErrHAOMissing) {
				return info, err
			}
		case ip6.ProtoRouting:
			a, _, err := ParseRH2(b)
			if err != nil {
				return info, err
			}
			info.RoutedTo = a
		}
	}
	info.MHOff = c.UpperOff
	info.MH = pkt[c.UpperOff:]
	// RFC 6275 9.2 checks the checksum first: a message that fails it is
	// discarded silently whatever else is wrong with it. The checksum
	// covers the whole header as its Header Len states.
	if len(info.MH) < 8 {
		return info, ErrTruncated
	}
	n := (int(info.MH[1]) + 1) * 8
	if n > len(info.MH) {
		return info, ErrTruncated
	}
	info.MH = info.MH[:n]
	ps, pd := info.pseudo()
	if !VerifyChecksum(info.MH, ps, pd) {
		return info, ErrChecksum
	}
	if err := Parse(info.MH, m); err != nil {
		return info, err
	}
	isBU := m.Type == TypeBU || (m.Type == TypeExperimental && m.Subtype == SubtypeMNAuthRequest)
	isBA := m.Type == TypeBA || (m.Type == TypeExperimental && m.Subtype == SubtypeMNAuthReply)
	if info.HomeAddress.IsValid() && !isBU {
		return info, ErrHAONotAllowed
	}
	if info.RoutedTo.IsValid() && !isBA {
		return info, ErrRH2NotAllowed
	}
	return info, nil
}
