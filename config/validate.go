package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// validate checks what no single field can: names, references, overlaps.
func (d *decoder) validate(t *Topology) {
	t.linkByName = map[string]*Link{}
	t.nodeByName = map[string]*Node{}
	ids := map[uint32]*Link{}
	for _, l := range t.Links {
		if prev, dup := t.linkByName[l.Name]; dup {
			d.errorf(d.lineOf(l.path+".name"), l.path+".name", "link name %q is already used on line %d", l.Name, prev.Line)
			continue
		}
		if prev, dup := ids[l.ID]; dup {
			d.errorf(d.lineOf(l.path+".name"), l.path+".name", "link name %q hashes to the same link id as %q; rename one", l.Name, prev.Name)
		}
		t.linkByName[l.Name] = l
		ids[l.ID] = l
	}
	for _, n := range t.Nodes {
		if prev, dup := t.nodeByName[n.Name]; dup {
			d.errorf(d.lineOf(n.path+".name"), n.path+".name", "node name %q is already used on line %d", n.Name, prev.Line)
			continue
		}
		t.nodeByName[n.Name] = n
	}
	d.validateKeys(t)
	// Links name their routers; routers learn which links they serve.
	for _, l := range t.Links {
		r := t.nodeByName[l.Router]
		switch {
		case r == nil:
			d.errorf(d.lineOf(l.path+".router"), l.path+".router", "no node is called %q", l.Router)
		case !r.Role.IsRouter():
			d.errorf(d.lineOf(l.path+".router"), l.path+".router", "%q is a %s, not a router (ha or ar)", l.Router, r.Role)
		default:
			r.ServedLink = append(r.ServedLink, l)
		}
	}
	for _, ref := range d.pending {
		switch ref.what {
		case "link":
			if t.linkByName[ref.name] == nil {
				d.errorf(ref.line, ref.path, "no link is called %q", ref.name)
			}
		case "router":
			if n := t.nodeByName[ref.name]; n == nil || !n.Role.IsRouter() {
				d.errorf(ref.line, ref.path, "%q is not a router of this topology", ref.name)
			}
		}
	}
	d.checkPrefixes(t)
	d.checkRouters(t)
	d.checkHosts(t)
	d.checkAddresses(t)
}

func (d *decoder) checkPrefixes(t *Topology) {
	type owned struct {
		p    netip.Prefix
		path string
		who  string
	}
	var all []owned
	for _, l := range t.Links {
		if l.Prefix.IsValid() {
			all = append(all, owned{l.Prefix, l.path + ".prefix", "link " + l.Name})
		}
	}
	for _, n := range t.Nodes {
		for i, p := range n.Prefixes {
			all = append(all, owned{p, fmt.Sprintf("%s.prefixes[%d]", n.path, i), "node " + n.Name})
		}
	}
	for i := range all {
		for j := 0; j < i; j++ {
			if all[i].p.Overlaps(all[j].p) {
				d.errorf(d.lineOf(all[i].path), all[i].path, "prefix %s overlaps %s of %s (line %d)",
					all[i].p, all[j].p, all[j].who, d.lineOf(all[j].path))
			}
		}
	}
}

