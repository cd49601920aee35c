package ip6

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// MaxExtHeaders bounds how many extension headers Walk follows; a chain
// longer than this is treated as hostile.
const MaxExtHeaders = 12

// ExtHeader locates one extension header inside a packet.
type ExtHeader struct {
	Proto uint8 // the header's own protocol number (0, 43, 44, 51, 60, ...)
	Off   int   // offset of its first byte in the packet
	Len   int   // its length in bytes
}

// Chain is the extension-header chain of a packet, as found by Walk.
type Chain struct {
	Headers [MaxExtHeaders]ExtHeader
	N       int
	// Upper is the first protocol that is not an IPv6 extension header
	// (TCP, UDP, ICMPv6, MH, IPv6-in-IPv6, ESP, No Next Header...), and
	// UpperOff the offset where it starts.
	Upper    uint8
	UpperOff int
	// Fragmented is set when a Fragment header with a non-zero offset was
	// found: the upper-layer header is not in this packet.
	Fragmented bool
}

// Errors from Walk.
var (
	ErrChainTooLong  = errors.New("ip6: extension header chain too long")
	ErrHopByHopOrder = errors.New("ip6: hop-by-hop options header not first")
	ErrExtTruncated  = errors.New("ip6: extension header runs past the end of the packet")
)

// IsExtHeader reports whether proto is an extension header Walk steps over.
// The Mobility Header is not: it ends the chain (RFC 6275 section 6.1.1 gives
// it Payload Proto 59) and is returned as the upper layer.
func IsExtHeader(proto uint8) bool {
	switch proto {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDstOpts, ProtoAH:
		return true
	}
	return false
}

// Walk follows the extension headers of a checked packet (see Check). It does
// not allocate.
func Walk(pkt []byte, c *Chain) error {
	c.N, c.Fragmented = 0, false
	if len(pkt) < HeaderLen {
		return ErrTruncated
	}
	next := Header(pkt).NextHeader()
	off := HeaderLen
	for IsExtHeader(next) {
		if c.N == MaxExtHeaders {
			return ErrChainTooLong
		}
		if next == ProtoHopByHop && c.N != 0 {
			return ErrHopByHopOrder
		}
		if off+8 > len(pkt) {
			return ErrExtTruncated
		}
		var n int
		switch next {
		case ProtoFragment:
			n = 8
			if binary.BigEndian.Uint16(pkt[off+2:off+4])&0xfff8 != 0 {
				c.Fragmented = true
			}
		case ProtoAH:
			n = (int(pkt[off+1]) + 2) * 4 // RFC 4302: length in 32-bit words minus 2
		default:
			n = (int(pkt[off+1]) + 1) * 8
		}
		if off+n > len(pkt) {
			return ErrExtTruncated
		}
		c.Headers[c.N] = ExtHeader{Proto: next, Off: off, Len: n}
		c.N++
		next = pkt[off]
		off += n
		if c.Fragmented {
			break
		}
	}
	c.Upper, c.UpperOff = next, off
	return nil
}

// Find returns the first extension header of protocol proto, or false.
func (c *Chain) Find(proto uint8) (ExtHeader, bool) {
	for i := 0; i < c.N; i++ {
		if c.Headers[i].Proto == proto {
			return c.Headers[i], true
		}
	}
	return ExtHeader{}, false
}

// NextHeaderOffset returns the offset of the byte that names the header at
// index i of the chain (i == c.N means the upper layer): byte 6 of the fixed
// header for the first one, otherwise the first byte of the previous header.
func (c *Chain) NextHeaderOffset(i int) int {
	if i == 0 {
		return OffNextHeader
	}
	return c.Headers[i-1].Off
}

// Ext is one extension header for Compose: its protocol number and its bytes
// (the first byte, Next Header, is filled in by Compose).
type Ext struct {
	Proto uint8
	Data  []byte
}

// Compose builds a packet: the fixed header f, the extension headers in
// order, then the upper-layer payload of protocol upper. Next Header fields
// and the payload length are filled in.
func Compose(f Fields, exts []Ext, upper uint8, payload []byte) []byte {
	n := len(payload)
	for _, e := range exts {
		n += len(e.Data)
	}
	b := make([]byte, HeaderLen, HeaderLen+n)
	if len(exts) > 0 {
		f.NextHeader = exts[0].Proto
	} else {
		f.NextHeader = upper
	}
	f.PayloadLen = n
	f.Put(b)
	for i, e := range exts {
		start := len(b)
		b = append(b, e.Data...)
		if i+1 < len(exts) {
			b[start] = exts[i+1].Proto
		} else {
			b[start] = upper
		}
	}
	return append(b, payload...)
}

// Encapsulate returns inner wrapped in an outer IPv6 header from src to dst
// (RFC 2473: next header 41, inner packet unchanged).
func Encapsulate(src, dst netip.Addr, hopLimit uint8, inner []byte) []byte {
	return Build(Fields{NextHeader: ProtoIPv6, HopLimit: hopLimit, Src: src, Dst: dst}, inner)
}

// ErrNotTunnel is returned by Decapsulate for a packet that is not
// IPv6-in-IPv6.
var ErrNotTunnel = errors.New("ip6: not an IPv6-in-IPv6 packet")

// Decapsulate returns the inner packet of an IPv6-in-IPv6 packet whose outer
// header has no extension headers.
func Decapsulate(pkt []byte) ([]byte, error) {
	if len(pkt) < HeaderLen || Header(pkt).NextHeader() != ProtoIPv6 {
		return nil, ErrNotTunnel
	}
	return Check(pkt[HeaderLen:])
}
