//go:build linux

package overlay

import (
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgHeaders are the headers of one recvmmsg or sendmmsg call, built once
// and reused: a call sets only what changes (buffers, lengths, runs).
type mmsgHeaders struct {
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6 // receive: one per message; send: one
	control []byte                  // segmentControl bytes per message
	dgrams  []int                   // send: datagrams in each message

	// The call in progress, and the function the poller runs for it,
	// made once: a closure made per call escapes to the heap (two
	// allocations a call).
	msgs  []unix.Mmsghdr
	call  uintptr
	all   bool
	done  int
	errno syscall.Errno
	step  func(fd uintptr) bool
}

func newMmsgHeaders(msgs, iovs, names int) *mmsgHeaders {
	h := &mmsgHeaders{
		hdrs:    make([]unix.Mmsghdr, msgs),
		iovs:    make([]unix.Iovec, iovs),
		names:   make([]unix.RawSockaddrInet6, names),
		control: make([]byte, msgs*segmentControl),
		dgrams:  make([]int, msgs),
	}
	h.step = h.syscall
	return h
}

// newReceiveHeaders points each message at its own iovec, sender address
// and, with GRO, control space, once.
func newReceiveHeaders(gro bool) *mmsgHeaders {
	h := newMmsgHeaders(udpBatch, udpBatch, udpBatch)
	for i := range h.hdrs {
		m := &h.hdrs[i].Hdr
		m.Iov = &h.iovs[i]
		m.SetIovlen(1)
		m.Name = (*byte)(unsafe.Pointer(&h.names[i]))
		if gro {
			m.Control = &h.control[i*segmentControl]
		}
	}
	return h
}

// receiveFunc reads the socket. With GRO a datagram read may be a run of
// up to udpMaxSegments, so, as in wireguard-go, the read goes into the last
// len(bufs)/udpMaxSegments buffers and the runs are split forward into the
// others; without GRO every buffer takes a datagram.
func (s *udpSocket) receiveFunc() ReceiveFunc {
	h := newReceiveHeaders(s.rxOffload)
	return func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
		bufs = bufs[:min(len(bufs), udpBatch)]
		if len(bufs) == 0 {
			return 0, nil
		}
		first := 0
		if s.rxOffload {
			first = len(bufs) - max(1, len(bufs)/udpMaxSegments)
		}
		k := len(bufs) - first
		for i := range k {
			b := bufs[first+i]
			h.iovs[i].Base = unsafe.SliceData(b)
			h.iovs[i].SetLen(len(b))
			// The kernel wrote back the lengths it used.
			m := &h.hdrs[i].Hdr
			m.Namelen = unix.SizeofSockaddrInet6
			if s.rxOffload {
				m.SetControllen(segmentControl)
			}
		}
		n, err := s.mmsg(h, unix.SYS_RECVMMSG, h.hdrs[:k], false)
		if err != nil || n == 0 {
			return 0, err
		}
		if !s.rxOffload {
			for i := range n {
				sizes[i] = int(h.hdrs[i].Len)
				from[i] = udpAddrPort(&h.names[i])
			}
			return n, nil
		}
		return splitRuns(h, bufs, sizes, from, first, n), nil
	}
}

// splitRuns spreads the n datagrams read into bufs[first:] over bufs from
// the start, a GRO run into one buffer per datagram. Buffers are filled in
// order, so a run is copied only into buffers already delivered from or
// not read into (first >= the runs' datagrams, which the caller's choice of
// first ensures; a run that would not fit is cut rather than overwrite).
func splitRuns(h *mmsgHeaders, bufs [][]byte, sizes []int, from []netip.AddrPort, first, n int) int {
	out := 0
	for i := range n {
		slot := first + i
		m := &h.hdrs[i]
		size := int(m.Len)
		src := bufs[slot][:size]
		ap := udpAddrPort(&h.names[i])
		seg := size
		if cl := int(m.Hdr.Controllen); cl > 0 {
			if g := segmentSize(h.control[i*segmentControl : i*segmentControl+min(cl, segmentControl)]); g > 0 && g < size {
				seg = g
			}
		}
		for start := 0; ; start += seg {
			if out > slot && out < first+n || out >= len(bufs) {
				break // would overwrite a datagram not yet split
			}
			end := min(start+seg, size)
			if out != slot || start != 0 {
				copy(bufs[out], src[start:end])
			}
			sizes[out] = end - start
			from[out] = ap
			out++
			if end >= size {
				break
			}
		}
	}
	return out
}

