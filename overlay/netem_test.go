package overlay_test

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/overlay/overlaytest"
)

// recordingBind keeps what it is asked to send.
func recordingBind(sent *[][]byte) *overlaytest.FuncBind {
	var mu sync.Mutex
	return &overlaytest.FuncBind{SendFunc: func(bufs [][]byte, _ netip.AddrPort) error {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range bufs {
			*sent = append(*sent, append([]byte(nil), x...))
		}
		return nil
	}}
}

// udpFrame is a packet frame on link 7 carrying UDP to port, tagged with n.
func udpFrame(port uint16, n uint32) []byte {
	udp := make([]byte, 12)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint32(udp[8:], n)
	pkt := ip6.Build(ip6.Fields{NextHeader: ip6.ProtoUDP, HopLimit: 64,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, udp)
	f := make([]byte, overlay.FrameHeaderLen+len(pkt))
	(&overlay.FrameHeader{Type: overlay.FrameTypePacket, LinkID: 7}).Put(f)
	copy(f[overlay.FrameHeaderLen:], pkt)
	return f
}

// TestNetemSignallingLossIgnoresMedia checks that which signalling
// messages are lost depends on the seed, not on how many media packets were
// sent in between.
func TestNetemSignallingLossIgnoresMedia(t *testing.T) {
	to := netip.MustParseAddrPort("127.0.0.1:9")
	shape := func(netip.AddrPort, uint32) (time.Duration, float64) { return 0, 0.3 }
	survivors := func(seed uint64, mediaPerMessage int) []uint32 {
		var sent [][]byte
		n := overlay.NewNetem(recordingBind(&sent), shape, seed)
		defer n.Close()
		for i := range uint32(200) {
			for j := range mediaPerMessage {
				n.Send([][]byte{udpFrame(20000, uint32(j))}, to)
			}
			n.Send([][]byte{udpFrame(5060, i)}, to)
		}
		var out []uint32
		for _, f := range sent {
			if binary.BigEndian.Uint16(f[overlay.FrameHeaderLen+ip6.HeaderLen+2:]) == 5060 {
				out = append(out, binary.BigEndian.Uint32(f[overlay.FrameHeaderLen+ip6.HeaderLen+8:]))
			}
		}
		return out
	}
	a, b := survivors(1, 0), survivors(1, 3)
	if len(a) == 0 || len(a) == 200 {
		t.Fatalf("%d of 200 signalling frames survived 30%% loss", len(a))
	}
	if len(a) != len(b) {
		t.Fatalf("same seed, different media: %d vs %d signalling frames survived", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different media: survivor %d is message %d vs %d", i, a[i], b[i])
		}
	}
	c := survivors(2, 0)
	same := len(c) == len(a)
	for i := 0; same && i < len(a); i++ {
		same = a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 1 and 2 lost the same signalling frames")
	}
}
