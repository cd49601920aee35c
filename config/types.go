// Package config reads the topology file that every node of a deployment
// shares. Loading is strict: unknown fields, missing fields and inconsistent
// values are reported with the file, the line and the field path, so that a
// user can fix the file without guessing.
package config

import (
	"net"
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/mobility"
)

// Role is what a node does.
type Role string

const (
	RoleHA Role = "ha" // home agent: a router that serves a home link (and runs its SIP domain)
	RoleAR Role = "ar" // access router: serves access links, optionally as HA2R
	RoleMN Role = "mn" // mobile node
	RoleCN Role = "cn" // fixed correspondent host
)

// IsRouter reports whether nodes of role r forward packets.
func (r Role) IsRouter() bool { return r == RoleHA || r == RoleAR }

// Scheme is a mobility scheme: the mobility package's type, so that one
// enum serves the file, the engines and the reports.
type Scheme = mobility.Scheme

const (
	SchemeStandard = mobility.SchemeStandard // RFC 6275 with Return Routability
	SchemeHA2R     = mobility.SchemeHA2R     // the paper's scheme
)

// Topology is a whole deployment.
type Topology struct {
	File string // where it was read from, for messages
	// Placeholders are secrets still as a template wrote them: the lab
	// runs with them, a real node refuses to (cmd/node run).
	Placeholders Errors
	Name         string
	MTU          int // default overlay link MTU
	Scheme       Scheme
	Links        []*Link
	Nodes        []*Node
	Backbone     Backbone
	// HA2RKeySeed, when set, derives every HA-HA2R security association.
	HA2RKeySeed []byte
	Timers      Timers
	Mobility    MobilityOptions

	linkByName map[string]*Link
	nodeByName map[string]*Node
}

// Timers are protocol intervals that a deployment may tune.
type Timers struct {
	Keepalive  time.Duration // host keepalives to hold NAT mappings (25 s)
	RAInterval time.Duration // unsolicited Router Advertisements
	RSInterval time.Duration // Router Solicitation retransmission while attaching
	// SIPT2 caps the interval between a phone's retransmissions of a 2xx
	// answer (RFC 3261's T2, 4 s; see softphone.PhoneConfig.AnswerT2).
	SIPT2 time.Duration
	// DeadAfter: how long a host's current path may stay silent while it
	// sends, a probe included, before it moves to a link held in reserve
	// (overlay.HostConfig.DeadAfter; 300 ms).
	DeadAfter time.Duration
}

// MobilityOptions tune the mobility engines.
type MobilityOptions struct {
	// RRTrigger: when a standard mobile node starts Return Routability:
	// "tunnelled" (a packet from the peer came through the home agent, as
	// in the paper), "first_packet", "both" or "never".
	RRTrigger string
	// AnchorIdle: how long an old care-of address may carry no traffic
	// before the mobile node releases its HA2R anchor.
	AnchorIdle time.Duration
	// MNAuth: "attach" (authenticate to an HA2R on attaching) or
	// "first_session" (when the first session uses the care-of address).
	MNAuth string
	// HomeLifetime is the lifetime mobile nodes request from home agents.
	HomeLifetime time.Duration
	// Standby: a host that follows its underlay holds the access link of
	// a second network in reserve and moves there when its path goes
	// silent or its network goes.
	Standby bool
	// Bicast: for how long after a make-before-break move a mobile node's
	// tunnelled packets, and its home agent's and HA2Rs' packets towards
	// it, go on both paths, the receiver dropping the second copy (0: off;
	// at most 2 s).
	Bicast time.Duration
	// Handover is how a commanded move (node handover --to LINK) goes when
	// its command does not say: "break_before_make" (leave, then attach)
	// or "make_before_break" (attach and register on LINK first; the
	// node needs LINK's underlay up beside the current one).
	Handover string
}

// Link is an access link: a virtual link served by one router.
type Link struct {
	Name   string
	ID     uint32 // frame link identifier, derived from the name
	Prefix netip.Prefix
	Router string
	MTU    int
	Delay  time.Duration // emulated one-way delay between a host and the router
	Loss   float64       // emulated loss probability, 0..1
	Line   int
	path   string
}

// Key is a secret with an index (an SPI).
type Key struct {
	SPI    uint32
	Secret []byte
}

