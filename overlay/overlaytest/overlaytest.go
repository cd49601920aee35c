// Package overlaytest holds in-memory stand-ins for the overlay's seams, for
// tests in any package: an underlay network (MemNet), a bind that drops
// everything (NopBind) and a TUN device driven through channels
// (ChanDevice), in the manner of wireguard-go's conn/bindtest and
// tun/tuntest.
package overlaytest

import (
	"net"
	"net/netip"
	"sync"

	"github.com/ha2r/mip6testbed/overlay"
)

// MemNet is an in-memory underlay: datagrams sent to an endpoint arrive on
// the bind opened at that endpoint, with the sender's endpoint.
type MemNet struct {
	mu    sync.Mutex
	binds map[netip.AddrPort]*MemBind
}

// NewMemNet returns an empty network.
func NewMemNet() *MemNet { return &MemNet{binds: map[netip.AddrPort]*MemBind{}} }

// Datagram is one underlay datagram.
type Datagram struct {
	From netip.AddrPort
	Data []byte
}

// MemBind is one endpoint of a MemNet.
type MemBind struct {
	net  *MemNet
	ep   netip.AddrPort
	ch   chan Datagram
	done chan struct{}
	once sync.Once
}

// Bind creates the endpoint ep ("10.0.0.1:7000"); a node opens it like a
// real bind, or a test reads what arrives with Datagrams.
func (n *MemNet) Bind(ep string) *MemBind {
	b := &MemBind{net: n, ep: netip.MustParseAddrPort(ep), ch: make(chan Datagram, 4096), done: make(chan struct{})}
	n.mu.Lock()
	n.binds[b.ep] = b
	n.mu.Unlock()
	return b
}

// Deliver puts a datagram from an arbitrary endpoint (an attacker, a NAT's
// new mapping) into to's queue; it copies data.
func (n *MemNet) Deliver(from, to netip.AddrPort, data []byte) {
	n.mu.Lock()
	b := n.binds[to]
	n.mu.Unlock()
	if b == nil {
		return
	}
	select {
	case b.ch <- Datagram{from, append([]byte(nil), data...)}:
	case <-b.done:
	}
}

// Datagrams is what arrives at a bind that no node reads.
func (b *MemBind) Datagrams() <-chan Datagram { return b.ch }

// Endpoint is the bind's address.
func (b *MemBind) Endpoint() netip.AddrPort { return b.ep }

func (b *MemBind) Open(uint16) ([]overlay.ReceiveFunc, uint16, error) {
	return []overlay.ReceiveFunc{func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
		var d Datagram
		select {
		case d = <-b.ch:
		case <-b.done:
			return 0, net.ErrClosed
		}
		n := 0
		for {
			sizes[n] = copy(bufs[n], d.Data)
			from[n] = d.From
			n++
			if n == len(bufs) {
				return n, nil
			}
			select {
			case d = <-b.ch:
			default:
				return n, nil
			}
		}
	}}, b.ep.Port(), nil
}

func (b *MemBind) Send(bufs [][]byte, to netip.AddrPort) error {
	for _, d := range bufs {
		b.net.Deliver(b.ep, to, d)
	}
	return nil
}

func (b *MemBind) BatchSize() int { return 8 }

func (b *MemBind) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

// NopBind is an underlay that receives nothing and drops what is sent: for
// benchmarks and tests that drive a node's functions directly.
type NopBind struct{}

func (NopBind) Open(uint16) ([]overlay.ReceiveFunc, uint16, error) { return nil, 0, nil }
func (NopBind) Send([][]byte, netip.AddrPort) error                { return nil }
func (NopBind) BatchSize() int                                     { return 64 }
func (NopBind) Close() error                                       { return nil }

// FuncBind is an underlay whose receive and send a test supplies.
type FuncBind struct {
	Recv     overlay.ReceiveFunc
	SendFunc func(bufs [][]byte, to netip.AddrPort) error
	Batch    int
}

func (b *FuncBind) Open(uint16) ([]overlay.ReceiveFunc, uint16, error) {
	if b.Recv == nil {
		return nil, 0, nil
	}
	return []overlay.ReceiveFunc{b.Recv}, 1, nil
}

func (b *FuncBind) Send(bufs [][]byte, to netip.AddrPort) error {
	if b.SendFunc == nil {
		return nil
	}
	return b.SendFunc(bufs, to)
}

func (b *FuncBind) BatchSize() int {
	if b.Batch == 0 {
		return 8
	}
	return b.Batch
}

func (b *FuncBind) Close() error { return nil }
