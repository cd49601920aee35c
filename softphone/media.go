package softphone

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// MediaConfig sets up one call's RTP session.
type MediaConfig struct {
	RTP, RTCP net.PacketConn
	Remote    netip.AddrPort // the peer's RTP address; RTCP is at port+1
	Codec     Codec
	Source    Source
	Sink      Sink
	// Verify, if set, checks every received frame against the pattern the
	// peer sends (TestPattern with the same seed).
	Verify *TestPattern
	SSRC   uint32
	// Hold keeps the session from sending anything until the peer
	// consents: Release (the callee got the ACK of its answer) or the first
	// RTP packet from the peer's address, whichever comes first. An INVITE's
	// SDP can name any address; a phone that answered it does not start a
	// stream there on the strength of the INVITE alone.
	Hold bool
	Log  *slog.Logger
}

// Media sends and receives one call's audio and keeps the statistics of
// RFC 3550: sequence tracking, loss, interarrival jitter, and RTCP sender
// and receiver reports every 5 seconds.
//
// RTP and RTCP are accepted only from the address the peer's SDP names;
// anything else is counted and ignored. (Symmetric-RTP latching, RFC 4961,
// would follow a peer behind NAT, but would also let anyone who guesses the
// port take over the stream; the testbed's peers always know their address.)
type Media struct {
	cfg   MediaConfig
	log   *slog.Logger
	stop  chan struct{}
	wg    sync.WaitGroup
	start time.Time

	mu          sync.Mutex
	held        bool           // nothing is sent until Release
	rtp, rtcp   net.PacketConn // the sockets now (Move replaces them)
	remote      netip.AddrPort
	sent        uint64
	octets      uint64
	rx          rxStats
	arrivals    []Arrival
	handovers   []HandoverGap
	unexpected  uint64
	rtcpIn      uint64
	rtcpOut     uint64
	lastSR      uint32    // middle 32 bits of the last SR's NTP time
	lastSRAt    time.Time // when it arrived
	rtt         time.Duration
	peerSSRC    uint32
	verified    uint64
	mismatched  uint64
	rtpTSBase   uint32
	haveTSBase  bool
	lastRTPTime uint32
	// What the peer says it sent: the packet count of its latest sender
	// report, when that arrived, and whether it was its last (with BYE).
	peerSent   uint32
	peerSentAt time.Time
	peerSRs    uint64
	peerFinal  bool
	stopAt     time.Time // when Stop was called
}

type rxStats struct {
	started    bool
	baseSeq    uint16
	maxSeq     uint16
	cycles     uint32
	received   uint64
	jitter     float64 // in timestamp units
	lastTrans  float64
	haveTrans  bool
	lastArrive time.Time
	maxGap     time.Duration
	first      time.Time
}

// StartMedia starts sending and receiving.
func StartMedia(cfg MediaConfig) *Media {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Sink == nil {
		cfg.Sink = Discard{}
	}
	m := &Media{cfg: cfg, log: cfg.Log, stop: make(chan struct{}), start: time.Now(), remote: cfg.Remote, rtp: cfg.RTP, rtcp: cfg.RTCP,
		held: cfg.Hold}
	m.wg.Add(3)
	go m.send()
	go m.receive()
	go m.receiveRTCP()
	return m
}

// Release lets a held session send (see MediaConfig.Hold).
func (m *Media) Release() {
	m.mu.Lock()
	m.held = false
	m.mu.Unlock()
}

// Held reports whether the session still waits for the peer's consent.
func (m *Media) Held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held
}

// SetRemote changes where media goes (a re-INVITE moved the peer).
func (m *Media) SetRemote(a netip.AddrPort) {
	m.mu.Lock()
	m.remote = a
	m.mu.Unlock()
}

// Move puts the session on new sockets (the call moved to another local
// address) and closes the old ones.
func (m *Media) Move(rtp, rtcp net.PacketConn) {
	m.mu.Lock()
	oldRTP, oldRTCP := m.rtp, m.rtcp
	m.rtp, m.rtcp = rtp, rtcp
	m.mu.Unlock()
	oldRTP.Close()
	if oldRTCP != nil {
		oldRTCP.Close()
	}
}

// conns returns the sockets now.
func (m *Media) conns() (rtp, rtcp net.PacketConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rtp, m.rtcp
}

// MarkHandover records a handover time for the report.
func (m *Media) MarkHandover(label string, at time.Time) {
	m.mu.Lock()
	m.handovers = append(m.handovers, HandoverGap{Label: label, At: at})
	m.mu.Unlock()
}

