package overlay

import (
	"net/netip"
)

// pickLink decides which access link a host should be on, given the
// underlay addresses the machine has now. It keeps the current link while
// its network is still there (no needless handover when a second network
// appears), and otherwise takes the first link, in configured order, whose
// network has an address. It reports false when no link is reachable.
func pickLink(links []HostLink, current string, addrs map[netip.Addr]bool) (string, bool) {
	reachable := func(l HostLink) bool {
		if !l.Network.IsValid() {
			return false
		}
		for a := range addrs {
			if l.Network.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, l := range links {
		if l.Name == current && reachable(l) {
			return current, true
		}
	}
	for _, l := range links {
		if reachable(l) {
			return l.Name, true
		}
	}
	return "", false
}

// underlayChanged re-evaluates the host's link after the set of underlay
// addresses changed, and attaches elsewhere if needed.
func (h *Host) underlayChanged(addrs map[netip.Addr]bool) {
	cur := ""
	if l, ok := h.CurrentLink(); ok {
		cur = l.Name
	}
	next, ok := pickLink(h.cfg.Links, cur, addrs)
	if !ok || next == cur {
		return
	}
	h.m.Add("attach.underlay_change", 1)
	h.log.Info("underlay network changed", "from", cur, "to", next)
	h.Attach(next)
}
