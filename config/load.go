package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ha2r/mip6testbed/mobility"
)

// Defaults.
const (
	DefaultMTU        = 1416 // fits a 1500-byte IPv4 underlay: 20 IP + 8 UDP + 32 underlay security + 16 frame + 8 spare
	DefaultKeepalive  = 25 * time.Second
	DefaultRAInterval = 30 * time.Second
	DefaultRSInterval = 200 * time.Millisecond
)

// Load reads and checks a topology file.
func Load(path string) (*Topology, error) {
	data, err := Read(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Read reads a topology file's bytes; a file that cannot be read is a
// bad topology (*Error) like one that does not parse.
func Read(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := "cannot read the topology file: " + err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			msg = "no such topology file (node init writes one from a template)"
		}
		return nil, &Error{File: path, Msg: msg}
	}
	return data, nil
}

// Parse checks a topology given as bytes; name is used in messages and to
// resolve file: secrets.
func Parse(name string, data []byte) (*Topology, error) {
	d := &decoder{file: name, dir: filepath.Dir(name), lines: map[string]int{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "the file is empty"}
		}
		return nil, syntaxError(name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	t := d.topology(root)
	if err := d.result(); err != nil {
		return nil, err
	}
	d.validate(t)
	if err := d.result(); err != nil {
		return nil, err
	}
	t.Placeholders = d.placeholders
	return t, nil
}

func (d *decoder) topology(root *yaml.Node) *Topology {
	m := d.mapping(root, "", Sections[""]...)
	t := &Topology{File: d.file, Name: d.str(m, "name"), Scheme: SchemeHA2R}
	t.MTU = DefaultMTU
	if v, ok := d.integer(m, "mtu", 1280, 65000); ok {
		t.MTU = int(v)
	}
	if f, ok := m["scheme"]; ok {
		t.Scheme = d.scheme(f)
	}
	if f, ok := m["ha2r_key_seed"]; ok {
		t.HA2RKeySeed = d.secret(f)
	}
	tm := d.mapping(m["timers"].val, "timers", Sections["timers"]...)
	t.Timers = Timers{
		Keepalive:  d.duration(tm, "keepalive", DefaultKeepalive),
		RAInterval: d.duration(tm, "ra_interval", DefaultRAInterval),
		RSInterval: d.duration(tm, "rs_interval", DefaultRSInterval),
		SIPT2:      d.duration(tm, "sip_t2", 4*time.Second),
		DeadAfter:  d.duration(tm, "dead_after", 300*time.Millisecond),
	}
	if t.Timers.DeadAfter < 30*time.Millisecond {
		d.errorf(d.lineOf("timers.dead_after"), "timers.dead_after", "%v is too short to tell a dead path from a slow one; use 30ms or more", t.Timers.DeadAfter)
	}
	mm := d.mapping(m["mobility"].val, "mobility", Sections["mobility"]...)
	t.Mobility = MobilityOptions{
		RRTrigger:    d.choice(mm, "rr_trigger", "tunnelled", "tunnelled", "first_packet", "both", "never"),
		AnchorIdle:   d.duration(mm, "anchor_idle", mobility.DefaultAnchorIdle),
		MNAuth:       d.choice(mm, "mn_auth", "attach", "attach", "first_session"),
		HomeLifetime: d.duration(mm, "home_lifetime", 420*time.Second),
		Standby:      d.boolean(mm, "standby", false),
		Bicast:       d.duration(mm, "bicast", 0),
		Handover:     d.choice(mm, "handover", "break_before_make", "break_before_make", "make_before_break"),
	}
	if t.Mobility.Bicast > mobility.MaxBicast {
		d.errorf(d.lineOf("mobility.bicast"), "mobility.bicast", "%v is longer than a replaced care-of address is accepted; use 0 (off) to %v", t.Mobility.Bicast, mobility.MaxBicast)
	}
	d.require(m, root, "", "links", "nodes")
	for _, f := range d.list(m, "links") {
		t.Links = append(t.Links, d.link(f, t.MTU))
	}
	for _, f := range d.list(m, "nodes") {
		t.Nodes = append(t.Nodes, d.node(f))
	}
	bm := d.mapping(m["backbone"].val, "backbone", Sections["backbone"]...)
	t.Backbone.Delay = d.duration(bm, "delay", 0)
	t.Backbone.Loss = d.ratio(bm, "loss")
	for _, f := range d.list(bm, "pairs") {
		pm := d.mapping(f.val, f.path, Sections["backbone.pairs[]"]...)
		d.require(pm, f.val, f.path, "from", "to", "delay")
		t.Backbone.Pairs = append(t.Backbone.Pairs, Pair{
			From: d.strings(pm, "from"), To: d.strings(pm, "to"),
			Delay: d.duration(pm, "delay", 0), Loss: d.ratio(pm, "loss"),
		})
		for _, name := range append(d.strings(pm, "from"), d.strings(pm, "to")...) {
			d.pending = append(d.pending, pendingRef{line: f.val.Line, path: f.path, name: name, what: "router"})
		}
	}
	return t
}

func (d *decoder) scheme(f field) Scheme {
	s, _ := d.scalar(f)
	switch Scheme(s) {
	case SchemeStandard, SchemeHA2R:
		return Scheme(s)
	}
	d.errorf(f.val.Line, f.path, "unknown scheme %q (use standard or ha2r)", s)
	return ""
}

func (d *decoder) link(f field, mtu int) *Link {
	m := d.mapping(f.val, f.path, Sections["links[]"]...)
	d.require(m, f.val, f.path, "name", "prefix", "router")
	l := &Link{Name: d.str(m, "name"), Router: d.str(m, "router"), MTU: mtu, Line: f.val.Line, path: f.path}
	if pf, ok := m["prefix"]; ok {
		l.Prefix, _ = d.prefix(pf)
		if l.Prefix.IsValid() && l.Prefix.Bits() != 64 {
			d.errorf(pf.val.Line, pf.path, "an access link prefix must be a /64 (stateless autoconfiguration needs 64-bit interface identifiers)")
		}
	}
	if v, ok := d.integer(m, "mtu", 1280, 65000); ok {
		l.MTU = int(v)
	}
	l.Delay = d.duration(m, "delay", 0)
	l.Loss = d.ratio(m, "loss")
	l.ID = LinkID(l.Name)
	return l
}

// LinkID is the frame identifier of the link called name: FNV-1a, never 0
// (0 is the backbone).
func LinkID(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}

func (d *decoder) node(f field) *Node {
	m := d.mapping(f.val, f.path, Sections["nodes[]"]...)
	d.require(m, f.val, f.path, "name", "role")
	n := &Node{Name: d.str(m, "name"), Role: Role(d.str(m, "role")), Line: f.val.Line, path: f.path}
	field := func(k string) string { return join(f.path, k) }
	line := func(k string) int {
		if ff, ok := m[k]; ok {
			return ff.val.Line
		}
		return f.val.Line
	}
	own, ok := RoleFields[n.Role]
	if !ok {
		if _, has := m["role"]; has {
			d.errorf(line("role"), field("role"), "unknown role %q (use ha, ar, mn or cn)", n.Role)
		}
		return n
	}
	common := map[string]bool{"name": true, "role": true, "underlay": true, "public_key": true, "private_key_file": true}
	for k, ff := range m {
		if common[k] || contains(own, k) {
			continue
		}
		d.errorf(ff.key.Line, ff.path, "field %q does not apply to a node of role %s", k, n.Role)
	}
	n.Underlay = d.endpoint(m, "underlay", n.Role.IsRouter())
	if kf, ok := m["public_key"]; ok {
		s, _ := d.scalar(kf)
		if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s)); err != nil || len(b) != 32 {
			d.errorf(kf.val.Line, kf.path, "%q is not a public key: want 44 characters of base64, as `node keygen --pair FILE` prints", s)
		} else {
			n.PublicKey = [32]byte(b)
		}
	}
	n.PrivateKeyFile = d.str(m, "private_key_file")
	if n.Role.IsRouter() {
		d.require(m, f.val, f.path, "underlay")
		n.Address = d.addr6(m, "address")
		for _, pf := range d.list(m, "prefixes") {
			if p, ok := d.prefix(pf); ok {
				n.Prefixes = append(n.Prefixes, p)
			}
		}
		n.HA2R = d.boolean(m, "ha2r", false)
		n.HostStack = d.boolean(m, "host_stack", n.Role == RoleHA)
		n.SIPDomain = d.str(m, "sip_domain")
		return n
	}
	d.require(m, f.val, f.path, "access")
	for _, af := range d.list(m, "access") {
		am := d.mapping(af.val, af.path, Sections["nodes[].access[]"]...)
		d.require(am, af.val, af.path, "link")
		a := Access{Link: d.str(am, "link"), Interface: d.str(am, "interface"), Default: d.boolean(am, "default", false)}
		if nf, ok := am["network"]; ok {
			s, _ := d.scalar(nf)
			p, err := netip.ParsePrefix(s)
			if err != nil {
				d.errorf(nf.val.Line, nf.path, "%q is not an underlay network like 192.168.1.0/24", s)
			}
			a.Network = p.Masked()
		}
		if gf, ok := am["gateway"]; ok {
			s, _ := d.scalar(gf)
			g, err := netip.ParseAddr(s)
			if err != nil {
				d.errorf(gf.val.Line, gf.path, "%q is not a gateway address like 192.168.1.1", s)
			}
			a.Gateway = g.Unmap()
		}
		if mf, ok := am["gateway_mac"]; ok {
			s, _ := d.scalar(mf)
			mac, err := net.ParseMAC(s)
			if err != nil {
				d.errorf(mf.val.Line, mf.path, "%q is not a MAC address like 3c:a6:2f:01:02:03", s)
			}
			a.GatewayMAC = mac
		}
		if f, ok := am["interface"]; ok {
			if _, err := path.Match(a.Interface, ""); err != nil || a.Interface == "" {
				d.errorf(f.val.Line, f.path, "%q is not an interface name or pattern like wlan0 or wl*", a.Interface)
			}
		}
		n.Access = append(n.Access, a)
		d.pending = append(d.pending, pendingRef{line: af.val.Line, path: join(af.path, "link"), name: a.Link, what: "link"})
	}
	n.Start = d.str(m, "start")
	n.SIPURI = d.str(m, "sip_uri")
	n.AutoAnswer = d.boolean(m, "auto_answer", true)
	_, n.AutoAnswerSet = m["auto_answer"]
	n.AutoAttach = d.boolean(m, "auto_attach", true)
	n.WatchUnderlay = d.boolean(m, "watch_underlay", true)
	n.AcceptDirect = d.boolean(m, "accept_direct", false)
	n.StaticAddr = d.addr6(m, "static_address")
	if n.Role == RoleMN {
		d.require(m, f.val, f.path, "home_agent", "home_address", "mn_ha_key")
		n.HomeAgent = d.str(m, "home_agent")
		n.HomeAddress = d.addr6(m, "home_address")
		if sf, ok := m["scheme"]; ok {
			n.Scheme = d.scheme(sf)
		}
		if kf, ok := m["mn_ha_key"]; ok {
			km := d.mapping(kf.val, kf.path, Sections["nodes[].mn_ha_key"]...)
			d.require(km, kf.val, kf.path, "spi", "secret")
			if v, ok := d.integer(km, "spi", 256, 1<<32-1); ok {
				n.MNHAKey.SPI = uint32(v)
			}
			if sf, ok := km["secret"]; ok {
				n.MNHAKey.Secret = d.secret(sf)
			}
		}
	}
	return n
}

// pendingRef is a name used before all names are known; validate resolves it.
type pendingRef struct {
	line       int
	path, name string
	what       string // "link" or "router"
}
