package lab

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// tcpTransfer streams size bytes from one node's stack to another's while
// recording, at the receiver, the arrival time of every chunk, so that a
// test can measure the longest interruption.
type tcpTransfer struct {
	size     int
	wantSum  [32]byte
	done     chan error
	mu       sync.Mutex
	arrivals []time.Time
	gotSum   [32]byte
	received int
	conn     *gonet.TCPConn
}

func startTCPTransfer(t *testing.T, l *Lab, from, to string, listen netip.AddrPort, size int, rate int) *tcpTransfer {
	t.Helper()
	return startTCPTransferFrom(t, l, from, netip.Addr{}, to, listen, size, rate)
}

// startTCPTransferFrom is startTCPTransfer with the sender's source address
// chosen (invalid: the stack's choice).
func startTCPTransferFrom(t *testing.T, l *Lab, from string, src netip.Addr, to string, listen netip.AddrPort, size int, rate int) *tcpTransfer {
	t.Helper()
	x := &tcpTransfer{size: size, done: make(chan error, 2)}
	ln, err := l.Userspace(to).ListenTCP(listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	x.wantSum = sha256.Sum256(data)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			x.done <- err
			return
		}
		defer c.Close()
		h := sha256.New()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				h.Write(buf[:n])
				x.mu.Lock()
				x.arrivals = append(x.arrivals, time.Now())
				x.received += n
				x.mu.Unlock()
			}
			if err == io.EOF {
				copy(x.gotSum[:], h.Sum(nil))
				x.done <- nil
				return
			}
			if err != nil {
				x.done <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c *gonet.TCPConn
	if src.IsValid() {
		c, err = l.Userspace(from).DialTCPFrom(ctx, src, netip.AddrPortFrom(listen.Addr(), listen.Port()))
	} else {
		c, err = l.Userspace(from).DialTCP(ctx, netip.AddrPortFrom(listen.Addr(), listen.Port()))
	}
	if err != nil {
		t.Fatal(err)
	}
	x.conn = c
	go func() {
		// Paced, so the transfer is still running when the test moves a node.
		chunk := rate / 50
		pace := time.NewTicker(20 * time.Millisecond)
		defer pace.Stop()
		for off := 0; off < size; off += chunk {
			end := min(off+chunk, size)
			if _, err := c.Write(data[off:end]); err != nil {
				x.done <- err
				return
			}
			<-pace.C
		}
		c.CloseWrite()
	}()
	return x
}

// wait returns when the transfer ends; it fails the test on a reset or on
// corrupted data.
func (x *tcpTransfer) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case err := <-x.done:
		if err != nil {
			t.Fatalf("TCP transfer failed: %v", err)
		}
	case <-time.After(limit):
		x.mu.Lock()
		t.Fatalf("TCP transfer unfinished after %v (%d of %d bytes)", limit, x.received, x.size)
	}
	if x.gotSum != x.wantSum {
		t.Fatal("TCP data arrived corrupted")
	}
}

// maxGap returns the longest time between two arrivals in [since, until)
// (until zero: no end).
func (x *tcpTransfer) maxGap(since, until time.Time) time.Duration {
	x.mu.Lock()
	defer x.mu.Unlock()
	var gap time.Duration
	for i := 1; i < len(x.arrivals); i++ {
		if x.arrivals[i].Before(since) || !until.IsZero() && !x.arrivals[i-1].Before(until) {
			continue
		}
		if d := x.arrivals[i].Sub(x.arrivals[i-1]); d > gap {
			gap = d
		}
	}
	return gap
}

func (x *tcpTransfer) progress() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.received
}
