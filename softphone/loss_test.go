package softphone

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/internal/testenv"
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
	return registerPhone(t, PhoneConfig{AOR: sip.Uri{User: user, Host: domain}, Proxy: netip.AddrPortFrom(loop, uint16(proxyPort)),
		Net: net, Contact: func() netip.Addr { return loop }, Port: port, RTPPort: 30000 + port%1000*20, AutoAnswer: true})
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

// recorder lets every datagram through and records when those that start
// with start and contain has arrived.
type recorder struct {
	start, has string
	mu         sync.Mutex
	at         []time.Time
}

func (r *recorder) drop(b []byte) bool {
	if bytes.HasPrefix(b, []byte(r.start)) && bytes.Contains(b, []byte(r.has)) {
		r.mu.Lock()
		r.at = append(r.at, time.Now())
		r.mu.Unlock()
	}
	return false
}

func (r *recorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// With every ACK lost, the callee retransmits its answer on RFC 3261
// 13.3.1.4's schedule: after 0.5 s, then 1, 2, 4 s (T2) apart, so four
// answers in the first 3.5 s. (sipgo's own schedule, 0.5 s then every 4 s,
// sends two.)
func TestAnswerRetransmittedOnSchedule(t *testing.T) {
	startProxy(t, "d6", 25110, "gail", "hank")
	answers := &recorder{start: "SIP/2.0 200", has: "INVITE"}
	caller := startPhoneOn(t, dropNetwork{answers.drop}, "gail", "d6", 25111, 25110)
	noACK := func(b []byte) bool { return bytes.HasPrefix(b, []byte("ACK ")) }
	startPhoneOn(t, dropNetwork{noACK}, "hank", "d6", 25112, 25110)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := caller.Call(ctx, sip.Uri{User: "hank", Host: "d6"}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Hangup(ctx)
	var got []time.Time
	testenv.WaitFor(t, 5*time.Second, "four answers", func() bool { got = answers.times(); return len(got) >= 4 })
	if d := got[3].Sub(got[0]); d > 4*time.Second {
		t.Errorf("the fourth answer came %v after the first, want about 3.5 s", d)
	}
}

// A phone with a shorter T2 for its answers (PhoneConfig.AnswerT2) sends
// them at 0, 0.5, 1.5, 2.5, 3.5, 4.5 s: the sixth by 4.5 s, where RFC 3261's
// default T2 of 4 s sends it at 11.5 s.
func TestAnswerT2CapsTheInterval(t *testing.T) {
	startProxy(t, "d6b", 25115, "gina", "hugo")
	answers := &recorder{start: "SIP/2.0 200", has: "INVITE"}
	caller := startPhoneOn(t, dropNetwork{answers.drop}, "gina", "d6b", 25116, 25115)
	noACK := func(b []byte) bool { return bytes.HasPrefix(b, []byte("ACK ")) }
	registerPhone(t, PhoneConfig{AOR: sip.Uri{User: "hugo", Host: "d6b"}, Proxy: netip.AddrPortFrom(loop, 25115),
		Net: dropNetwork{noACK}, Contact: func() netip.Addr { return loop }, Port: 25117, RTPPort: 30000 + 117*20,
		AutoAnswer: true, AnswerT2: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := caller.Call(ctx, sip.Uri{User: "hugo", Host: "d6b"}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Hangup(ctx)
	var got []time.Time
	testenv.WaitFor(t, 8*time.Second, "six answers", func() bool { got = answers.times(); return len(got) >= 6 })
	if d := got[5].Sub(got[0]); d > 6*time.Second {
		t.Errorf("the sixth answer came %v after the first, want about 4.5 s with T2 = 1 s", d)
	}
}

// A caller whose deadline passes while the callee still rings gives up at
// the deadline: the call ends with a report that says so, and a CANCEL
// stops the ringing phone. (The phone used to wait out sipgo's CANCEL
// handling, which also looked the callee's domain up in DNS.)
func TestCallGivenUpAtDeadline(t *testing.T) {
	proxy := startProxy(t, "d7", 25120, "ivy", "jack")
	var mu sync.Mutex
	var calls []*Call
	caller, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: "ivy", Host: "d7"}, Proxy: netip.AddrPortFrom(loop, 25120),
		Net: KernelNetwork{}, Contact: func() netip.Addr { return loop }, Port: 25121, RTPPort: 31000,
		OnCall: func(c *Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close() })
	callee, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: "jack", Host: "d7"}, Proxy: netip.AddrPortFrom(loop, 25120),
		Net: KernelNetwork{}, Contact: func() netip.Addr { return loop }, Port: 25122, RTPPort: 31100, AutoAnswer: true,
		AnswerDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	for _, ph := range []*Phone{caller, callee} {
		if err := ph.Register(rctx); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err = caller.Call(ctx, sip.Uri{User: "jack", Host: "d7"}, CallOptions{})
	took := time.Since(start)
	if err == nil {
		t.Fatal("the call was answered")
	}
	if took > 1500*time.Millisecond {
		t.Errorf("Call returned %v after its 1 s deadline", took)
	}
	mu.Lock()
	if len(calls) != 1 {
		t.Fatalf("%d calls seen", len(calls))
	}
	c := calls[0]
	mu.Unlock()
	select {
	case <-c.Done():
	default:
		t.Fatal("the failed call is not ended")
	}
	if r := c.Report(); !r.Ended || r.Failure == "" || r.MOS != 0 {
		t.Errorf("failed call's report: ended %v, failure %q, MOS %.2f", r.Ended, r.Failure, r.MOS)
	}
	if len(caller.Calls()) != 0 {
		t.Error("the phone still lists the failed call")
	}
	testenv.WaitFor(t, 5*time.Second, "the CANCEL to pass the proxy", func() bool { return proxy.m.Get("sip.proxy.cancelled") == 1 })
	t.Logf("cancel passed after %v", time.Since(start))
	testenv.WaitFor(t, 5*time.Second, "the callee to stop ringing", func() bool { return callee.ringing() == 0 })
	t.Logf("callee stopped after %v", time.Since(start))
}

// A callee sends no media on the strength of the INVITE alone: only after
// the ACK or the caller's own media from the address its SDP named. Here
// both are lost at the callee for a second of the caller's media; the
// callee must not have sent a packet; once they get through, it talks.
func TestCalleeWaitsForConsent(t *testing.T) {
	startProxy(t, "d8", 25130, "kim", "lee")
	var blocking atomic.Bool
	blocking.Store(true)
	block := func(b []byte) bool {
		return blocking.Load() && (bytes.HasPrefix(b, []byte("ACK ")) || len(b) > 12 && b[0]>>6 == 2)
	}
	caller := startPhoneOn(t, KernelNetwork{}, "kim", "d8", 25131, 25130)
	var mu sync.Mutex
	var callee *Call
	registerPhone(t, PhoneConfig{AOR: sip.Uri{User: "lee", Host: "d8"}, Proxy: netip.AddrPortFrom(loop, 25130),
		Net: dropNetwork{block}, Contact: func() netip.Addr { return loop }, Port: 25132, RTPPort: 30000 + 132*20, AutoAnswer: true,
		OnCall: func(c *Call) { mu.Lock(); callee = c; mu.Unlock() }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := caller.Call(ctx, sip.Uri{User: "lee", Host: "d8"}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Hangup(ctx)
	testenv.WaitFor(t, 5*time.Second, "a second of the caller's media", func() bool { return c.Media().Report().PacketsSent >= 50 })
	mu.Lock()
	m := callee.Media()
	mu.Unlock()
	if sent := m.Report().PacketsSent; sent != 0 || !m.Held() {
		t.Fatalf("the callee sent %d packets without an ACK or the caller's media", sent)
	}
	blocking.Store(false)
	testenv.WaitFor(t, 5*time.Second, "the callee's media", func() bool { return m.Report().PacketsSent > 0 && c.Media().Report().PacketsReceived > 0 })
}
