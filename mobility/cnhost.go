package mobility

import (
	"log/slog"
	"net/netip"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
)

// CorrespondentHost puts the correspondent role on a fixed host: it answers
// Return Routability, keeps bindings, sends route-optimised packets with a
// type 2 routing header and accepts those with a Home Address option.
type CorrespondentHost struct {
	h     AttachedHost
	cn    *Correspondent
	sig   *Signals
	pmtu  *pathMTUs // of route-optimised paths to mobile nodes' care-of addresses
	frags *fragments
}

// AttachedHost is a host that knows its current address: a fixed
// correspondent answers from it.
type AttachedHost interface {
	HostPort
	Current() (overlay.Attachment, bool)
}

// NewCorrespondentHost installs the correspondent role on h.
func NewCorrespondentHost(h AttachedHost, sig *Signals, log *slog.Logger) *CorrespondentHost {
	if log == nil {
		log = slog.Default()
	}
	c := &CorrespondentHost{h: h, sig: sig, pmtu: newPathMTUs(h.Clock()), frags: newFragments(h.Clock(), sig)}
	self := func() netip.Addr {
		a, _ := h.Current()
		return a.Address
	}
	c.cn = NewCorrespondent(h.Clock(), sig, log.With("node", h.Name(), "role", "cn"), self, func(pkt []byte) {
		p := overlay.NewPacket(pkt)
		c.cn.RouteTo(p)
		h.Send(p.Data())
	})
	h.SetHook(c)
	return c
}

// Correspondent returns the role.
func (c *CorrespondentHost) Correspondent() *Correspondent { return c.cn }

// Close stops its timers.
func (c *CorrespondentHost) Close() { c.cn.Close() }

// Outbound sends packets to bound mobile nodes route-optimised, in
// fragments when the routing header makes one too big for the path (this
// host is the packet's source, so it may fragment it).
func (c *CorrespondentHost) Outbound(p *overlay.Packet) overlay.Verdict {
	unfrag, nextOff, ok := c.cn.RouteTo(p)
	if !ok {
		return overlay.Continue
	}
	mtu := 1 << 16
	if a, attached := c.h.Current(); attached && a.MTU > 0 {
		mtu = a.MTU
	}
	return fitPath(p, c.pmtu.get(p.Header().Dst(), mtu), unfrag, nextOff, c.frags, c.sig, func(b []byte) { c.h.Send(b) })
}

// Inbound processes signalling and route-optimised packets.
func (c *CorrespondentHost) Inbound(p *overlay.Packet) overlay.Verdict {
	ch, err := p.Chain()
	if err != nil {
		return overlay.Continue
	}
	d := p.Data()
	if ch.Upper == ip6.ProtoMH {
		var m mh.Message
		info, ok := receiveMH(d, &m, c.sig, c.cn.errs)
		if ok && !c.cn.HandleMH(d, info, &m) {
			c.sig.Received(MsgName(&m, false), d)
			c.sig.Drop(DropMHUnexpected)
		}
		return overlay.Consumed
	}
	if ch.Upper == ip6.ProtoICMPv6 && ch.UpperOff < len(d) {
		switch icmp := d[ch.UpperOff:]; icmp[0] {
		case ip6.ICMPDstUnreach:
			if quoted, ok := ip6.QuotedPacket(icmp); ok {
				c.cn.forgetUnreachable(quoted)
			}
		case ip6.ICMPPacketTooBig:
			learnRouteOptimisedMTU(icmp, c.pmtu)
		}
	}
	if ch.N == 0 {
		return overlay.Continue
	}
	info, err := unrouteOptimise(p)
	if err != nil {
		c.sig.Drop(DropROMalformed)
		return overlay.Consumed
	}
	if info.routedTo.IsValid() {
		c.sig.Drop(DropRONotForUs) // a fixed host has no home address
		return overlay.Consumed
	}
	if info.homeAddress.IsValid() {
		if !c.cn.CheckHomeAddress(d, info.homeAddress, info.careOf) {
			return overlay.Consumed
		}
		c.sig.roIn.Add(1)
	}
	return overlay.Continue
}