func (d *decoder) checkRouters(t *Topology) {
	ha2r := false
	domains := map[string]*Node{}
	for _, n := range t.Routers() {
		if len(n.OwnedPrefixes()) == 0 {
			d.errorf(n.Line, n.path, "router %q serves no link and owns no prefix, so it has no address; add a link with router: %s or a prefixes entry", n.Name, n.Name)
			continue
		}
		if !n.Address.IsValid() {
			// The router's address is ::1 of its first prefix, as gateways usually are.
			p := n.OwnedPrefixes()[0].Addr().As16()
			p[15] = 1
			n.Address = netip.AddrFrom16(p)
		} else if !owns(n, n.Address) {
			d.errorf(d.lineOf(n.path+".address"), n.path+".address", "%s is not inside any prefix router %q owns", n.Address, n.Name)
		}
		if n.HA2R {
			ha2r = true
		}
		if n.Role == RoleHA {
			if len(n.ServedLink) == 0 {
				d.errorf(n.Line, n.path, "home agent %q serves no link; a home agent needs its home link (a links entry with router: %s)", n.Name, n.Name)
			}
			if n.SIPDomain != "" {
				if prev := domains[n.SIPDomain]; prev != nil {
					d.errorf(d.lineOf(n.path+".sip_domain"), n.path+".sip_domain", "SIP domain %q is already served by %s", n.SIPDomain, prev.Name)
				}
				domains[n.SIPDomain] = n
			}
		}
	}
	if ha2r && len(t.HA2RKeySeed) == 0 {
		d.errorf(1, "ha2r_key_seed", "access routers with ha2r: true need ha2r_key_seed (hex:<digits> or file:<path>) to derive their keys with the home agents")
	}
}

