package overlay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Neighbour discovery on overlay links (RFC 4861, RFC 4862). Messages are
// read through gVisor's NDP views (header.NDPRouterAdvert and friends) and
// a small option walker, and written into caller buffers, so that neither
// answering a solicitation nor learning from an advertisement allocates.

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

var linkLocalPrefix = netip.MustParsePrefix("fe80::/64")

// LinkLocal returns the link-local address a node uses on a link.
func LinkLocal(node, link string) netip.Addr {
	return AddrFromIID(linkLocalPrefix, StableIID(node+"\x00"+link, linkLocalPrefix))
}

// ND option types (RFC 4861 4.6).
const (
	ndOptSourceLL = 1
	ndOptTargetLL = 2
	ndOptPrefix   = 3
	ndOptMTU      = 5
)

// Fixed part of each message after the 4-byte ICMPv6 header: where its
// options start.
const (
	rsOptionsOff = 4
	raOptionsOff = 12
	nsOptionsOff = 20
	naOptionsOff = 20
)

// ndMsg is a decoded ND message: the fields the overlay uses.
type ndMsg struct {
	typ      uint8
	target   netip.Addr // NS, NA
	router   bool       // NA R flag
	srcLL    LinkAddr   // Source Link-Layer Address option
	hasSrcLL bool
	tgtLL    LinkAddr // Target Link-Layer Address option
	hasTgtLL bool
	// RA: the first autonomous /64 prefix with a valid lifetime, and the
	// advertised MTU (0 if absent).
	prefix netip.Prefix
	mtu    int
}

// ND validation errors.
var (
	errNDHopLimit = errors.New("nd: hop limit is not 255")
	errNDChecksum = errors.New("nd: bad ICMPv6 checksum")
	errNDCode     = errors.New("nd: ICMPv6 code is not 0")
	errNDShort    = errors.New("nd: message shorter than its type's fixed part")
	errNDOption   = errors.New("nd: option with zero length or running past the message")
	errNDTarget   = errors.New("nd: target is multicast")
	errNDSource   = errors.New("nd: source link-layer option with an unspecified source")
	errNDRASource = errors.New("nd: router advertisement from a non-link-local source")
	errNDType     = errors.New("nd: not a neighbour discovery message")
)

func toAddr(a tcpip.Address) netip.Addr { return netip.AddrFrom16(a.As16()) }

// parseND validates an ICMPv6 ND packet (RFC 4861 6.1.1, 6.1.2, 7.1.1,
// 7.1.2) and decodes it into m. pkt is a whole checked IPv6 packet with no
// extension headers whose next header is ICMPv6. It does not allocate.
func parseND(pkt []byte, m *ndMsg) error {
	*m = ndMsg{}
	h := ip6.Header(pkt)
	if h.HopLimit() != 255 {
		return errNDHopLimit
	}
	icmp := header.ICMPv6(pkt[ip6.HeaderLen:])
	if len(icmp) < header.ICMPv6MinimumSize {
		return errNDShort
	}
	if icmp.Code() != 0 {
		return errNDCode
	}
	if ip6.Fold(ip6.Sum(icmp, ip6.PseudoHeaderSum(h.Src(), h.Dst(), ip6.ProtoICMPv6, len(icmp)))) != 0 {
		return errNDChecksum
	}
	m.typ = uint8(icmp.Type())
	body := icmp.MessageBody()
	var opts []byte
	switch m.typ {
	case ip6.ICMPRouterSol:
		if len(body) < rsOptionsOff {
			return errNDShort
		}
		opts = header.NDPRouterSolicit(body).Options()
	case ip6.ICMPRouterAdv:
		if len(body) < raOptionsOff {
			return errNDShort
		}
		if !ip6.IsLinkLocal(h.Src()) {
			return errNDRASource
		}
		opts = header.NDPRouterAdvert(body).Options()
	case ip6.ICMPNeighborSol:
		if len(body) < nsOptionsOff {
			return errNDShort
		}
		ns := header.NDPNeighborSolicit(body)
		m.target = toAddr(ns.TargetAddress())
		opts = ns.Options()
	case ip6.ICMPNeighborAdv:
		if len(body) < naOptionsOff {
			return errNDShort
		}
		na := header.NDPNeighborAdvert(body)
		m.target, m.router = toAddr(na.TargetAddress()), na.RouterFlag()
		opts = na.Options()
	case ip6.ICMPRedirect:
		return nil // counted, not acted on
	default:
		return errNDType
	}
	if err := m.parseOptions(opts); err != nil {
		return err
	}
	if (m.typ == ip6.ICMPNeighborSol || m.typ == ip6.ICMPNeighborAdv) && m.target.IsMulticast() {
		return errNDTarget
	}
	if (m.typ == ip6.ICMPNeighborSol || m.typ == ip6.ICMPRouterSol) && h.Src().IsUnspecified() && m.hasSrcLL {
		return errNDSource
	}
	return nil
}