func (m *Media) send() {
	defer m.wg.Done()
	pcm := make([]int16, FrameSamples)
	payload := make([]byte, 0, FrameSamples)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: m.cfg.Codec.PayloadType, SSRC: m.cfg.SSRC}}
	buf := make([]byte, 1500)
	tick := time.NewTicker(FrameTime * time.Millisecond)
	defer tick.Stop()
	// The first report after a second, so short calls measure the round
	// trip too; then every 5 s (RFC 3550 6.2's minimum interval).
	rtcpTick := time.NewTicker(time.Second)
	defer rtcpTick.Stop()
	rtcpFirst := true
	var ts uint32
	var seq uint16 = uint16(m.cfg.SSRC)
	srcDone := false
	for {
		select {
		case <-m.stop:
			m.sendRTCP(true)
			return
		case <-rtcpTick.C:
			if m.Held() {
				continue
			}
			m.sendRTCP(false)
			if rtcpFirst {
				rtcpFirst = false
				rtcpTick.Reset(5 * time.Second)
			}
			continue
		case <-tick.C:
		}
		if m.Held() {
			continue // no consent yet: the stream starts when it comes
		}
		if !srcDone {
			if err := m.cfg.Source.ReadFrame(pcm); err != nil {
				if !errors.Is(err, io.EOF) {
					m.log.Warn("audio source", "err", err)
				}
				srcDone = true
			}
		}
		if srcDone {
			for i := range pcm {
				pcm[i] = 0 // silence after the source ends
			}
		}
		payload = m.cfg.Codec.Encode(payload[:0], pcm)
		pkt.SequenceNumber = seq
		pkt.Timestamp = ts
		pkt.Marker = seq == uint16(m.cfg.SSRC)
		pkt.Payload = payload
		n, err := pkt.MarshalTo(buf)
		seq++
		ts += FrameSamples
		if err != nil {
			continue
		}
		m.mu.Lock()
		remote, conn := m.remote, m.rtp
		m.mu.Unlock()
		if _, err := conn.WriteTo(buf[:n], net.UDPAddrFromAddrPort(remote)); err == nil {
			m.mu.Lock()
			m.sent++
			m.octets += uint64(len(payload))
			m.lastRTPTime = ts
			m.mu.Unlock()
		}
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// read reads the next datagram from the socket conn returns (RTP or RTCP),
// skipping transient errors and following a Move; it returns false once the
// media is stopped or its socket closed for good.
func (m *Media) read(conn func() net.PacketConn, buf []byte) (int, net.Addr, bool) {
	for {
		c := conn()
		n, from, err := c.ReadFrom(buf)
		if err == nil {
			return n, from, true
		}
		select {
		case <-m.stop:
			return 0, nil, false
		default:
		}
		if errors.Is(err, net.ErrClosed) && conn() == c {
			return 0, nil, false
		}
	}
}

func (m *Media) rtpConn() net.PacketConn  { r, _ := m.conns(); return r }
func (m *Media) rtcpConn() net.PacketConn { _, r := m.conns(); return r }

func (m *Media) receive() {
	defer m.wg.Done()
	buf := make([]byte, 2048)
	var pkt rtp.Packet
	pcm := make([]int16, 0, FrameSamples)
	for {
		n, from, ok := m.read(m.rtpConn, buf)
		if !ok {
			return
		}
		now := time.Now()
		m.mu.Lock()
		remote := m.remote
		m.mu.Unlock()
		if src := addrPortOf(from); src.Addr() != remote.Addr() {
			m.mu.Lock()
			m.unexpected++
			m.mu.Unlock()
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil || pkt.Version != 2 {
			continue
		}
		codec, ok := codecByPT(pkt.PayloadType)
		if !ok {
			continue
		}
		pcm = codec.Decode(pcm[:0], pkt.Payload)
		m.Release() // the peer's own media from its address: consent
		m.account(&pkt, now, pcm)
		m.cfg.Sink.WriteFrame(pcm)
	}
}

// account updates the RFC 3550 statistics (A.1 sequence tracking, A.8
// jitter) for one packet.
func (m *Media) account(pkt *rtp.Packet, now time.Time, pcm []int16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.rx
	seq := pkt.SequenceNumber
	if !s.started {
		s.started, s.baseSeq, s.maxSeq, s.first = true, seq, seq, now
		m.peerSSRC = pkt.SSRC
	} else if d := seq - s.maxSeq; d < 0x8000 && d != 0 {
		if seq < s.maxSeq {
			s.cycles++
		}
		s.maxSeq = seq
	}
	s.received++
	// Jitter: D(i-1,i) = (Rj - Ri) - (Sj - Si), in timestamp units.
	arrival := float64(now.Sub(m.start)) / float64(time.Second) * SampleRate
	transit := arrival - float64(pkt.Timestamp)
	if s.haveTrans {
		d := math.Abs(transit - s.lastTrans)
		s.jitter += (d - s.jitter) / 16
	}
	s.lastTrans, s.haveTrans = transit, true
	if !s.lastArrive.IsZero() {
		if g := now.Sub(s.lastArrive); g > s.maxGap {
			s.maxGap = g
		}
	}
	s.lastArrive = now
	m.arrivals = append(m.arrivals, Arrival{At: now, Seq: seq})
	if m.cfg.Verify != nil {
		if !m.haveTSBase {
			m.rtpTSBase, m.haveTSBase = pkt.Timestamp, true
		}
		base := pkt.Timestamp - m.rtpTSBase
		ok := len(pcm) == FrameSamples
		codec, _ := codecByPT(pkt.PayloadType)
		for i := 0; ok && i < len(pcm); i++ {
			want := codec.decode(codec.encode(m.cfg.Verify.Sample(base + uint32(i))))
			ok = pcm[i] == want
		}
		if ok {
			m.verified++
		} else {
			m.mismatched++
		}
	}
}

// ntpMiddle returns the middle 32 bits of an NTP timestamp, as LSR carries.
func ntpMiddle(ntp uint64) uint32 { return uint32(ntp >> 16) }

func ntpNow(t time.Time) uint64 {
	secs := uint64(t.Unix() + 2208988800)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

func (m *Media) sendRTCP(bye bool) {
	m.mu.Lock()
	remote := m.remote
	now := time.Now()
	sr := &rtcp.SenderReport{SSRC: m.cfg.SSRC, NTPTime: ntpNow(now), RTPTime: m.lastRTPTime,
		PacketCount: uint32(m.sent), OctetCount: uint32(m.octets)}
	if m.rx.started {
		s := m.rx
		expected := uint64(s.cycles)<<16 + uint64(s.maxSeq) - uint64(s.baseSeq) + 1
		lost := int64(expected) - int64(s.received)
		rr := rtcp.ReceptionReport{SSRC: m.peerSSRC, TotalLost: uint32(max(lost, 0)) & 0xffffff,
			LastSequenceNumber: s.cycles<<16 | uint32(s.maxSeq), Jitter: uint32(s.jitter), LastSenderReport: m.lastSR}
		if expected > 0 && lost > 0 {
			rr.FractionLost = uint8(min(255, lost*256/int64(expected)))
		}
		if !m.lastSRAt.IsZero() {
			rr.Delay = uint32(now.Sub(m.lastSRAt).Seconds() * 65536)
		}
		sr.Reports = []rtcp.ReceptionReport{rr}
	}
	m.mu.Unlock()
	pkts := []rtcp.Packet{sr, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: m.cfg.SSRC,
		Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "mip6-softphone"}}}}}}
	if bye {
		pkts = append(pkts, &rtcp.Goodbye{Sources: []uint32{m.cfg.SSRC}})
	}
	b, err := rtcp.Marshal(pkts)
	conn := m.rtcpConn()
	if err != nil || conn == nil {
		return
	}
	to := netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
	if _, err := conn.WriteTo(b, net.UDPAddrFromAddrPort(to)); err == nil {
		m.mu.Lock()
		m.rtcpOut++
		m.mu.Unlock()
	}
}

