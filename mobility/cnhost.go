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
	cn  *Correspondent
	sig *Signals
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
	c := &CorrespondentHost{sig: sig}
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

// Outbound sends packets to bound mobile nodes route-optimised.
func (c *CorrespondentHost) Outbound(p *overlay.Packet) overlay.Verdict {
	c.cn.RouteTo(p)
	return overlay.Continue
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
	if ch.Upper == ip6.ProtoICMPv6 && ch.UpperOff < len(d) && d[ch.UpperOff] == ip6.ICMPDstUnreach {
		if quoted, ok := ip6.QuotedPacket(d[ch.UpperOff:]); ok {
			c.cn.forgetUnreachable(quoted)
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
