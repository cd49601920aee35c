package softphone

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/internal/testenv"
)

// Interoperability with real peers from Debian, all on IPv6 loopback: the
// baresip softphone and SIPp.

// baresip starts a baresip bound to ::1 with an account at our proxy (and,
// unless pass is empty, its digest password).
func baresip(t *testing.T, user, pass string, sipPort, proxyPort int, extra ...string) (*exec.Cmd, *testenv.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`poll_method epoll
sip_listen [::1]:%d
audio_player aufile,%s
audio_source aufile,%s
audio_alert aufile,/dev/null
rtp_ports 31000-31100
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
`, sipPort, filepath.Join(dir, "rx.wav"), toneWAV(t, dir))
	acc := fmt.Sprintf("<sip:%s@d1>;regint=60;outbound=\"sip:[::1]:%d;transport=udp\";answermode=auto;audio_codecs=PCMU", user, proxyPort)
	if pass != "" {
		acc += ";auth_pass=" + pass
	}
	acc += "\n"
	os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(dir, "accounts"), []byte(acc), 0o644)
	args := append([]string{"-f", dir, "-6", "-n", "::1"}, extra...)
	cmd := exec.Command("baresip", args...)
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("baresip output:\n%s", out.String())
		}
	})
	return cmd, out
}

// toneWAV writes 20 s of tone for baresip to send (its sine source only
// works at 48 kHz).
func toneWAV(t *testing.T, dir string) string {
	path := filepath.Join(dir, "tone.wav")
	w, err := CreateWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	tone := &Tone{}
	pcm := make([]int16, FrameSamples)
	for i := 0; i < 1000; i++ {
		tone.ReadFrame(pcm)
		w.WriteFrame(pcm)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitFor(t *testing.T, what string, limit time.Duration, f func() bool) {
	t.Helper()
	testenv.WaitFor(t, limit, what, f)
}

func TestBaresipInterop(t *testing.T) {
	testenv.RequireTools(t, "baresip")
	proxy := startProxy(t, "d1", 26060, "alice", "bare")
	alice := startPhone(t, "alice", "d1", 26061, 26060, nil)
	_, bareOut := baresip(t, "bare", "", 26070, 26060)

	// baresip registers with our registrar over IPv6.
	waitFor(t, "baresip's registration", 10*time.Second, func() bool { return len(proxy.Lookup("bare@d1")) > 0 })
	if c := proxy.Lookup("bare@d1")[0]; strings.Trim(c.Host, "[]") != "::1" || c.Port != 26070 {
		t.Errorf("baresip registered contact %s", c.String())
	}

	// Our softphone calls baresip; RTP flows both ways.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := alice.Call(ctx, sip.Uri{User: "bare", Host: "d1"}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// baresip sends its first RTCP report after about 5 s.
	waitFor(t, "baresip's media and first RTCP report", 15*time.Second, func() bool {
		r := c.Report()
		return r.RTCPReceived > 0 && r.PacketsReceived >= 300
	})
	r := c.Hangup(ctx)
	t.Logf("alice -> baresip:\n%s", r.Text())
	if r.PacketsReceived < 300 {
		t.Errorf("received %d RTP packets from baresip", r.PacketsReceived)
	}
	if r.RTCPReceived == 0 {
		t.Errorf("no RTCP from baresip")
	}
	// And baresip received ours: it says so once our stream is established.
	if !strings.Contains(bareOut.String(), "incoming rtp for 'audio' established") {
		t.Errorf("baresip never received our RTP")
	}

	// baresip calls our softphone (which answers on its own).
	var got *Call
	alice.cfg.OnCall = func(c *Call) { got = c }
	// (Next to the first baresip's UDP/TCP 26070 and TLS 26071.)
	baresip(t, "bare2", "", 26076, 26060, "-e", "/dial sip:alice@d1", "-t", "4")
	waitFor(t, "baresip's call", 10*time.Second, func() bool { return len(alice.Calls()) > 0 })
	waitFor(t, "baresip's BYE", 10*time.Second, func() bool { return len(alice.Calls()) == 0 })
	if got == nil {
		t.Fatal("no call seen")
	}
	rr := got.Report()
	t.Logf("baresip -> alice:\n%s", rr.Text())
	if rr.PacketsReceived < 50 || rr.PacketsSent < 50 {
		t.Errorf("baresip's call carried %d packets in and %d out", rr.PacketsReceived, rr.PacketsSent)
	}
}

// sipp runs SIPp with args and returns its output.
func sipp(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", append(args, "-nostdin", "-trace_err", "-error_file", filepath.Join(t.TempDir(), "err.log"))...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// SIPp's built-in UAC places calls through our proxy to our softphone; our
// softphone calls SIPp's built-in UAS.
func TestSippInterop(t *testing.T) {
	testenv.RequireTools(t, "sipp")
	startProxy(t, "d1", 26080, "alice")
	alice := startPhone(t, "alice", "d1", 26081, 26080, nil)

	out, err := sipp(t, 30*time.Second, "-sn", "uac", "[::1]:26080", "-s", "alice", "-i", "::1", "-p", "26085",
		"-m", "3", "-r", "2", "-l", "1", "-d", "500")
	if err != nil {
		t.Fatalf("sipp uac through our proxy: %v\n%s", err, lastLines(out, 30))
	}
	if !strings.Contains(out, "Successful call") {
		t.Fatalf("sipp output:\n%s", lastLines(out, 30))
	}

	uas := exec.Command("sipp", "-sn", "uas", "-i", "::1", "-p", "26090", "-m", "1", "-nostdin")
	var uasOut testenv.Buffer
	uas.Stdout, uas.Stderr = &uasOut, &uasOut
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	defer uas.Process.Kill()
	waitFor(t, "sipp uas to listen", 5*time.Second, func() bool { return udpPortBound("::1", 26090) })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := alice.Call(ctx, sip.Uri{User: "service", Host: "::1", Port: 26090}, CallOptions{})
	if err != nil {
		t.Fatalf("call to sipp uas: %v", err)
	}
	waitFor(t, "media from sipp's uas", 5*time.Second, func() bool { return c.Report().PacketsSent >= 10 })
	// SIPp's built-in UAS answers the BYE towards where the INVITE came
	// from (our proxy, which it did not Record-Route through), so do not
	// wait long for that 200.
	bye, cancelBye := context.WithTimeout(ctx, time.Second)
	c.Hangup(bye)
	cancelBye()
	done := make(chan error, 1)
	go func() { done <- uas.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sipp uas: %v\n%s", err, lastLines(uasOut.String(), 30))
		}
	case <-time.After(10 * time.Second):
		t.Errorf("sipp uas did not finish:\n%s", lastLines(uasOut.String(), 30))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// udpPortBound reports whether some socket is bound to the UDP port on
// IPv6 (Linux's /proc/net/udp6; a test bind would succeed beside a socket
// with SO_REUSEPORT).
func udpPortBound(_ string, port int) bool {
	b, err := os.ReadFile("/proc/net/udp6")
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X ", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasSuffix(f[1]+" ", want) {
			return true
		}
	}
	return false
}

// SIPp's UAC places 20 calls through our proxy to our softphone with a
// tenth of every datagram the proxy and the phone receive lost: every call
// ends, set up or failed, within SIPp's timers; none is left hanging.
func TestSippThroughLossyProxy(t *testing.T) {
	testenv.RequireTools(t, "sipp")
	lossy := func(seed uint64) dropNetwork {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, seed))
		return dropNetwork{func([]byte) bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.Float64() < 0.10
		}}
	}
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 26180, Net: lossy(1), Users: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	startPhoneOn(t, lossy(2), "alice", "d1", 26181, 26180)
	out, _ := sipp(t, 120*time.Second, "-sn", "uac", "[::1]:26180", "-s", "alice", "-i", "::1", "-p", "26185",
		"-m", "20", "-r", "5", "-l", "10", "-d", "500", "-trace_stat", "-stf", filepath.Join(t.TempDir(), "stat.csv"))
	ok, failed := sippCounter(out, "Successful call"), sippCounter(out, "Failed call")
	t.Logf("sipp through a proxy losing 10 %%: %d successful, %d failed", ok, failed)
	if ok+failed != 20 {
		t.Fatalf("%d of 20 calls ended (%d successful, %d failed):\n%s", ok+failed, ok, failed, lastLines(out, 40))
	}
	if ok < 15 {
		t.Errorf("only %d of 20 calls succeeded at 10 %% loss:\n%s", ok, lastLines(out, 40))
	}
}

