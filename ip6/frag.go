package ip6

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sort"
	"time"
)

// IPv6 fragmentation by a source or a tunnel entry point, and reassembly at
// the destination (RFC 8200 section 4.5). The overlay needs it where a
// tunnel or a route-optimisation header makes a packet of the minimum MTU
// too big for a 1280-byte link: RFC 2473 7.1 has the tunnel entry point
// fragment the outer packet and the exit point reassemble it.

// FragHeaderLen is the length of a Fragment header.
const FragHeaderLen = 8

// Fragment errors.
var (
	ErrFragMTU      = errors.New("ip6: MTU too small to fragment into")
	ErrFragOverlap  = errors.New("ip6: overlapping or inconsistent fragments")
	ErrFragTooLarge = errors.New("ip6: reassembled packet would exceed 65535 bytes")
)

// Fragment splits pkt into fragments of at most mtu bytes. The first
// unfrag bytes (the fixed header and the extension headers every fragment
// must carry) are copied into each fragment; nextOff is the offset, inside
// them, of the Next Header byte that names the fragmentable part (6 for
// the fixed header's). id identifies the packet.
func Fragment(pkt []byte, unfrag, nextOff, mtu int, id uint32) ([][]byte, error) {
	per := (mtu - unfrag - FragHeaderLen) &^ 7
	if per < 8 || unfrag > len(pkt) || nextOff >= unfrag {
		return nil, ErrFragMTU
	}
	next := pkt[nextOff]
	rest := pkt[unfrag:]
	var out [][]byte
	for off := 0; off < len(rest); off += per {
		end := min(off+per, len(rest))
		f := make([]byte, unfrag+FragHeaderLen+end-off)
		copy(f, pkt[:unfrag])
		f[nextOff] = ProtoFragment
		fh := f[unfrag : unfrag+FragHeaderLen]
		fh[0] = next
		more := uint16(0)
		if end < len(rest) {
			more = 1
		}
		binary.BigEndian.PutUint16(fh[2:4], uint16(off)|more)
		binary.BigEndian.PutUint32(fh[4:8], id)
		copy(f[unfrag+FragHeaderLen:], rest[off:end])
		Header(f).SetPayloadLen(len(f) - HeaderLen)
		out = append(out, f)
	}
	return out, nil
}

// Reassembly limits: a packet not complete within ReassemblyTimeout is
// dropped (RFC 8200 4.5 asks 60 s), and at most maxReassemblies packets
// are under way at once, so that fragments cannot exhaust memory.
const (
	ReassemblyTimeout = 60 * time.Second
	maxReassemblies   = 256
)

type fragKey struct {
	src, dst netip.Addr
	id       uint32
}

type fragPart struct {
	off  int
	data []byte
}

type reassembly struct {
	first    time.Time
	unfrag   []byte // from the first fragment, Next Header patched
	parts    []fragPart
	total    int // the fragmentable part's length once the last fragment came
	received int
}

// Reassembler collects fragments. It is not safe for concurrent use; its
// owner serialises calls.
type Reassembler struct {
	m map[fragKey]*reassembly
}

// Add takes one fragment (a whole packet with a Fragment header whose
// position fragOff the caller found walking its chain) at time now. It
// returns the reassembled packet once every fragment is in, nil while some
// are missing, and an error for a fragment that cannot be used (the whole
// packet is then dropped).
func (r *Reassembler) Add(pkt []byte, fragOff int, now time.Time) ([]byte, error) {
	if r.m == nil {
		r.m = map[fragKey]*reassembly{}
	}
	r.expire(now)
	if fragOff+FragHeaderLen > len(pkt) || fragOff < HeaderLen {
		return nil, ErrTruncated
	}
	fh := pkt[fragOff : fragOff+FragHeaderLen]
	word := binary.BigEndian.Uint16(fh[2:4])
	off, more := int(word&^7), word&1 == 1
	data := pkt[fragOff+FragHeaderLen:]
	if more && len(data)%8 != 0 {
		return nil, ErrFragOverlap // every fragment but the last carries a multiple of 8
	}
	h := Header(pkt)
	k := fragKey{h.Src(), h.Dst(), binary.BigEndian.Uint32(fh[4:8])}
	a := r.m[k]
	if a == nil {
		if len(r.m) >= maxReassemblies {
			return nil, ErrFragTooLarge
		}
		a = &reassembly{first: now}
		r.m[k] = a
	}
	if off+len(data) > 65535 {
		delete(r.m, k)
		return nil, ErrFragTooLarge
	}
	for _, p := range a.parts {
		if off < p.off+len(p.data) && p.off < off+len(data) {
			delete(r.m, k) // RFC 5722: overlaps drop the whole packet
			return nil, ErrFragOverlap
		}
	}
	if !more {
		if a.total != 0 || off+len(data) < a.received {
			delete(r.m, k)
			return nil, ErrFragOverlap
		}
		a.total = off + len(data)
	}
	if off == 0 {
		a.unfrag = append([]byte(nil), pkt[:fragOff]...)
		// The Next Header byte that named the Fragment header names what
		// it carried now.
		a.unfrag[nextHeaderIndex(pkt, fragOff)] = fh[0]
	}
	a.parts = append(a.parts, fragPart{off: off, data: append([]byte(nil), data...)})
	a.received += len(data)
	if a.total == 0 || a.received != a.total || a.unfrag == nil {
		return nil, nil
	}
	delete(r.m, k)
	sort.Slice(a.parts, func(i, j int) bool { return a.parts[i].off < a.parts[j].off })
	out := make([]byte, len(a.unfrag), len(a.unfrag)+a.total)
	copy(out, a.unfrag)
	for _, p := range a.parts {
		out = append(out, p.data...)
	}
	Header(out).SetPayloadLen(len(out) - HeaderLen)
	return out, nil
}

// nextHeaderIndex returns the offset of the Next Header byte that names the
// header at off: byte 6 of the fixed header, or the first byte of the
// extension header before it.
func nextHeaderIndex(pkt []byte, off int) int {
	at, prev := HeaderLen, OffNextHeader
	next := pkt[OffNextHeader]
	for at < off && at+2 <= len(pkt) {
		prev = at
		n := (int(pkt[at+1]) + 1) * 8
		if next == ProtoAH {
			n = (int(pkt[at+1]) + 2) * 4
		}
		next = pkt[at]
		at += n
	}
	return prev
}

// Pending reports how many packets are being reassembled.
func (r *Reassembler) Pending() int { return len(r.m) }

func (r *Reassembler) expire(now time.Time) {
	for k, a := range r.m {
		if now.Sub(a.first) > ReassemblyTimeout {
			delete(r.m, k)
		}
	}
}
