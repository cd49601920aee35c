package overlay

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame format, version 1. Every underlay UDP datagram carries exactly one
// frame. All integers are big-endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Magic (0x6D) |  Version (1)  |     Type      |     Flags     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Link ID                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+      Source link-layer address (48)   +-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                       |      Attachment       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Payload: an IPv6 packet (type 1), nothing (type 2) ...
//
// Magic and Version: a receiver drops a frame whose magic is not 0x6D or
// whose version it does not speak (counted as DropBadMagic / DropVersion).
//
// Type: 1 = IPv6 packet, 2 = keepalive (holds NAT mappings; refreshes the
// router's view of where the sender is), 3 = leave (a host that attached
// elsewhere tells its old router at once, as a Wi-Fi station's
// disassociation tells its access point: the router forgets it and answers
// packets for its addresses with Address Unreachable instead of resolving
// them). Unknown types are dropped.
//
// Flags: none are defined in version 1; a version 1 receiver drops a frame
// with any flag set (DropFlags), so that a later feature announced by a flag,
// such as an authentication trailer after the payload, is never misread as
// part of the packet.
//
// Link ID: the virtual link the frame belongs to: the FNV-1a hash of an
// access link's name (config.LinkID), or 0 for the router backbone.
//
// Source link-layer address: the sender's 48-bit overlay hardware address
// (the same value its ND messages carry), so that a router can learn where a
// host is without parsing the payload, as an Ethernet switch does.
//
// Attachment: a host numbers its attachments (wrapping at 16 bits) and
// stamps each frame it sends with the number of the attachment it belongs
// to; routers send 0. A router honours a leave only when it has heard
// nothing from a later attachment of that host, so that a leave the
// underlay delays past the host's return to the same link (A, B, A within a
// few milliseconds) does not disconnect it.
//
// The 16-byte header keeps the IPv6 packet 8-byte aligned and leaves room in
// front of it inside the same buffer for encapsulation.
const (
	FrameMagic      = 0x6D
	FrameVersion    = 1
	FrameHeaderLen  = 16
	FrameTypePacket = 1
	FrameTypeKeep   = 2
	FrameTypeLeave  = 3
)

// LinkAddr is an overlay link-layer address.
type LinkAddr [6]byte

func (a LinkAddr) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5])
}

// NodeLinkAddr derives a node's link-layer address from its name: locally
// administered, unicast, stable across restarts.
func NodeLinkAddr(name string) LinkAddr {
	h := sha256.Sum256([]byte("mip6 overlay link-layer address\x00" + name))
	var a LinkAddr
	copy(a[:], h[:6])
	a[0] = a[0]&^0x01 | 0x02
	return a
}

// FrameHeader is the decoded fixed header.
type FrameHeader struct {
	Type   uint8
	Flags  uint8
	LinkID uint32
	Src    LinkAddr
	Epoch  uint16 // the sender's attachment number (hosts; 0 from routers)
}

// epochAfter reports whether attachment number a is later than b, in serial
// number arithmetic (RFC 1982) so that the count may wrap.
func epochAfter(a, b uint16) bool { return int16(a-b) > 0 }

// Frame parsing errors; each maps to a drop counter.
var (
	ErrShortFrame = errors.New("overlay: frame shorter than its header")
	ErrBadMagic   = errors.New("overlay: not an overlay frame (bad magic)")
	ErrVersion    = errors.New("overlay: unsupported frame version")
	ErrFlags      = errors.New("overlay: frame has flags this version does not know")
	ErrFrameType  = errors.New("overlay: unknown frame type")
	ErrNotIPv6    = errors.New("overlay: packet frame does not carry IPv6")
)

// Put writes h at the start of b, which must hold FrameHeaderLen bytes.
func (h *FrameHeader) Put(b []byte) {
	_ = b[FrameHeaderLen-1]
	b[0], b[1], b[2], b[3] = FrameMagic, FrameVersion, h.Type, h.Flags
	binary.BigEndian.PutUint32(b[4:8], h.LinkID)
	copy(b[8:14], h.Src[:])
	binary.BigEndian.PutUint16(b[14:16], h.Epoch)
}

// ParseFrame decodes the header of b and returns the payload. For packet
// frames it checks only that the payload looks like IPv6 (version nibble);
// the receiver validates the rest.
func ParseFrame(b []byte, h *FrameHeader) ([]byte, error) {
	if len(b) < FrameHeaderLen {
		return nil, ErrShortFrame
	}
	if b[0] != FrameMagic {
		return nil, ErrBadMagic
	}
	if b[1] != FrameVersion {
		return nil, ErrVersion
	}
	if b[3] != 0 {
		return nil, ErrFlags
	}
	h.Type, h.Flags = b[2], b[3]
	h.LinkID = binary.BigEndian.Uint32(b[4:8])
	copy(h.Src[:], b[8:14])
	h.Epoch = binary.BigEndian.Uint16(b[14:16])
	payload := b[FrameHeaderLen:]
	switch h.Type {
	case FrameTypePacket:
		if len(payload) == 0 || payload[0]>>4 != 6 {
			return nil, ErrNotIPv6
		}
	case FrameTypeKeep, FrameTypeLeave:
	default:
		return nil, ErrFrameType
	}
	return payload, nil
}
