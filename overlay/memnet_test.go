package overlay

import (
	"net"
	"net/netip"
	"sync"
)

// memNet is an in-memory underlay for unit tests: datagrams sent to an
// endpoint arrive on that endpoint's bind, with the sender's endpoint.
type memNet struct {
	mu    sync.Mutex
	binds map[netip.AddrPort]*memBind
}

func newMemNet() *memNet { return &memNet{binds: map[netip.AddrPort]*memBind{}} }

type datagram struct {
	from netip.AddrPort
	data []byte
}

type memBind struct {
	net  *memNet
	ep   netip.AddrPort
	ch   chan datagram
	done chan struct{}
	once sync.Once
}

func (n *memNet) bind(ep string) *memBind {
	b := &memBind{net: n, ep: netip.MustParseAddrPort(ep), ch: make(chan datagram, 4096), done: make(chan struct{})}
	n.mu.Lock()
	n.binds[b.ep] = b
	n.mu.Unlock()
	return b
}

// deliver puts a datagram from an arbitrary endpoint into to's queue.
func (n *memNet) deliver(from, to netip.AddrPort, data []byte) {
	n.mu.Lock()
	b := n.binds[to]
	n.mu.Unlock()
	if b == nil {
		return
	}
	select {
	case b.ch <- datagram{from, append([]byte(nil), data...)}:
	case <-b.done:
	}
}

func (b *memBind) Open(uint16) ([]ReceiveFunc, uint16, error) {
	return []ReceiveFunc{func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
		var d datagram
		select {
		case d = <-b.ch:
		case <-b.done:
			return 0, net.ErrClosed
		}
		n := 0
		for {
			sizes[n] = copy(bufs[n], d.data)
			from[n] = d.from
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

func (b *memBind) Send(bufs [][]byte, to netip.AddrPort) error {
	for _, d := range bufs {
		b.net.deliver(b.ep, to, d)
	}
	return nil
}

func (b *memBind) BatchSize() int { return 8 }

func (b *memBind) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}
