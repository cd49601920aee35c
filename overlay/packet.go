package overlay

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ha2r/mip6testbed/ip6"
)

// Headroom is the space kept in front of every packet in its buffer, so that
// the frame header and any encapsulation (IPv6-in-IPv6 40 bytes, a Home
// Address option 24 bytes, a type 2 routing header 24 bytes, AH) are written
// in place instead of copying the packet.
const Headroom = 256

// Packet is an IPv6 packet inside a larger buffer: Buf[Off:Off+Len], with at
// least Off bytes free in front of it.
//
// Ownership: the router's and host's loops own a Packet and its buffer. A
// hook (RouterHook, HostHook) may read and rewrite the packet during the
// call, but must not keep p, p.Buf or any slice of them once it returns: the
// loop reuses both for the next packet of the batch. A hook that needs the
// bytes later copies them (NewPacket does). Tests run the loops with
// PoisonBuffers, which scribbles over every buffer after its round so that a
// kept reference shows up as garbage.
type Packet struct {
	Buf []byte
	Off int
	Len int

	// The extension-header chain, walked at most once per version of the
	// packet's bytes (see Chain); every rewrite through Prepend, Strip,
	// Replace or Changed invalidates it.
	chain  ip6.Chain
	walked walkState
	err    error
}

type walkState uint8

const (
	notWalked walkState = iota
	walkedOK
	walkFailed
)

// Set points p at buf[off:off+n], forgetting what it knew of its old bytes.
func (p *Packet) Set(buf []byte, off, n int) {
	p.Buf, p.Off, p.Len, p.walked = buf, off, n, notWalked
}

// Data returns the packet's bytes.
func (p *Packet) Data() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// Header returns a view of the packet's fixed header.
func (p *Packet) Header() ip6.Header { return ip6.Header(p.Buf[p.Off : p.Off+p.Len]) }

// Chain returns the packet's extension-header chain. The router and host
// check a packet once (ip6.Check) and walk its chain at most once; every
// hook that asks afterwards gets the same result without walking again.
func (p *Packet) Chain() (*ip6.Chain, error) {
	switch p.walked {
	case walkedOK:
		return &p.chain, nil
	case walkFailed:
		return nil, p.err
	}
	if err := ip6.Walk(p.Data(), &p.chain); err != nil {
		p.walked, p.err = walkFailed, err
		return nil, err
	}
	p.walked = walkedOK
	return &p.chain, nil
}

// Changed records that the packet's headers were rewritten in place, so the
// next Chain walks them again.
func (p *Packet) Changed() { p.walked = notWalked }

// Prepend grows the packet by n bytes at the front and returns the new front
// bytes; it reports false when there is no room left.
func (p *Packet) Prepend(n int) ([]byte, bool) {
	if p.Off-n < FrameHeaderLen {
		return nil, false
	}
	p.Off -= n
	p.Len += n
	p.walked = notWalked
	return p.Buf[p.Off : p.Off+n], true
}

// Strip removes n bytes from the front (decapsulation).
func (p *Packet) Strip(n int) bool {
	if n > p.Len {
		return false
	}
	p.Off += n
	p.Len -= n
	p.walked = notWalked
	return true
}

// Trim cuts the packet to n bytes (link padding after the payload).
func (p *Packet) Trim(n int) {
	if n < p.Len {
		p.Len = n
	}
}

// Replace swaps the packet's contents for b, copying it behind the headroom.
func (p *Packet) Replace(b []byte) {
	if cap(p.Buf) < Headroom+len(b) {
		p.Buf = make([]byte, Headroom+len(b))
	}
	p.Buf = p.Buf[:cap(p.Buf)]
	p.Off = Headroom
	p.Len = copy(p.Buf[Headroom:], b)
	p.walked = notWalked
}

// NewPacket copies b into a fresh buffer with headroom.
func NewPacket(b []byte) *Packet {
	p := &Packet{}
	p.Replace(b)
	return p
}

// frame returns the bytes to send: a frame header written in front of the
// packet.
func (p *Packet) frame(h *FrameHeader) []byte {
	h.Put(p.Buf[p.Off-FrameHeaderLen:])
	return p.Buf[p.Off-FrameHeaderLen : p.Off+p.Len]
}

// sendBatch gathers frames of one processing round and sends them grouped by
// destination, so that consecutive frames to one peer become one sendmmsg
// (and one GSO datagram train).
type sendBatch struct {
	items []sendItem
	bufs  [][]byte
}

type sendItem struct {
	to  netip.AddrPort
	seq int
	b   []byte
}

func (s *sendBatch) add(to netip.AddrPort, b []byte) {
	s.items = append(s.items, sendItem{to: to, seq: len(s.items), b: b})
}

func compareAddrPort(a, b netip.AddrPort) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Port(), b.Port())
}

// flush sends everything and reports how many frames failed to go out.
func (s *sendBatch) flush(b Bind) (failed int) {
	if len(s.items) == 0 {
		return 0
	}
	slices.SortFunc(s.items, func(x, y sendItem) int {
		if c := compareAddrPort(x.to, y.to); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
	max := b.BatchSize()
	for i := 0; i < len(s.items); {
		j := i
		s.bufs = s.bufs[:0]
		for j < len(s.items) && s.items[j].to == s.items[i].to && len(s.bufs) < max {
			s.bufs = append(s.bufs, s.items[j].b)
			j++
		}
		if err := b.Send(s.bufs, s.items[i].to); err != nil {
			failed += len(s.bufs)
		}
		i = j
	}
	clear(s.items)
	s.items = s.items[:0]
	clear(s.bufs)
	return failed
}
