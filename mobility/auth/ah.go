package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/ha2r/mip6testbed/ip6"
)

// IPsec Authentication Header (RFC 4302) with HMAC-SHA-256-128 (RFC 4868),
// manually keyed, as the HA2R and the home agent protect the MN
// Authentication messages they relay to each other.
const (
	AHICVLen = 16 // HMAC-SHA-256 truncated to 128 bits
	// AHLen is the header with its ICV field padded so the header is a
	// multiple of 8 bytes, as IPv6 requires: 12 fixed + 16 ICV + 4 padding.
	AHLen = 32
)

// Errors of AH processing.
var (
	ErrAHTruncated  = errors.New("ah: truncated Authentication Header")
	ErrAHMissing    = errors.New("ah: no Authentication Header")
	ErrAHLength     = errors.New("ah: Payload Len does not fit HMAC-SHA-256-128")
	ErrAHSPI        = errors.New("ah: unknown SPI")
	ErrAHICV        = errors.New("ah: integrity check failed")
	ErrAHReplay     = errors.New("ah: replayed or too old sequence number")
	ErrAHChain      = errors.New("ah: unsupported extension header before AH")
	ErrAHSeqCycled  = errors.New("ah: sequence numbers exhausted; rekey the security association")
	ErrAHNotIPv6Pkt = errors.New("ah: not an IPv6 packet")
)

// SA is one direction of a manually keyed security association.
type SA struct {
	SPI uint32
	Key []byte // HMAC-SHA-256 key (32 bytes)
}

// Protect returns a copy of pkt (an IPv6 packet without extension headers)
// with an Authentication Header inserted after the fixed header.
func (sa *SA) Protect(pkt []byte, seq uint32) ([]byte, error) {
	p, err := ip6.Check(pkt)
	if err != nil {
		return nil, ErrAHNotIPv6Pkt
	}
	if seq == 0 {
		return nil, ErrAHSeqCycled // RFC 4302 3.3.3: the counter starts at 1 and never wraps
	}
	out := make([]byte, len(p)+AHLen)
	copy(out, p[:ip6.HeaderLen])
	ah := out[ip6.HeaderLen : ip6.HeaderLen+AHLen]
	ah[0] = p[6]
	ah[1] = AHLen/4 - 2
	binary.BigEndian.PutUint32(ah[4:8], sa.SPI)
	binary.BigEndian.PutUint32(ah[8:12], seq)
	copy(out[ip6.HeaderLen+AHLen:], p[ip6.HeaderLen:])
	out[6] = ip6.ProtoAH
	ip6.Header(out).SetPayloadLen(len(out) - ip6.HeaderLen)
	icv := sa.icv(out, ip6.HeaderLen)
	copy(ah[12:12+AHICVLen], icv[:AHICVLen])
	return out, nil
}

// icv computes the HMAC over the packet with mutable fields zeroed (RFC 4302
// 3.3.3.1): traffic class, flow label and hop limit of the fixed header, and
// the ICV field (with its padding) of the AH at ahOff.
func (sa *SA) icv(pkt []byte, ahOff int) []byte {
	m := ahMAC(sa.Key)
	var hdr [ip6.HeaderLen]byte
	copy(hdr[:], pkt[:ip6.HeaderLen])
	hdr[0] &= 0xf0
	hdr[1], hdr[2], hdr[3] = 0, 0, 0
	hdr[7] = 0
	m.Write(hdr[:])
	writeImmutableExts(m, pkt[ip6.HeaderLen:ahOff])
	m.Write(pkt[ahOff : ahOff+12])
	var zero [AHLen - 12]byte
	m.Write(zero[:])
	m.Write(pkt[ahOff+AHLen:])
	return m.Sum(nil)
}