// Node is one node of the topology.
type Node struct {
	Name     string
	Role     Role
	Underlay netip.AddrPort // routers: where others reach them; hosts: local bind (port may be 0)
	Line     int
	path     string

	// Underlay security (package secure): the node's Curve25519 public
	// key, and the file with its private key (on the node's own machine;
	// relative to the topology file). Either every node has a public key
	// or none has (the underlay then runs in clear).
	PublicKey      [32]byte
	PrivateKeyFile string

	// Routers.
	Address    netip.Addr     // the router's global address
	Prefixes   []netip.Prefix // owned besides the prefixes of the links it serves
	HA2R       bool           // an AR that can act as HA2R
	HostStack  bool           // the router has a TUN/stack for its own applications
	SIPDomain  string         // a home agent's SIP domain
	ServedLink []*Link        // links whose router this is, in file order

	// Hosts.
	Access      []Access // links a host may attach to
	Start       string   // the link a host attaches to first
	HomeAgent   string
	HomeAddress netip.Addr
	SIPURI      string
	Scheme      Scheme // mobile node's scheme (default: the topology's)
	MNHAKey     Key
	AutoAnswer  bool
	// AutoAnswerSet says the file set auto_answer; `node run` answers by
	// itself only then (the lab and the demo default to answering).
	AutoAnswerSet bool
	AutoAttach    bool // attach to the start link at boot (default true)
	StaticAddr    netip.Addr
	WatchUnderlay bool
	// AcceptDirect lets the softphone take SIP from anyone, not only from
	// its proxy and, within a call, its peer.
	AcceptDirect bool
}

// Access is one access link a host may use, and the underlay network that
// leads to it (the "Wi-Fi" whose appearance means: attach to this link).
//
// The optional fields say which underlay network leads to the link, for
// the host's automatic switching (overlay.UnderlayMatch has the rules):
// every one given must hold; none given and no Default means the link is
// only reached with node handover.
type Access struct {
	Link       string
	Network    netip.Prefix     // an address of the interface is inside it
	Interface  string           // interface name or pattern (wl*)
	Gateway    netip.Addr       // the interface's default gateway
	GatewayMAC net.HardwareAddr // the gateway's MAC
	Default    bool             // any network with a gateway that no other link matches
}

// Backbone holds the router-to-router delays.
type Backbone struct {
	Delay time.Duration // default one-way delay between two routers
	Loss  float64
	Pairs []Pair
}

// Pair sets the delay between every node of From and every node of To.
type Pair struct {
	From, To []string
	Delay    time.Duration
	Loss     float64
}

// LinkByName returns the link called name, or nil.
func (t *Topology) LinkByName(name string) *Link { return t.linkByName[name] }

// NodeByName returns the node called name, or nil.
func (t *Topology) NodeByName(name string) *Node { return t.nodeByName[name] }

// LinkByID returns the link with frame identifier id, or nil.
func (t *Topology) LinkByID(id uint32) *Link {
	for _, l := range t.Links {
		if l.ID == id {
			return l
		}
	}
	return nil
}

// Routers returns the router nodes in file order.
func (t *Topology) Routers() []*Node {
	var rs []*Node
	for _, n := range t.Nodes {
		if n.Role.IsRouter() {
			rs = append(rs, n)
		}
	}
	return rs
}

// OwnedPrefixes returns every prefix a router owns: its links' and its own.
func (n *Node) OwnedPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, l := range n.ServedLink {
		ps = append(ps, l.Prefix)
	}
	return append(ps, n.Prefixes...)
}

// BackboneDelay returns the emulated delay and loss between routers a and b.
// Later pairs override earlier ones.
func (t *Topology) BackboneDelay(a, b string) (time.Duration, float64) {
	d, loss := t.Backbone.Delay, t.Backbone.Loss
	for _, p := range t.Backbone.Pairs {
		if (contains(p.From, a) && contains(p.To, b)) || (contains(p.From, b) && contains(p.To, a)) {
			d, loss = p.Delay, p.Loss
		}
	}
	return d, loss
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// AllPrefixes returns every prefix any router owns, for host routes into the overlay.
func (t *Topology) AllPrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for _, r := range t.Routers() {
		ps = append(ps, r.OwnedPrefixes()...)
	}
	return ps
}
