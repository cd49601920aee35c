package softphone

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/state"
)

// A proxy restarted with its state store knows its users' registrations
// at once: calls to them work before their next refresh.
func TestProxyRestartKeepsRegistrations(t *testing.T) {
	store := &state.Memory{}
	p, err := NewProxy(ProxyConfig{Domain: "d8", Addr: loop, Port: 25130, Net: KernelNetwork{}, Users: []string{"kim"}, State: store})
	if err != nil {
		t.Fatal(err)
	}
	startPhone(t, "kim", "d8", 25131, 25130, nil)
	if len(p.Lookup("kim@d8")) != 1 {
		t.Fatal("not registered")
	}
	p.Close()
	p2, err := NewProxy(ProxyConfig{Domain: "d8", Addr: loop, Port: 25130, Net: KernelNetwork{}, Users: []string{"kim"}, State: store})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if got := p2.Lookup("kim@d8"); len(got) != 1 || got[0].Port != 25131 {
		t.Fatalf("after the restart the registrar has %v for kim", got)
	}
	if p2.m.Get("sip.proxy.registrations_restored") != 1 {
		t.Error("restored registrations not counted")
	}
}

// A REGISTER that fails (the registrar is down) is retried by the phone
// itself, soon after the first failure: once the registrar is back, the
// phone is registered again without anyone asking.
func TestRegistrationRetriedAfterFailure(t *testing.T) {
	ph, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: "lee", Host: "d9"}, Proxy: netip.AddrPortFrom(loop, 25140),
		Net: KernelNetwork{}, Contact: func() netip.Addr { return loop }, Port: 25141, RTPPort: 31200})
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := ph.Register(ctx); err == nil {
		t.Fatal("registered with no registrar")
	}
	if st := ph.Registration(); st.Failures != 1 || st.LastError == "" {
		t.Fatalf("after a failure: %+v", st)
	}
	p := startProxy(t, "d9", 25140, "lee")
	testenv.WaitFor(t, 5*time.Second, "the phone to register again by itself", func() bool {
		return len(p.Lookup("lee@d9")) == 1 && ph.Registration().Failures == 0
	})
}

// The retry waits: soon after one failure, then RFC 5626's back-off,
// jittered between half and all of the wait, capped at 30 minutes.
func TestRegisterRetryWait(t *testing.T) {
	for n, want := range map[int][2]time.Duration{
		1: {time.Second, 2 * time.Second}, 2: {15 * time.Second, 30 * time.Second}, 3: {30 * time.Second, time.Minute},
		7: {8 * time.Minute, 16 * time.Minute}, 20: {15 * time.Minute, 30 * time.Minute},
	} {
		for range 100 {
			if w := registerRetryWait(n); w < want[0] || w > want[1] {
				t.Fatalf("after %d failures: %v, want %v to %v", n, w, want[0], want[1])
			}
		}
	}
}
