package overlay

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// WatchUnderlay follows the machine's underlay networks and moves the host
// to the access link that matches them when the current one goes (a
// switch from Wi-Fi A to Wi-Fi B). It returns once the watch runs; the
// watch ends with ctx.
//
// It subscribes to netlink's address, route, link and neighbour events
// without asking for a dump on the subscription (which needs privileges on
// some kernels), and reads the whole picture with ordinary dumps after each
// burst of events. Where even a subscription is refused, it polls every
// second. Either works without root.
func (h *Host) WatchUnderlay(ctx context.Context) error {
	events, err := subscribeUnderlay(ctx, h)
	return h.watchUnderlay(ctx, readUnderlay, events, err)
}

// subscribeUnderlay delivers a tick on the returned channel after any
// address, route, link or neighbour change.
func subscribeUnderlay(ctx context.Context, h *Host) (<-chan struct{}, error) {
	done := make(chan struct{})
	context.AfterFunc(ctx, func() { close(done) })
	onErr := func(err error) {
		if ctx.Err() == nil { // closing the subscription at shutdown is no news
			h.log.Warn("underlay watch", "err", err)
		}
	}
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	links := make(chan netlink.LinkUpdate, 64)
	neighs := make(chan netlink.NeighUpdate, 64)
	err := errors.Join(
		netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}),
		netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}),
		netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}),
		netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{ErrorCallback: onErr}),
	)
	if err != nil {
		return nil, err
	}
	tick := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-addrs:
			case <-routes:
			case <-links:
			case <-neighs:
			}
			select {
			case tick <- struct{}{}:
			default: // a read is already due
			}
		}
	}()
	return tick, nil
}

// readUnderlay lists the machine's networks: every interface that is up
// and not loopback, with its addresses (link-local ones left out), its
// default gateway and the gateway's MAC from the neighbour table.
func readUnderlay() ([]UnderlayNet, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	neighs, err := netlink.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var nets []UnderlayNet
	for _, l := range links {
		at := l.Attrs()
		if at.Flags&net.FlagUp == 0 || at.Flags&net.FlagLoopback != 0 {
			continue
		}
		u := UnderlayNet{Interface: at.Name}
		for _, a := range addrs {
			if a.LinkIndex != at.Index {
				continue
			}
			if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() && !ip.IsLoopback() {
				u.Addrs = append(u.Addrs, ip.Unmap())
			}
		}
		for _, r := range routes {
			if r.LinkIndex != at.Index || r.Gw == nil || (r.Dst != nil && !isDefault(r.Dst)) {
				continue
			}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok && (!u.Gateway.IsValid() || gw.Unmap().Is4()) {
				u.Gateway = gw.Unmap() // IPv4's gateway first: it is what an access network hands out
			}
		}
		for _, n := range neighs {
			if n.LinkIndex != at.Index || len(n.HardwareAddr) == 0 || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP); ok && u.Gateway.IsValid() && ip.Unmap() == u.Gateway {
				u.GatewayMAC = n.HardwareAddr
			}
		}
		if len(u.Addrs) > 0 {
			nets = append(nets, u)
		}
	}
	return nets, nil
}

func isDefault(p *net.IPNet) bool {
	ones, _ := p.Mask.Size()
	return ones == 0
}
