package tun

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// KernelAvailable reports whether this process can create a kernel TUN:
// /dev/net/tun exists and the process holds CAP_NET_ADMIN.
func KernelAvailable() bool {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return false
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	return false
}

// Kernel is a Device on a real TUN interface. Offloads (TSO/USO via the
// virtio-net header) stay on, so Read splits the kernel's large segments into
// packets and Write coalesces them back (GRO), as wireguard-go does.
type Kernel struct {
	dev  wgtun.Device
	name string
	mtu  int
	link netlink.Link

	mu     sync.Mutex
	addrs  map[netip.Addr]Address
	routes []netip.Prefix
}

func openKernel(o Options) (Device, error) {
	if !KernelAvailable() {
		return nil, ErrKernelUnavailable
	}
	name := o.Name
	if name == "" {
		name = "mip6%d"
	}
	dev, err := wgtun.CreateTUN(name, o.MTU)
	if err != nil {
		return nil, fmt.Errorf("tun: creating %s: %w", name, err)
	}
	real, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, err
	}
	link, err := netlink.LinkByName(real)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("tun: finding %s over netlink: %w", real, err)
	}
	// The overlay's neighbour discovery is ours; the kernel must not invent a
	// link-local address or send its own solicitations into the overlay.
	_ = netlink.LinkSetIP6AddrGenMode(link, 1 /* IN6_ADDR_GEN_MODE_NONE */)
	if o.GSOMaxSegments > 0 {
		// Only an optimisation (see overlay.GSOSegments): a kernel that
		// will not take it leaves the default, which still works.
		_ = netlink.LinkSetGSOMaxSegs(link, o.GSOMaxSegments)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		dev.Close()
		return nil, fmt.Errorf("tun: bringing %s up: %w", real, err)
	}
	k := &Kernel{dev: dev, name: real, mtu: o.MTU, link: link, addrs: map[netip.Addr]Address{}}
	go func() {
		for range dev.Events() { // drained so the device's event goroutine never blocks
		}
	}()
	return k, nil
}

func (k *Kernel) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return k.dev.Read(bufs, sizes, offset)
}

func (k *Kernel) Write(bufs [][]byte, offset int) (int, error) {
	return k.dev.Write(bufs, offset)
}

func (k *Kernel) BatchSize() int { return k.dev.BatchSize() }
func (k *Kernel) MTU() int       { return k.mtu }
func (k *Kernel) Name() string   { return k.name }

func nlAddr(a netip.Prefix, preferred bool) *netlink.Addr {
	ad := &netlink.Addr{
		IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), 128)},
		Flags: unix.IFA_F_NODAD,
	}
	if !preferred {
		// Valid for 68 years, preferred for 0 s: the kernel's "deprecated",
		// which source address selection (RFC 6724 rule 3) avoids for new
		// sockets. (The kernel's infinity, 0xffffffff, does not fit the
		// int netlink takes on 32-bit platforms.)
		ad.ValidLft = math.MaxInt32
		ad.PreferedLft = 0
	}
	return ad
}

func (k *Kernel) AddAddress(a netip.Prefix, preferred bool) error {
	if err := netlink.AddrReplace(k.link, nlAddr(a, preferred)); err != nil {
		return fmt.Errorf("tun: adding %s to %s: %w", a, k.name, err)
	}
	k.mu.Lock()
	k.addrs[a.Addr()] = Address{Prefix: a, Preferred: preferred}
	k.mu.Unlock()
	return nil
}

func (k *Kernel) SetPreferred(a netip.Addr, preferred bool) error {
	k.mu.Lock()
	ad, ok := k.addrs[a]
	k.mu.Unlock()
	if !ok {
		return fmt.Errorf("tun: %s is not an address of %s", a, k.name)
	}
	return k.AddAddress(ad.Prefix, preferred)
}

func (k *Kernel) RemoveAddress(a netip.Addr) error {
	k.mu.Lock()
	ad, ok := k.addrs[a]
	delete(k.addrs, a)
	k.mu.Unlock()
	if !ok {
		return nil
	}
	if err := netlink.AddrDel(k.link, nlAddr(ad.Prefix, true)); err != nil {
		return fmt.Errorf("tun: removing %s from %s: %w", a, k.name, err)
	}
	return nil
}

func (k *Kernel) Addresses() []Address {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Address, 0, len(k.addrs))
	for _, a := range k.addrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.Addr().Less(out[j].Prefix.Addr()) })
	return out
}

func (k *Kernel) AddRoute(p netip.Prefix) error {
	r := &netlink.Route{LinkIndex: k.link.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("tun: adding route %s via %s: %w", p, k.name, err)
	}
	k.mu.Lock()
	k.routes = append(k.routes, p)
	k.mu.Unlock()
	return nil
}

// Close removes the routes and addresses this device added, then destroys
// the interface.
func (k *Kernel) Close() error {
	k.mu.Lock()
	routes := k.routes
	k.routes = nil
	k.mu.Unlock()
	for _, p := range routes {
		_ = netlink.RouteDel(&netlink.Route{LinkIndex: k.link.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}})
	}
	for _, a := range k.Addresses() {
		_ = k.RemoveAddress(a.Prefix.Addr())
	}
	return k.dev.Close()
}
