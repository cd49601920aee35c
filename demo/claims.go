package demo

import (
	"fmt"
	"strings"
)

// Claim is one of the paper's claims, checked against measured figures.
type Claim struct {
	Claim string   `json:"claim"`
	Holds bool     `json:"holds"`
	Why   []string `json:"why,omitempty"` // what contradicts it
}

// Claims checks the paper's claims (section 4) on a standard and an ha2r
// run of the same scenario: its scheme needs fewer session-setup messages,
// with no Return Routability at all; its media reaches the direct path no
// later; and the call survives the handover in both schemes.
func Claims(std, ha2r *Result) []Claim {
	var out []Claim
	check := func(claim string, why []string) {
		out = append(out, Claim{Claim: claim, Holds: len(why) == 0, Why: why})
	}

	var why []string
	if s, h := std.Phase(PhaseSetup).Messages, ha2r.Phase(PhaseSetup).Messages; h >= s {
		why = append(why, fmt.Sprintf("session setup: ha2r %d messages, standard %d", h, s))
	}
	for _, m := range ha2r.Messages {
		switch m.Type {
		case "HoTI", "CoTI", "HoT", "CoT", "BU", "BA":
			why = append(why, fmt.Sprintf("ha2r sent %s (%s to %s) during %s", m.Type, m.From, m.To, m.Phase))
		}
	}
	check("ha2r needs fewer session-setup signalling messages, and no Return Routability", why)

	why = nil
	for i, mn := range []string{"MN1", "MN2"} {
		h, s := ha2r.InviteToDirect[i], std.InviteToDirect[i]
		switch {
		case h < 0:
			why = append(why, fmt.Sprintf("ha2r: no direct media at %s", mn))
		case s >= 0 && h > s:
			why = append(why, fmt.Sprintf("direct media at %s: ha2r after %.1f ms, standard after %.1f ms", mn, h, s))
		}
	}
	check("ha2r media reaches the direct path no later", why)

	why = nil
	for _, r := range []*Result{std, ha2r} {
		why = append(why, r.survival()...)
	}
	check("the call survives the handover in both schemes", why)
	return out
}

// survival lists what says the call did not survive its handovers: media
// must flow both ways from a second after each move, and the BYE must be
// answered.
func (r *Result) survival() []string {
	var why []string
	if len(r.Handovers) == 0 {
		return []string{r.Scheme + ": no handover happened"}
	}
	for _, h := range r.Handovers {
		from := h.At.Sub(r.InviteAt).Seconds() + 1
		until := r.TeardownAt.Sub(r.InviteAt).Seconds()
		for i, mn := range []string{"MN1", "MN2"} {
			n := 0
			for _, a := range r.Arrivals[i] {
				if a.T > from && a.T < until {
					n++
				}
			}
			// 20 ms packets: expect most of them.
			if want := int((until - from) * 50 * 0.8); n < want {
				why = append(why, fmt.Sprintf("%s: %d packets reached %s between 1 s after the move to %s and the BYE, want %d or more", r.Scheme, n, mn, h.Link, want))
			}
		}
	}
	if r.Phase(PhaseTeardown).ByType["SIP 200 BYE"] == 0 {
		why = append(why, r.Scheme+": the BYE was not answered")
	}
	return why
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
