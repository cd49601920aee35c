package mobility

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// SignalEvent is one mobility message a node sent or received, for the
// demo's sequence diagrams and for tests that count signalling.
type SignalEvent struct {
	At    time.Time
	Node  string
	Dir   overlay.Direction
	Msg   string // BU, BA, HoTI, ..., MNAuthReq, MNAuthRep; BU/BA to or from a home agent get ".home"
	Bytes int    // the whole IPv6 packet, tunnel header included
	Src   netip.Addr
	Dst   netip.Addr
}

// RecordFunc receives signalling events; it must not block.
type RecordFunc func(SignalEvent)

// Signals counts a node's mobility signalling in its metrics (mh.out.BU,
// mh.in.BA.home, mh.out.bytes.BU, ...), its drops by reason, and the data
// path's tunnel and route-optimisation counters, and passes each message to
// an optional recorder. Data-path counters and drop counters are resolved
// once here, so that a packet costs an atomic add, not a map lookup.
type Signals struct {
	node string
	m    *metrics.Set
	clk  clock.Clock
	rec  atomic.Pointer[RecordFunc]

	drops [numDrops]*atomic.Uint64
	// Per-packet counters of the data path.
	tunnelEncap, tunnelDecap, anchorEncap, roOut, roIn *atomic.Uint64
	bicastCopies, roOutLeft                            *atomic.Uint64
}

// NewSignals returns the signalling counters of node.
func NewSignals(node string, m *metrics.Set, clk clock.Clock) *Signals {
	s := &Signals{node: node, m: m, clk: clk,
		tunnelEncap: m.Counter("tunnel.encap"), tunnelDecap: m.Counter("tunnel.decap"),
		anchorEncap: m.Counter("tunnel.encap.anchor"), roOut: m.Counter("ro.out"), roIn: m.Counter("ro.in"),
		bicastCopies: m.Counter("tunnel.bicast"), roOutLeft: m.Counter("ro.out.left")}
	for d := range numDrops {
		s.drops[d] = m.Counter("mobility.drop." + dropNames[d])
	}
	return s
}

// SetRecorder installs f (nil removes it).
func (s *Signals) SetRecorder(f RecordFunc) {
	if f == nil {
		s.rec.Store(nil)
		return
	}
	s.rec.Store(&f)
}

// MsgName names a message for counters and diagrams.
func MsgName(m *mh.Message, home bool) string {
	name := m.Type.String()
	if m.Type == mh.TypeExperimental {
		switch m.Subtype {
		case mh.SubtypeMNAuthRequest:
			name = "MNAuthReq"
		case mh.SubtypeMNAuthReply:
			name = "MNAuthRep"
		}
	}
	if home && (m.Type == mh.TypeBU || m.Type == mh.TypeBA) {
		name += ".home"
	}
	return name
}

func (s *Signals) count(dir overlay.Direction, name string, pkt []byte) {
	prefix := "mh.out."
	if dir == overlay.In {
		prefix = "mh.in."
	}
	s.m.Add(prefix+name, 1)
	s.m.Add(prefix+"bytes."+name, uint64(len(pkt)))
	if f := s.rec.Load(); f != nil {
		h := ip6.Header(pkt)
		(*f)(SignalEvent{At: s.clk.Now(), Node: s.node, Dir: dir, Msg: name, Bytes: len(pkt), Src: h.Src(), Dst: h.Dst()})
	}
}

// Sent records a message the node sends, as the whole packet that leaves.
func (s *Signals) Sent(name string, pkt []byte) { s.count(overlay.Out, name, pkt) }

// Received records a message the node accepted for processing.
func (s *Signals) Received(name string, pkt []byte) { s.count(overlay.In, name, pkt) }

// Drop counts a refused or malformed message or packet under its reason.
func (s *Signals) Drop(d Drop) { s.drops[d].Add(1) }

// Add counts a control-path event (rr.started, anchor.bound, ...).
func (s *Signals) Add(name string, n uint64) { s.m.Add(name, n) }

// Metrics exposes the node's counters.
func (s *Signals) Metrics() *metrics.Set { return s.m }

// Drop is why an engine refused a message or dropped a packet; each has the
// counter mobility.drop.<name>.
type Drop uint8

