//go:build linux

package overlay

import (
	"net/netip"
	"testing"

	wgconn "golang.zx2c4.com/wireguard/conn"
)

// wgBind adapts wireguard-go's StdNetBind, which the underlay used before
// UDPBind, so that the benchmarks compare the two in the same run.
type wgBind struct{ wgconn.Bind }

func (b wgBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	out := make([]ReceiveFunc, len(fns))
	for i, fn := range fns {
		eps := make([]wgconn.Endpoint, b.BatchSize())
		out[i] = func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
			n, err := fn(bufs, sizes, eps[:len(bufs)])
			for j := range n {
				from[j] = eps[j].(*wgconn.StdNetEndpoint).AddrPort
			}
			return n, err
		}
	}
	return out, actual, err
}

func (b wgBind) Send(bufs [][]byte, to netip.AddrPort) error {
	return b.Bind.Send(bufs, &wgconn.StdNetEndpoint{AddrPort: to})
}

// BenchmarkUDPBind sends over IPv4 loopback, with UDPBind and with
// wireguard-go's bind: "ping" is one datagram there and one back per op (what a
// datagram arriving alone costs: the forged-message case, and a ping's);
// "burst" is 64 datagrams of 1400 bytes and one back (a GSO run, split on
// receipt), reported per datagram as well.
func BenchmarkUDPBind(b *testing.B) {
	for _, bc := range []struct {
		name string
		mk   func() Bind
	}{{"UDPBind", NewUDPBind}, {"wireguard-go", func() Bind { return wgBind{wgconn.NewStdNetBind()} }}} {
		for _, burst := range []int{1, 64} {
			name := bc.name + "/ping"
			size := 100
			if burst > 1 {
				name, size = bc.name+"/burst", 1400
			}
			b.Run(name, func(b *testing.B) { benchPingPong(b, bc.mk(), bc.mk(), burst, size) })
		}
	}
}

func benchPingPong(b *testing.B, x, y Bind, burst, size int) {
	fx, px := openBind(b, x)
	fy, py := openBind(b, y)
	toX := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), px)
	toY := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), py)
	// One arena, each datagram's capacity running to its end, as package
	// secure seals them: wireguard-go's bind gathers a GSO run by appending
	// to the first datagram, which needs the room.
	arena := make([]byte, burst*size)
	out := make([][]byte, burst)
	for i := range out {
		out[i] = arena[i*size : (i+1)*size]
	}
	newBufs := func() ([][]byte, []int, []netip.AddrPort) {
		bufs := make([][]byte, udpBatch)
		for i := range bufs {
			bufs[i] = make([]byte, MaxDatagram)
		}
		return bufs, make([]int, udpBatch), make([]netip.AddrPort, udpBatch)
	}
	// y answers each burst with one datagram once it has read it whole.
	done := make(chan error, 1)
	go func() {
		bufs, sizes, from := newBufs()
		got := 0
		for {
			n, err := fy[0](bufs, sizes, from)
			if err != nil {
				done <- nil
				return
			}
			if got += n; got >= burst {
				got -= burst
				if err := y.Send(out[:1], toX); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	bufs, sizes, from := newBufs()
	b.SetBytes(int64(burst * size))
	b.ResetTimer()
	for range b.N {
		if err := x.Send(out, toY); err != nil {
			b.Fatal(err)
		}
		for n := 0; n == 0; {
			var err error
			if n, err = fx[0](bufs, sizes, from); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burst), "ns/datagram")
	y.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
