//go:build linux

package overlay

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// TestUDPBindGSOBeyondPathMTU: a GSO run whose datagrams are larger than
// the path MTU is refused by the kernel (EINVAL: GSO cannot fragment); the
// bind sends the run's datagrams one by one instead, which IP fragments,
// rather than lose the batch. Loopback in a namespace of its own, MTU 1280.
func TestUDPBindGSOBeyondPathMTU(t *testing.T) {
	testenv.RequireRoot(t)
	ns := fmt.Sprintf("mip6udp%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", ns, "link", "set", "lo", "up", "mtu", "1280")

	a, b := NewUDPBind(), NewUDPBind()
	var fns []ReceiveFunc
	var portB uint16
	opened := make(chan error, 1)
	go func() {
		// The sockets belong to the namespace they are made in. This
		// thread stays locked and dies with the goroutine, so no other
		// goroutine runs in the namespace after it.
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			opened <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			opened <- err
			return
		}
		if _, _, err := a.Open(0); err != nil {
			opened <- err
			return
		}
		fns, portB, err = b.Open(0)
		opened <- err
	}()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()

	// Apart, and end to end in one buffer (one iovec per run), as
	// package secure seals them.
	for _, arena := range []bool{false, true} {
		bufs := make([][]byte, 10)
		want := map[int][]byte{}
		var all []byte
		for i := range bufs {
			bufs[i] = testDatagram(i, 1400)
			want[i] = bufs[i]
			all = append(all, bufs[i]...)
		}
		if arena {
			for i := range bufs {
				bufs[i] = all[i*1400 : (i+1)*1400]
			}
		}
		if err := a.Send(bufs, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB)); err != nil {
			t.Fatalf("send of a run beyond the path MTU (end to end: %v): %v", arena, err)
		}
		got, _ := receiveAll(t, b, fns[0], len(want), 0)
		for i, w := range want {
			if g := got[i]; string(g.data) != string(w) {
				t.Errorf("end to end %v: datagram %d: %d bytes, want %d", arena, i, len(g.data), len(w))
			}
		}
	}
}
