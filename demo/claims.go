package demo

import (
	"fmt"
	"strings"
)

// Claim is one of the paper's claims, checked against measured figures.
type Claim struct {
	Claim string `json:"claim"`
	// Verdict is VerdictHolds, VerdictFails, or VerdictUnknown when the
	// run cannot tell (a sender that sent nothing to judge by).
	Verdict string   `json:"verdict"`
	Holds   bool     `json:"holds"`
	Why     []string `json:"why,omitempty"` // what contradicts it
	// Figures are the measured numbers the verdict rests on.
	Figures []string `json:"figures"`
	// Notes say what else the run saw, such as a machine too loaded to
	// keep its senders' 20 ms clock.
	Notes []string `json:"notes,omitempty"`
}

// Verdicts.
const (
	VerdictHolds   = "holds"
	VerdictFails   = "does not hold"
	VerdictUnknown = "cannot tell"
)

// survivalRatio is the share of what the peer sent after a move that must
// arrive for the call to count as surviving it; overloadRatio is how far a
// sender may fall behind its 20 ms clock before the run says the machine
// was overloaded.
const (
	survivalRatio = 0.8
	overloadRatio = 0.9
)

// Claims checks the paper's claims (section 4) on a standard and an ha2r
// run of the same scenario: its scheme needs fewer session-setup messages,
// with no Return Routability at all; its media reaches the direct path no
// later; and the call survives the handover in both schemes.
func Claims(std, ha2r *Result) []Claim {
	var out []Claim
	check := func(claim string, why, figures, notes []string, unknown bool) {
		c := Claim{Claim: claim, Holds: len(why) == 0 && !unknown, Why: why, Figures: figures, Notes: notes, Verdict: VerdictHolds}
		switch {
		case len(why) > 0:
			c.Verdict = VerdictFails
		case unknown:
			c.Verdict = VerdictUnknown
		}
		out = append(out, c)
	}

	var why []string
	s, h := std.Phase(PhaseSetup).Messages, ha2r.Phase(PhaseSetup).Messages
	if h >= s {
		why = append(why, fmt.Sprintf("session setup: ha2r %d messages, standard %d", h, s))
	}
	rr := 0
	for _, m := range ha2r.Messages {
		switch m.Type {
		case "HoTI", "CoTI", "HoT", "CoT", "BU", "BA":
			rr++
			why = append(why, fmt.Sprintf("ha2r sent %s (%s to %s) during %s", m.Type, m.From, m.To, m.Phase))
		}
	}
	check("ha2r needs fewer session-setup signalling messages, and no Return Routability", why,
		[]string{fmt.Sprintf("session-setup messages: ha2r %d, standard %d", h, s), fmt.Sprintf("Return Routability and binding messages sent by ha2r: %d", rr)}, nil, false)

	why = nil
	var figures []string
	for i, mn := range []string{"MN1", "MN2"} {
		h, s := ha2r.InviteToDirect[i], std.InviteToDirect[i]
		figures = append(figures, fmt.Sprintf("INVITE to first direct media at %s: ha2r %s, standard %s", mn, MsOrNever(h), MsOrNever(s)))
		switch {
		case h < 0:
			why = append(why, fmt.Sprintf("ha2r: no direct media at %s", mn))
		case s >= 0 && h > s:
			why = append(why, fmt.Sprintf("direct media at %s: ha2r after %.1f ms, standard after %.1f ms", mn, h, s))
		}
	}
	check("ha2r media reaches the direct path no later", why, figures, nil, false)

	why, figures = nil, nil
	var notes []string
	unknown := false
	for _, r := range []*Result{std, ha2r} {
		sv := r.survival()
		why = append(why, sv.why...)
		figures = append(figures, sv.figures...)
		notes = append(notes, sv.notes...)
		unknown = unknown || sv.unknown
	}
	check("the call survives the handover in both schemes", why, figures, notes, unknown)
	return out
}