const (
	// Malformed or unexpected signalling (RFC 6275 9.2).
	DropMHMalformed Drop = iota
	DropMHChecksum
	DropMHParamProblem
	DropMHUnknownType
	DropMHUnexpected
	DropIPv6Chain
	// Tunnels and route optimisation on the data path.
	DropTunnelMalformed
	DropTunnelUnknownSender
	DropTunnelTooBig
	DropTunnelNoRoom
	DropBicastDuplicate
	DropRONoRoom
	DropROMalformed
	DropRONotForUs
	DropHAONoBinding
	DropFragment
	// Binding Updates.
	DropBUUnauthenticated
	DropBUUnknownSPI
	DropBUBadAuthenticator
	DropBUReplayed
	DropBUNotAuthorised
	DropBUSeqOutOfWindow
	DropBUIncomplete
	DropBUNonceExpired
	DropBUNoAnchor
	// Binding Acknowledgements and tests at the mobile node.
	DropBABadAuthenticator
	DropBRRUnauthenticated
	DropBAStale
	DropBAUnexpected
	DropRRUnexpectedTest
	DropRRBadCookie
	DropAnchorUnexpectedBA
	DropAnchorBadBA
	DropAnchorNotReady
	// The paper's MN Authentication, at each of its three nodes.
	DropMNAuthWithoutAH
	DropMNAuthAHUnknownSPI
	DropMNAuthAHReplay
	DropMNAuthAHBad
	DropMNAuthAHWrongSender
	DropMNAuthAHSeqExhausted
	DropMNAuthMalformed
	DropMNAuthNotOnLink
	DropMNAuthForeignCareOf
	DropMNAuthIncomplete
	DropMNAuthUnknownHomeAgent
	DropMNAuthUnmatchedReply
	DropMNAuthNoKey
	DropMNAuthKeyDoesNotOpen
	DropMNAuthUnknownMN
	DropMNAuthBadAuthenticator
	DropMNAuthReplayed
	DropMNAuthNotAuthorised
	DropMNAuthSealFailed
	DropMNAuthUnexpectedReply
	DropMNAuthBadReply
	DropHA2RAnchorsFull
	numDrops
)

var dropNames = [numDrops]string{
	DropMHMalformed: "mh.malformed", DropMHChecksum: "mh.checksum", DropMHParamProblem: "mh.param_problem",
	DropMHUnknownType: "mh.unknown_type", DropMHUnexpected: "mh.unexpected", DropIPv6Chain: "ipv6.chain",
	DropTunnelMalformed: "tunnel.malformed", DropTunnelUnknownSender: "tunnel.unknown_sender",
	DropTunnelTooBig: "tunnel.too_big", DropTunnelNoRoom: "tunnel.no_room", DropBicastDuplicate: "tunnel.bicast_duplicate", DropRONoRoom: "ro.no_room",
	DropROMalformed: "ro.malformed", DropRONotForUs: "ro.not_for_us", DropHAONoBinding: "hao.no_binding", DropFragment: "fragment.invalid",
	DropBUUnauthenticated: "bu.unauthenticated", DropBUUnknownSPI: "bu.unknown_spi",
	DropBUBadAuthenticator: "bu.bad_authenticator", DropBUReplayed: "bu.replayed",
	DropBUNotAuthorised: "bu.not_authorised", DropBUSeqOutOfWindow: "bu.seq_out_of_window",
	DropBUIncomplete: "bu.incomplete", DropBUNonceExpired: "bu.nonce_expired", DropBUNoAnchor: "bu.no_anchor",
	DropBABadAuthenticator: "ba.bad_authenticator", DropBRRUnauthenticated: "brr.unauthenticated", DropBAStale: "ba.stale", DropBAUnexpected: "ba.unexpected",
	DropRRUnexpectedTest: "rr.unexpected_test", DropRRBadCookie: "rr.bad_cookie",
	DropAnchorUnexpectedBA: "anchor.unexpected_ba", DropAnchorBadBA: "anchor.bad_ba", DropAnchorNotReady: "anchor.not_ready",
	DropMNAuthWithoutAH: "mnauth.without_ah", DropMNAuthAHUnknownSPI: "mnauth.ah_unknown_spi",
	DropMNAuthAHReplay: "mnauth.ah_replay", DropMNAuthAHBad: "mnauth.ah_bad",
	DropMNAuthAHWrongSender: "mnauth.ah_wrong_sender", DropMNAuthAHSeqExhausted: "mnauth.ah_seq_exhausted",
	DropMNAuthMalformed: "mnauth.malformed", DropMNAuthNotOnLink: "mnauth.not_on_link",
	DropMNAuthForeignCareOf: "mnauth.foreign_care_of", DropMNAuthIncomplete: "mnauth.incomplete",
	DropMNAuthUnknownHomeAgent: "mnauth.unknown_home_agent", DropMNAuthUnmatchedReply: "mnauth.unmatched_reply",
	DropMNAuthNoKey: "mnauth.no_key", DropMNAuthKeyDoesNotOpen: "mnauth.key_does_not_open",
	DropMNAuthUnknownMN: "mnauth.unknown_mn", DropMNAuthBadAuthenticator: "mnauth.bad_authenticator",
	DropMNAuthReplayed: "mnauth.replayed", DropMNAuthNotAuthorised: "mnauth.not_authorised",
	DropMNAuthSealFailed: "mnauth.seal_failed", DropMNAuthUnexpectedReply: "mnauth.unexpected_reply",
	DropMNAuthBadReply: "mnauth.bad_reply", DropHA2RAnchorsFull: "ha2r.anchors_full",
}

func (d Drop) String() string { return dropNames[d] }
