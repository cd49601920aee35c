package softphone

import (
	"context"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var loop = netip.MustParseAddr("::1")

func startProxy(t *testing.T, domain string, port int, users ...string) *Proxy {
	t.Helper()
	p, err := NewProxy(ProxyConfig{Domain: domain, Addr: loop, Port: port, Net: KernelNetwork{}, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func startPhone(t *testing.T, user, domain string, port, proxyPort int, audio func(string, bool) (Source, Sink)) *Phone {
	t.Helper()
	return registerPhone(t, PhoneConfig{AOR: sip.Uri{User: user, Host: domain}, Proxy: netip.AddrPortFrom(loop, uint16(proxyPort)),
		Net: KernelNetwork{}, Contact: func() netip.Addr { return loop }, Port: port, RTPPort: 30000 + port%1000*20, AutoAnswer: true, Audio: audio})
}

// registerPhone starts a phone, closed when the test ends, and registers it.
func registerPhone(t *testing.T, cfg PhoneConfig) *Phone {
	t.Helper()
	ph, err := NewPhone(cfg)
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

// Two phones register with a proxy and call each other over IPv6 loopback;
// a known signal arrives intact both ways.
func TestCallThroughProxy(t *testing.T) {
	proxy := startProxy(t, "d1", 25060, "alice", "bob")
	a := startPhone(t, "alice", "d1", 25061, 25060, nil)
	b := startPhone(t, "bob", "d1", 25062, 25060, func(string, bool) (Source, Sink) { return &TestPattern{Seed: 2}, Discard{} })
	if got := proxy.Lookup("bob@d1"); len(got) != 1 || got[0].Port != 25062 {
		t.Fatalf("registrar has %v for bob", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Call(ctx, sip.Uri{User: "bob", Host: "d1"}, CallOptions{Source: &TestPattern{Seed: 1}, Sink: Discard{}, Verify: &TestPattern{Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	var bc *Call
	for _, x := range b.Calls() {
		bc = x
	}
	if bc == nil {
		t.Fatal("bob has no call")
	}
	testenv.WaitFor(t, 10*time.Second, "75 packets each way", func() bool {
		return c.Report().PacketsReceived >= 75 && bc.Report().PacketsReceived >= 75
	})
	r := c.Hangup(ctx)
	select {
	case <-bc.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("bob's side did not end on BYE")
	}
	br := bc.Report()
	t.Logf("alice:\n%s\nbob:\n%s", r.Text(), br.Text())
	if r.PacketsReceived < 50 || br.PacketsReceived < 50 {
		t.Errorf("received %d and %d packets", r.PacketsReceived, br.PacketsReceived)
	}
	if r.FramesVerified < 50 || r.FramesMismatched != 0 {
		t.Errorf("audio check: %d intact, %d differ", r.FramesVerified, r.FramesMismatched)
	}
	if r.LossPercent != 0 || r.MOS < 4 {
		t.Errorf("loss %.1f%% MOS %.2f on loopback", r.LossPercent, r.MOS)
	}
}

// Refusals: an unknown user, a known user who is not registered.
func TestProxyFailureAnswers(t *testing.T) {
	startProxy(t, "d2", 25070, "carol", "dave")
	a := startPhone(t, "carol", "d2", 25071, 25070, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		user string
		code string
	}{{"nobody", "404"}, {"dave", "480"}} {
		_, err := a.Call(ctx, sip.Uri{User: c.user, Host: "d2"}, CallOptions{})
		if err == nil || !contains(err.Error(), c.code) {
			t.Errorf("call to %s: %v, want %s", c.user, err, c.code)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
