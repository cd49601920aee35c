package softphone

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// HandoverGap is the media interruption around one handover.
type HandoverGap struct {
	Label string    `json:"label"`
	At    time.Time `json:"at"`
	GapMs float64   `json:"gap_ms"`
}

// Report describes a finished call, from this end's point of view: what it
// sent, and what it received from the far end.
type Report struct {
	Peer            string  `json:"peer"`
	Codec           string  `json:"codec"`
	Local           string  `json:"local_media"`
	Remote          string  `json:"remote_media"`
	DurationS       float64 `json:"duration_s"`
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	// PacketsExpected is what should have arrived: the most of RFC 3550's
	// sequence-number count and what the peer reports having sent
	// (PeerSent); LossBasis says which the loss rests on.
	PacketsExpected  uint64        `json:"packets_expected"`
	PeerSent         uint64        `json:"packets_sent_by_peer,omitempty"`
	LossBasis        string        `json:"loss_basis,omitempty"`
	PacketsLost      int64         `json:"packets_lost"`
	LossPercent      float64       `json:"loss_percent"`
	JitterMs         float64       `json:"jitter_ms"`
	MaxGapMs         float64       `json:"max_gap_ms"`
	Handovers        []HandoverGap `json:"handovers,omitempty"`
	RTTMs            float64       `json:"rtt_ms"`
	RFactor          float64       `json:"r_factor"`
	MOS              float64       `json:"mos"`
	FramesVerified   uint64        `json:"frames_verified,omitempty"`
	FramesMismatched uint64        `json:"frames_mismatched,omitempty"`
	UnexpectedSource uint64        `json:"rtp_from_unexpected_source,omitempty"`
	RTCPReceived     uint64        `json:"rtcp_received"`
	RTCPSent         uint64        `json:"rtcp_sent"`
	// FirstPacket is when the first media packet arrived, for the demo.
	FirstPacket time.Time `json:"first_packet"`
	Started     time.Time `json:"started"`
	// Ended is set once the call is over and the figures are final.
	Ended bool `json:"ended"`
	// Failure says why a call that ended was not set up, or not kept.
	Failure string `json:"failure,omitempty"`
	// Arrivals are (time, sequence) of every received packet.
	Arrivals []Arrival `json:"-"`
}

// Arrival is one received RTP packet.
type Arrival struct {
	At  time.Time
	Seq uint16
}

// EModel estimates the transmission rating R and the MOS from the one-way
// delay, the loss and the codec, with the simplified E-model of ITU-T G.107
// (default values elsewhere): R = 93.2 - Id - Ie,eff, with
// Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3) and
// Ie,eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl), where for G.711 Ie = 0 and
// Bpl = 4.3 (random loss, no concealment).
func EModel(oneWayMs, lossPercent float64) (r, mos float64) {
	id := 0.024 * oneWayMs
	if oneWayMs > 177.3 {
		id += 0.11 * (oneWayMs - 177.3)
	}
	const ie, bpl = 0.0, 4.3
	ieEff := ie + (95-ie)*lossPercent/(lossPercent+bpl)
	r = 93.2 - id - ieEff
	switch {
	case r <= 0:
		mos = 1
	case r >= 100:
		mos = 4.5
	default:
		mos = 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
	}
	return math.Max(r, 0), mos
}

// Text renders the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	if r.Failure != "" {
		fmt.Fprintf(&b, "call with %s FAILED: %s\n", r.Peer, r.Failure)
		if r.PacketsSent+r.PacketsReceived == 0 {
			return b.String()
		}
	}
	fmt.Fprintf(&b, "call with %s, %s, %.1f s\n", r.Peer, r.Codec, r.DurationS)
	fmt.Fprintf(&b, "  media          %s <-> %s\n", r.Local, r.Remote)
	fmt.Fprintf(&b, "  packets        sent %d, received %d of %d, lost %d (%.2f %%)\n", r.PacketsSent, r.PacketsReceived, r.PacketsExpected, r.PacketsLost, r.LossPercent)
	if r.LossBasis != "" {
		fmt.Fprintf(&b, "  loss counted   against %s\n", r.LossBasis)
	}
	fmt.Fprintf(&b, "  jitter         %.2f ms (RFC 3550)\n", r.JitterMs)
	fmt.Fprintf(&b, "  largest gap    %.0f ms\n", r.MaxGapMs)
	for _, h := range r.Handovers {
		fmt.Fprintf(&b, "  handover %-5s gap %.0f ms\n", h.Label, h.GapMs)
	}
	if r.RTTMs > 0 {
		fmt.Fprintf(&b, "  round trip     %.1f ms (RTCP)\n", r.RTTMs)
	}
	if r.PacketsReceived == 0 {
		fmt.Fprintf(&b, "  quality        none: nothing was received\n")
	} else {
		fmt.Fprintf(&b, "  quality        R %.1f, MOS %.2f (ITU-T G.107, simplified)\n", r.RFactor, r.MOS)
	}
	if r.FramesVerified+r.FramesMismatched > 0 {
		fmt.Fprintf(&b, "  audio check    %d frames intact, %d differ\n", r.FramesVerified, r.FramesMismatched)
	}
	if r.UnexpectedSource > 0 {
		fmt.Fprintf(&b, "  ignored        %d RTP packets from an unexpected source\n", r.UnexpectedSource)
	}
	return b.String()
}
