//go:build linux

package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// datagram i of a test batch: its index in the first two bytes, then a
// pattern, so that a datagram split or gathered wrongly shows.
func testDatagram(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i*7 + j)
	}
	if size >= 2 {
		b[0], b[1] = byte(i>>8), byte(i)
	}
	return b
}

// TestUDPBindRoundTrip sends batches that make GSO runs (equal sizes, a
// shorter last one, more than a run can hold, a size change) and lone
// datagrams over loopback, on IPv4, IPv4-mapped and IPv6, and checks that
// every datagram arrives whole, once, from the sender's port.
func TestUDPBindRoundTrip(t *testing.T) {
	a, b := NewUDPBind(), NewUDPBind()
	_, portA := openBind(t, a)
	fns, portB := openBind(t, b)

	var sizes []int
	for range 70 { // more than one run of udpMaxSegments
		sizes = append(sizes, 1200)
	}
	sizes = append(sizes, 500, 1200, 1200, 1, 300, 300, 0, 1400)
	for _, tc := range []struct {
		dst   string
		arena bool // datagrams end to end in one buffer, as package secure seals them
	}{{"127.0.0.1", false}, {"::ffff:127.0.0.1", false}, {"::1", false}, {"127.0.0.1", true}, {"::1", true}} {
		dst := tc.dst
		name := dst
		if tc.arena {
			name += "/arena"
		}
		t.Run(name, func(t *testing.T) {
			to := netip.AddrPortFrom(netip.MustParseAddr(dst), portB)
			want := map[int][]byte{}
			var bufs [][]byte
			var arena []byte
			for i, s := range sizes {
				d := testDatagram(i, s)
				if tc.arena {
					arena = append(arena, d...)
				}
				bufs = append(bufs, d)
				if s >= 2 {
					want[i] = d
				}
			}
			if tc.arena {
				off := 0
				for i, s := range sizes {
					bufs[i] = arena[off : off+s : off+s]
					off += s
				}
			}
			if err := a.Send(bufs, to); err != nil {
				t.Fatal(err)
			}
			fn := fns[0]
			if to.Addr().Unmap().Is6() {
				fn = fns[1]
			}
			got, short := receiveAll(t, b, fn, len(want), len(sizes)-len(want))
			if short != len(sizes)-len(want) {
				t.Errorf("got %d datagrams shorter than 2 bytes, sent %d", short, len(sizes)-len(want))
			}
			for i, w := range want {
				g, ok := got[i]
				if !ok {
					t.Errorf("datagram %d (%d bytes) did not arrive", i, len(w))
					continue
				}
				if !bytes.Equal(g.data, w) {
					t.Errorf("datagram %d: got %d bytes %x..., want %d bytes %x...", i, len(g.data), g.data[:min(8, len(g.data))], len(w), w[:min(8, len(w))])
				}
				if g.from.Port() != portA || !g.from.Addr().IsLoopback() {
					t.Errorf("datagram %d from %s, want loopback port %d", i, g.from, portA)
				}
			}
		})
	}
}

// openBind opens b on a free port, to be closed when the test ends.
func openBind(tb testing.TB, b Bind) ([]ReceiveFunc, uint16) {
	tb.Helper()
	fns, port, err := b.Open(0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return fns, port
}

type received struct {
	data []byte
	from netip.AddrPort
}

// receiveAll reads until it has long datagrams (keyed by their index) and
// short ones; a bind that loses one fails the test after 10 s rather than
// hang it.
func receiveAll(t *testing.T, b Bind, fn ReceiveFunc, long, short int) (map[int]received, int) {
	t.Helper()
	timer := time.AfterFunc(10*time.Second, func() { b.Close() })
	defer timer.Stop()
	bufs := make([][]byte, b.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, MaxDatagram)
	}
	sizes := make([]int, len(bufs))
	from := make([]netip.AddrPort, len(bufs))
	got := map[int]received{}
	shorts := 0
	for len(got) < long || shorts < short {
		n, err := fn(bufs, sizes, from)
		if err != nil {
			t.Fatalf("receive after %d of %d datagrams: %v", len(got)+shorts, long+short, err)
		}
		for i := range n {
			if sizes[i] < 2 {
				shorts++
				continue
			}
			idx := int(bufs[i][0])<<8 | int(bufs[i][1])
			if _, dup := got[idx]; dup {
				t.Errorf("datagram %d arrived twice", idx)
			}
			got[idx] = received{bytes.Clone(bufs[i][:sizes[i]]), from[i]}
		}
	}
	return got, shorts
}

