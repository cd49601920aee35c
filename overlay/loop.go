package overlay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/tun"
)

// maxLoopErrors is how many reads in a row may fail before a loop gives up,
// and loopErrorPause how long it waits after each: a socket or device that
// keeps failing does not heal by being read in a tight loop (wireguard-go's
// "death spiral" guard in device/receive.go does the same).
const (
	maxLoopErrors  = 10
	loopErrorPause = time.Second / 3
)

// loops is the machinery both Router and Host run their goroutines on: the
// underlay receive loops and the TUN loop, with their buffers, error
// handling and shutdown.
type loops struct {
	name   string
	log    *slog.Logger
	clk    clock.Clock
	c      *counters
	poison bool

	wg      sync.WaitGroup
	closing atomic.Bool
	done    chan struct{}
}

func newLoops(name string, log *slog.Logger, clk clock.Clock, c *counters, poison bool) *loops {
	return &loops{name: name, log: log, clk: clk, c: c, poison: poison, done: make(chan struct{})}
}

// stop makes every loop return once its current read ends; it reports
// false if they were already stopping.
func (l *loops) stop() bool {
	if l.closing.Swap(true) {
		return false
	}
	close(l.done)
	return true
}

// failed decides what a loop does after a failed read: false means stop (the
// node is closing, the socket is closed, or reads failed maxLoopErrors times
// in a row, which is logged with the last error).
func (l *loops) failed(what string, err error, streak *int) bool {
	if l.closing.Load() || errors.Is(err, net.ErrClosed) {
		return false
	}
	*streak++
	if *streak > maxLoopErrors {
		l.c.loopStopped.Add(1)
		l.log.Error("giving up on "+what+" after repeated failures; restart the node", "err", err, "failures", *streak-1)
		return false
	}
	l.log.Warn(what+" failed", "err", err)
	wake := make(chan struct{})
	t := l.clk.AfterFunc(loopErrorPause, func() { close(wake) })
	defer t.Stop()
	select {
	case <-wake:
		return true
	case <-l.done:
		return false
	}
}

// receive runs fn until the node closes: each batch of datagrams is handed
// to handle in bufs[i][Headroom:Headroom+sizes[i]], with Headroom bytes free
// in front of each for encapsulation in place. The buffers belong to the
// loop and are reused for the next batch once handle returns.
func (l *loops) receive(fn ReceiveFunc, batch int, handle func(bufs [][]byte, sizes []int, from []netip.AddrPort, n int)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		bufs := make([][]byte, batch)
		rbufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, Headroom+MaxDatagram)
			rbufs[i] = bufs[i][Headroom:]
		}
		sizes := make([]int, batch)
		from := make([]netip.AddrPort, batch)
		streak := 0
		for {
			n, err := fn(rbufs, sizes, from)
			if n > 0 {
				l.c.framesIn.Add(uint64(n))
				handle(bufs, sizes, from, n)
				l.scribble(bufs, sizes, n)
			}
			if err != nil {
				if !l.failed("underlay receive", err, &streak) {
					return
				}
				continue
			}
			streak = 0
		}
	}()
}

// readTUN runs dev's reads until the node closes, handing each batch to
// handle in bufs[i][Headroom:Headroom+sizes[i]]. Packets a read returns
// together with an error (tun.ErrTooManySegments: more segments than
// buffers) are handled before the error is.
func (l *loops) readTUN(dev tun.Device, handle func(bufs [][]byte, sizes []int, n int)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		batch := dev.BatchSize()
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, Headroom+MaxDatagram)
		}
		sizes := make([]int, batch)
		streak := 0
		for {
			n, err := dev.Read(bufs, sizes, Headroom)
			if n > 0 {
				l.c.fromTun.Add(uint64(n))
				handle(bufs, sizes, n)
				l.scribble(bufs, sizes, n)
			}
			switch {
			case err == nil:
				streak = 0
			case errors.Is(err, tun.ErrTooManySegments):
				// The segments that did not fit are lost; the kernel counts
				// them too. Not a failure of the device.
				l.c.dropped(DropTunRead, 1)
			case !l.failed("TUN read", err, &streak):
				return
			}
		}
	}()
}

// scribble overwrites the packets of a finished round when the node runs
// with PoisonBuffers, so that a hook that kept a reference reads garbage.
func (l *loops) scribble(bufs [][]byte, sizes []int, n int) {
	if !l.poison {
		return
	}
	for i := 0; i < n; i++ {
		b := bufs[i][:Headroom+sizes[i]]
		for j := range b {
			b[j] = 0xdb
		}
	}
}