// send writes bufs to one peer: each stretch of equal-sized datagrams (the
// last may be shorter) becomes one message whose iovecs the kernel gathers
// and segments (UDP_SEGMENT), when the kernel can.
func (s *udpSocket) send(bufs [][]byte, to netip.AddrPort) error {
	h, _ := s.sends.Get().(*mmsgHeaders)
	if h == nil || len(h.iovs) < len(bufs) {
		h = newMmsgHeaders(max(len(bufs), udpBatch), max(len(bufs), udpBatch), 1)
	}
	defer s.sends.Put(h)
	namelen := putSockaddr(&h.names[0], to, s.is6)
	gso := s.txOffload.Load()
	for len(bufs) > 0 {
		n := h.runs(bufs, gso, s.is6)
		for i := range n {
			m := &h.hdrs[i]
			m.Hdr.Name = (*byte)(unsafe.Pointer(&h.names[0]))
			m.Hdr.Namelen = namelen
		}
		done, err := s.mmsg(h, unix.SYS_SENDMMSG, h.hdrs[:n], true)
		if err == nil {
			return nil
		}
		if !gso || (err != unix.EIO && err != unix.EINVAL && err != unix.EMSGSIZE) {
			return fmt.Errorf("underlay: send to %s: %w", to, err)
		}
		if err == unix.EIO {
			// udp_send_skb refuses GSO when the device has no transmit
			// checksum offload: send each datagram alone from now on.
			s.txOffload.Store(false)
		}
		// EINVAL or EMSGSIZE: a run's datagrams are larger than the
		// path MTU, which GSO cannot fragment. Either way the rest goes
		// datagram by datagram.
		for i := range done {
			bufs = bufs[h.dgrams[i]:]
		}
		gso = false
	}
	return nil
}

// runs fills h's headers for bufs and returns how many messages they make.
// Datagrams that lie end to end in memory (package secure seals a batch
// into one arena) share an iovec: the kernel segments a run by its segment
// size, not by iovec, and each iovec is a user copy with its own set-up
// (BenchmarkUDPBind's burst: 489 to 465 ns a datagram).
func (h *mmsgHeaders) runs(bufs [][]byte, gso, is6 bool) int {
	maxPayload := maxUDPPayload4
	if is6 {
		maxPayload = maxUDPPayload6
	}
	n, v := 0, 0 // messages, iovecs
	var m *unix.Mmsghdr
	seg, count, total, first := 0, 0, 0, 0 // the run's: segment size, datagrams, bytes, first iovec
	closed := false                        // a shorter datagram ended the run
	finish := func() {
		if m == nil {
			return
		}
		m.Hdr.SetIovlen(v - first)
		h.dgrams[n-1] = count
		if count > 1 {
			c := h.control[(n-1)*segmentControl : n*segmentControl]
			putSegmentSize(c, seg)
			m.Hdr.Control = &c[0]
			m.Hdr.SetControllen(segmentControl)
		} else {
			m.Hdr.Control = nil
			m.Hdr.SetControllen(0)
		}
	}
	for _, b := range bufs {
		if gso && m != nil && !closed && len(b) <= seg && count < udpMaxSegments && total+len(b) <= maxPayload && len(b) > 0 {
			count++
			total += len(b)
			closed = len(b) < seg
			if last := &h.iovs[v-1]; uintptr(unsafe.Pointer(last.Base))+uintptr(last.Len) == uintptr(unsafe.Pointer(unsafe.SliceData(b))) {
				last.SetLen(int(last.Len) + len(b))
				continue
			}
		} else {
			finish()
			m = &h.hdrs[n]
			n++
			m.Hdr.Iov = &h.iovs[v]
			seg, count, total, first, closed = len(b), 1, len(b), v, false
		}
		h.iovs[v].Base = unsafe.SliceData(b)
		h.iovs[v].SetLen(len(b))
		v++
	}
	finish()
	return n
}

// mmsg runs recvmmsg or sendmmsg on hdrs through the runtime's poller:
// receive returns once some datagrams are read; send returns once all are
// written or one fails. The socket does not block (the poller waits), so the
// call is a raw one, as gVisor's rawfile makes them: entering the scheduler
// for a syscall that cannot block costs more than the syscall when
// datagrams come one by one (and wakes the runtime's monitor thread each
// time the node was idle: 29 % of what a forged datagram cost).
func (s *udpSocket) mmsg(h *mmsgHeaders, call uintptr, msgs []unix.Mmsghdr, all bool) (int, error) {
	h.msgs, h.call, h.all, h.done, h.errno = msgs, call, all, 0, 0
	var err error
	if call == unix.SYS_SENDMMSG {
		err = s.raw.Write(h.step)
	} else {
		err = s.raw.Read(h.step)
	}
	h.msgs = nil
	if err != nil {
		return h.done, err
	}
	if h.errno != 0 {
		return h.done, h.errno
	}
	return h.done, nil
}

// syscall is h.step: one attempt at the call, false when the poller must
// wait for the socket first.
func (h *mmsgHeaders) syscall(fd uintptr) bool {
	for h.done < len(h.msgs) {
		r, _, e := unix.RawSyscall6(h.call, fd, uintptr(unsafe.Pointer(&h.msgs[h.done])), uintptr(len(h.msgs)-h.done), 0, 0, 0)
		switch e {
		case 0:
			h.done += int(r)
			if !h.all {
				return true
			}
		case unix.EINTR:
		case unix.EAGAIN:
			return false // the poller waits for the socket
		default:
			h.errno = e
			return true
		}
	}
	return true
}
