package mobility

import (
	"errors"
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
	h   *overlay.Host
	cn  *Correspondent
	sig *Signals
}

// NewCorrespondentHost installs the correspondent role on h.
func NewCorrespondentHost(h *overlay.Host, sig *Signals, log *slog.Logger) *CorrespondentHost {
	if log == nil {
		log = slog.Default()
	}
	c := &CorrespondentHost{h: h, sig: sig}
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
	d := p.Data()
	var ch ip6.Chain
	if err := ip6.Walk(d, &ch); err != nil {
		return overlay.Continue
	}
	if ch.Upper == ip6.ProtoMH {
		var m mh.Message
		info, err := mh.ParsePacket(d, &m)
		switch {
		case errors.Is(err, mh.ErrUnknownType):
			c.sig.Drop("mh.unknown_type")
			c.cn.sendBindingError(ip6.Header(d).Src(), mh.BEUnknownMHType, netip.Addr{})
		case err != nil:
			c.sig.Drop("mh.malformed")
		case !c.cn.HandleMH(d, info, &m):
			c.sig.Received(MsgName(&m, false), d)
			c.sig.Drop("mh.unexpected")
		}
		return overlay.Consumed
	}
	if ch.Upper == ip6.ProtoICMPv6 && ch.UpperOff+8+ip6.HeaderLen <= len(d) && d[ch.UpperOff] == 1 {
		c.forgetUnreachable(d[ch.UpperOff+8:])
	}
	if ch.N == 0 {
		return overlay.Continue
	}
	info, err := unrouteOptimise(p)
	if err != nil {
		c.sig.Drop("ro.malformed")
		return overlay.Consumed
	}
	if info.routedTo.IsValid() {
		c.sig.Drop("ro.not_for_us") // a fixed host has no home address
		return overlay.Consumed
	}
	if info.homeAddress.IsValid() {
		if !c.cn.CheckHomeAddress(d, info.homeAddress, info.careOf) {
			return overlay.Consumed
		}
		c.sig.Add("ro.in", 1)
	}
	return overlay.Continue
}

// forgetUnreachable drops the binding of a mobile node whose care-of address
// an ICMPv6 error reports unreachable (RFC 6275 9.3.2).
func (c *CorrespondentHost) forgetUnreachable(quoted []byte) {
	var ch ip6.Chain
	ip6.Walk(quoted, &ch)
	for i := 0; i < ch.N; i++ {
		e := ch.Headers[i]
		if e.Proto == ip6.ProtoRouting && e.Off+e.Len <= len(quoted) {
			if home, _, err := mh.ParseRH2(quoted[e.Off : e.Off+e.Len]); err == nil {
				c.cn.ForgetPeer(home)
			}
		}
	}
}
