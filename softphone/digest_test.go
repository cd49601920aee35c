package softphone

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// The registrar takes a REGISTER only from the user it registers, by
// digest (a host once registered user2@domain2 to its own Contact and got
// the next call): no credentials, wrong ones, or another user's are
// refused; a phone with its password registers, and refreshes without a
// new challenge; an MD5-only client still works.
func TestRegistrarDigest(t *testing.T) {
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 27190, Net: KernelNetwork{}, Users: []string{"alice", "bob"},
		Passwords: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mallory := newHostile(t, 27190)
	local := mallory.conn.LocalAddr().(*net.UDPAddr)
	register := func(user, auth string) string {
		return mallory.ask("REGISTER sip:d1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:" + itoa(local.Port) + ";branch=z9hG4bKd" + itoa(int(time.Now().UnixNano()%1e9)) + "\r\n" +
			"From: <sip:" + user + "@d1>;tag=1\r\nTo: <sip:" + user + "@d1>\r\nCall-ID: d" + itoa(int(time.Now().UnixNano())) + "@x\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: <sip:" + user + "@[::1]:" + itoa(local.Port) + ">\r\n" + auth + "Expires: 300\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	}
	if got := register("bob", ""); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Errorf("REGISTER without credentials: %q", got)
	}
	// Right credentials for alice, used to register bob.
	chal := &digest.Challenge{Realm: "d1", Nonce: p.guard.nonce(time.Now()), Algorithm: "MD5", QOP: []string{"auth"}}
	cred, _ := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:d1", Username: "alice", Password: "alice-secret"})
	if got := register("bob", "Authorization: "+cred.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Errorf("REGISTER of bob with alice's credentials: %q", got)
	}
	wrong, _ := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: "sip:d1", Username: "bob", Password: "guess"})
	if got := register("bob", "Authorization: "+wrong.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Errorf("REGISTER with a wrong password: %q", got)
	}
	if len(p.Lookup("bob@d1")) != 0 {
		t.Fatal("bob was registered without his credentials")
	}
	// An MD5-only client with the right password.
	if got := register("alice", "Authorization: "+cred.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("REGISTER with alice's MD5 credentials: %q", got)
	}
	// The same Authorization again, in a new request: a replay (RFC 7616
	// 3.4.5), challenged afresh.
	if got := register("alice", "Authorization: "+cred.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Errorf("a replayed Authorization: %q", got)
	}
	// An RFC 2069 client (no qop, so no nonce count): its nonce is good
	// once, so the same Authorization again is a replay too.
	old := &digest.Challenge{Realm: "d1", Nonce: p.guard.nonce(time.Now()), Algorithm: "MD5"}
	cred2069, _ := digest.Digest(old, digest.Options{Method: "REGISTER", URI: "sip:d1", Username: "alice", Password: "alice-secret"})
	if got := register("alice", "Authorization: "+cred2069.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("REGISTER with RFC 2069 credentials: %q", got)
	}
	if got := register("alice", "Authorization: "+cred2069.String()+"\r\n"); !strings.HasPrefix(got, "SIP/2.0 401") {
		t.Errorf("a replayed RFC 2069 Authorization: %q", got)
	}
	// A phone with its password: one challenge, then refreshes without.
	ph, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: "bob", Host: "d1"}, Proxy: netip.AddrPortFrom(loop, 27190), Net: KernelNetwork{},
		Contact: func() netip.Addr { return loop }, Port: 27191, RTPPort: 31000, Password: "bob-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ph.Register(ctx); err != nil {
		t.Fatalf("the phone with its password: %v", err)
	}
	challenged := p.m.Get("sip.proxy.auth.challenged")
	for range 3 {
		if err := ph.Reregister(ctx); err != nil {
			t.Fatalf("refresh: %v", err)
		}
	}
	if got := p.m.Get("sip.proxy.auth.challenged"); got != challenged {
		t.Errorf("three refreshes drew %d more challenges, want none", got-challenged)
	}
	if len(p.Lookup("bob@d1")) != 1 {
		t.Errorf("bob's registration: %v", p.Lookup("bob@d1"))
	}
	// A wrong password fails plainly.
	bad, err := NewPhone(PhoneConfig{AOR: sip.Uri{User: "alice", Host: "d1"}, Proxy: netip.AddrPortFrom(loop, 27190), Net: KernelNetwork{},
		Contact: func() netip.Addr { return loop }, Port: 27192, RTPPort: 31100, Password: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Register(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong password: %v", err)
	}
}

// The proxy takes a call from one of its users only from that user: an
// INVITE From alice without her credentials is challenged (407), and her
// phone, with its password, calls without a challenge (its registration's
// nonce).
func TestProxyAuthenticatesItsUsersCalls(t *testing.T) {
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 27200, Net: KernelNetwork{}, Users: []string{"alice", "bob"},
		Passwords: map[string]string{"alice": "alice-secret", "bob": "bob-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	phone := func(user string, port int) *Phone {
		return registerPhone(t, PhoneConfig{AOR: sip.Uri{User: user, Host: "d1"}, Proxy: netip.AddrPortFrom(loop, 27200), Net: KernelNetwork{},
			Contact: func() netip.Addr { return loop }, Port: port, RTPPort: 31200 + port%100*4, AutoAnswer: true, Password: user + "-secret"})
	}
	alice, _ := phone("alice", 27201), phone("bob", 27202)
	mallory := newHostile(t, 27200)
	local := mallory.conn.LocalAddr().(*net.UDPAddr)
	forged := "INVITE sip:bob@d1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:" + itoa(local.Port) + ";branch=z9hG4bKf1\r\n" +
		"From: <sip:alice@d1>;tag=1\r\nTo: <sip:bob@d1>\r\nCall-ID: f1@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
		"Contact: <sip:alice@[::1]:" + itoa(local.Port) + ">\r\nContent-Length: 0\r\n\r\n"
	if got := mallory.ask(forged); !strings.HasPrefix(got, "SIP/2.0 407") {
		t.Errorf("an INVITE From alice without her credentials: %q", got)
	}
	challenged := p.m.Get("sip.proxy.auth.challenged")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := alice.Call(ctx, sip.Uri{User: "bob", Host: "d1"}, CallOptions{})
	if err != nil {
		t.Fatalf("alice calls bob: %v", err)
	}
	c.Hangup(ctx)
	if got := p.m.Get("sip.proxy.auth.challenged"); got != challenged {
		t.Errorf("alice's call drew %d challenges, want none (her registration's nonce)", got-challenged)
	}
}

// Each nonce count is good once per user and nonce, in any order within 64
// of the highest; older ones and repeats are refused.
func TestNonceCountWindow(t *testing.T) {
	g := newDigestGuard("d", nil, nil)
	now := time.Now()
	steps := []struct {
		user string
		nc   uint32
		want bool
	}{
		{"a", 1, true}, {"a", 1, false}, {"a", 3, true}, {"a", 2, true}, {"a", 2, false},
		{"b", 2, true}, // another user's count is its own
		{"a", 100, true}, {"a", 36, true}, {"a", 35, false}, {"a", 3, false}, {"a", 99, true}, {"a", 100, false},
	}
	for i, s := range steps {
		if got := g.firstUse(s.user, "n1", s.nc, now); got != s.want {
			t.Errorf("step %d: %s nc %d: new %v, want %v", i, s.user, s.nc, got, s.want)
		}
	}
	if !g.firstUse("a", "n2", 1, now) {
		t.Error("a new nonce starts afresh")
	}
}
