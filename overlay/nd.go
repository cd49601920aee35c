package overlay

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/mdlayher/ndp"
)

// Neighbour discovery on overlay links (RFC 4861, RFC 4862). The messages are
// built and parsed with github.com/mdlayher/ndp; this file adds the IPv6
// header, the checksum and the validity checks of RFC 4861 section 6.1 and 7.1.

// ICMPv6 types used on links.
const (
	icmpDstUnreach   = 1
	icmpPacketTooBig = 2
	icmpTimeExceeded = 3
	icmpParamProblem = 4
	icmpEchoRequest  = 128
	icmpEchoReply    = 129
	icmpRS           = 133
	icmpRA           = 134
	icmpNS           = 135
	icmpNA           = 136
	icmpRedirect     = 137
)

// StableIID derives the interface identifier a node uses on a prefix, in the
// manner of RFC 7217: a pseudo-random function of the prefix and the node's
// identity, so a node that returns to a link gets the same address and
// different links give unlinkable ones.
func StableIID(node string, prefix netip.Prefix) [8]byte {
	m := hmac.New(sha256.New, []byte("mip6 stable interface identifier"))
	p := prefix.Masked().Addr().As16()
	m.Write(p[:8])
	m.Write([]byte(node))
	var iid [8]byte
	copy(iid[:], m.Sum(nil))
	// Keep clear of the reserved ranges of RFC 5453 (subnet-router anycast,
	// the reserved subnet anycast block) and of ::1, which routers use.
	if iid == [8]byte{} || (iid[0] == 0xfd && iid[1] == 0xff && iid[2] == 0xff && iid[3] == 0xff && iid[4] == 0xff && iid[5] == 0xff && iid[6] == 0xff) {
		iid[7] ^= 0x5a
	}
	if iid == [8]byte{7: 1} {
		iid[0] = 0x02
	}
	return iid
}

// AddrFromIID combines a /64 prefix and an interface identifier.
func AddrFromIID(prefix netip.Prefix, iid [8]byte) netip.Addr {
	a := prefix.Masked().Addr().As16()
	copy(a[8:], iid[:])
	return netip.AddrFrom16(a)
}

// LinkLocal returns the link-local address a node uses on a link.
func LinkLocal(node, link string) netip.Addr {
	return AddrFromIID(netip.MustParsePrefix("fe80::/64"), StableIID(node+"\x00"+link, netip.MustParsePrefix("fe80::/64")))
}

// buildND wraps an ND message into an IPv6 packet with hop limit 255.
func buildND(m ndp.Message, src, dst netip.Addr) ([]byte, error) {
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("building %T: %w", m, err)
	}
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 255, Src: src, Dst: dst}, body), nil
}

func lladdrOption(dir ndp.Direction, a LinkAddr) *ndp.LinkLayerAddress {
	return &ndp.LinkLayerAddress{Direction: dir, Addr: net.HardwareAddr(a[:])}
}

// RAParams is what a router advertises on a link.
type RAParams struct {
	Prefix   netip.Prefix
	MTU      int
	Router   LinkAddr
	Lifetime time.Duration
}

func buildRA(p RAParams, src, dst netip.Addr) ([]byte, error) {
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit: 64,
		RouterLifetime:  p.Lifetime,
		Options: []ndp.Option{
			lladdrOption(ndp.Source, p.Router),
			ndp.NewMTU(uint32(p.MTU)),
			&ndp.PrefixInformation{
				PrefixLength: uint8(p.Prefix.Bits()),
				// Not on-link: the overlay link is hub-and-spoke, so hosts
				// reach each other through the router (RFC 4861 section 4.6.2).
				OnLink:                         false,
				AutonomousAddressConfiguration: true,
				ValidLifetime:                  24 * time.Hour,
				PreferredLifetime:              4 * time.Hour,
				Prefix:                         p.Prefix.Masked().Addr(),
			},
		},
	}
	return buildND(ra, src, dst)
}

func buildRS(src netip.Addr, ll LinkAddr) ([]byte, error) {
	rs := &ndp.RouterSolicitation{}
	if !src.IsUnspecified() {
		rs.Options = []ndp.Option{lladdrOption(ndp.Source, ll)}
	}
	return buildND(rs, src, ip6.AllRouters)
}

func buildNS(target, src netip.Addr, ll LinkAddr, unicast netip.Addr) ([]byte, error) {
	dst := ip6.SolicitedNode(target)
	if unicast.IsValid() {
		dst = unicast
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{lladdrOption(ndp.Source, ll)}}
	return buildND(ns, src, dst)
}

func buildNA(target, dst netip.Addr, ll LinkAddr, router, solicited bool) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Router: router, Solicited: solicited, Override: true,
		TargetAddress: target,
		Options:       []ndp.Option{lladdrOption(ndp.Target, ll)},
	}
	return buildND(na, target, dst)
}

// ND validation errors.
var (
	errNDHopLimit = errors.New("nd: hop limit is not 255")
	errNDChecksum = errors.New("nd: bad ICMPv6 checksum")
	errNDCode     = errors.New("nd: ICMPv6 code is not 0")
	errNDTarget   = errors.New("nd: target is multicast")
	errNDSource   = errors.New("nd: option not allowed with unspecified source")
)

// parseND validates an ICMPv6 ND packet (RFC 4861 sections 6.1.1, 6.1.2,
// 7.1.1, 7.1.2) and decodes it. pkt is a whole checked IPv6 packet whose next
// header is ICMPv6.
func parseND(pkt []byte) (ndp.Message, error) {
	h := ip6.Header(pkt)
	if h.HopLimit() != 255 {
		return nil, errNDHopLimit
	}
	body := pkt[ip6.HeaderLen:]
	if len(body) < 8 {
		return nil, ip6.ErrTruncated
	}
	if body[1] != 0 {
		return nil, errNDCode
	}
	if ip6.Fold(ip6.Sum(body, ip6.PseudoHeaderSum(h.Src(), h.Dst(), ip6.ProtoICMPv6, len(body)))) != 0 {
		return nil, errNDChecksum
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		return nil, fmt.Errorf("nd: %w", err)
	}
	switch v := m.(type) {
	case *ndp.NeighborSolicitation:
		if v.TargetAddress.IsMulticast() {
			return nil, errNDTarget
		}
		if h.Src().IsUnspecified() && sourceLL(v.Options) != nil {
			return nil, errNDSource
		}
	case *ndp.NeighborAdvertisement:
		if v.TargetAddress.IsMulticast() {
			return nil, errNDTarget
		}
	case *ndp.RouterSolicitation:
		if h.Src().IsUnspecified() && sourceLL(v.Options) != nil {
			return nil, errNDSource
		}
	case *ndp.RouterAdvertisement:
		if !ip6.IsLinkLocal(h.Src()) {
			return nil, errors.New("nd: router advertisement from a non-link-local source")
		}
	}
	return m, nil
}

func sourceLL(opts []ndp.Option) *ndp.LinkLayerAddress {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Source {
			return l
		}
	}
	return nil
}

func targetLL(opts []ndp.Option) *ndp.LinkLayerAddress {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
			return l
		}
	}
	return nil
}

func toLinkAddr(l *ndp.LinkLayerAddress) (LinkAddr, bool) {
	var a LinkAddr
	if l == nil || len(l.Addr) != 6 {
		return a, false
	}
	copy(a[:], l.Addr)
	return a, true
}
