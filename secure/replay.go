package secure

// replayWindow accepts each counter once and refuses counters more than
// windowSize behind the newest: WireGuard's sliding window (RFC 6479's
// scheme), 8,128 counters wide so that reordering by a multi-queue
// underlay or GRO batches is never mistaken for a replay. It must only see
// counters of messages that authenticated, or a forger could slide it.
type replayWindow struct {
	last uint64
	ring [ringBlocks]uint64
}

const (
	blockBitLog = 6
	blockBits   = 1 << blockBitLog
	ringBlocks  = 1 << 7
	windowSize  = (ringBlocks - 1) * blockBits
	blockMask   = ringBlocks - 1
	bitMask     = blockBits - 1
)

// accept reports whether counter is new, and records it.
func (w *replayWindow) accept(counter uint64) bool {
	block := counter >> blockBitLog
	if counter > w.last {
		current := w.last >> blockBitLog
		diff := min(block-current, ringBlocks)
		for i := current + 1; i <= current+diff; i++ {
			w.ring[i&blockMask] = 0
		}
		w.last = counter
	} else if w.last-counter > windowSize {
		return false
	}
	block &= blockMask
	bit := uint64(1) << (counter & bitMask)
	old := w.ring[block]
	w.ring[block] = old | bit
	return old&bit == 0
}
