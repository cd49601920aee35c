//go:build linux

package tun

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// TestKernelGSOMaxSegments: a kernel device opened with GSOMaxSegments has
// that gso_max_segs, so TCP over it builds offload packets of at most that
// many segments. In a network namespace of its own.
func TestKernelGSOMaxSegments(t *testing.T) {
	testenv.RequireRoot(t, "ip")
	ns := fmt.Sprintf("mip6tun%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })

	type result struct {
		segs, mtu int
		err       error
	}
	done := make(chan result, 1)
	go func() {
		// The device and the netlink calls belong to the namespace of
		// the thread that makes them; this thread stays locked and dies
		// with the goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		dev, err := Open(Options{Backend: BackendKernel, Name: "mip6gso0", MTU: 1368, GSOMaxSegments: 44})
		if err != nil {
			done <- result{err: err}
			return
		}
		defer dev.Close()
		link, err := netlink.LinkByName(dev.Name())
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{segs: int(link.Attrs().GSOMaxSegs), mtu: link.Attrs().MTU}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.segs != 44 || r.mtu != 1368 {
		t.Errorf("device has gso_max_segs %d and MTU %d, want 44 and 1368", r.segs, r.mtu)
	}
}
