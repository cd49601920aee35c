package overlay

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
)

// hostRx is the state of a host's underlay receive loop.
type hostRx struct {
	pkt   Packet
	toTun [][]byte
	nd    ndBuilder
}

// hostTx is the state of a host's TUN loop.
type hostTx struct {
	pkt Packet
	out [][]byte
}

// receiveBatch processes one batch of frames from the current router.
func (h *Host) receiveBatch(st *hostRx, bufs [][]byte, sizes []int, n int) {
	s := h.cur.Load()
	var now time.Time
	if h.tap.Tapping() {
		now = h.clk.Now()
	}
	p := &st.pkt
	heard := false // a frame from the current link (dead path detection)
	defer func() {
		if heard {
			h.lastRx.Store(h.clk.Now().UnixNano())
		}
	}()
	for i := 0; i < n; i++ {
		var fh FrameHeader
		if _, err := ParseFrame(bufs[i][Headroom:Headroom+sizes[i]], &fh); err != nil {
			h.c.dropped(frameDrop(err), 1)
			continue
		}
		ls := h.heardState(fh.LinkID, s)
		heard = heard || ls != nil && ls == s
		if ls == nil {
			h.c.dropped(DropNotAttached, 1)
			if s != nil {
				h.strayFrame(fh.LinkID, s.epoch)
			}
			continue
		}
		if fh.Type != FrameTypePacket {
			continue
		}
		p.Set(bufs[i], Headroom+FrameHeaderLen, sizes[i]-FrameHeaderLen)
		data, err := ip6.Check(p.Data())
		if err != nil {
			h.c.dropped(DropIPv6Malformed, 1)
			continue
		}
		p.Trim(len(data))
		if h.tap.Tapping() {
			h.tap.see(In, fh.LinkID, now, data)
		}
		if isND(data) {
			h.handleND(st, data, ls)
			s = h.cur.Load()
			continue
		}
		if hb := h.hook.Load(); hb != nil {
			if hb.h.Inbound(p) == Consumed {
				continue
			}
		}
		if h.dev != nil {
			st.toTun = append(st.toTun, p.Buf[p.Off-FrameHeaderLen:p.Off+p.Len])
		}
	}
	if len(st.toTun) > 0 {
		if _, err := h.dev.Write(st.toTun, FrameHeaderLen); err != nil {
			h.c.dropped(DropTunWrite, len(st.toTun))
		} else {
			h.c.toTun.Add(uint64(len(st.toTun)))
		}
		clear(st.toTun)
		st.toTun = st.toTun[:0]
	}
}

// handleND processes neighbour discovery from the current router.
func (h *Host) handleND(st *hostRx, pkt []byte, s *hostState) {
	var m ndMsg
	if err := parseND(pkt, &m); err != nil {
		h.c.dropped(DropNDInvalid, 1)
		return
	}
	switch m.typ {
	case ip6.ICMPRouterAdv:
		h.m.Add("nd.ra.in", 1)
		h.handleRA(&m, ip6.Header(pkt).Src(), s)
	case ip6.ICMPNeighborSol:
		h.m.Add("nd.ns.in", 1)
		if !h.isMine(m.target, s) {
			return
		}
		src := ip6.Header(pkt).Src()
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		h.m.Add("nd.na.out", 1)
		st.nd.na(m.target, dst, h.ll, false, !src.IsUnspecified())
		h.sendFrame(s, st.nd.packet())
	default:
		h.m.Add("nd.other.in", 1)
	}
}

// isMine reports whether the host answers for a on the current link: its
// link-local and the address it formed there.
func (h *Host) isMine(a netip.Addr, s *hostState) bool {
	if a == LinkLocal(h.cfg.Name, s.link.Name) {
		return true
	}
	return s.att != nil && s.att.Address == a
}