// parseOptions walks ND options (RFC 4861 4.6): a zero length or one that
// runs past the message invalidates the message; unknown options are
// skipped.
func (m *ndMsg) parseOptions(b []byte) error {
	for len(b) > 0 {
		if len(b) < 2 || b[1] == 0 || int(b[1])*8 > len(b) {
			return errNDOption
		}
		n := int(b[1]) * 8
		o := b[:n]
		switch o[0] {
		case ndOptSourceLL:
			if n == 8 && !m.hasSrcLL {
				copy(m.srcLL[:], o[2:8])
				m.hasSrcLL = true
			}
		case ndOptTargetLL:
			if n == 8 && !m.hasTgtLL {
				copy(m.tgtLL[:], o[2:8])
				m.hasTgtLL = true
			}
		case ndOptPrefix:
			pi := header.NDPPrefixInformation(o[2:])
			if n == 32 && !m.prefix.IsValid() && pi.AutonomousAddressConfigurationFlag() && pi.PrefixLength() == 64 && pi.ValidLifetime() > 0 {
				m.prefix = netip.PrefixFrom(toAddr(pi.Prefix()), 64).Masked()
			}
		case ndOptMTU:
			if n == 8 {
				m.mtu = int(binary.BigEndian.Uint32(o[4:8]))
			}
		}
		b = b[n:]
	}
	return nil
}

// ndBuilder writes ND packets into a reusable buffer, behind room for the
// frame header, so that building and sending one does not allocate once the
// buffer has grown to size.
type ndBuilder struct{ buf []byte }

// start begins an ND packet of ICMPv6 type typ from src to dst, with the
// message's fixed part (after the ICMPv6 header) of fixed bytes, zeroed, and
// returns that fixed part.
func (w *ndBuilder) start(typ uint8, src, dst netip.Addr, fixed int) []byte {
	n := FrameHeaderLen + ip6.HeaderLen + header.ICMPv6HeaderSize + fixed
	if cap(w.buf) < n+64 {
		w.buf = make([]byte, n, n+64)
	}
	w.buf = w.buf[:n]
	clear(w.buf)
	pkt := w.packet()
	ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: 255, Src: src, Dst: dst}.Put(pkt)
	pkt[ip6.HeaderLen] = typ
	return pkt[ip6.HeaderLen+header.ICMPv6HeaderSize:]
}

// set makes the builder hold a copy of pkt (a packet built elsewhere).
func (w *ndBuilder) set(pkt []byte) {
	w.buf = append(append(w.buf[:0], make([]byte, FrameHeaderLen)...), pkt...)
}

// packet returns the packet being built.
func (w *ndBuilder) packet() []byte { return w.buf[FrameHeaderLen:] }

// frame writes h in front of the packet and returns the whole frame.
func (w *ndBuilder) frame(h *FrameHeader) []byte {
	h.Put(w.buf)
	return w.buf
}

