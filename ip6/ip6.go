// Package ip6 reads and writes the bytes of IPv6 packets: the fixed header,
// checksums with the RFC 8200 pseudo-header, and (in chain.go) the
// extension-header chain. Every function treats its input as hostile: it
// checks bounds and returns an error instead of panicking.
package ip6

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// HeaderLen is the length of the fixed IPv6 header.
const HeaderLen = 40

// MinMTU is the IPv6 minimum link MTU (RFC 8200 section 5).
const MinMTU = 1280

// Next-header (protocol) numbers used in this project.
const (
	ProtoHopByHop = 0
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6     = 41 // IPv6-in-IPv6 (RFC 2473)
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
	ProtoMH       = 135 // Mobility Header (RFC 6275)
)

var (
	ErrTruncated  = errors.New("ip6: packet shorter than its headers")
	ErrNotIPv6    = errors.New("ip6: version is not 6")
	ErrBadPayload = errors.New("ip6: payload length disagrees with packet length")
)

// Offsets of the fixed header's fields (RFC 8200 section 3), for code that
// must name a field's position rather than read it through Header.
const (
	OffPayloadLen = 4
	OffNextHeader = 6
	OffHopLimit   = 7
	OffSrc        = 8
	OffDst        = 24
)

// Header is a view of a packet's fixed header. It does not copy.
type Header []byte

// Check verifies that p starts with a well-formed IPv6 header whose payload
// length fits in p, and returns p trimmed to the length the header states.
// Trailing bytes (link padding) are cut off; a payload length larger than the
// bytes present is an error. Jumbograms (payload length 0) are not supported.
func Check(p []byte) ([]byte, error) {
	if len(p) < HeaderLen {
		return nil, ErrTruncated
	}
	if p[0]>>4 != 6 {
		return nil, ErrNotIPv6
	}
	n := HeaderLen + Header(p).PayloadLen()
	if n > len(p) {
		return nil, ErrBadPayload
	}
	return p[:n], nil
}

func (h Header) TrafficClass() uint8 { return h[0]<<4 | h[1]>>4 }
func (h Header) FlowLabel() uint32   { return binary.BigEndian.Uint32(h[0:4]) & 0xfffff }
func (h Header) PayloadLen() int {
	return int(binary.BigEndian.Uint16(h[OffPayloadLen : OffPayloadLen+2]))
}
func (h Header) NextHeader() uint8 { return h[OffNextHeader] }
func (h Header) HopLimit() uint8   { return h[OffHopLimit] }
func (h Header) Src() netip.Addr   { return netip.AddrFrom16([16]byte(h[OffSrc : OffSrc+16])) }
func (h Header) Dst() netip.Addr   { return netip.AddrFrom16([16]byte(h[OffDst : OffDst+16])) }

func (h Header) SetPayloadLen(n int) {
	binary.BigEndian.PutUint16(h[OffPayloadLen:OffPayloadLen+2], uint16(n))
}
func (h Header) SetHopLimit(l uint8) { h[OffHopLimit] = l }
func (h Header) SetSrc(a netip.Addr) { a16 := a.As16(); copy(h[OffSrc:OffSrc+16], a16[:]) }
func (h Header) SetDst(a netip.Addr) { a16 := a.As16(); copy(h[OffDst:OffDst+16], a16[:]) }

// Fields fills in a whole fixed header.
type Fields struct {
	TrafficClass uint8
	FlowLabel    uint32
	PayloadLen   int
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// Put writes f into the first 40 bytes of b.
func (f Fields) Put(b []byte) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&0xfffff)
	h := Header(b)
	h.SetPayloadLen(f.PayloadLen)
	h[OffNextHeader] = f.NextHeader
	h[OffHopLimit] = f.HopLimit
	h.SetSrc(f.Src)
	h.SetDst(f.Dst)
}

// Build returns a new packet with header f (PayloadLen taken from payload).
func Build(f Fields, payload []byte) []byte {
	b := make([]byte, HeaderLen+len(payload))
	f.PayloadLen = len(payload)
	f.Put(b)
	copy(b[HeaderLen:], payload)
	return b
}

// PseudoHeaderSum is the one's-complement sum (not folded) of the RFC 8200
// section 8.1 pseudo-header.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s16, d16 := src.As16(), dst.As16()
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(s16[i])<<8 | uint32(s16[i+1])
		sum += uint32(d16[i])<<8 | uint32(d16[i+1])
	}
	sum += uint32(length>>16) + uint32(length&0xffff)
	sum += uint32(proto)
	return sum
}

// Sum adds b to a one's-complement partial sum.
func Sum(b []byte, sum uint32) uint32 {
	n := len(b)
	i := 0
	for ; i+8 <= n; i += 8 {
		sum += uint32(binary.BigEndian.Uint16(b[i:])) + uint32(binary.BigEndian.Uint16(b[i+2:])) +
			uint32(binary.BigEndian.Uint16(b[i+4:])) + uint32(binary.BigEndian.Uint16(b[i+6:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	for ; i+2 <= n; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if i < n {
		sum += uint32(b[i]) << 8
	}
	return sum
}

// Fold folds a partial sum and returns its one's complement.
func Fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}

// Checksum is the upper-layer checksum of payload (whose checksum field must
// be zero) for the given pseudo-header.
func Checksum(src, dst netip.Addr, proto uint8, payload []byte) uint16 {
	return Fold(Sum(payload, PseudoHeaderSum(src, dst, proto, len(payload))))
}

// IsLinkLocal reports whether a is fe80::/10 unicast.
func IsLinkLocal(a netip.Addr) bool { return a.Is6() && a.IsLinkLocalUnicast() }

// SolicitedNode returns the solicited-node multicast address of a (RFC 4291 2.7.1).
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

var (
	AllNodes   = netip.MustParseAddr("ff02::1")
	AllRouters = netip.MustParseAddr("ff02::2")
)
