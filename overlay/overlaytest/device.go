package overlaytest

import (
	"net/netip"
	"os"
	"sync"

	"github.com/ha2r/mip6testbed/tun"
)

// ChanDevice is a tun.Device driven by a test: each Feed is what one Read
// returns (packets, and possibly an error with them, as the kernel backend
// returns tun.ErrTooManySegments together with the packets that fit); what
// the node writes arrives on Written.
type ChanDevice struct {
	// Discard drops what the node writes instead of passing it to Written
	// (benchmarks).
	Discard bool

	reads   chan readResult
	written chan []byte
	done    chan struct{}
	once    sync.Once
	mtu     int

	mu    sync.Mutex
	addrs []tun.Address
}

type readResult struct {
	pkts [][]byte
	err  error
}

// NewChanDevice returns a device with the given MTU.
func NewChanDevice(mtu int) *ChanDevice {
	return &ChanDevice{reads: make(chan readResult, 64), written: make(chan []byte, 4096), done: make(chan struct{}), mtu: mtu}
}

// Feed queues one Read's result: pkts (copied) and err.
func (d *ChanDevice) Feed(pkts [][]byte, err error) {
	cp := make([][]byte, len(pkts))
	for i, p := range pkts {
		cp[i] = append([]byte(nil), p...)
	}
	d.reads <- readResult{cp, err}
}

// Written delivers each packet the node wrote to its applications.
func (d *ChanDevice) Written() <-chan []byte { return d.written }

func (d *ChanDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case r := <-d.reads:
		n := 0
		for _, p := range r.pkts {
			if n == len(bufs) {
				break
			}
			sizes[n] = copy(bufs[n][offset:], p)
			n++
		}
		return n, r.err
	case <-d.done:
		return 0, os.ErrClosed
	}
}

func (d *ChanDevice) Write(bufs [][]byte, offset int) (int, error) {
	if d.Discard {
		return len(bufs), nil
	}
	for _, b := range bufs {
		select {
		case d.written <- append([]byte(nil), b[offset:]...):
		default: // a test that does not read loses packets, as a full queue would
		}
	}
	return len(bufs), nil
}

func (d *ChanDevice) BatchSize() int { return 16 }
func (d *ChanDevice) MTU() int       { return d.mtu }
func (d *ChanDevice) Name() string   { return "chan0" }

func (d *ChanDevice) AddAddress(a netip.Prefix, preferred bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.addrs {
		if d.addrs[i].Prefix.Addr() == a.Addr() {
			d.addrs[i] = tun.Address{Prefix: a, Preferred: preferred}
			return nil
		}
	}
	d.addrs = append(d.addrs, tun.Address{Prefix: a, Preferred: preferred})
	return nil
}

func (d *ChanDevice) SetPreferred(a netip.Addr, preferred bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.addrs {
		if d.addrs[i].Prefix.Addr() == a {
			d.addrs[i].Preferred = preferred
		}
	}
	return nil
}

func (d *ChanDevice) RemoveAddress(a netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	kept := d.addrs[:0]
	for _, x := range d.addrs {
		if x.Prefix.Addr() != a {
			kept = append(kept, x)
		}
	}
	d.addrs = kept
	return nil
}

func (d *ChanDevice) Addresses() []tun.Address {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]tun.Address(nil), d.addrs...)
}

func (d *ChanDevice) AddRoute(netip.Prefix) error { return nil }

func (d *ChanDevice) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}