func (w *ndBuilder) lladdr(typ uint8, a LinkAddr) {
	w.buf = append(w.buf, typ, 1)
	w.buf = append(w.buf, a[:]...)
}

// finish sets the payload length and checksum and returns the packet, which
// stays valid until the builder's next start.
func (w *ndBuilder) finish() []byte {
	pkt := w.packet()
	h := ip6.Header(pkt)
	h.SetPayloadLen(len(pkt) - ip6.HeaderLen)
	icmp := pkt[ip6.HeaderLen:]
	binary.BigEndian.PutUint16(icmp[2:4], ip6.Checksum(h.Src(), h.Dst(), ip6.ProtoICMPv6, icmp))
	return pkt
}

// RAParams is what a router advertises on a link.
type RAParams struct {
	Prefix   netip.Prefix
	MTU      int
	Router   LinkAddr
	Lifetime time.Duration
}

func (w *ndBuilder) ra(p RAParams, src, dst netip.Addr) []byte {
	body := w.start(ip6.ICMPRouterAdv, src, dst, raOptionsOff)
	body[0] = 64 // current hop limit
	binary.BigEndian.PutUint16(body[2:4], uint16(p.Lifetime/time.Second))
	w.lladdr(ndOptSourceLL, p.Router)
	w.buf = append(w.buf, ndOptMTU, 1, 0, 0)
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(p.MTU))
	// Prefix information, A set and L clear: the overlay link is
	// hub-and-spoke, so hosts reach each other through the router (RFC 4861
	// section 4.6.2).
	w.buf = append(w.buf, ndOptPrefix, 4, uint8(p.Prefix.Bits()), 0x40)
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32((24 * time.Hour).Seconds())) // valid
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32((4 * time.Hour).Seconds()))  // preferred
	w.buf = append(w.buf, 0, 0, 0, 0)
	a := p.Prefix.Masked().Addr().As16()
	w.buf = append(w.buf, a[:]...)
	return w.finish()
}

func (w *ndBuilder) rs(src netip.Addr, ll LinkAddr) []byte {
	w.start(ip6.ICMPRouterSol, src, ip6.AllRouters, rsOptionsOff)
	if !src.IsUnspecified() {
		w.lladdr(ndOptSourceLL, ll)
	}
	return w.finish()
}

// ns solicits target from src; the destination is target's solicited-node
// address unless unicast is valid.
func (w *ndBuilder) ns(target, src netip.Addr, ll LinkAddr, unicast netip.Addr) []byte {
	dst := ip6.SolicitedNode(target)
	if unicast.IsValid() {
		dst = unicast
	}
	body := w.start(ip6.ICMPNeighborSol, src, dst, nsOptionsOff)
	header.NDPNeighborSolicit(body).SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	w.lladdr(ndOptSourceLL, ll)
	return w.finish()
}

// na advertises target (with override) to dst.
func (w *ndBuilder) na(target, dst netip.Addr, ll LinkAddr, router, solicited bool) []byte {
	body := w.start(ip6.ICMPNeighborAdv, target, dst, naOptionsOff)
	na := header.NDPNeighborAdvert(body)
	na.SetTargetAddress(tcpip.AddrFrom16(target.As16()))
	na.SetRouterFlag(router)
	na.SetSolicitedFlag(solicited)
	na.SetOverrideFlag(true)
	w.lladdr(ndOptTargetLL, ll)
	return w.finish()
}

// isND reports whether a packet without extension headers is an ICMPv6
// neighbour discovery message (ND never carries extension headers).
func isND(pkt []byte) bool {
	h := ip6.Header(pkt)
	if h.NextHeader() != ip6.ProtoICMPv6 || len(pkt) <= ip6.HeaderLen {
		return false
	}
	return isNDType(pkt[ip6.HeaderLen])
}

func isNDType(t uint8) bool { return t >= ip6.ICMPRouterSol && t <= ip6.ICMPRedirect }