func (m *Media) receiveRTCP() {
	defer m.wg.Done()
	if m.cfg.RTCP == nil {
		return
	}
	buf := make([]byte, 1500)
	for {
		n, from, ok := m.read(m.rtcpConn, buf)
		if !ok {
			return
		}
		now := time.Now()
		m.mu.Lock()
		remote := m.remote
		m.mu.Unlock()
		if addrPortOf(from).Addr() != remote.Addr() {
			continue
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		m.mu.Lock()
		m.rtcpIn++
		for _, p := range pkts {
			var reports []rtcp.ReceptionReport
			switch v := p.(type) {
			case *rtcp.SenderReport:
				m.lastSR, m.lastSRAt = ntpMiddle(v.NTPTime), now
				if m.peerSRs == 0 || v.PacketCount >= m.peerSent {
					m.peerSent, m.peerSentAt = v.PacketCount, now
				}
				m.peerSRs++
				reports = v.Reports
			case *rtcp.Goodbye:
				m.peerFinal = m.peerSRs > 0 // the SR in the same compound packet was its last
			case *rtcp.ReceiverReport:
				reports = v.Reports
			}
			for _, r := range reports {
				if r.SSRC != m.cfg.SSRC || r.LastSenderReport == 0 {
					continue
				}
				// RTT = A - LSR - DLSR (RFC 3550 6.4.1), in 1/65536 s.
				a := ntpMiddle(ntpNow(now))
				if d := int64(a) - int64(r.LastSenderReport) - int64(r.Delay); d > 0 {
					m.rtt = time.Duration(d) * time.Second / 65536
				}
			}
		}
		m.mu.Unlock()
	}
}

// Stop ends the session and returns its report.
func (m *Media) Stop() Report {
	m.mu.Lock()
	m.stopAt = time.Now()
	m.mu.Unlock()
	close(m.stop)
	rtp, rtcp := m.conns()
	rtp.SetReadDeadline(time.Now())
	if rtcp != nil {
		rtcp.SetReadDeadline(time.Now())
	}
	m.wg.Wait()
	return m.Report()
}

// Report computes the statistics so far.
func (m *Media) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.rx
	r := Report{Codec: m.cfg.Codec.Name, Remote: m.remote.String(), Local: m.rtp.LocalAddr().String(),
		DurationS: time.Since(m.start).Seconds(), PacketsSent: m.sent, PacketsReceived: s.received,
		JitterMs: s.jitter / SampleRate * 1000, MaxGapMs: float64(s.maxGap) / float64(time.Millisecond),
		RTTMs: float64(m.rtt) / float64(time.Millisecond), UnexpectedSource: m.unexpected,
		FramesVerified: m.verified, FramesMismatched: m.mismatched, RTCPReceived: m.rtcpIn, RTCPSent: m.rtcpOut,
		FirstPacket: s.first, Started: m.start, Arrivals: append([]Arrival(nil), m.arrivals...)}
	m.lossAgainstPeer(&r)
	for _, h := range m.handovers {
		h.GapMs = float64(gapAround(m.arrivals, h.At)) / float64(time.Millisecond)
		r.Handovers = append(r.Handovers, h)
	}
	// One-way delay for the E-model: half the RTCP round trip plus a jitter
	// buffer of twice the jitter, 20 ms packetisation.
	// Nothing received: no quality to estimate (not the E-model's perfect
	// score for zero loss).
	if s.received > 0 {
		oneWay := r.RTTMs/2 + 2*r.JitterMs + FrameTime
		r.RFactor, r.MOS = EModel(oneWay, r.LossPercent)
	}
	return r
}

