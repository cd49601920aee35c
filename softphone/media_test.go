package softphone

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// silence is a source of silent frames.
type silence struct{}

func (silence) ReadFrame(pcm []int16) error { clear(pcm); return nil }

// cutConn drops every datagram written after the first keep, as a path
// that breaks halfway through a call would, while the write succeeds.
type cutConn struct {
	net.PacketConn
	keep    int64
	written atomic.Int64
}

func (c *cutConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if c.written.Add(1) > c.keep {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, to)
}

func loopbackPair(t *testing.T) (rtp, rtcp net.PacketConn, at netip.AddrPort) {
	t.Helper()
	for port := 30000; port < 31000; port += 2 {
		a := netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port))
		r, err := KernelNetwork{}.ListenUDP(a)
		if err != nil {
			continue
		}
		c, err := KernelNetwork{}.ListenUDP(netip.AddrPortFrom(a.Addr(), uint16(port+1)))
		if err != nil {
			r.Close()
			continue
		}
		return r, c, a
	}
	t.Fatal("no free port pair on ::1")
	return nil, nil, netip.AddrPort{}
}

// A call whose media stops halfway reports the missing half as lost, and
// the silence after it as a gap: counted against the peer's RTCP report of
// what it sent, not only between the first and last packet received (which
// said "lost 0, gap 0" for a call that got 147 of 644 packets).
func TestMediaStoppedHalfwayCountsAsLost(t *testing.T) {
	aRTP, aRTCP, aAt := loopbackPair(t)
	bRTP, bRTCP, bAt := loopbackPair(t)
	cut := &cutConn{PacketConn: aRTP, keep: 25} // half a second of media, then nothing
	a := StartMedia(MediaConfig{RTP: cut, RTCP: aRTCP, Remote: bAt, Codec: PCMU, Source: silence{}, SSRC: 1})
	b := StartMedia(MediaConfig{RTP: bRTP, RTCP: bRTCP, Remote: aAt, Codec: PCMU, Source: silence{}, SSRC: 2})
	testenv.WaitFor(t, 10*time.Second, "a to send 50 packets", func() bool { return a.Report().PacketsSent >= 50 })
	sent := a.Stop().PacketsSent // its final sender report and RTCP BYE go out
	testenv.WaitFor(t, 5*time.Second, "b to get a's final report", func() bool { return strings.Contains(b.Report().LossBasis, "final") })
	r := b.Stop()
	if r.PacketsReceived > 25 || r.PeerSent != sent || r.PacketsExpected != sent {
		t.Fatalf("received %d, peer sent %d (really %d), expected %d", r.PacketsReceived, r.PeerSent, sent, r.PacketsExpected)
	}
	if want := int64(sent) - int64(r.PacketsReceived); r.PacketsLost != want || r.LossPercent < 40 {
		t.Errorf("lost %d (%.1f %%), want %d: the missing half", r.PacketsLost, r.LossPercent, want)
	}
	// The silence after the cut lasted the rest of a's sending.
	if wantGap := float64(sent-25) * FrameTime * 0.8; r.MaxGapMs < wantGap {
		t.Errorf("largest gap %.0f ms, want at least %.0f ms (the missing tail)", r.MaxGapMs, wantGap)
	}
	if !strings.Contains(r.Text(), "against the peer's final RTCP report") {
		t.Errorf("the report does not say what the loss rests on:\n%s", r.Text())
	}
}

// Without any report from the peer the loss can only rest on sequence
// numbers, and the report says that a missing tail cannot be seen.
func TestMediaWithoutPeerReportsSaysSo(t *testing.T) {
	aRTP, _, aAt := loopbackPair(t)
	bRTP, bRTCP, bAt := loopbackPair(t)
	a := StartMedia(MediaConfig{RTP: aRTP, Remote: bAt, Codec: PCMU, Source: silence{}, SSRC: 1}) // no RTCP
	b := StartMedia(MediaConfig{RTP: bRTP, RTCP: bRTCP, Remote: aAt, Codec: PCMU, Source: silence{}, SSRC: 2})
	testenv.WaitFor(t, 10*time.Second, "b to receive 10 packets", func() bool { return b.Report().PacketsReceived >= 10 })
	a.Stop()
	r := b.Stop()
	if r.PeerSent != 0 || !strings.Contains(r.LossBasis, "cannot be seen") {
		t.Errorf("peer sent %d, basis %q; want no peer count and a caveat", r.PeerSent, r.LossBasis)
	}
}
