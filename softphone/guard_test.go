package softphone

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// newHostileV4 is an attacker on the underlay: plain IPv4, not the proxy.
func newHostileV4(t *testing.T, port int) *hostile {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &hostile{t: t, conn: c, to: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
}

// A phone takes requests only through its proxy: an INVITE or OPTIONS sent
// to it directly over the underlay gets no answer and rings nothing (it
// once auto-answered such an INVITE and sent RTP where its SDP said).
func TestPhoneAnswersOnlyItsProxy(t *testing.T) {
	startProxy(t, "d1", 27160, "alice")
	alice := startPhone(t, "alice", "d1", 27161, 27160, nil)
	mallory := newHostileV4(t, 27161)
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	if got := mallory.request("INVITE", "sip:alice@127.0.0.1:27161", "Content-Type: application/sdp\r\n", sdp); got != "" {
		t.Errorf("a direct INVITE got %q", got)
	}
	if got := mallory.request("OPTIONS", "sip:alice@127.0.0.1:27161", "", ""); got != "" {
		t.Errorf("a direct OPTIONS got %q", got)
	}
	if n := alice.Refused(); n < 2 {
		t.Errorf("refused %d datagrams, want 2", n)
	}
	if len(alice.Calls()) != 0 || alice.ringing() != 0 {
		t.Errorf("the direct INVITE made a call: %d calls, %d ringing", len(alice.Calls()), alice.ringing())
	}
	// Through the proxy it still answers.
	if got := newHostile(t, 27160).request("OPTIONS", "sip:alice@d1", "", ""); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("OPTIONS through the proxy: %q", got)
	}
}

// The proxy sends nowhere outside the overlay: a REGISTER whose Contact is
// loopback (or any address outside the overlay's prefixes) is refused,
// and so is a request to such an address literal (a registration once
// made the proxy send requests to its own loopback).
func TestProxyStaysInsideTheOverlay(t *testing.T) {
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 27170, Net: KernelNetwork{}, Users: []string{"alice"},
		Overlay: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.PrefixFrom(loop, 128)}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := newHostile(t, 27170)
	register := func(contact string) string {
		local := h.conn.LocalAddr().(*net.UDPAddr)
		return h.ask("REGISTER sip:d1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:" + itoa(local.Port) + ";branch=z9hG4bKr" + itoa(int(time.Now().UnixNano()%1e9)) + "\r\n" +
			"From: <sip:alice@d1>;tag=1\r\nTo: <sip:alice@d1>\r\nCall-ID: r" + itoa(int(time.Now().UnixNano())) + "@x\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: <sip:alice@" + contact + ">\r\nExpires: 300\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	}
	for _, c := range []string{"127.0.0.1:5060", "[fe80::1]:5060", "[2001:db9::1]:5060", "198.51.100.7:5060"} {
		if got := register(c); !strings.HasPrefix(got, "SIP/2.0 403") {
			t.Errorf("REGISTER with Contact %s: %q", c, got)
		}
	}
	if got := register("[2001:db8:1::10]:5060"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Errorf("REGISTER with an overlay Contact: %q", got)
	}
	if got := h.request("OPTIONS", "sip:x@127.0.0.1:5060", "", ""); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Errorf("a request to an address outside the overlay: %q", got)
	}
}

// A spray of malformed datagrams costs one summary line, without payload
// (each was logged at ERROR with its whole payload).
func TestMalformedSIPLogIsBounded(t *testing.T) {
	var out testenv.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 27180, Net: KernelNetwork{}, Users: []string{"alice"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := newHostile(t, 27180)
	for range 200 {
		h.conn.WriteTo([]byte("INVITE sip:alice@d1 SIP/2.0\r\nVia: SECRET-PAYLOAD\r\nCSeq: x\r\n\r\n"), h.to)
	}
	// Answered in order: once this is, the spray has been read.
	if got := h.request("OPTIONS", "sip:nobody@d1", "", ""); got == "" {
		t.Fatal("the proxy stopped answering")
	}
	l := out.String()
	if strings.Contains(l, "SECRET-PAYLOAD") || strings.Count(l, "malformed SIP datagrams dropped") > 1 || strings.Contains(l, "failed to parse") {
		t.Errorf("log after 200 malformed datagrams (%d bytes):\n%.2000s", len(l), l)
	}
}