// lossAgainstPeer counts loss against what the peer sent, so that media
// that stopped before the end of the call counts as lost (RFC 3550's
// sequence-number count sees only the packets between the first and the
// last one received). The peer's sender reports give its packet count: its
// last one (with its RTCP BYE) is exact; an earlier one is extended by
// what it would have sent until the end of the call, less what could still
// be on its way. Without any report, only sequence numbers are left, and
// the report says so. A tail that never came counts as a gap too.
func (m *Media) lossAgainstPeer(r *Report) {
	s := m.rx
	var bySeq uint64
	if s.started {
		bySeq = uint64(s.cycles)<<16 + uint64(s.maxSeq) - uint64(s.baseSeq) + 1
	}
	expected := bySeq
	r.LossBasis = "sequence numbers only: no RTCP report from the peer, so a missing tail cannot be seen"
	if m.peerSRs > 0 {
		end := m.stopAt
		if end.IsZero() {
			end = time.Now()
		}
		fromPeer := uint64(m.peerSent)
		if m.peerFinal {
			r.LossBasis = "the peer's final RTCP report"
		} else {
			inFlight := m.rtt/2 + 3*FrameTime*time.Millisecond
			if more := end.Sub(m.peerSentAt) - inFlight; more > 0 {
				fromPeer += uint64(more / (FrameTime * time.Millisecond))
			}
			r.LossBasis = fmt.Sprintf("the peer's last RTCP report, %.1f s before the end, and the call's end", end.Sub(m.peerSentAt).Seconds())
		}
		r.PeerSent = fromPeer
		// The tail: the peer sent more than we saw the end of.
		if fromPeer > bySeq+3 {
			from := s.lastArrive
			if from.IsZero() {
				from = m.start
			}
			if g := end.Sub(from); g > time.Duration(r.MaxGapMs*float64(time.Millisecond)) {
				r.MaxGapMs = float64(g) / float64(time.Millisecond)
			}
		}
		expected = max(expected, fromPeer)
	}
	r.PacketsExpected = expected
	r.PacketsLost = int64(expected) - int64(s.received)
	if expected > 0 {
		r.LossPercent = math.Max(0, float64(r.PacketsLost)) * 100 / float64(expected)
	}
}

// gapAround returns the longest silence in the arrivals that ends at or
// after the handover and starts within 5 s after it.
func gapAround(arr []Arrival, at time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(arr); i++ {
		if arr[i].At.Before(at) || arr[i-1].At.After(at.Add(5*time.Second)) {
			continue
		}
		if d := arr[i].At.Sub(arr[i-1].At); d > gap {
			gap = d
		}
	}
	return gap
}
