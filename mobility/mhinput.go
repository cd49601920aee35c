package mobility

import (
	"errors"
	"net/netip"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"golang.org/x/time/rate"
)

// errorReplies is how a node answers signalling it cannot accept: Binding
// Errors (RFC 6275 9.3.3) and ICMPv6 Parameter Problems (9.2). Both are
// rate limited as ICMPv6 errors are (RFC 4443 2.4 (f); 9.3.3 asks the same
// of Binding Errors), and never sent to a multicast or unspecified source.
type errorReplies struct {
	self  func() netip.Addr
	send  func([]byte)
	clk   clock.Clock
	limit *rate.Limiter
	sig   *Signals
}

// Binding Errors and Parameter Problems a node sends: 10 a second with a
// burst of 10, which answers a confused peer and starves a flood.
const (
	errorReplyRate  = 10
	errorReplyBurst = 10
)

func newErrorReplies(self func() netip.Addr, send func([]byte), clk clock.Clock, sig *Signals) *errorReplies {
	return &errorReplies{self: self, send: send, clk: clk, limit: rate.NewLimiter(errorReplyRate, errorReplyBurst), sig: sig}
}

func (e *errorReplies) allow(to netip.Addr) bool {
	if !to.IsValid() || to.IsMulticast() || to.IsUnspecified() || to.IsLoopback() {
		return false
	}
	if !e.limit.AllowN(e.clk.Now(), 1) {
		e.sig.Add("mobility.errors.ratelimited", 1)
		return false
	}
	return true
}

// bindingError sends a Binding Error with status to to (status 1: no
// binding for the Home Address option's home; 2: unknown MH type).
func (e *errorReplies) bindingError(to netip.Addr, status uint8, home netip.Addr) {
	if !e.allow(to) {
		return
	}
	be := &mh.Message{Type: mh.TypeBE, Status: status, Address: home}
	if !home.IsValid() {
		be.Address = netip.IPv6Unspecified()
	}
	out := mh.BuildPacket(mh.Addressing{Src: e.self(), Dst: to}, 64, be, nil)
	e.sig.Sent("BE", out)
	e.send(out)
}

// paramProblem sends an ICMPv6 Parameter Problem (code 0) about invoking,
// pointing at byte pointer of it.
func (e *errorReplies) paramProblem(pointer int, invoking []byte) {
	if !e.allow(ip6.Header(invoking).Src()) || !ip6.MayAnswerWithError(invoking, ip6.ICMPParamProblem) {
		return
	}
	e.send(ip6.ICMPError(ip6.ICMPParamProblem, ip6.CodeErrHeaderFld, uint32(pointer), e.self(), invoking))
}

// receiveMH is the one place a node takes in a Mobility Header message. It
// parses pkt into m and, when the message is malformed, applies the
// reaction RFC 6275 9.2 prescribes (mh's package comment has the table):
// a bad checksum or a malformed body is dropped silently, a wrong Payload
// Proto or too short a Header Len gets a Parameter Problem, an unknown MH
// type a Binding Error with status 2. It reports whether m is usable.
func receiveMH(pkt []byte, m *mh.Message, sig *Signals, errs *errorReplies) (mh.PacketInfo, bool) {
	info, err := mh.ParsePacket(pkt, m)
	if err == nil {
		return info, true
	}
	switch {
	case errors.Is(err, mh.ErrChecksum):
		sig.Drop(DropMHChecksum)
	case errors.Is(err, mh.ErrUnknownType):
		sig.Drop(DropMHUnknownType)
		errs.bindingError(ip6.Header(pkt).Src(), mh.BEUnknownMHType, netip.Addr{})
	default:
		if ptr, ok := mh.ParamProblemPointer(err); ok {
			sig.Drop(DropMHParamProblem)
			errs.paramProblem(info.MHOff+ptr, pkt)
			return info, false
		}
		sig.Drop(DropMHMalformed)
	}
	return info, false
}
