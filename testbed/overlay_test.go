package testbed

import (
	"encoding/json"
	"fmt"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The overlay on kernel TUNs: ping and iperf3 between hosts under different
// access routers of fig4, then an underlay switch (Wi-Fi A off, Wi-Fi B on)
// after which the host is on the other access link, with an address from
// its prefix, within a second, and reachable there.
func TestKernelOverlayFig4(t *testing.T) {
	requireRoot(t, "ping", "iperf3")
	b := startBed(t, "../examples/fig4.yaml")
	mn1, _ := b.waitAttached("mn1", "ar1", 10*time.Second)
	mn2, _ := b.waitAttached("mn2", "ar2", 10*time.Second)
	if !mn1.Underlay.Encrypted || !mn2.Underlay.Encrypted {
		t.Error("testbed.sh ran the nodes without underlay security")
	}

	out, err := b.exec(20*time.Second, "mn1", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", mn2.Host.Address)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping mn1 -> mn2 failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ttl=62") {
		t.Errorf("expected hop limit 62 after two routers:\n%s", out)
	}
	phoneTakesOnlyTheOverlay(t, b, mn1.Host.Address)

	if out, err := b.exec(10*time.Second, "mn2", "iperf3", "-s", "-1", "-D", "-B", mn2.Host.Address); err != nil {
		t.Fatalf("iperf3 server: %v\n%s", err, out)
	}
	b.waitListening("mn2", 5201)
	out, err = b.exec(60*time.Second, "mn1", "iperf3", "-c", mn2.Host.Address, "-t", "3", "-J")
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes float64 `json:"bytes"`
				Bps   float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.End.SumReceived.Bytes == 0 {
		t.Fatalf("iperf3 moved nothing: %v\n%s", err, out)
	}
	t.Logf("iperf3 mn1 -> mn2 over a 38 ms path: %.0f Mbit/s", res.End.SumReceived.Bps/1e6)

	if out, err := b.script("switch", "mn1", "ar1p"); err != nil {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	st, took := b.waitAttached("mn1", "ar1p", 5*time.Second)
	t.Logf("mn1 on ar1p as %s %v after the underlay switch", st.Host.Address, took)
	if took > time.Second {
		t.Errorf("attach after the underlay switch took %v, want within 1 s", took)
	}
	addr, err := netip.ParseAddr(st.Host.Address)
	if err != nil || !netip.MustParsePrefix("2001:db8:12::/64").Contains(addr) {
		t.Errorf("address %q is not from ar1p's prefix", st.Host.Address)
	}
	if addr.String() == mn1.Host.Address {
		t.Error("the address did not change with the link")
	}
	if st.Counters["attach.underlay_change"] != 1 {
		t.Errorf("attach.underlay_change = %d, want 1 (the switch was seen over netlink)", st.Counters["attach.underlay_change"])
	}
	out, err = b.exec(20*time.Second, "mn2", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", st.Host.Address)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping to mn1's new address failed: %v\n%s", err, out)
	}
}

// SIGTERM and SIGINT shut a node down cleanly: it exits 0 and the
// addresses and routes it added are gone.
func TestNodeShutdownCleansUp(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// Unique per process, so that two test runs on one machine
			// (or a testbed someone left up) never share it.
			ns := fmt.Sprintf("shut%d-%d", os.Getpid(), int(sig))
			if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			defer exec.Command("ip", "netns", "del", ns).Run()
			exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").Run()
			sock := filepath.Join(t.TempDir(), "r1.sock")
			cmd := exec.Command("ip", "netns", "exec", ns, nodeBin, "run", "--config", "../examples/two-node.yaml",
				"--name", "r1", "--backend", "kernel", "--tun", "mip6t0", "--control", sock, "--state", "none")
			var logs strings.Builder
			cmd.Stderr = &logs // read after Wait
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			testenv.Poll(t, 20*time.Millisecond, 5*time.Second, "the node's control socket", func() bool {
				_, err := os.Stat(sock)
				return err == nil
			})
			show := func(args ...string) string {
				out, _ := exec.Command("ip", append([]string{"netns", "exec", ns, "ip", "-6"}, args...)...).CombinedOutput()
				return string(out)
			}
			if a := show("addr", "show"); !strings.Contains(a, "2001:db8:100::1/128") {
				t.Fatalf("the router's address is not on its TUN:\n%s", a)
			}
			if r := show("route", "show"); !strings.Contains(r, "2001:db8:100::/64 dev mip6t0") {
				t.Fatalf("the overlay route is missing:\n%s", r)
			}
			cmd.Process.Signal(sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node exited with %v after %v", err, sig)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("node did not exit after %v", sig)
			}
			if a := show("addr", "show"); strings.Contains(a, "2001:db8:") {
				t.Errorf("addresses left behind:\n%s", a)
			}
			if r := show("route", "show"); strings.Contains(r, "2001:db8:") {
				t.Errorf("routes left behind:\n%s", r)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Error("control socket left behind")
			}
			// A clean shutdown is not an error.
			if l := logs.String(); strings.Contains(l, "level=ERROR") {
				t.Errorf("error-level log on a clean shutdown:\n%s", l)
			}
		})
	}
}

// phoneTakesOnlyTheOverlay checks that mn1's phone cannot be reached from
// the underlay: its SIP socket is tied to the node's TUN (ss shows the
// device), so an OPTIONS from its underlay neighbour (ar1's namespace, to
// mn1's underlay address) is answered by the kernel with port unreachable,
// while one over the overlay (from mn2, which is not mn1's proxy) reaches
// the phone and is refused, counted. (The phone used to listen on every
// address and took requests from the underlay.)
func phoneTakesOnlyTheOverlay(t *testing.T, b *bed, fromOverlay string) {
	t.Helper()
	out, err := b.exec(5*time.Second, "mn1", "ss", "-Hulpn", "sport = :5060")
	if err != nil || !strings.Contains(out, "%mip6") {
		t.Errorf("mn1's SIP socket is not tied to its TUN: %v\n%s", err, out)
	}
	out, err = b.exec(5*time.Second, "mn1", "ip", "-4", "-o", "addr", "show", "scope", "global")
	fields := strings.Fields(out)
	if err != nil || len(fields) < 4 {
		t.Fatalf("mn1's underlay address: %v\n%s", err, out)
	}
	underlay := strings.Split(fields[3], "/")[0]
	probe := func(ns, dst string) string {
		t.Helper()
		// Connected, so that the kernel's port unreachable shows as an
		// error on the second receive.
		py := `import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1)
s.connect((sys.argv[1], 5060))
s.send(b"OPTIONS sip:user1@domain1 SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKprobe\r\nMax-Forwards: 70\r\nFrom: <sip:probe@x>;tag=1\r\nTo: <sip:user1@domain1>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
try:
    s.recv(2048)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("silence")`
		out, err := b.exec(5*time.Second, ns, "python3", "-c", py, dst)
		if err != nil {
			t.Fatalf("OPTIONS from %s to %s: %v\n%s", ns, dst, err, out)
		}
		return strings.TrimSpace(out)
	}
	if got := probe("ar1", underlay); got != "refused" {
		t.Errorf("an OPTIONS to mn1's underlay address, port 5060: %s, want refused (port unreachable)", got)
	}
	before, err := b.status("mn1")
	if err != nil {
		t.Fatal(err)
	}
	probe("mn2", fromOverlay)
	st := b.waitSIPRefused("mn1", before.SIP.Refused+1, 5*time.Second)
	t.Logf("mn1's phone refused the overlay's OPTIONS (refused_datagrams %d)", st.SIP.Refused)
}
