package overlay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"time"
)

// UnderlayNet is one network the machine is on now, as the underlay
// watcher sees it: an interface, its addresses, and its default gateway
// with the gateway's link-layer address once the neighbour table has it.
type UnderlayNet struct {
	Interface  string
	Addrs      []netip.Addr
	Gateway    netip.Addr       // invalid when the interface has no default route
	GatewayMAC net.HardwareAddr // nil until the gateway has been resolved
}

// UnderlayMatch says which underlay networks lead to an access link. Every
// criterion given must hold for the same interface; the more specific
// criteria win when several links match (see pickLink). A link with no
// criterion is never chosen automatically.
type UnderlayMatch struct {
	Interface  string           // interface name, or a pattern like wl* (path.Match)
	Network    netip.Prefix     // an address of the interface is inside it
	Gateway    netip.Addr       // the interface's default gateway
	GatewayMAC net.HardwareAddr // the default gateway's link-layer address
	// Default takes any network with a default gateway that no other link
	// matches (a cafe's Wi-Fi, a hotspot never seen before).
	Default bool
}

// Weights of the criteria: a gateway's MAC tells two home routers on the
// same 192.168.1.0/24 apart even when they also share the gateway
// address; then the gateway address; then the interface; the subnet last.
const (
	weightNetwork = 1 << iota
	weightInterface
	weightGateway
	weightGatewayMAC
)

// score says how well network u matches m: -1 when it does not, else the
// sum of the weights of the criteria that m gives (0 for a default link).
func (m UnderlayMatch) score(u UnderlayNet) int {
	s := 0
	given := false
	if m.Interface != "" {
		given = true
		if ok, _ := path.Match(m.Interface, u.Interface); !ok {
			return -1
		}
		s += weightInterface
	}
	if m.Network.IsValid() {
		given = true
		if !slices.ContainsFunc(u.Addrs, m.Network.Contains) {
			return -1
		}
		s += weightNetwork
	}
	if m.Gateway.IsValid() {
		given = true
		if m.Gateway != u.Gateway {
			return -1
		}
		s += weightGateway
	}
	if len(m.GatewayMAC) > 0 {
		given = true
		if !bytes.Equal(m.GatewayMAC, u.GatewayMAC) {
			return -1
		}
		s += weightGatewayMAC
	}
	switch {
	case given:
		return s
	case m.Default && u.Gateway.IsValid():
		return 0
	}
	return -1
}

// best returns how well any of nets matches m, or -1.
func (m UnderlayMatch) best(nets []UnderlayNet) int {
	b := -1
	for _, u := range nets {
		b = max(b, m.score(u))
	}
	return b
}

// pickLink decides which access link a host should be on, given the
// underlay networks the machine is on now. It keeps the current link while
// one of them still matches it (no needless handover when a second network
// appears); otherwise it takes the link with the most specific match
// (gateway MAC, then gateway address, then interface, then subnet, then a
// default link), the first in configured order among equals. It reports
// false when no link matches.
func pickLink(links []HostLink, current string, nets []UnderlayNet) (string, bool) {
	for _, l := range links {
		if l.Name == current && l.Match.best(nets) >= 0 {
			return current, true
		}
	}
	pick, top := "", -1
	for _, l := range links {
		if s := l.Match.best(nets); s > top {
			pick, top = l.Name, s
		}
	}
	return pick, top >= 0
}

// spareLink picks the access link to hold in reserve beside current: the
// best match among the networks that do not lead to current (a second
// network, not a second router behind the same one). It reports false
// when there is none.
func spareLink(links []HostLink, current string, nets []UnderlayNet) (string, bool) {
	var others []UnderlayNet
	for _, u := range nets {
		if !slices.ContainsFunc(links, func(l HostLink) bool { return l.Name == current && l.Match.score(u) >= 0 }) {
			others = append(others, u)
		}
	}
	pick, top := "", -1
	for _, l := range links {
		if s := l.Match.best(others); l.Name != current && s > top {
			pick, top = l.Name, s
		}
	}
	return pick, top >= 0
}

// underlayChanged re-evaluates the host's link after the machine's
// underlay networks changed, and attaches elsewhere if needed: to the link
// it holds in reserve at once, if that is the one. With HoldStandby it
// also keeps a second network's link in reserve.
func (h *Host) underlayChanged(nets []UnderlayNet) {
	cur := ""
	if l, ok := h.CurrentLink(); ok {
		cur = l.Name
	}
	next, ok := pickLink(h.cfg.Links, cur, nets)
	if ok && next != cur {
		h.m.Add("attach.underlay_change", 1)
		if n := h.next.Load(); n != nil && n.standby && n.att != nil && n.link.Name == next {
			h.log.Info("underlay network changed: moving to the link held in reserve", "from", cur, "to", next)
			h.Commit()
			return
		}
		h.log.Info("underlay network changed", "from", cur, "to", next)
		h.Attach(next)
		return
	}
	if !h.cfg.HoldStandby || !ok {
		return
	}
	spare, have := spareLink(h.cfg.Links, cur, nets)
	n := h.next.Load()
	switch {
	case !have:
		if n != nil && n.standby {
			h.mu.Lock()
			h.cancelPreparationLocked() // its network went
			h.mu.Unlock()
		}
	case n == nil || n.link.Name != spare:
		if err := h.PrepareStandby(spare); err == nil {
			h.m.Add("attach.standby", 1)
			h.log.Info("a second network is up: holding its link in reserve", "link", spare, "current", cur)
		}
	}
}

// underlayPoll is how often the watch reads the networks when it gets no
// events.
const underlayPoll = time.Second

// watchUnderlay runs the watch: it reads the networks now, then after each
// event (or every underlayPoll when events is nil, subErr saying why), and
// re-evaluates the host's link when they changed.
func (h *Host) watchUnderlay(ctx context.Context, read func() ([]UnderlayNet, error), events <-chan struct{}, subErr error) error {
	nets, err := read()
	if err != nil {
		return fmt.Errorf("overlay: reading the underlay networks: %w (start with --no-watch and move with node handover --to LINK)", err)
	}
	var poll <-chan time.Time
	if events == nil {
		t := time.NewTicker(underlayPoll)
		context.AfterFunc(ctx, t.Stop)
		poll = t.C
		h.log.Info("underlay watch: polling the interfaces every second", "why", subErr)
	} else {
		h.log.Info("underlay watch: following netlink events")
	}
	h.underlayChanged(nets)
	go func() {
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-events:
			case <-poll:
			}
			next, err := read()
			if err != nil {
				if !failing {
					h.log.Warn("underlay watch: reading the networks", "err", err)
				}
				failing = true
				continue
			}
			failing = false
			if !slices.EqualFunc(nets, next, UnderlayNet.equal) {
				nets = next
				h.underlayChanged(nets)
			}
		}
	}()
	return nil
}

func (u UnderlayNet) equal(v UnderlayNet) bool {
	return u.Interface == v.Interface && slices.Equal(u.Addrs, v.Addrs) && u.Gateway == v.Gateway && bytes.Equal(u.GatewayMAC, v.GatewayMAC)
}
