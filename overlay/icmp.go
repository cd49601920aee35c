package overlay

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
)

// ICMPv6 error codes used by the router (RFC 4443).
const (
	codeNoRoute       = 0
	codeAdminProhib   = 1
	codeAddrUnreach   = 3
	codePortUnreach   = 4
	codeHopLimit      = 0
	codeErrHeaderFld  = 0
	codeUnrecNextHdr  = 1
	icmpErrorMaxBytes = ip6.MinMTU // an error packet never exceeds the minimum MTU
)

// mayAnswerWithError applies RFC 4443 section 2.4 (e): no error about an
// error, about a packet with a multicast or unspecified source, or (except
// Packet Too Big) about a packet sent to a multicast address.
func mayAnswerWithError(invoking []byte, typ uint8) bool {
	h := ip6.Header(invoking)
	src := h.Src()
	if src.IsUnspecified() || src.IsMulticast() || src.IsLoopback() {
		return false
	}
	if h.Dst().IsMulticast() && typ != icmpPacketTooBig {
		return false
	}
	var c ip6.Chain
	if err := ip6.Walk(invoking, &c); err != nil {
		return true
	}
	if c.Upper == ip6.ProtoICMPv6 && !c.Fragmented && c.UpperOff < len(invoking) && invoking[c.UpperOff] < 128 {
		return false
	}
	return true
}

// buildICMPError returns an ICMPv6 error from src about invoking.
func buildICMPError(typ, code uint8, param uint32, src netip.Addr, invoking []byte) []byte {
	dst := ip6.Header(invoking).Src()
	n := len(invoking)
	if max := icmpErrorMaxBytes - ip6.HeaderLen - 8; n > max {
		n = max
	}
	body := make([]byte, 8+n)
	body[0], body[1] = typ, code
	binary.BigEndian.PutUint32(body[4:8], param)
	copy(body[8:], invoking[:n])
	binary.BigEndian.PutUint16(body[2:4], ip6.Checksum(src, dst, ip6.ProtoICMPv6, body))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 64, Src: src, Dst: dst}, body)
}

// buildEchoReply answers an echo request addressed to us.
func buildEchoReply(req []byte, upperOff int) []byte {
	h := ip6.Header(req)
	body := append([]byte(nil), req[upperOff:]...)
	body[0] = icmpEchoReply
	body[2], body[3] = 0, 0
	binary.BigEndian.PutUint16(body[2:4], ip6.Checksum(h.Dst(), h.Src(), ip6.ProtoICMPv6, body))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 64, Src: h.Dst(), Dst: h.Src()}, body)
}

// tokenBucket limits ICMPv6 error messages (RFC 4443 section 2.4 (f)).
type tokenBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
	rate   float64
	burst  float64
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{tokens: burst, rate: rate, burst: burst}
}

func (b *tokenBucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
