//go:build !linux

package overlay

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// WatchUnderlay polls the machine's interfaces every second (no netlink
// here) and moves the host to the access link that matches them. Gateways
// are not read on these systems, so links are told apart by interface and
// subnet; `node handover --to LINK` moves by hand.
func (h *Host) WatchUnderlay(ctx context.Context) error {
	return h.watchUnderlay(ctx, readInterfaces, nil, errors.New("no netlink on this system"))
}

func readInterfaces() ([]UnderlayNet, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var nets []UnderlayNet
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := i.Addrs()
		if err != nil {
			continue
		}
		u := UnderlayNet{Interface: i.Name}
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
				u.Addrs = append(u.Addrs, p.Addr().Unmap())
			}
		}
		if len(u.Addrs) > 0 {
			nets = append(nets, u)
		}
	}
	return nets, nil
}