// ahMAC is HMAC-SHA-256; AH keeps its first 128 bits (RFC 4868 2.1).
func ahMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// writeImmutableExts writes the hop-by-hop and destination options headers
// that precede AH, with the data of options marked as changing en route
// (the third-highest bit of the option type, RFC 8200 4.2) as zeros.
func writeImmutableExts(m hash.Hash, b []byte) {
	for len(b) >= 8 {
		n := (int(b[1]) + 1) * 8
		if n > len(b) {
			n = len(b)
		}
		h := append([]byte(nil), b[:n]...)
		for off := 2; off < len(h); {
			if h[off] == 0 {
				off++
				continue
			}
			if off+1 >= len(h) {
				break
			}
			l := int(h[off+1])
			if h[off]&0x20 != 0 {
				for i := off + 2; i < off+2+l && i < len(h); i++ {
					h[i] = 0
				}
			}
			off += 2 + l
		}
		m.Write(h)
		b = b[n:]
	}
}

// AHInfo describes a verified Authentication Header.
type AHInfo struct {
	SPI uint32
	Seq uint32
}

// Open verifies the Authentication Header of pkt with the SA that lookup
// returns for its SPI, checks the sequence number against window (which it
// then advances), and returns the packet with AH removed.
func Open(pkt []byte, lookup func(spi uint32) (*SA, *ReplayWindow, bool)) ([]byte, AHInfo, error) {
	p, err := ip6.Check(pkt)
	if err != nil {
		return nil, AHInfo{}, ErrAHNotIPv6Pkt
	}
	var c ip6.Chain
	if err := ip6.Walk(p, &c); err != nil {
		return nil, AHInfo{}, ErrAHTruncated
	}
	idx := -1
	for i := 0; i < c.N && idx < 0; i++ {
		switch c.Headers[i].Proto {
		case ip6.ProtoAH:
			idx = i
		case ip6.ProtoHopByHop, ip6.ProtoDstOpts:
		default:
			// Routing or fragment headers before AH would need their own
			// mutable-field rules; nothing here sends them.
			return nil, AHInfo{}, ErrAHChain
		}
	}
	if idx < 0 {
		return nil, AHInfo{}, ErrAHMissing
	}
	h := c.Headers[idx]
	if h.Len != AHLen {
		return nil, AHInfo{}, ErrAHLength
	}
	ah := p[h.Off : h.Off+AHLen]
	info := AHInfo{SPI: binary.BigEndian.Uint32(ah[4:8]), Seq: binary.BigEndian.Uint32(ah[8:12])}
	sa, win, ok := lookup(info.SPI)
	if !ok {
		return nil, info, ErrAHSPI
	}
	if win != nil && !win.Check(info.Seq) {
		return nil, info, ErrAHReplay
	}
	want := sa.icv(p, h.Off)
	if !hmac.Equal(want[:AHICVLen], ah[12:12+AHICVLen]) {
		return nil, info, ErrAHICV
	}
	// Only a packet that passed the integrity check moves the window
	// (RFC 4302 3.4.3).
	if win != nil {
		win.Update(info.Seq)
	}
	out := make([]byte, 0, len(p)-AHLen)
	out = append(out, p[:h.Off]...)
	out = append(out, p[h.Off+AHLen:]...)
	out[c.NextHeaderOffset(idx)] = ah[0]
	ip6.Header(out).SetPayloadLen(len(out) - ip6.HeaderLen)
	return out, info, nil
}

// ReplayWindow is the receiver's anti-replay window of RFC 4302 3.4.3: the
// highest sequence number seen and a 64-bit map of the ones below it.
type ReplayWindow struct {
	top    uint32
	bitmap uint64 // bit i set: top-i was received
}

// ReplayWindowSize is how far below the highest number a packet may be.
const ReplayWindowSize = 64

// Check reports whether seq would be accepted (not zero, not seen, not too
// old). It does not change the window.
func (w *ReplayWindow) Check(seq uint32) bool {
	if seq == 0 {
		return false
	}
	if seq > w.top {
		return true
	}
	d := w.top - seq
	if d >= ReplayWindowSize {
		return false
	}
	return w.bitmap&(1<<d) == 0
}

// Update records seq as received.
func (w *ReplayWindow) Update(seq uint32) {
	if seq > w.top {
		d := seq - w.top
		if d >= ReplayWindowSize {
			w.bitmap = 1
		} else {
			w.bitmap = w.bitmap<<d | 1
		}
		w.top = seq
		return
	}
	w.bitmap |= 1 << (w.top - seq)
}
