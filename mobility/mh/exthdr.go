package mh

import (
	"errors"
	"net/netip"
)

// The Home Address option travels in a Destination Options header; the type
// 2 routing header carries the home address of a route-optimised peer
// (RFC 6275 6.3 and 6.4). Both are 24 bytes as this project sends them.
const (
	OptHomeAddress = 0xC9 // destination option type
	HAOHeaderLen   = 24   // Destination Options header with PadN + HAO
	RH2Len         = 24
	RoutingType2   = 2
)

// Errors of the extension-header parsers.
var (
	ErrExtTruncated  = errors.New("mh: extension header truncated")
	ErrHAOLength     = errors.New("mh: Home Address option length is not 16")
	ErrHAOAlign      = errors.New("mh: Home Address option not at 8n+6")
	ErrHAOMissing    = errors.New("mh: destination options header has no Home Address option")
	ErrHAOAddress    = errors.New("mh: Home Address option holds a multicast, loopback or unspecified address")
	ErrDestOptAction = errors.New("mh: unknown destination option whose action says discard")
	ErrRH2Type       = errors.New("mh: routing header is not type 2")
	ErrRH2Length     = errors.New("mh: type 2 routing header length is not 2")
	ErrRH2Segments   = errors.New("mh: type 2 routing header segments left is not 1")
)

// PutHAODestOpts writes a Destination Options header holding a Home Address
// option into b[:24]: Next Header, Hdr Ext Len 2, PadN(2) so the option sits
// at 8n+6, then the option.
func PutHAODestOpts(b []byte, next uint8, hoa netip.Addr) {
	_ = b[HAOHeaderLen-1]
	b[0], b[1] = next, 2
	b[2], b[3], b[4], b[5] = 1, 2, 0, 0 // PadN, 2 bytes of padding
	b[6], b[7] = OptHomeAddress, 16
	a := hoa.As16()
	copy(b[8:24], a[:])
}

// ParseHAO finds the Home Address option in a Destination Options header
// (the whole header, as ip6.Walk locates it) and returns the address and its
// offset within the header.
func ParseHAO(h []byte) (netip.Addr, int, error) {
	if len(h) < 8 || len(h) < (int(h[1])+1)*8 {
		return netip.Addr{}, 0, ErrExtTruncated
	}
	h = h[:(int(h[1])+1)*8]
	for off := 2; off < len(h); {
		t := h[off]
		if t == 0 { // Pad1
			off++
			continue
		}
		if off+2 > len(h) || off+2+int(h[off+1]) > len(h) {
			return netip.Addr{}, 0, ErrExtTruncated
		}
		l := int(h[off+1])
		switch {
		case t == 1: // PadN
		case t == OptHomeAddress:
			if l != 16 {
				return netip.Addr{}, 0, ErrHAOLength
			}
			if off%8 != 6 {
				return netip.Addr{}, 0, ErrHAOAlign
			}
			a := netip.AddrFrom16([16]byte(h[off+2 : off+18]))
			if a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() {
				return netip.Addr{}, 0, ErrHAOAddress
			}
			return a, off + 2, nil
		case t>>6 != 0:
			// RFC 8200 4.2: the two high-order bits of an unrecognised
			// option say what to do; anything but 00 discards.
			return netip.Addr{}, 0, ErrDestOptAction
		}
		off += 2 + l
	}
	return netip.Addr{}, 0, ErrHAOMissing
}

// PutRH2 writes a type 2 routing header into b[:24].
func PutRH2(b []byte, next uint8, hoa netip.Addr) {
	_ = b[RH2Len-1]
	b[0], b[1], b[2], b[3] = next, 2, RoutingType2, 1
	b[4], b[5], b[6], b[7] = 0, 0, 0, 0
	a := hoa.As16()
	copy(b[8:24], a[:])
}

// ParseRH2 decodes a type 2 routing header (RFC 6275 6.4) and returns the
// home address and Segments Left.
func ParseRH2(h []byte) (netip.Addr, uint8, error) {
	if len(h) < 8 {
		return netip.Addr{}, 0, ErrExtTruncated
	}
	if h[2] != RoutingType2 {
		return netip.Addr{}, 0, ErrRH2Type
	}
	if h[1] != 2 {
		return netip.Addr{}, 0, ErrRH2Length
	}
	if len(h) < RH2Len {
		return netip.Addr{}, 0, ErrExtTruncated
	}
	if h[3] != 1 && h[3] != 0 {
		return netip.Addr{}, 0, ErrRH2Segments
	}
	return netip.AddrFrom16([16]byte(h[8:24])), h[3], nil
}
