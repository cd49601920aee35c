package overlay

import (
	"net/netip"
	"sync"

	wgconn "golang.zx2c4.com/wireguard/conn"
)

// Bind is the underlay: batches of UDP datagrams to and from peers. It is the
// seam between the overlay and the host's network; StdBind is the real one,
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

// StdBind is the real underlay on the host's UDP sockets, using wireguard-go's
// StdNetBind: recvmmsg/sendmmsg and UDP GSO/GRO where the kernel has them.
type StdBind struct {
	inner wgconn.Bind

	mu  sync.RWMutex
	eps map[netip.AddrPort]wgconn.Endpoint
}

// NewStdBind returns an unopened StdBind.
func NewStdBind() *StdBind {
	return &StdBind{inner: wgconn.NewStdNetBind(), eps: map[netip.AddrPort]wgconn.Endpoint{}}
}

func (b *StdBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]ReceiveFunc, len(fns))
	for i, fn := range fns {
		eps := make([]wgconn.Endpoint, b.inner.BatchSize())
		out[i] = func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
			n, err := fn(bufs, sizes, eps[:len(bufs)])
			for j := 0; j < n; j++ {
				if ep, ok := eps[j].(*wgconn.StdNetEndpoint); ok {
					from[j] = netip.AddrPortFrom(ep.AddrPort.Addr().Unmap(), ep.AddrPort.Port())
				} else {
					from[j] = netip.AddrPort{}
				}
				eps[j] = nil
			}
			return n, err
		}
	}
	return out, actual, nil
}

// endpoint returns the cached wireguard endpoint for to, so that Send does not
// allocate once a peer is known.
func (b *StdBind) endpoint(to netip.AddrPort) wgconn.Endpoint {
	b.mu.RLock()
	ep, ok := b.eps[to]
	b.mu.RUnlock()
	if ok {
		return ep
	}
	ep = &wgconn.StdNetEndpoint{AddrPort: to}
	b.mu.Lock()
	if len(b.eps) > 4096 { // hosts behind NAT come and go; do not grow without bound
		clear(b.eps)
	}
	b.eps[to] = ep
	b.mu.Unlock()
	return ep
}

func (b *StdBind) Send(bufs [][]byte, to netip.AddrPort) error {
	if len(bufs) == 0 {
		return nil
	}
	return b.inner.Send(bufs, b.endpoint(to))
}

func (b *StdBind) BatchSize() int { return b.inner.BatchSize() }
func (b *StdBind) Close() error   { return b.inner.Close() }
