package overlay

import "net/netip"

// Bind is the underlay: batches of UDP datagrams to and from peers. It is the
// seam between the overlay and the host's network; NewUDPBind gives the real one,
// Netem wraps one with emulated delay and loss for the lab.
type Bind interface {
	// Open listens on port (0 picks a free one). Each returned function reads
	// from one socket and must be called from a single goroutine.
	Open(port uint16) (fns []ReceiveFunc, actualPort uint16, err error)
	// Send writes bufs to one peer. It may be called from many goroutines.
	Send(bufs [][]byte, to netip.AddrPort) error
	// BatchSize is how many buffers a ReceiveFunc expects and Send accepts.
	BatchSize() int
	Close() error
}

// ReceiveFunc reads up to len(bufs) datagrams. Every element of bufs must be
// a distinct buffer of at least MaxDatagram bytes (segmentation offload can
// deliver a whole 64 KiB batch into one of them before splitting).
type ReceiveFunc func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error)

// MaxDatagram is the largest datagram a Bind delivers, and so the size of
// every receive buffer.
const MaxDatagram = 65535
