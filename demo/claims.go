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

// survivalRatio is the share of the delivery before the moves (what
// arrived of what the peer sent) that must hold after each move for the
// call to count as surviving it, so that a lossy path is judged against
// itself; overloadRatio is how far a sender may fall behind its 20 ms
// clock before the run says the machine was overloaded.
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
// taken for a broken path, nor a lossy one for a broken call: from a
// second after each move to the next (or the BYE), each way, the share of
// what the sender actually sent that arrived must be at least
// survivalRatio of the share before the first move. A sender that fell
// behind its own 20 ms clock is noted as an overloaded machine; one that
// sent nothing at all leaves the verdict unknown. The BYE must be answered.
func (r *Result) survival() survivalCheck {
	var c survivalCheck
	if len(r.Handovers) == 0 {
		c.why = []string{r.Scheme + ": no handover happened"}
		return c
	}
	names := [2]string{"MN1", "MN2"}
	// delivered counts, one way, what arrived and what was sent in (from, until).
	delivered := func(rx int, from, until float64) (received, sent int) {
		for _, a := range r.Arrivals[rx] {
			if a.T > from && a.T < until {
				received++
			}
		}
		for _, t := range r.Departures[1-rx] {
			if t > from && t < until {
				sent++
			}
		}
		return received, sent
	}
	// The baseline: from the first media to the first move.
	var base [2]float64
	first := r.Handovers[0].At.Sub(r.InviteAt).Seconds()
	for rx := range 2 {
		start := first
		if len(r.Arrivals[rx]) > 0 {
			start = r.Arrivals[rx][0].T - 0.001
		}
		rcv, snt := delivered(rx, start, first)
		base[rx] = 1
		if snt > 0 {
			base[rx] = min(1, float64(rcv)/float64(snt))
		}
		c.figures = append(c.figures, fmt.Sprintf("%s, before the move: %s received %d of the %d packets %s sent (%s)",
			r.Scheme, names[rx], rcv, snt, names[1-rx], percent(rcv, snt)))
	}
	for k, h := range r.Handovers {
		from := h.At.Sub(r.InviteAt).Seconds() + 1
		until := r.TeardownAt.Sub(r.InviteAt).Seconds()
		if k+1 < len(r.Handovers) {
			until = r.Handovers[k+1].At.Sub(r.InviteAt).Seconds()
		}
		for rx := range 2 {
			tx := 1 - rx
			received, sent := delivered(rx, from, until)
			clock := int((until - from) * 1000 / 20)
			c.figures = append(c.figures, fmt.Sprintf("%s, after the move to %s: %s received %d of the %d packets %s sent (%s)",
				r.Scheme, h.Link, names[rx], received, sent, names[tx], percent(received, sent)))
			if clock > 0 && float64(sent) < overloadRatio*float64(clock) {
				c.notes = append(c.notes, fmt.Sprintf("machine overloaded: %s (%s) sent %d packets where its 20 ms clock called for %d", names[tx], r.Scheme, sent, clock))
			}
			switch {
			case sent == 0:
				c.unknown = true
			case float64(received) < survivalRatio*base[rx]*float64(sent):
				c.why = append(c.why, fmt.Sprintf("%s: %s received %d of the %d packets %s sent from 1 s after the move to %s (%s; before the move %.0f%%, want %.0f%% of that or more)",
					r.Scheme, names[rx], received, sent, names[tx], h.Link, percent(received, sent), 100*base[rx], 100*survivalRatio))
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
