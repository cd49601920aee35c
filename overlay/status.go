package overlay

import (
	"fmt"
	"net/netip"
	"time"
)

// RouterStatus is what `node status` shows for a router.
type RouterStatus struct {
	Name       string          `json:"name"`
	LinkAddr   string          `json:"lladdr"`
	Address    netip.Addr      `json:"address"`
	Port       uint16          `json:"underlay_port"`
	Links      []LinkStatus    `json:"links"`
	Neighbours []NeighbourInfo `json:"neighbours"`
	Routes     []RouteInfo     `json:"routes"`
}

// LinkStatus describes one served link.
type LinkStatus struct {
	Name      string     `json:"name"`
	ID        uint32     `json:"id"`
	Prefix    string     `json:"prefix"`
	MTU       int        `json:"mtu"`
	LinkLocal netip.Addr `json:"link_local"`
	Hosts     int        `json:"hosts"`
}

// RouteInfo is one forwarding table entry.
type RouteInfo struct {
	Prefix string `json:"prefix"`
	Via    string `json:"via"`
}

// Status reports the router's links, neighbours and routes.
func (r *Router) Status() RouterStatus {
	s := RouterStatus{Name: r.cfg.Name, LinkAddr: r.ll.String(), Address: r.cfg.Address, Port: r.port}
	for _, l := range r.linkList {
		l.mu.RLock()
		hosts := len(l.members)
		l.mu.RUnlock()
		s.Links = append(s.Links, LinkStatus{Name: l.cfg.Name, ID: l.cfg.ID, Prefix: l.cfg.Prefix.String(), MTU: l.cfg.MTU, LinkLocal: l.linkLocal, Hosts: hosts})
		s.Neighbours = append(s.Neighbours, l.neighbours()...)
	}
	for _, rt := range r.fib {
		ri := RouteInfo{Prefix: rt.prefix.String()}
		switch rt.kind {
		case routeLink:
			ri.Via = "link " + rt.link.cfg.Name
		case routePeer:
			ri.Via = fmt.Sprintf("router %s at %s", rt.peer.Name, rt.peer.Endpoint)
		case routeLocal:
			ri.Via = "local"
		}
		s.Routes = append(s.Routes, ri)
	}
	return s
}

// HostStatus is what `node status` shows for a host.
type HostStatus struct {
	Name      string      `json:"name"`
	LinkAddr  string      `json:"lladdr"`
	Port      uint16      `json:"underlay_port"`
	Link      string      `json:"link,omitempty"`
	Router    string      `json:"router,omitempty"`
	Attached  bool        `json:"attached"`
	Prefix    string      `json:"prefix,omitempty"`
	Address   netip.Addr  `json:"address,omitempty"`
	RouterLL  netip.Addr  `json:"router_link_local,omitempty"`
	MTU       int         `json:"mtu,omitempty"`
	Addresses []string    `json:"device_addresses"`
	Links     []string    `json:"access_links"`
	Since     time.Time   `json:"attached_since,omitempty"`
	Device    string      `json:"device,omitempty"`
	Routes    []RouteInfo `json:"routes,omitempty"`
}

// Status reports the host's attachment and addresses.
func (h *Host) Status() HostStatus {
	st := HostStatus{Name: h.cfg.Name, LinkAddr: h.ll.String(), Port: h.port}
	for _, l := range h.cfg.Links {
		st.Links = append(st.Links, l.Name)
	}
	if s := h.cur.Load(); s != nil {
		st.Link, st.Router = s.link.Name, s.link.Router.String()
		if a := s.att; a != nil {
			st.Attached, st.Prefix, st.Address, st.RouterLL, st.Since, st.MTU = true, a.Prefix.String(), a.Address, a.RouterLL, a.At, a.MTU
			st.Routes = []RouteInfo{{Prefix: "::/0", Via: fmt.Sprintf("router %s on link %s", a.RouterLL, s.link.Name)}}
		}
	}
	if h.dev != nil {
		st.Device = h.dev.Name()
		for _, a := range h.dev.Addresses() {
			s := a.Prefix.String()
			if !a.Preferred {
				s += " (not preferred)"
			}
			st.Addresses = append(st.Addresses, s)
		}
	}
	return st
}