// handleRA completes an attach, or notices a new router or prefix on the
// current link (movement detection, RFC 6275 11.5.1).
func (h *Host) handleRA(ra *ndMsg, from netip.Addr, s *hostState) {
	if !ra.prefix.IsValid() {
		h.c.dropped(DropNDInvalid, 1)
		return
	}
	prefix := ra.prefix
	if s.att != nil && s.att.Prefix == prefix && s.att.RouterLL == from {
		return // a periodic advertisement: nothing changed
	}
	addr := AddrFromIID(prefix, StableIID(h.cfg.Name, prefix))
	if h.cfg.StaticAddr.IsValid() && prefix.Contains(h.cfg.StaticAddr) {
		addr = h.cfg.StaticAddr
	}
	att := &Attachment{Link: s.link, Prefix: prefix, Address: addr, RouterLL: from, MTU: ra.mtu, At: h.clk.Now()}
	h.mu.Lock()
	var subs []func(Attachment)
	switch {
	case h.next.Load() == s: // the link being prepared
		att.Prepared, att.Standby = true, s.standby
		h.settle(s, &h.next, &h.nextRS, att)
		subs = append(subs, h.onPrepared...)
	case h.cur.Load() == s:
		h.settle(s, &h.cur, &h.rsTimer, att)
		subs = append(subs, h.onAttach...)
	default: // moved on meanwhile
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	if att.Prepared {
		h.m.Add("attach.prepared", 1)
		h.log.Info("prepared", "link", s.link.Name, "prefix", prefix, "address", addr)
	} else {
		h.m.Add("attach.completed", 1)
		h.log.Info("attached", "link", s.link.Name, "prefix", prefix, "address", addr)
		if h.cfg.ManageAddresses && h.dev != nil {
			h.manageAddress(att)
		}
	}
	for _, f := range subs {
		f(*att)
	}
}

// settle records att, the attachment s's router answered, in slot (the
// current link's state, or the prepared link's), stops that slot's
// solicitations, and announces the address at once so the router need not
// resolve it. Call with mu held.
func (h *Host) settle(s *hostState, slot *atomic.Pointer[hostState], rs *clock.Timer, att *Attachment) {
	h.seq++
	att.Seq = h.seq
	slot.Store(&hostState{link: s.link, epoch: s.epoch, att: att, standby: s.standby})
	if *rs != nil {
		(*rs).Stop()
		*rs = nil
	}
	h.m.Add("nd.na.out", 1)
	h.sendFrame(s, h.ctl.na(att.Address, ip6.AllNodes, h.ll, false, false))
}

// manageAddress keeps exactly the current link's address on the device.
func (h *Host) manageAddress(cur *Attachment) {
	if err := h.dev.AddAddress(netip.PrefixFrom(cur.Address, 64), true); err != nil {
		h.log.Error("adding address", "addr", cur.Address, "err", err)
	}
	for _, a := range h.dev.Addresses() {
		if a.Prefix.Addr() != cur.Address && a.Prefix.Addr() != h.cfg.StaticAddr {
			h.dev.RemoveAddress(a.Prefix.Addr())
		}
	}
}

// tunBatch carries a batch of applications' packets to the current router.
func (h *Host) tunBatch(st *hostTx, bufs [][]byte, sizes []int, n int) {
	next, s, prev := h.attachments()
	if s == nil || s.att == nil {
		h.c.dropped(DropNotAttached, n)
		return
	}
	fh := FrameHeader{Type: FrameTypePacket, LinkID: s.link.ID, Src: h.ll, Epoch: s.epoch}
	hb := h.hook.Load()
	var now time.Time
	if h.tap.Tapping() {
		now = h.clk.Now()
	}
	p := &st.pkt
	for i := 0; i < n; i++ {
		p.Set(bufs[i], Headroom, sizes[i])
		data, err := ip6.Check(p.Data())
		if err != nil {
			h.c.dropped(DropIPv6Malformed, 1)
			continue
		}
		p.Trim(len(data))
		if p.Header().Dst().IsMulticast() {
			h.c.dropped(DropMulticast, 1)
			continue
		}
		if hb != nil && hb.h.Outbound(p) == Consumed {
			continue
		}
		ls := linkFor(p.Header().Src(), s, next, prev)
		if ls.att.MTU > 0 && p.Len > ls.att.MTU {
			// Tell the local stack, as a kernel would for its own link.
			h.c.dropped(DropTooBig, 1)
			if ip6.MayAnswerWithError(p.Data(), ip6.ICMPPacketTooBig) {
				h.Deliver(ip6.ICMPError(ip6.ICMPPacketTooBig, 0, uint32(ls.att.MTU), ls.att.RouterLL, p.Data()))
			}
			continue
		}
		if ls != s {
			// From the address of another link (prepared, or left): by it.
			h.sendFrame(ls, p.Data())
			continue
		}
		if h.tap.Tapping() {
			h.tap.see(Out, s.link.ID, now, p.Data())
		}
		st.out = append(st.out, p.frame(&fh))
	}
	if len(st.out) > 0 {
		h.lastTx.Store(h.clk.Now().UnixNano())
		if err := h.bind.Send(st.out, s.link.Router); err != nil {
			h.c.dropped(DropUnderlaySend, len(st.out))
		} else {
			h.c.framesOut.Add(uint64(len(st.out)))
		}
		clear(st.out)
		st.out = st.out[:0]
	}
}
