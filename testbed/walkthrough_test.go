package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// nobody is the unprivileged user the laptop's node runs as.
const nobody = "65534"

// The walkthrough of examples/README.md, step by step, on three network
// namespaces: two stand in for the cloud VMs (198.51.100.10 and
// 203.0.113.20, joined by a veth), the third for the laptop, whose two
// Wi-Fi networks are veths to the VMs. The laptop's node runs as an
// unprivileged user (uid 65534), so on a userspace stack, and follows its
// Wi-Fi by itself. Both Wi-Fi networks are 192.168.1.0/24, the common case
// of two home routers, told apart by their gateways (192.168.1.1 and
// 192.168.1.254). A call runs across the switch and must survive it.
func TestWalkthroughLaptopTwoVMs(t *testing.T) {
	requireRoot(t, "setpriv")
	w := newWalkthrough(t)

	// Step 1: a topology from the template, with fresh secrets; the
	// networks edited to the ones the laptop has.
	topo := filepath.Join(w.dir, "my-topology.yaml")
	w.run(nodeBin, "init", "--template", "laptop-cloud", topo)
	edit(t, topo,
		"{link: ar1,  network: 192.168.1.0/24}", "{link: ar1,  network: 192.168.1.0/24, gateway: 192.168.1.1}",
		"{link: ar1p, network: 172.20.10.0/28}", "{link: ar1p, network: 192.168.1.0/24, gateway: 192.168.1.254}")
	// The laptop's user owns the topology and its own private key (the
	// README: copy mn1.key to the laptop); init wrote a key per node.
	for _, f := range []string{topo, filepath.Join(w.dir, "mn1.key")} {
		if err := os.Chown(f, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}

	// Step 3: the VMs' nodes (as the README: no sudo, so userspace), then
	// the laptop's as nobody.
	for _, n := range []struct{ ns, name string }{{"vm1", "ha1"}, {"vm1", "ar1"}, {"vm2", "ha2"}, {"vm2", "ar1p"}, {"vm2", "ar2"}, {"vm2", "mn2"}} {
		w.start(n.ns, n.name, false, "run", "--config", topo, "--name", n.name, "--backend", "userspace",
			"--state", filepath.Join(w.dir, "state"), "--control", w.sock(n.name))
	}
	mn1Log := w.start("laptop", "mn1", true, "run", "--config", topo, "--name", "mn1", "--control", w.sock("mn1"))
	st := w.waitStatus("mn1", "mn1 to attach to ar1 and register with SIP", 20*time.Second, func(s walkStatus) bool {
		return s.Host.Link == "ar1" && s.Host.Attached && s.SIP.Registration.Contact != ""
	})
	if !st.Underlay.Encrypted || !st.sessionWith("ar1") {
		t.Errorf("mn1's underlay is not encrypted, or it has no session with ar1: %+v", st.Underlay)
	}
	if st.Backend != "userspace" {
		t.Errorf("mn1 as uid %s runs on the %q device backend, want userspace", nobody, st.Backend)
	}
	if l := mn1Log.String(); !strings.Contains(l, "underlay watch:") || strings.Contains(l, "level=ERROR") {
		t.Errorf("mn1's log does not say how it watches the underlay, or has errors:\n%s", l)
	}
	w.waitStatus("mn2", "mn2 to register with SIP", 20*time.Second, func(s walkStatus) bool { return s.SIP.Registration.Contact != "" })

	// Step 4: a call, and the Wi-Fi switch during it.
	const talk = 12 * time.Second
	call := w.background("laptop", true, "call", "sip:user2@domain2", "--control", w.sock("mn1"), "--duration", talk.String(), "--json")
	w.waitStatus("mn1", "the call's media to flow", 15*time.Second, func(s walkStatus) bool {
		return len(s.SIP.Calls) == 1 && s.SIP.Calls[0].Received >= 50
	})
	switched := time.Now()
	w.ns("laptop", "ip", "addr", "flush", "dev", "wa")
	w.ns("laptop", "ip", "link", "set", "wa", "down")
	w.ns("laptop", "ip", "link", "set", "wb", "up")
	w.ns("laptop", "ip", "addr", "add", "192.168.1.2/24", "dev", "wb")
	w.ns("laptop", "ip", "route", "replace", "default", "via", "192.168.1.254", "dev", "wb")
	w.waitStatus("mn1", "mn1 to follow its Wi-Fi to ar1p", 10*time.Second, func(s walkStatus) bool {
		return s.Host.Link == "ar1p" && s.Host.Attached
	})
	t.Logf("mn1 attached to ar1p %v after the switch", time.Since(switched).Round(time.Millisecond))

	out, err := call.wait(talk + 30*time.Second)
	if err != nil {
		t.Fatalf("node call: %v\n%s", err, out)
	}
	var rep struct {
		Sent     uint64  `json:"packets_sent"`
		Received uint64  `json:"packets_received"`
		MaxGapMs float64 `json:"max_gap_ms"`
		Failure  string  `json:"failure"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("call report: %v\n%s", err, out)
	}
	t.Logf("call across the switch: sent %d, received %d, longest gap %.0f ms", rep.Sent, rep.Received, rep.MaxGapMs)
	// 20 ms packets for the whole call: media that stopped at the switch
	// would leave about a fifth of them.
	want := uint64(talk/(20*time.Millisecond)) * 8 / 10
	if rep.Failure != "" || rep.Received < want || rep.MaxGapMs > 3000 {
		t.Errorf("the call did not survive the Wi-Fi switch: received %d of about %d packets, longest gap %.0f ms, failure %q",
			rep.Received, talk/(20*time.Millisecond), rep.MaxGapMs, rep.Failure)
	}
}

// walkStatus is the part of `node status --json` the walkthrough reads.
type walkStatus struct {
	Backend string `json:"device_backend"`
	Host    struct {
		Link     string `json:"link"`
		Attached bool   `json:"attached"`
	} `json:"host"`
	Underlay struct {
		Encrypted bool `json:"encrypted"`
		Peers     []struct {
			Name    string `json:"name"`
			Session bool   `json:"session"`
		} `json:"peers"`
	} `json:"underlay_security"`
	SIP struct {
		Registration struct {
			Contact string `json:"contact"`
		} `json:"registration"`
		Calls []struct {
			Received uint64 `json:"packets_received"`
		} `json:"calls"`
	} `json:"sip"`
}

func (s walkStatus) sessionWith(peer string) bool {
	for _, p := range s.Underlay.Peers {
		if p.Name == peer && p.Session {
			return true
		}
	}
	return false
}

// walkthrough is three namespaces (vm1, vm2, laptop) and the nodes in them.
type walkthrough struct {
	t      *testing.T
	prefix string
	dir    string
}

func newWalkthrough(t *testing.T) *walkthrough {
	// Not t.TempDir: its parent is private to root.
	dir, err := os.MkdirTemp("", "mip6-walk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &walkthrough{t: t, prefix: fmt.Sprintf("wk%d-", os.Getpid()%100000), dir: dir}
	// nobody must reach the binary, the topology and its control socket.
	for _, d := range []string{w.dir, filepath.Dir(nodeBin)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(w.dir, "laptop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(w.dir, "laptop"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vm1", "vm2", "laptop"} {
		w.run("ip", "netns", "add", w.prefix+n)
		t.Cleanup(func() {
			if out, _ := exec.Command("ip", "netns", "pids", w.prefix+n).Output(); len(out) > 0 {
				for _, pid := range strings.Fields(string(out)) {
					exec.Command("kill", "-KILL", pid).Run()
				}
			}
			exec.Command("ip", "netns", "del", w.prefix+n).Run()
		})
		w.ns(n, "ip", "link", "set", "lo", "up")
	}
	// The Internet between the VMs.
	w.run("ip", "link", "add", "inet", "netns", w.prefix+"vm1", "type", "veth", "peer", "name", "inet", "netns", w.prefix+"vm2")
	for _, v := range []struct{ ns, self, other string }{{"vm1", "198.51.100.10", "203.0.113.20"}, {"vm2", "203.0.113.20", "198.51.100.10"}} {
		w.ns(v.ns, "ip", "addr", "add", v.self+"/32", "dev", "inet")
		w.ns(v.ns, "ip", "link", "set", "inet", "up")
		w.ns(v.ns, "ip", "route", "add", v.other+"/32", "dev", "inet")
	}
	// Wi-Fi A (to VM1, gateway .1) is up; Wi-Fi B (to VM2, gateway .254)
	// is in reach but not joined.
	w.run("ip", "link", "add", "wa", "netns", w.prefix+"laptop", "type", "veth", "peer", "name", "wa", "netns", w.prefix+"vm1")
	w.run("ip", "link", "add", "wb", "netns", w.prefix+"laptop", "type", "veth", "peer", "name", "wb", "netns", w.prefix+"vm2")
	w.ns("vm1", "ip", "addr", "add", "192.168.1.1/24", "dev", "wa")
	w.ns("vm1", "ip", "link", "set", "wa", "up")
	w.ns("vm2", "ip", "addr", "add", "192.168.1.254/24", "dev", "wb")
	w.ns("vm2", "ip", "link", "set", "wb", "up")
	w.ns("laptop", "ip", "link", "set", "wa", "up")
	w.ns("laptop", "ip", "addr", "add", "192.168.1.2/24", "dev", "wa")
	w.ns("laptop", "ip", "route", "add", "default", "via", "192.168.1.1", "dev", "wa")
	return w
}

func (w *walkthrough) run(name string, args ...string) {
	w.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		w.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (w *walkthrough) ns(ns string, args ...string) {
	w.t.Helper()
	w.run("ip", append([]string{"netns", "exec", w.prefix + ns}, args...)...)
}

func (w *walkthrough) sock(name string) string {
	if name == "mn1" {
		return filepath.Join(w.dir, "laptop", "mn1.sock")
	}
	return filepath.Join(w.dir, name+".sock")
}

// command is `node args...` in namespace ns, as nobody when unprivileged.
func (w *walkthrough) command(ns string, unprivileged bool, args ...string) *exec.Cmd {
	argv := []string{"netns", "exec", w.prefix + ns}
	if unprivileged {
		argv = append(argv, "setpriv", "--reuid="+nobody, "--regid="+nobody, "--clear-groups", "--", "env", "HOME=/nonexistent")
	}
	return exec.Command("ip", append(append(argv, nodeBin), args...)...)
}

// start runs a node until the test ends, waits for its control socket, and
// returns its log.
func (w *walkthrough) start(ns, name string, unprivileged bool, args ...string) *testenv.Buffer {
	w.t.Helper()
	log := &testenv.Buffer{}
	cmd := w.command(ns, unprivileged, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	w.t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			w.t.Errorf("%s did not stop within 10 s of SIGINT", name)
		}
		// A clean shutdown is not an error.
		if strings.Contains(log.String(), "level=ERROR") {
			w.t.Errorf("%s logged an error:\n%s", name, log.String())
		} else if w.t.Failed() {
			w.t.Logf("--- %s\n%s", name, lastLines(log.String(), 20))
		}
	})
	testenv.Poll(w.t, 20*time.Millisecond, 10*time.Second, name+"'s control socket", func() bool {
		select {
		case <-exited:
			w.t.Fatalf("%s exited:\n%s", name, log.String())
		default:
		}
		_, err := os.Stat(w.sock(name))
		return err == nil
	})
	return log
}

// waitStatus polls a node's status until cond holds.
func (w *walkthrough) waitStatus(name, what string, limit time.Duration, cond func(walkStatus) bool) walkStatus {
	w.t.Helper()
	var st walkStatus
	testenv.Poll(w.t, 50*time.Millisecond, limit, what, func() bool {
		out, err := exec.Command(nodeBin, "status", "--control", w.sock(name), "--json").Output()
		if err != nil {
			return false
		}
		st = walkStatus{}
		return json.Unmarshal(out, &st) == nil && cond(st)
	})
	return st
}

// bgCommand is a node command running in the background.
type bgCommand struct {
	out  *testenv.Buffer
	done chan error
}

func (w *walkthrough) background(ns string, unprivileged bool, args ...string) *bgCommand {
	w.t.Helper()
	b := &bgCommand{out: &testenv.Buffer{}, done: make(chan error, 1)}
	cmd := w.command(ns, unprivileged, args...)
	cmd.Stdout = b.out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	w.t.Cleanup(func() { cmd.Process.Kill() })
	return b
}

func (b *bgCommand) wait(limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	select {
	case err := <-b.done:
		return b.out.String(), err
	case <-ctx.Done():
		return b.out.String(), fmt.Errorf("still running after %v", limit)
	}
}

// edit replaces each old string of a file with its new one, failing when
// one is missing (the template changed).
func edit(t *testing.T, file string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q", file, pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
