package softphone

import (
	"net"
	"strings"
	"testing"
	"time"
)

// hostile sends raw datagrams to a SIP endpoint and reads answers.
type hostile struct {
	t    *testing.T
	conn *net.UDPConn
	to   *net.UDPAddr
}

func newHostile(t *testing.T, port int) *hostile {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &hostile{t: t, conn: c, to: &net.UDPAddr{IP: net.IPv6loopback, Port: port}}
}

// ask sends msg and returns the status line of the first answer, or "".
func (h *hostile) ask(msg string) string {
	h.conn.WriteTo([]byte(msg), h.to)
	buf := make([]byte, 65536)
	h.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		n, _, err := h.conn.ReadFrom(buf)
		if err != nil {
			return ""
		}
		line := strings.SplitN(string(buf[:n]), "\r\n", 2)[0]
		if strings.HasPrefix(line, "SIP/2.0 1") {
			continue // provisional
		}
		return line
	}
}

func (h *hostile) request(method, uri string, extra string, body string) string {
	local := h.conn.LocalAddr().(*net.UDPAddr)
	msg := method + " " + uri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP [::1]:" + itoa(local.Port) + ";branch=z9hG4bK" + itoa(int(time.Now().UnixNano()%1e9)) + "\r\n" +
		"From: <sip:mallory@d9>;tag=1\r\nTo: <" + uri + ">\r\nCall-ID: " + itoa(int(time.Now().UnixNano())) + "@x\r\n" +
		"CSeq: 1 " + method + "\r\nMax-Forwards: 70\r\nContact: <sip:mallory@[::1]:" + itoa(local.Port) + ">\r\n" + extra +
		"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	return h.ask(msg)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Malformed SIP, oversize datagrams, unknown methods and broken SDP get
// proper answers (or are dropped) and never bring the proxy or the phone
// down.
func TestHostileSIP(t *testing.T) {
	startProxy(t, "d1", 27060, "alice")
	alice := startPhone(t, "alice", "d1", 27061, 27060, nil)
	toProxy, toPhone := newHostile(t, 27060), newHostile(t, 27061)
	alive := func(h *hostile, what string) {
		t.Helper()
		if got := h.request("OPTIONS", "sip:alice@d1", "", ""); !strings.HasPrefix(got, "SIP/2.0 200") {
			t.Fatalf("%s: after hostile input OPTIONS gets %q", what, got)
		}
	}
	garbage := []string{
		"\x00\x01\x02 not sip at all",
		"INVITE sip:alice@d1 SIP/2.0\r\n\r\n",                                        // no headers
		"INVITE sip:alice@d1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:1\r\nCSeq: x\r\n\r\n", // broken CSeq
		"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",                                    // stray response
		"INVITE sip:alice@d1 SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",            // length lies
		strings.Repeat("X", 60000),                                                   // oversize
		"INVITE " + strings.Repeat("a", 5000) + " SIP/2.0\r\n\r\n",
	}
	for i, g := range garbage {
		toProxy.ask(g)
		toPhone.ask(g)
		alive(toProxy, "proxy, garbage "+itoa(i))
		alive(toPhone, "phone, garbage "+itoa(i))
	}
	// An unknown method to the phone: 405 (with Allow); through the proxy
	// to a registered user: forwarded, and the phone's 405 comes back.
	if got := toPhone.request("FROBNICATE", "sip:alice@[::1]:27061", "", ""); !strings.HasPrefix(got, "SIP/2.0 405") {
		t.Errorf("unknown method to the phone: %q", got)
	}
	if got := toProxy.request("FROBNICATE", "sip:alice@d1", "", ""); !strings.HasPrefix(got, "SIP/2.0 405") {
		t.Errorf("unknown method through the proxy: %q", got)
	}
	// Broken SDP: 400 when it does not parse, 488 without a common codec.
	sdpHdr := "Content-Type: application/sdp\r\n"
	if got := toPhone.request("INVITE", "sip:alice@[::1]:27061", sdpHdr, "v=0\r\nthis is not sdp\r\n"); !strings.HasPrefix(got, "SIP/2.0 400") {
		t.Errorf("malformed SDP: %q", got)
	}
	noCodec := "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n"
	if got := toPhone.request("INVITE", "sip:alice@[::1]:27061", sdpHdr, noCodec); !strings.HasPrefix(got, "SIP/2.0 488") {
		t.Errorf("SDP without a common codec: %q", got)
	}
	// A registration for another domain, and a forged hop count.
	if got := toProxy.request("REGISTER", "sip:elsewhere", "", ""); !strings.HasPrefix(got, "SIP/2.0 404") {
		t.Errorf("REGISTER for another domain: %q", got)
	}
	local := toProxy.conn.LocalAddr().(*net.UDPAddr)
	loop := "OPTIONS sip:alice@d1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:" + itoa(local.Port) + ";branch=z9hG4bKmf1\r\n" +
		"From: <sip:m@d9>;tag=1\r\nTo: <sip:alice@d1>\r\nCall-ID: mf1@x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n"
	if got := toProxy.ask(loop); !strings.HasPrefix(got, "SIP/2.0 483") {
		t.Errorf("Max-Forwards 0: %q", got)
	}
	_ = alice
}
