// Package seqwindow is a sliding window over sequence numbers that accepts
// each number once: WireGuard's anti-replay window (RFC 6479's scheme).
// The underlay's sessions use it against replays, the mobility tunnels
// against the second copy of a bicast packet.
package seqwindow

// Window accepts each number once and refuses numbers more than Size
// behind the newest. It is 8,128 numbers wide so that reordering by a
// multi-queue underlay or GRO batches is never mistaken for a repeat. Fed
// from the network, it must only see numbers of messages that
// authenticated, or a forger could slide it. The zero value is ready; it
// is not safe for concurrent use.
type Window struct {
	last uint64
	ring [ringBlocks]uint64
}

const (
	blockBitLog = 6
	blockBits   = 1 << blockBitLog
	ringBlocks  = 1 << 7
	// Size is how far behind the newest number a number is still taken.
	Size      = (ringBlocks - 1) * blockBits
	blockMask = ringBlocks - 1
	bitMask   = blockBits - 1
)

// Accept reports whether n is new, and records it.
func (w *Window) Accept(n uint64) bool {
	block := n >> blockBitLog
	if n > w.last {
		current := w.last >> blockBitLog
		diff := min(block-current, ringBlocks)
		for i := current + 1; i <= current+diff; i++ {
			w.ring[i&blockMask] = 0
		}
		w.last = n
	} else if w.last-n > Size {
		return false
	}
	block &= blockMask
	bit := uint64(1) << (n & bitMask)
	old := w.ring[block]
	w.ring[block] = old | bit
	return old&bit == 0
}
