// Package demo runs the paper's experiment (examples/fig4.yaml, MN1 calls
// MN2, MN1 moves) in one process for each scheme, and measures what the
// paper only claims: signalling per phase, time to media and to the direct
// path, the media gap at a handover, loss, and the path before and after.
package demo

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// Message is one signalling message: a Mobility Header message as a node's
// engine sent it (and, when it was accepted, when the receiver got it), or
// a SIP message a mobile node or a proxy sent.
type Message struct {
	Kind     string    `json:"kind"` // "mobility" or "sip"
	Type     string    `json:"type"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Sent     time.Time `json:"sent"`
	Received time.Time `json:"received,omitzero"`
	// Via lists the nodes that relayed the message by changing its
	// encapsulation (a home agent's or HA2R's tunnel), in order.
	Via   []Hop  `json:"via,omitempty"`
	Bytes int    `json:"bytes"`
	Phase string `json:"phase"`
	// Retransmission marks a SIP message its sender had sent before, byte
	// for byte (RFC 3261 section 17 timers over UDP).
	Retransmission bool `json:"retransmission,omitempty"`

	key string // what the packet taps know it by
}

// Hop is one relay of a message.
type Hop struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// sighting is one signalling packet seen by one node's tap.
type sighting struct {
	node  string
	dir   overlay.Direction
	at    time.Time
	outer [2]netip.Addr // the outermost header's source and destination
}

// rtpSeen is one RTP packet seen by one node.
type rtpSeen struct {
	node string
	dir  overlay.Direction
	at   time.Time
	ssrc uint32
	seq  uint16
	// tunnelled: it travelled inside an IPv6-in-IPv6 header here.
	tunnelled bool
}

type sipArrival struct {
	node, name string
	at         time.Time
}

// tracer records what the demo reports, from the engines' signalling events
// and from packet taps on every node.
type tracer struct {
	mu        sync.Mutex
	phase     string
	owner     map[netip.Addr]string // address -> node name
	msgs      []*Message
	pending   map[string][]*Message // mobility messages sent, by key, awaiting receipt
	sightings map[string][]sighting // signalling packets seen, by key
	rtp       []rtpSeen
	sipIn     []sipArrival          // SIP messages that reached a mobile node
	sipSent   map[string]bool       // node|message key of every SIP message sent
	sipNodes  map[string]netip.Addr // proxies, whose own SIP messages are counted, and their address
	hosts     map[string]bool
}

func newTracer() *tracer {
	return &tracer{owner: map[netip.Addr]string{}, pending: map[string][]*Message{}, sightings: map[string][]sighting{},
		sipNodes: map[string]netip.Addr{}, hosts: map[string]bool{}, sipSent: map[string]bool{}}
}

func (t *tracer) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

func (t *tracer) addOwner(a netip.Addr, node string) {
	if a.IsValid() {
		t.mu.Lock()
		t.owner[a] = node
		t.mu.Unlock()
	}
}

func (t *tracer) name(a netip.Addr) string {
	if n, ok := t.owner[a]; ok {
		return n
	}
	return a.String()
}

// mhKey names a Mobility Header message for matching: its base type (BU
// for BU.home and BU.anchor alike) and the addresses of its own header.
func mhKey(name string, src, dst netip.Addr) string {
	base, _, _ := strings.Cut(name, ".")
	return "mh|" + base + "|" + src.String() + "|" + dst.String()
}

// signal receives the engines' events.
func (t *tracer) signal(e mobility.SignalEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := mhKey(e.Msg, e.Src, e.Dst)
	if e.Dir == overlay.Out {
		m := &Message{Kind: "mobility", Type: e.Msg, From: e.Node, To: t.name(e.Dst), Sent: e.At, Bytes: e.Bytes, Phase: t.phase, key: key}
		t.msgs = append(t.msgs, m)
		t.pending[key] = append(t.pending[key], m)
		return
	}
	if q := t.pending[key]; len(q) > 0 {
		m := q[0]
		t.pending[key] = q[1:]
		m.Received = e.At
		m.To = e.Node
	}
}

// tap sees every packet a node sends or receives.
func (t *tracer) tap(node string) overlay.TapFunc {
	return func(dir overlay.Direction, _ uint32, at time.Time, pkt []byte) {
		outer := ip6.Header(pkt)
		in, tunnelled, ok := innerOf(pkt)
		if !ok {
			return
		}
		h := ip6.Header(in.ip)
		switch {
		case in.proto == ip6.ProtoMH:
			if len(in.payload) < 4 {
				return
			}
			m := mh.Message{Type: mh.Type(in.payload[2])}
			if m.Type == mh.TypeExperimental && len(in.payload) > 6 {
				m.Subtype = in.payload[6]
			}
			t.see(mhKey(mobility.MsgName(&m, false), h.Src(), h.Dst()), node, dir, at, outer)
		case in.proto != ip6.ProtoUDP:
		case in.srcPort == 5060 || in.dstPort == 5060:
			key := sipKey(in.payload)
			t.see(key, node, dir, at, outer)
			if dir == overlay.Out {
				t.sip(node, at, h.Src(), h.Dst(), in.payload, len(pkt), key)
			} else {
				t.mu.Lock()
				if t.hosts[node] {
					t.sipIn = append(t.sipIn, sipArrival{node: node, name: sipName(in.payload), at: at})
				}
				t.mu.Unlock()
			}
		case isRTP(in):
			t.mu.Lock()
			t.rtp = append(t.rtp, rtpSeen{node: node, dir: dir, at: at, ssrc: binary.BigEndian.Uint32(in.payload[8:12]),
				seq: binary.BigEndian.Uint16(in.payload[2:4]), tunnelled: tunnelled})
			t.mu.Unlock()
		}
	}
}

func isRTP(in upperView) bool {
	p := in.payload
	return len(p) >= 12 && p[0]>>6 == 2 && p[1]&0x7f <= 8 && in.srcPort >= 20000 && in.srcPort < 24000
}

func sipKey(payload []byte) string {
	h := fnv.New64a()
	h.Write(payload)
	return "sip|" + string(h.Sum(nil))
}

func (t *tracer) see(key, node string, dir overlay.Direction, at time.Time, outer ip6.Header) {
	t.mu.Lock()
	t.sightings[key] = append(t.sightings[key], sighting{node: node, dir: dir, at: at, outer: [2]netip.Addr{outer.Src(), outer.Dst()}})
	t.mu.Unlock()
}

// sip counts a SIP message once, where it is sent: by a mobile node's
// phone, or by a proxy (which originates what it relays).
func (t *tracer) sip(node string, at time.Time, src, dst netip.Addr, payload []byte, size int, key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if self, isProxy := t.sipNodes[node]; isProxy {
		if src != self {
			return // forwarded through this node, not sent by its proxy
		}
	} else if !t.hosts[node] || t.owner[src] != node {
		return
	}
	sentKey := node + "|" + key
	again := t.sipSent[sentKey]
	t.sipSent[sentKey] = true
	t.msgs = append(t.msgs, &Message{Kind: "sip", Type: sipName(payload), From: node, To: t.name(dst), Sent: at, Bytes: size,
		Phase: t.phase, Retransmission: again, key: key})
}

// sipName names a SIP message: the method of a request, the status code
// and method of a response ("200 INVITE").
func sipName(p []byte) string {
	line, _, _ := strings.Cut(string(p), "\n")
	line = strings.TrimSpace(line)
	if code, ok := strings.CutPrefix(line, "SIP/2.0 "); ok {
		code, _, _ = strings.Cut(code, " ")
		return code + " " + cseqMethod(p)
	}
	if method, _, ok := strings.Cut(line, " "); ok {
		return method
	}
	return "SIP"
}

func cseqMethod(p []byte) string {
	for _, line := range strings.Split(string(p), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "CSeq") {
			continue
		}
		if f := strings.Fields(value); len(f) >= 2 {
			return f[1]
		}
	}
	return ""
}

type upperView struct {
	ip               []byte
	proto            uint8
	srcPort, dstPort uint16 // UDP only
	payload          []byte
}

// innerOf finds the upper-layer message of a packet, through one tunnel
// header and route-optimisation headers.
func innerOf(pkt []byte) (upperView, bool, bool) {
	tunnelled := false
	if len(pkt) > 2*ip6.HeaderLen && ip6.Header(pkt).NextHeader() == ip6.ProtoIPv6 {
		pkt, tunnelled = pkt[ip6.HeaderLen:], true
	}
	var c ip6.Chain
	if ip6.Walk(pkt, &c) != nil || c.UpperOff > len(pkt) {
		return upperView{}, false, false
	}
	u := upperView{ip: pkt, proto: c.Upper, payload: pkt[c.UpperOff:]}
	if c.Upper == ip6.ProtoUDP {
		if len(u.payload) < 8 {
			return upperView{}, false, false
		}
		u.srcPort, u.dstPort = binary.BigEndian.Uint16(u.payload[0:]), binary.BigEndian.Uint16(u.payload[2:])
		u.payload = u.payload[8:]
	}
	return u, tunnelled, true
}

// messages returns the recorded messages in send order, with their relays
// and (for SIP) their arrival filled in from the packet taps.
func (t *tracer) messages() []Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Message, len(t.msgs))
	for i, m := range t.msgs {
		out[i] = *m
		t.route(&out[i])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Sent.Before(out[j].Sent) })
	return out
}

// route fills in a message's arrival (SIP) and relays from the sightings of
// its packet between its sending and its arrival.
func (t *tracer) route(m *Message) {
	seen := t.sightings[m.key]
	if m.Kind == "sip" {
		for _, s := range seen {
			if s.node == m.To && s.dir == overlay.In && !s.at.Before(m.Sent) {
				m.Received = s.at
				break
			}
		}
	}
	if m.Received.IsZero() {
		return
	}
	// A relay received the packet under one outer header and sent it on
	// under another: it tunnelled or de-tunnelled it.
	var hops []Hop
	for _, in := range seen {
		if in.dir != overlay.In || in.node == m.From || in.node == m.To || in.at.Before(m.Sent) || in.at.After(m.Received) {
			continue
		}
		for _, out := range seen {
			if out.node == in.node && out.dir == overlay.Out && !out.at.Before(in.at) && !out.at.After(m.Received) && out.outer != in.outer {
				hops = append(hops, Hop{Node: in.node, At: in.at})
				break
			}
		}
	}
	sort.Slice(hops, func(i, j int) bool { return hops[i].At.Before(hops[j].At) })
	m.Via = hops
}

// arrived reports whether a SIP message called name reached node after t0.
func (t *tracer) arrived(node, name string, t0 time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range t.sipIn {
		if a.node == node && a.name == name && a.at.After(t0) {
			return true
		}
	}
	return false
}

// firstRTP returns when node first received RTP after t0 (only RTP that
// did not come through a tunnel, if direct).
func (t *tracer) firstRTP(node string, t0 time.Time, direct bool) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.rtp {
		if s.node == node && s.dir == overlay.In && (!direct || !s.tunnelled) && s.at.After(t0) {
			return s.at
		}
	}
	return time.Time{}
}

// arrivals lists the RTP packets that reached node, in seconds after t0.
func (t *tracer) arrivals(node string, t0 time.Time) []Arrival {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Arrival
	for _, s := range t.rtp {
		if s.node == node && s.dir == overlay.In {
			out = append(out, Arrival{T: s.at.Sub(t0).Seconds(), Tunnelled: s.tunnelled})
		}
	}
	return out
}

// departures lists when node sent its RTP packets, in seconds after t0.
func (t *tracer) departures(node string, t0 time.Time) []float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []float64
	for _, s := range t.rtp {
		if s.node == node && s.dir == overlay.Out && s.at.After(t0) {
			out = append(out, s.at.Sub(t0).Seconds())
		}
	}
	return out
}

// firstSent returns when node first sent a SIP message called name after t0.
func (t *tracer) firstSent(node, name string, t0 time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first time.Time
	for _, m := range t.msgs {
		if m.Kind == "sip" && m.From == node && m.Type == name && m.Sent.After(t0) && (first.IsZero() || m.Sent.Before(first)) {
			first = m.Sent
		}
	}
	return first
}
