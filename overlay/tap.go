package overlay

import (
	"sync/atomic"
	"time"
)

// Direction says whether a tapped packet was received or sent.
type Direction uint8

const (
	In Direction = iota + 1
	Out
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// TapFunc sees a copy-free view of every IPv6 packet a node receives from or
// sends to the overlay; it must not keep pkt. Packet captures (pcap) and
// tests use it.
type TapFunc func(dir Direction, link uint32, at time.Time, pkt []byte)

// Tap holds an optional TapFunc; the zero value taps nothing and costs one
// atomic load per packet.
type Tap struct{ f atomic.Pointer[TapFunc] }

// Set installs f (nil removes it).
func (t *Tap) Set(f TapFunc) {
	if f == nil {
		t.f.Store(nil)
		return
	}
	t.f.Store(&f)
}

func (t *Tap) see(dir Direction, link uint32, at time.Time, pkt []byte) {
	if f := t.f.Load(); f != nil {
		(*f)(dir, link, at, pkt)
	}
}

// Tapping reports whether a TapFunc is installed.
func (t *Tap) Tapping() bool { return t.f.Load() != nil }
