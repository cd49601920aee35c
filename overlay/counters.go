package overlay

import (
	"strconv"
	"sync/atomic"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
)

// DropReason says why a router or host dropped a frame or packet. Each has a
// counter, "drop.<name>", resolved once when the node is built, so that the
// data path counts with one atomic add and no map lookup.
type DropReason uint8

const (
	DropFrameShort DropReason = iota
	DropFrameMagic
	DropFrameVersion
	DropFrameFlags
	DropFrameType
	DropFrameNotIPv6
	DropIPv6Malformed
	DropIPv6Chain
	DropLinkUnknown
	DropPeerUnknown
	DropIngress
	DropMulticast
	DropScope
	DropNoRoute
	DropHopLimit
	DropTooBig
	DropNeighbourUnresolved
	DropNeighbourQueueFull
	DropNDInvalid
	DropLocalUnhandled
	DropUnderlaySend
	DropTunWrite
	DropLoop
	DropNotAttached
	DropTunRead
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropFrameShort: "frame.short", DropFrameMagic: "frame.magic", DropFrameVersion: "frame.version",
	DropFrameFlags: "frame.flags", DropFrameType: "frame.type", DropFrameNotIPv6: "frame.not_ipv6",
	DropIPv6Malformed: "ipv6.malformed", DropIPv6Chain: "ipv6.chain", DropLinkUnknown: "link.unknown",
	DropPeerUnknown: "peer.unknown", DropIngress: "ingress", DropMulticast: "multicast", DropScope: "scope",
	DropNoRoute: "no_route", DropHopLimit: "hop_limit", DropTooBig: "too_big",
	DropNeighbourUnresolved: "neighbour.unresolved", DropNeighbourQueueFull: "neighbour.queue_full",
	DropNDInvalid: "nd.invalid", DropLocalUnhandled: "local.unhandled", DropUnderlaySend: "underlay.send",
	DropTunWrite: "tun.write", DropLoop: "loop", DropNotAttached: "not_attached",
	DropTunRead: "tun.read_segments",
}

func (r DropReason) String() string { return dropNames[r] }

// frameDrop maps a ParseFrame error to its drop reason.
func frameDrop(err error) DropReason {
	switch err {
	case ErrShortFrame:
		return DropFrameShort
	case ErrBadMagic:
		return DropFrameMagic
	case ErrVersion:
		return DropFrameVersion
	case ErrFlags:
		return DropFrameFlags
	case ErrFrameType:
		return DropFrameType
	}
	return DropFrameNotIPv6
}

// icmpCounted are the ICMPv6 errors a node sends, each counted as
// icmp.out.TYPE.CODE.
var icmpCounted = [...]struct{ typ, code uint8 }{
	{ip6.ICMPDstUnreach, ip6.CodeNoRoute}, {ip6.ICMPDstUnreach, ip6.CodeAddrUnreach},
	{ip6.ICMPDstUnreach, ip6.CodePortUnreach}, {ip6.ICMPDstUnreach, ip6.CodeAdminProhib},
	{ip6.ICMPPacketTooBig, 0}, {ip6.ICMPTimeExceeded, ip6.CodeHopLimit},
	{ip6.ICMPParamProblem, ip6.CodeErrHeaderFld}, {ip6.ICMPParamProblem, ip6.CodeUnrecNextHdr},
}

// counters are a node's data-path counters, shared by Router and Host.
type counters struct {
	framesIn, framesOut, fromTun, toTun *atomic.Uint64
	forwarded, local, keepIn, keepOut   *atomic.Uint64
	icmpSent, icmpLimited, icmpOther    *atomic.Uint64
	icmpOut                             [len(icmpCounted)]*atomic.Uint64
	drop                                [numDropReasons]*atomic.Uint64
	loopStopped                         *atomic.Uint64
	outcome                             [numOutcomes]*atomic.Uint64
	unsettled, settledTwice             *atomic.Uint64
}

func newCounters(m *metrics.Set) *counters {
	c := &counters{
		framesIn: m.Counter("frames.in"), framesOut: m.Counter("frames.out"),
		fromTun: m.Counter("packets.from_tun"), toTun: m.Counter("packets.to_tun"),
		forwarded: m.Counter("packets.forwarded"), local: m.Counter("packets.local"),
		keepIn: m.Counter("keepalive.in"), keepOut: m.Counter("keepalive.out"),
		icmpSent: m.Counter("icmp.errors.sent"), icmpLimited: m.Counter("icmp.errors.ratelimited"),
		icmpOther:   m.Counter("icmp.out.other"),
		loopStopped: m.Counter("loop.stopped"),
	}
	for i, tc := range icmpCounted {
		c.icmpOut[i] = m.Counter("icmp.out." + strconv.Itoa(int(tc.typ)) + "." + strconv.Itoa(int(tc.code)))
	}
	for o := range numOutcomes {
		c.outcome[o] = m.Counter("outcome." + outcomeNames[o])
	}
	c.unsettled, c.settledTwice = m.Counter("frames.unsettled"), m.Counter("frames.settled_twice")
	for r := range numDropReasons {
		c.drop[r] = m.Counter("drop." + dropNames[r])
	}
	return c
}

func (c *counters) dropped(r DropReason, n int) { c.drop[r].Add(uint64(n)) }

// icmp counts an ICMPv6 error sent.
func (c *counters) icmp(typ, code uint8) {
	c.icmpSent.Add(1)
	for i, tc := range icmpCounted {
		if tc.typ == typ && tc.code == code {
			c.icmpOut[i].Add(1)
			return
		}
	}
	c.icmpOther.Add(1)
}
