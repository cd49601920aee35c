package ip6

import (
	"encoding/binary"
	"net/netip"
)

// ICMPv6 message types this project sends or reacts to (RFC 4443, RFC 4861).
const (
	ICMPDstUnreach   = 1
	ICMPPacketTooBig = 2
	ICMPTimeExceeded = 3
	ICMPParamProblem = 4
	ICMPEchoRequest  = 128
	ICMPEchoReply    = 129
	ICMPRouterSol    = 133
	ICMPRouterAdv    = 134
	ICMPNeighborSol  = 135
	ICMPNeighborAdv  = 136
	ICMPRedirect     = 137
)

// ICMPv6 error codes (RFC 4443).
const (
	CodeNoRoute      = 0 // Destination Unreachable
	CodeAdminProhib  = 1
	CodeAddrUnreach  = 3
	CodePortUnreach  = 4
	CodeHopLimit     = 0 // Time Exceeded
	CodeErrHeaderFld = 0 // Parameter Problem
	CodeUnrecNextHdr = 1
)

// MayAnswerWithError applies RFC 4443 section 2.4 (e): no error about an
// error, about a packet with a multicast, unspecified or loopback source, or
// (except Packet Too Big) about a packet sent to a multicast address.
func MayAnswerWithError(invoking []byte, typ uint8) bool {
	if len(invoking) < HeaderLen {
		return false
	}
	h := Header(invoking)
	src := h.Src()
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() {
		return false
	}
	if h.Dst().IsMulticast() && typ != ICMPPacketTooBig {
		return false
	}
	var c Chain
	if err := Walk(invoking, &c); err != nil {
		return true
	}
	if c.Upper == ProtoICMPv6 && !c.Fragmented && c.UpperOff < len(invoking) && invoking[c.UpperOff] < 128 {
		return false
	}
	return true
}

// ICMPError returns an ICMPv6 error message from src to the source of
// invoking, quoting as much of invoking as fits the minimum MTU (RFC 4443
// 2.4 (c)). param is the pointer, MTU or unused word of the message.
func ICMPError(typ, code uint8, param uint32, src netip.Addr, invoking []byte) []byte {
	dst := Header(invoking).Src()
	n := min(len(invoking), MinMTU-HeaderLen-8)
	body := make([]byte, 8+n)
	body[0], body[1] = typ, code
	binary.BigEndian.PutUint32(body[4:8], param)
	copy(body[8:], invoking[:n])
	binary.BigEndian.PutUint16(body[2:4], Checksum(src, dst, ProtoICMPv6, body))
	return Build(Fields{NextHeader: ProtoICMPv6, HopLimit: 64, Src: src, Dst: dst}, body)
}

// EchoReply answers an echo request addressed to this node; upperOff is
// where the ICMPv6 message starts in req.
func EchoReply(req []byte, upperOff int) []byte {
	h := Header(req)
	body := append([]byte(nil), req[upperOff:]...)
	body[0] = ICMPEchoReply
	body[2], body[3] = 0, 0
	binary.BigEndian.PutUint16(body[2:4], Checksum(h.Dst(), h.Src(), ProtoICMPv6, body))
	return Build(Fields{NextHeader: ProtoICMPv6, HopLimit: 64, Src: h.Dst(), Dst: h.Src()}, body)
}

// QuotedPacket returns the invoking packet an ICMPv6 error message quotes,
// given the ICMPv6 message (starting at its type octet), or false when the
// message is too short to hold a quoted IPv6 header.
func QuotedPacket(icmp []byte) ([]byte, bool) {
	if len(icmp) < 8+HeaderLen || icmp[0] >= 128 {
		return nil, false
	}
	return icmp[8:], true
}
