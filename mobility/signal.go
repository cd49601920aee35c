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
// mh.in.BA.home, mh.out.bytes.BU, ...) and passes each message to an
// optional recorder.
type Signals struct {
	node string
	m    *metrics.Set
	clk  clock.Clock
	rec  atomic.Pointer[RecordFunc]
}

// NewSignals returns the signalling counters of node.
func NewSignals(node string, m *metrics.Set, clk clock.Clock) *Signals {
	return &Signals{node: node, m: m, clk: clk}
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

// Drop counts a refused or malformed message under a reason.
func (s *Signals) Drop(reason string) { s.m.Add("mobility.drop."+reason, 1) }

// Add counts anything else (tunnel.encap, ro.out, rr.started, ...).
func (s *Signals) Add(name string, n uint64) { s.m.Add(name, n) }

// Metrics exposes the node's counters.
func (s *Signals) Metrics() *metrics.Set { return s.m }
