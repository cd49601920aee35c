//go:build !linux

package overlay

import (
	"net/netip"
	"sync"

	wgconn "golang.zx2c4.com/wireguard/conn"
)

// StdBind is the underlay on the host's UDP sockets through wireguard-go's
// StdNetBind, on systems where this package has no bind of its own (Linux
// has UDPBind).
type StdBind struct {
	inner wgconn.Bind

	mu  sync.RWMutex
	eps map[netip.AddrPort]wgconn.Endpoint
}

// NewUDPBind returns an unopened StdBind.
func NewUDPBind() Bind {
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
