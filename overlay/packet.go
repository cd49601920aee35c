package overlay

import (
	"cmp"
	"net/netip"
	"slices"
)

// Headroom is the space kept in front of every packet in its buffer, so that
// the frame header and any encapsulation (IPv6-in-IPv6 40 bytes, a Home
// Address option 24 bytes, a type 2 routing header 24 bytes, AH) are written
// in place instead of copying the packet.
const Headroom = 256

// Packet is an IPv6 packet inside a larger buffer: Buf[Off:Off+Len], with at
// least Off bytes free in front of it.
type Packet struct {
	Buf []byte
	Off int
	Len int
}

// Data returns the packet's bytes.
func (p *Packet) Data() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// Prepend grows the packet by n bytes at the front and returns the new front
// bytes; it reports false when there is no room left.
func (p *Packet) Prepend(n int) ([]byte, bool) {
	if p.Off-n < FrameHeaderLen {
		return nil, false
	}
	p.Off -= n
	p.Len += n
	return p.Buf[p.Off : p.Off+n], true
}

// Strip removes n bytes from the front (decapsulation).
func (p *Packet) Strip(n int) bool {
	if n > p.Len {
		return false
	}
	p.Off += n
	p.Len -= n
	return true
}

// Replace swaps the packet's contents for b, copying it behind the headroom.
func (p *Packet) Replace(b []byte) {
	if cap(p.Buf) < Headroom+len(b) {
		p.Buf = make([]byte, Headroom+len(b))
	}
	p.Buf = p.Buf[:cap(p.Buf)]
	p.Off = Headroom
	p.Len = copy(p.Buf[Headroom:], b)
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