// sippCounter reads a cumulative counter from SIPp's final screen
// ("Successful call |  0  |  20").
func sippCounter(out, name string) int {
	n := -1
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, name) {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) >= 3 {
			if v, err := strconv.Atoi(strings.TrimSpace(f[2])); err == nil {
				n = v
			}
		}
	}
	return max(n, 0)
}

// With credentials required, baresip registers with its password, calls
// our phone through the proxy that authenticates it (407), and our phone,
// with its own password, calls it. Debian 12's baresip (libre of 2020)
// answers only the first challenge and knows only MD5, so this proxy
// offers MD5 alone.
func TestBaresipWithCredentials(t *testing.T) {
	testenv.RequireTools(t, "baresip")
	proxy, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 26160, Net: KernelNetwork{}, Users: []string{"alice", "bare"},
		Passwords: map[string]string{"alice": "alice-pw", "bare": "bare-pw"}, DigestAlgorithms: []string{"MD5"}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	alice := registerPhone(t, PhoneConfig{AOR: sip.Uri{User: "alice", Host: "d1"}, Proxy: netip.AddrPortFrom(loop, 26160), Net: KernelNetwork{},
		Contact: func() netip.Addr { return loop }, Port: 26161, RTPPort: 32000, AutoAnswer: true, Password: "alice-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	baresip(t, "bare", "bare-pw", 26170, 26160)
	waitFor(t, "baresip's authenticated registration", 10*time.Second, func() bool { return len(proxy.Lookup("bare@d1")) > 0 })
	c, err := alice.Call(ctx, sip.Uri{User: "bare", Host: "d1"}, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "baresip's media", 10*time.Second, func() bool { return c.Report().PacketsReceived >= 50 })
	c.Hangup(ctx)

	before := proxy.m.Get("sip.proxy.auth.challenged")
	baresip(t, "bare", "bare-pw", 26176, 26160, "-e", "/dial sip:alice@d1", "-t", "4")
	waitFor(t, "baresip's authenticated call", 10*time.Second, func() bool { return len(alice.Calls()) > 0 })
	if proxy.m.Get("sip.proxy.auth.challenged") == before {
		t.Error("baresip's call was not challenged")
	}
	if proxy.m.Get("sip.proxy.auth.failed") != 0 {
		t.Errorf("%d failed authentications", proxy.m.Get("sip.proxy.auth.failed"))
	}
}

// SIPp, as a user of the proxy's own domain, calls through a proxy that
// authenticates its users: the INVITE is challenged (407), SIPp answers
// with its credentials (testdata/uac_auth.xml), and every call completes.
func TestSippWithCredentials(t *testing.T) {
	testenv.RequireTools(t, "sipp")
	p, err := NewProxy(ProxyConfig{Domain: "d1", Addr: loop, Port: 26190, Net: KernelNetwork{}, Users: []string{"alice", "sippuser"},
		Passwords: map[string]string{"alice": "alice-pw", "sippuser": "sipp-pw"}, DigestAlgorithms: []string{"MD5"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	registerPhone(t, PhoneConfig{AOR: sip.Uri{User: "alice", Host: "d1"}, Proxy: netip.AddrPortFrom(loop, 26190), Net: KernelNetwork{},
		Contact: func() netip.Addr { return loop }, Port: 26191, RTPPort: 32400, AutoAnswer: true, Password: "alice-pw"})
	out, _ := sipp(t, 60*time.Second, "-sf", "testdata/uac_auth.xml", "[::1]:26190", "-s", "alice", "-i", "::1", "-p", "26195",
		"-m", "5", "-r", "5", "-d", "200")
	ok, failed := sippCounter(out, "Successful call"), sippCounter(out, "Failed call")
	if ok != 5 || failed != 0 {
		t.Fatalf("%d successful, %d failed calls:\n%s", ok, failed, lastLines(out, 40))
	}
	if p.m.Get("sip.proxy.auth.challenged") < 5 || p.m.Get("sip.proxy.auth.failed") != 0 {
		t.Errorf("challenged %d, failed %d", p.m.Get("sip.proxy.auth.challenged"), p.m.Get("sip.proxy.auth.failed"))
	}
}
