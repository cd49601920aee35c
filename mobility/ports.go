package mobility

import (
	"net/netip"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/tun"
)

// RouterPort is what a router's engine (home agent, HA2R) needs from the
// router it runs on; *overlay.Router is one, and engine tests use a fake
// that records what is sent.
type RouterPort interface {
	Name() string
	Address() netip.Addr
	Clock() clock.Clock
	Links() []overlay.LinkConfig
	BackboneMTU() int
	// Send routes a packet the engine originates; it copies pkt.
	Send(pkt []byte)
	// PacketTooBig tells the source of invoking the MTU that fits.
	PacketTooBig(mtu int, invoking []byte)
	// ForgetNeighbour drops a host's neighbour entry on the router's links.
	ForgetNeighbour(a netip.Addr)
	SetHook(overlay.RouterHook)
}

// HostPort is what a host's engine (mobile node, correspondent) needs from
// the host it runs on; *overlay.Host is one.
type HostPort interface {
	Name() string
	Clock() clock.Clock
	// Device is the host's TUN device or stack, nil in engine tests.
	Device() tun.Device
	// Send sends a packet as it is to the current router; it copies pkt
	// and reports false when the host is not attached.
	Send(pkt []byte) bool
	// Deliver hands a packet to the host's own stack; it copies pkt.
	Deliver(pkt []byte)
	// Announce tells the current link's router that a is here (an
	// unsolicited Neighbor Advertisement).
	Announce(a netip.Addr)
	SetHook(overlay.HostHook)
	OnAttach(func(overlay.Attachment))
	// OnPrepared and Commit are the make-before-break move: an attachment
	// made while the current one still carries the traffic, then the
	// switch to it (which OnAttach subscribers hear of, Prepared set).
	OnPrepared(func(overlay.Attachment))
	Commit() (overlay.Attachment, error)
}

var (
	_ RouterPort = (*overlay.Router)(nil)
	_ HostPort   = (*overlay.Host)(nil)
)