// survivalCheck is what a run says about its call surviving the moves.
type survivalCheck struct {
	why, figures, notes []string
	unknown             bool
}

// survival judges whether the call survived its handovers by ratios, not
// absolute counts, so that a machine too busy to send at full rate is not
// taken for a broken path: from a second after each move to the BYE, each
// way, the receiver must get survivalRatio of what the sender actually
// sent then. A sender that fell behind its own 20 ms clock is noted as an
// overloaded machine; one that sent nothing at all leaves the verdict
// unknown. The BYE must be answered.
func (r *Result) survival() survivalCheck {
	var c survivalCheck
	if len(r.Handovers) == 0 {
		c.why = []string{r.Scheme + ": no handover happened"}
		return c
	}
	names := [2]string{"MN1", "MN2"}
	for k, h := range r.Handovers {
		from := h.At.Sub(r.InviteAt).Seconds() + 1
		until := r.TeardownAt.Sub(r.InviteAt).Seconds()
		if k+1 < len(r.Handovers) {
			until = r.Handovers[k+1].At.Sub(r.InviteAt).Seconds()
		}
		for rx := range 2 {
			tx := 1 - rx
			received := 0
			for _, a := range r.Arrivals[rx] {
				if a.T > from && a.T < until {
					received++
				}
			}
			sent := 0
			for _, t := range r.Departures[tx] {
				if t > from && t < until {
					sent++
				}
			}
			clock := int((until - from) * 1000 / 20)
			c.figures = append(c.figures, fmt.Sprintf("%s, after the move to %s: %s received %d of the %d packets %s sent (%s)",
				r.Scheme, h.Link, names[rx], received, sent, names[tx], percent(received, sent)))
			if clock > 0 && float64(sent) < overloadRatio*float64(clock) {
				c.notes = append(c.notes, fmt.Sprintf("machine overloaded: %s (%s) sent %d packets where its 20 ms clock called for %d", names[tx], r.Scheme, sent, clock))
			}
			switch {
			case sent == 0:
				c.unknown = true
			case float64(received) < survivalRatio*float64(sent):
				c.why = append(c.why, fmt.Sprintf("%s: %s received %d of the %d packets %s sent from 1 s after the move to %s (%s, want %.0f%% or more)",
					r.Scheme, names[rx], received, sent, names[tx], h.Link, percent(received, sent), 100*survivalRatio))
			}
		}
	}
	if r.Phase(PhaseTeardown).ByType["SIP 200 BYE"] == 0 {
		c.why = append(c.why, r.Scheme+": the BYE was not answered")
	}
	return c
}

func percent(a, b int) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
}

// CounterProblems lists where the recorded messages and the nodes' own
// counters disagree.
func (r *Result) CounterProblems() []string {
	var out []string
	for typ, c := range r.CounterCheck {
		if !c.OK() {
			out = append(out, fmt.Sprintf("%s: %s recorded %d (%d B), counted %d (%d B)", r.Scheme, typ, c.Recorded, c.RecordedBytes, c.Counted, c.CountedBytes))
		}
	}
	sent, bytes, inPhases, bytesInPhases := 0, 0, 0, 0
	for _, snap := range r.PerNode {
		for k, v := range snap {
			if strings.HasPrefix(k, "mh.out.bytes.") {
				bytes += int(v)
			} else if strings.HasPrefix(k, "mh.out.") {
				sent += int(v)
			}
		}
	}
	for _, p := range r.Phases {
		inPhases += p.Mobility
		for typ := range p.ByType {
			if !strings.HasPrefix(typ, "SIP ") {
				bytesInPhases += p.BytesBy[typ]
			}
		}
	}
	if inPhases != sent || bytesInPhases != bytes {
		out = append(out, fmt.Sprintf("%s: the phases hold %d mobility messages (%d B), the nodes counted %d (%d B)", r.Scheme, inPhases, bytesInPhases, sent, bytes))
	}
	return out
}
