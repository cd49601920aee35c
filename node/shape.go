package node

import (
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/overlay"
)

// TopologyShape returns the emulated delay and loss of frames sent by node
// from, per the topology file: an access link's delay and loss for frames of
// that link (both directions), the backbone pair's for frames between
// routers. endpoints overrides routers' endpoints (the lab's loopback ports).
func TopologyShape(topo *config.Topology, from string, endpoints map[string]netip.AddrPort) overlay.Shape {
	routerAt := map[netip.AddrPort]string{}
	for _, r := range topo.Routers() {
		ep := r.Underlay
		if o, ok := endpoints[r.Name]; ok {
			ep = o
		}
		routerAt[ep] = r.Name
	}
	links := map[uint32]*config.Link{}
	for _, l := range topo.Links {
		links[l.ID] = l
	}
	return func(to netip.AddrPort, linkID uint32) (time.Duration, float64) {
		if linkID != 0 {
			if l, ok := links[linkID]; ok {
				return l.Delay, l.Loss
			}
			return 0, 0
		}
		if peer, ok := routerAt[to]; ok {
			return topo.BackboneDelay(from, peer)
		}
		return 0, 0
	}
}
