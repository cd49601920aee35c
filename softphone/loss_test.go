package softphone

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// dropNetwork opens loopback sockets whose reads skip the datagrams drop
// says to (it is called for every datagram received, in order).
type dropNetwork struct {
	drop func(b []byte) bool
}

func (n dropNetwork) ListenUDP(at netip.AddrPort) (net.PacketConn, error) {
	c, err := KernelNetwork{}.ListenUDP(at)
	if err != nil {
		return nil, err
	}
	return dropConn{PacketConn: c, drop: n.drop}, nil
}

type dropConn struct {
	net.PacketConn
	drop func(b []byte) bool
}

func (c dropConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.drop(b[:n]) {
			return n, from, err
		}
	}
}

// firstOf drops the first datagram that starts with start and contains
// every one of has, and counts what it dropped.
type firstOf struct {
	start string
	has   []string
	mu    sync.Mutex
	n     int
}

func (f *firstOf) drop(b []byte) bool {
	if !bytes.HasPrefix(b, []byte(f.start)) {
		return false
	}
	for _, h := range f.has {
		if !bytes.Contains(b, []byte(h)) {
			return false
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n == 1
}

func (f *firstOf) dropped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n > 0
}

// startPhoneOn is startPhone on network net.
func startPhoneOn(t *testing.T, net Network, user, domain string, port, proxyPort int) *Phone {
	t.Helper()
	ph, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: user, Host: domain}, Proxy: netip.AddrPortFrom(loop, uint16(proxyPort)),
		Net: net, Contact: func() netip.Addr { return loop }, Port: port, RTPPort: 30000 + port%1000*20, AutoAnswer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ph.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ph.Register(ctx); err != nil {
		t.Fatal(err)
	}
	return ph
}

// The first 200 OK for the INVITE is lost before it reaches the caller: the
// callee retransmits it, the proxy forwards the retransmission (RFC 6026),
// and the call is set up after one retransmission interval instead of
// failing at Timer B. The proxy used to swallow every retransmission.
func TestLostFirst200OK(t *testing.T) {
	proxy := startProxy(t, "d5", 25100, "erin", "fred")
	lose := &firstOf{start: "SIP/2.0 200", has: []string{"INVITE"}}
	caller := startPhoneOn(t, dropNetwork{lose.drop}, "erin", "d5", 25101, 25100)
	startPhoneOn(t, KernelNetwork{}, "fred", "d5", 25102, 25100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := caller.Call(ctx, sip.Uri{User: "fred", Host: "d5"}, CallOptions{})
	if err != nil {
		t.Fatalf("the call failed after its first 200 OK was lost: %v", err)
	}
	defer c.Hangup(ctx)
	if !lose.dropped() {
		t.Fatal("no 200 OK was dropped: the test tested nothing")
	}
	if n := proxy.m.Get("sip.proxy.relayed_retransmission"); n == 0 {
		t.Error("the proxy counted no relayed retransmission")
	}
	t.Logf("set up %v after the INVITE, the first 200 OK lost", time.Since(start).Round(time.Millisecond))
}