func owns(r *Node, a netip.Addr) bool {
	for _, p := range r.OwnedPrefixes() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// spiKey names one MN-HA key: its home agent and SPI.
type spiKey struct {
	ha  string
	spi uint32
}

func (d *decoder) checkHosts(t *Topology) {
	spis := map[spiKey]*Node{}
	for _, n := range t.Nodes {
		if n.Role.IsRouter() {
			continue
		}
		if len(n.Access) == 0 {
			d.errorf(n.Line, n.path+".access", "a host needs at least one access link")
			continue
		}
		defaults := 0
		for i, a := range n.Access {
			if a.Default {
				if defaults++; defaults == 2 {
					p := fmt.Sprintf("%s.access[%d].default", n.path, i)
					d.errorf(d.lineOf(p), p, "only one access link of a host can be its default")
				}
			}
			path := fmt.Sprintf("%s.access[%d].link", n.path, i)
			if l := t.linkByName[a.Link]; l != nil && t.nodeByName[l.Router] == nil {
				d.errorf(d.lineOf(path), path, "link %q is not served by any router", a.Link)
			}
		}
		if n.Start == "" {
			n.Start = n.Access[0].Link
		} else if !n.allowed(n.Start) {
			d.errorf(d.lineOf(n.path+".start"), n.path+".start", "%q is not one of this host's access links (%s)", n.Start, n.accessNames())
		}
		if n.Role == RoleCN && n.StaticAddr.IsValid() {
			if l := t.linkByName[n.Start]; l != nil && !l.Prefix.Contains(n.StaticAddr) {
				d.errorf(d.lineOf(n.path+".static_address"), n.path+".static_address", "%s is not inside %s, the prefix of link %s", n.StaticAddr, l.Prefix, l.Name)
			}
		}
		if n.Role != RoleMN {
			continue
		}
		if n.Scheme == "" {
			n.Scheme = t.Scheme
		}
		ha := t.nodeByName[n.HomeAgent]
		if ha != nil && n.MNHAKey.SPI != 0 {
			// RFC 4285: the home agent finds a mobile node's key by SPI.
			k := spiKey{ha.Name, n.MNHAKey.SPI}
			if prev, dup := spis[k]; dup {
				d.errorf(d.lineOf(n.path+".mn_ha_key.spi"), n.path+".mn_ha_key.spi",
					"SPI %d is already %s's key with home agent %s (line %d); give each mobile node of a home agent its own SPI",
					n.MNHAKey.SPI, prev.Name, ha.Name, d.lineOf(prev.path+".mn_ha_key.spi"))
			} else {
				spis[k] = n
			}
		}
		switch {
		case n.HomeAgent == "":
		case ha == nil || ha.Role != RoleHA:
			d.errorf(d.lineOf(n.path+".home_agent"), n.path+".home_agent", "%q is not a home agent (role ha) of this topology", n.HomeAgent)
		case n.HomeAddress.IsValid() && !servesAddr(ha, n.HomeAddress):
			d.errorf(d.lineOf(n.path+".home_address"), n.path+".home_address", "%s is not on a link that home agent %s serves", n.HomeAddress, ha.Name)
		}
		if u := n.SIPURI; u != "" && (!strings.HasPrefix(u, "sip:") || !strings.Contains(u, "@")) {
			d.errorf(d.lineOf(n.path+".sip_uri"), n.path+".sip_uri", "%q is not a SIP URI like sip:user1@domain1", u)
		}
	}
}

func servesAddr(r *Node, a netip.Addr) bool {
	for _, l := range r.ServedLink {
		if l.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

func (n *Node) allowed(link string) bool {
	for _, a := range n.Access {
		if a.Link == link {
			return true
		}
	}
	return false
}

func (n *Node) accessNames() string {
	var s []string
	for _, a := range n.Access {
		s = append(s, a.Link)
	}
	return strings.Join(s, ", ")
}

// AccessTo returns the host's access entry for link, or false.
func (n *Node) AccessTo(link string) (Access, bool) {
	for _, a := range n.Access {
		if a.Link == link {
			return a, true
		}
	}
	return Access{}, false
}

func (d *decoder) checkAddresses(t *Topology) {
	type use struct {
		who  string
		path string
	}
	seen := map[netip.Addr]use{}
	add := func(n *Node, a netip.Addr, path string) {
		if !a.IsValid() {
			return
		}
		if prev, dup := seen[a]; dup {
			d.errorf(d.lineOf(path), path, "address %s is already used by %s (line %d)", a, prev.who, d.lineOf(prev.path))
			return
		}
		seen[a] = use{"node " + n.Name, path}
	}
	for _, n := range t.Nodes {
		if n.Role.IsRouter() {
			if _, given := d.lines[n.path+".address"]; given {
				add(n, n.Address, n.path+".address")
			} else {
				add(n, n.Address, n.path)
			}
		}
		add(n, n.HomeAddress, n.path+".home_address")
		add(n, n.StaticAddr, n.path+".static_address")
	}
	eps := map[netip.AddrPort]*Node{}
	for _, n := range t.Routers() {
		if !n.Underlay.IsValid() {
			continue
		}
		path := n.path + ".underlay"
		if prev, dup := eps[n.Underlay]; dup {
			d.errorf(d.lineOf(path), path, "underlay endpoint %s is already used by node %s (line %d)", n.Underlay, prev.Name, prev.Line)
		}
		eps[n.Underlay] = n
	}
}

// validateKeys: underlay security is all or nothing, and no two nodes
// share a key pair.
func (d *decoder) validateKeys(t *Topology) {
	var with, without []string
	owner := map[[32]byte]string{}
	for _, n := range t.Nodes {
		if n.PublicKey == ([32]byte{}) {
			without = append(without, n.Name)
			if n.PrivateKeyFile != "" {
				d.errorf(d.lineOf(n.path+".private_key_file"), n.path+".private_key_file", "node %s names a private key file but has no public_key", n.Name)
			}
			continue
		}
		with = append(with, n.Name)
		if prev, dup := owner[n.PublicKey]; dup {
			d.errorf(d.lineOf(n.path+".public_key"), n.path+".public_key", "nodes %s and %s have the same public key; each node needs its own pair (node keygen --pair FILE)", prev, n.Name)
		}
		owner[n.PublicKey] = n.Name
	}
	if len(with) > 0 && len(without) > 0 {
		n := t.nodeByName[without[0]]
		d.errorf(n.Line, n.path, "nodes %s have a public_key but %s have none: underlay security needs a key pair on every node (node keygen --pair FILE), or remove every public_key to run in clear",
			strings.Join(with, ", "), strings.Join(without, ", "))
	}
}

// Secure reports whether the topology's underlay is authenticated and
// encrypted (every node has a public key).
func (t *Topology) Secure() bool {
	return len(t.Nodes) > 0 && t.Nodes[0].PublicKey != ([32]byte{})
}
