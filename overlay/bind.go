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

const (
	// udpMaxSegments is Linux's limit on datagrams in one GSO or GRO run
	// (UDP_MAX_SEGMENTS, UDP_GRO_CNT_MAX).
	udpMaxSegments = 64
	// The largest UDP payload, past which sendmsg says EMSGSIZE; it also
	// bounds a GSO run's datagrams together.
	maxUDPPayload4 = 1<<16 - 1 - 20 - 8
	maxUDPPayload6 = 1<<16 - 1 - 8
)

// GSOSegments is how many datagrams of up to size bytes one UDP GSO message
// carries on any underlay. A node's kernel device splits its TCP and UDP
// segmentation-offload packets into at most this many segments (its
// gso_max_segs), so that each one crosses the underlay in one message: the
// kernel's default (64 KiB of TCP payload) made two, the second a run of
// three or four datagrams that cost a socket buffer, a route lookup and a
// wake-up of its own.
func GSOSegments(size int) int {
	return max(1, min(udpMaxSegments, maxUDPPayload4/max(size, 1)))
}
