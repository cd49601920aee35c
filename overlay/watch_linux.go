package overlay

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// WatchUnderlay follows the machine's addresses over netlink and moves the
// host to the access link whose underlay network appeared, when the current
// one disappears (a switch from Wi-Fi A to Wi-Fi B). It returns once the
// subscription is running; the watch ends with ctx.
func (h *Host) WatchUnderlay(ctx context.Context) error {
	ch := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			if ctx.Err() == nil { // closing the subscription at shutdown is no news
				h.log.Warn("underlay watch", "err", err)
			}
		},
	})
	if err != nil {
		close(done)
		return fmt.Errorf("overlay: watching underlay addresses: %w", err)
	}
	go func() {
		defer close(done)
		addrs := map[netip.Addr]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if !ok {
					continue
				}
				a = a.Unmap()
				if u.NewAddr {
					addrs[a] = true
				} else {
					delete(addrs, a)
				}
				// Drain what is queued so one switch gives one decision.
				for more := true; more; {
					select {
					case u2 := <-ch:
						if a2, ok := netip.AddrFromSlice(u2.LinkAddress.IP); ok {
							if u2.NewAddr {
								addrs[a2.Unmap()] = true
							} else {
								delete(addrs, a2.Unmap())
							}
						}
					default:
						more = false
					}
				}
				h.underlayChanged(addrs)
			}
		}
	}()
	return nil
}
