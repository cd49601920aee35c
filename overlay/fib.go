package overlay

import (
	"net/netip"
	"sort"
)

type routeKind uint8

const (
	routeLink  routeKind = iota + 1 // on one of our access links
	routePeer                       // through another router over the backbone
	routeLocal                      // a prefix we own without a link (delivered to us)
)

type route struct {
	prefix netip.Prefix
	kind   routeKind
	link   *accessLink
	peer   *Peer
}

// fib is the forwarding table: static routes from the topology file, looked
// up by longest prefix match. It is built once and read without locks.
type fib []route

func newFIB(rs []route) fib {
	f := fib(append([]route(nil), rs...))
	sort.SliceStable(f, func(i, j int) bool { return f[i].prefix.Bits() > f[j].prefix.Bits() })
	return f
}

// lookup returns the most specific route for dst, or nil.
func (f fib) lookup(dst netip.Addr) *route {
	for i := range f {
		if f[i].prefix.Contains(dst) {
			return &f[i]
		}
	}
	return nil
}