// TestSendRunsGroupEqualSizes checks the GSO grouping rule: a run is
// datagrams of one size, the last may be shorter and ends it, at most
// udpMaxSegments and maxUDPPayload bytes; without GSO every datagram is a
// message.
func TestSendRunsGroupEqualSizes(t *testing.T) {
	mk := func(sizes ...int) [][]byte {
		var out [][]byte
		for _, s := range sizes {
			out = append(out, make([]byte, s))
		}
		return out
	}
	rep := func(n, size int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = size
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		sizes []int
		gso   bool
		want  []int // datagrams per message
	}{
		{"equal", rep(5, 1000), true, []int{5}},
		{"shorter last ends the run", []int{1000, 1000, 400, 1000}, true, []int{3, 1}},
		{"longer starts a run", []int{400, 1000, 1000}, true, []int{1, 2}},
		{"segment limit", rep(udpMaxSegments+3, 100), true, []int{udpMaxSegments, 3}},
		{"payload limit", rep(50, 1400), true, []int{46, 4}},
		{"empty datagram alone", []int{100, 0, 0, 100}, true, []int{1, 1, 1, 1}},
		{"no gso", []int{100, 100, 100}, false, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMmsgHeaders(udpBatch, udpBatch, 1)
			bufs := mk(tc.sizes...)
			n := h.runs(bufs, tc.gso, false)
			var got []int
			total := 0
			for i := range n {
				c := h.dgrams[i]
				got = append(got, c)
				if c > 1 {
					seg := segmentSizeOf(t, h, i, unix.UDP_SEGMENT)
					if seg != tc.sizes[total] {
						t.Errorf("message %d: segment size %d, want %d", i, seg, tc.sizes[total])
					}
				} else if h.hdrs[i].Hdr.Controllen != 0 {
					t.Errorf("message %d of one datagram carries a control message", i)
				}
				total += c
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("runs %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSendRunsShareIovecsEndToEnd: datagrams that lie end to end in memory
// go to the kernel as one iovec per run, and the iovecs of every message
// cover exactly its datagrams' bytes, in order.
func TestSendRunsShareIovecsEndToEnd(t *testing.T) {
	arena := make([]byte, 10*1000)
	var bufs [][]byte
	for i := range 6 { // end to end
		bufs = append(bufs, arena[i*1000:(i+1)*1000])
	}
	bufs = append(bufs, make([]byte, 1000))                 // elsewhere: a second iovec, same run
	bufs = append(bufs, arena[7000:8000], arena[8000:8400]) // after a gap, then end to end and shorter: ends the run
	bufs = append(bufs, arena[8400:9400])                   // a new run, though end to end with the last
	for i, b := range bufs {
		for j := range b {
			b[j] = byte(i)
		}
	}
	h := newMmsgHeaders(udpBatch, udpBatch, 1)
	n := h.runs(bufs, true, false)
	if n != 2 || h.dgrams[0] != 9 || h.dgrams[1] != 1 {
		t.Fatalf("got %d messages with %v datagrams, want 2 with [9 1]", n, h.dgrams[:n])
	}
	wantIovs := []int{3, 1} // [0,6) merged, the lone one, [7,9) merged; then the new run
	next := 0
	for i := range n {
		m := h.hdrs[i].Hdr
		if int(m.Iovlen) != wantIovs[i] {
			t.Errorf("message %d: %d iovecs, want %d", i, m.Iovlen, wantIovs[i])
		}
		var got []byte
		for _, v := range unsafe.Slice(m.Iov, m.Iovlen) {
			got = append(got, unsafe.Slice(v.Base, v.Len)...)
		}
		var want []byte
		for _, b := range bufs[next : next+h.dgrams[i]] {
			want = append(want, b...)
		}
		next += h.dgrams[i]
		if !bytes.Equal(got, want) {
			t.Errorf("message %d: iovecs cover %d bytes that differ from its %d datagrams' %d", i, len(got), h.dgrams[i], len(want))
		}
	}
}

// TestGSOSegmentsFitOneMessage: GSOSegments(size) datagrams of size bytes
// are one GSO message, on IPv4 and IPv6, and one more datagram is not (or
// the kernel's segment limit is reached): the cap a node gives its device.
func TestGSOSegmentsFitOneMessage(t *testing.T) {
	for _, size := range []int{1, 100, 1024, 1280 + FrameHeaderLen + 32, 1416 + FrameHeaderLen + 32, 9000, 40000, maxUDPPayload4} {
		segs := GSOSegments(size)
		for _, is6 := range []bool{false, true} {
			h := newMmsgHeaders(udpBatch, udpBatch, 1)
			bufs := make([][]byte, segs+1)
			for i := range bufs {
				bufs[i] = make([]byte, size)
			}
			if n := h.runs(bufs[:segs], true, is6); n != 1 {
				t.Errorf("GSOSegments(%d) = %d datagrams make %d messages (IPv6 %v), want 1", size, segs, n, is6)
			}
			if n := h.runs(bufs, true, is6); n != 2 && segs < udpMaxSegments && !is6 {
				t.Errorf("GSOSegments(%d) = %d is not the most: %d datagrams make %d message", size, segs, segs+1, n)
			}
		}
	}
}

// segmentSizeOf reads message i's control message of type typ.
func segmentSizeOf(t *testing.T, h *mmsgHeaders, i int, typ int32) int {
	t.Helper()
	c := h.control[i*segmentControl : (i+1)*segmentControl]
	hd := (*unix.Cmsghdr)(ptr(c))
	if hd.Level != unix.SOL_UDP || hd.Type != typ {
		t.Fatalf("message %d: control message level %d type %d", i, hd.Level, hd.Type)
	}
	return int(c[unix.CmsgLen(0)]) | int(c[unix.CmsgLen(0)+1])<<8
}

// TestSplitRunsNeverOverwritesUnread gives splitRuns GRO reads as the
// kernel leaves them (runs in the last buffers) and checks what comes out,
// including a run too long for the buffers, which must be cut rather than
// spill over a datagram not yet split.
func TestSplitRunsNeverOverwritesUnread(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nbufs  int
		reads  [][2]int // per datagram read: total size, segment size (0: none)
		splits []int    // sizes delivered
	}{
		{"two runs", 128, [][2]int{{3000, 1000}, {2500, 1000}}, []int{1000, 1000, 1000, 1000, 1000, 500}},
		{"lone and run", 128, [][2]int{{700, 0}, {2000, 1000}}, []int{700, 1000, 1000}},
		{"segment not smaller", 128, [][2]int{{700, 700}}, []int{700}},
		{"run longer than the buffers", 4, [][2]int{{6000, 1000}}, []int{1000, 1000, 1000, 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMmsgHeaders(udpBatch, udpBatch, udpBatch)
			bufs := make([][]byte, tc.nbufs)
			for i := range bufs {
				bufs[i] = make([]byte, MaxDatagram)
			}
			first := tc.nbufs - len(tc.reads)
			var want [][]byte
			for i, r := range tc.reads {
				size, seg := r[0], r[1]
				d := testDatagram(i, size)
				copy(bufs[first+i], d)
				h.hdrs[i].Len = uint32(size)
				h.names[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: [16]byte{15: 1}}
				h.hdrs[i].Hdr.SetControllen(0)
				if seg > 0 {
					c := h.control[i*segmentControl : (i+1)*segmentControl]
					putSegmentSize(c, seg)
					(*unix.Cmsghdr)(ptr(c)).Type = unix.UDP_GRO
					h.hdrs[i].Hdr.SetControllen(segmentControl)
				} else {
					seg = size
				}
				for s := 0; s < size; s += seg {
					want = append(want, d[s:min(s+seg, size)])
				}
			}
			sizes := make([]int, tc.nbufs)
			from := make([]netip.AddrPort, tc.nbufs)
			n := splitRuns(h, bufs, sizes, from, first, len(tc.reads))
			if n != len(tc.splits) {
				t.Fatalf("%d datagrams out, want %d", n, len(tc.splits))
			}
			for i := range n {
				if sizes[i] != tc.splits[i] || !bytes.Equal(bufs[i][:sizes[i]], want[i]) {
					t.Errorf("datagram %d: %d bytes, want %d (content equal: %v)", i, sizes[i], tc.splits[i], bytes.Equal(bufs[i][:sizes[i]], want[i]))
				}
				if from[i] != netip.MustParseAddrPort("[::1]:0") {
					t.Errorf("datagram %d from %s", i, from[i])
				}
			}
		})
	}
}

// TestSegmentSizeReadsHostileControl: control bytes the kernel never writes
// (lengths too short, too long, overflowing) give 0, not a panic.
func TestSegmentSizeReadsHostileControl(t *testing.T) {
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	buf := make([]byte, 64)
	for range 100000 {
		n := r.IntN(len(buf))
		for i := range n {
			buf[i] = byte(r.Uint32())
		}
		if r.IntN(2) == 0 && n >= unix.SizeofCmsghdr {
			(*unix.Cmsghdr)(ptr(buf)).SetLen(r.IntN(n + 1))
		}
		if g := segmentSize(buf[:n]); g < 0 || g > 0xffff {
			t.Fatalf("seed %d: segment size %d", seed, g)
		}
	}
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// TestUDPBindClose: Close ends a receive that waits (with net.ErrClosed, which
// the node's loops take as the end), a send after it says the bind is closed,
// and a second Open of an open bind is refused.
func TestUDPBindClose(t *testing.T) {
	b := NewUDPBind()
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(0); err == nil {
		t.Error("a second Open of an open bind succeeded")
	}
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() {
			bufs := [][]byte{make([]byte, MaxDatagram)}
			_, err := fn(bufs, make([]int, 1), make([]netip.AddrPort, 1))
			errs <- err
		}()
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range fns {
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive after Close: %v, want net.ErrClosed", err)
		}
	}
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	if err := b.Send([][]byte{{1}}, to); !errors.Is(err, net.ErrClosed) {
		t.Errorf("send after Close: %v, want net.ErrClosed", err)
	}
}
