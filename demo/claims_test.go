package demo

import (
	"math"
	"strings"
	"testing"
	"time"
)

// fakeRun is a minimal result: setup messages, direct-media times, and
// media that flows through one handover.
func fakeRun(scheme string, setup []string, direct float64, mediaAfterMove bool) *Result {
	t0 := time.Unix(1000, 0)
	r := &Result{Scheme: scheme, InviteAt: t0, TeardownAt: t0.Add(6 * time.Second),
		InviteToMedia: [2]float64{direct, direct}, InviteToDirect: [2]float64{direct, direct},
		Handovers: []Handover{{Link: "ar1p", At: t0.Add(2 * time.Second)}}}
	ph := PhaseSummary{Phase: PhaseSetup, ByType: map[string]int{}}
	for _, typ := range setup {
		r.Messages = append(r.Messages, Message{Type: typ, Phase: PhaseSetup})
		ph.Messages++
	}
	r.Phases = []PhaseSummary{ph, {Phase: PhaseTeardown, ByType: map[string]int{"SIP 200 BYE": 3}}}
	for i := range 2 {
		for k := 0; k < 300; k++ {
			t := float64(k) * 0.02
			r.Departures[1-i] = append(r.Departures[1-i], t)
			if !mediaAfterMove && t > 2 {
				continue
			}
			r.Arrivals[i] = append(r.Arrivals[i], Arrival{T: t + 0.01})
		}
	}
	return r
}

// starved is a run on a machine so loaded that MN2 sent a packet every
// interval instead of every 20 ms after the move; all of them arrived.
func starved(interval float64) *Result {
	r := fakeRun("ha2r", []string{"INVITE"}, 100, true)
	r.Departures[1], r.Arrivals[0] = nil, nil
	for t := 0.0; t < 6; t += 0.02 {
		if t > 2 && math.Mod(t, interval) >= 0.02 {
			continue
		}
		r.Departures[1] = append(r.Departures[1], t)
		r.Arrivals[0] = append(r.Arrivals[0], Arrival{T: t + 0.01})
	}
	return r
}

func TestClaims(t *testing.T) {
	rr := []string{"INVITE", "HoTI", "CoTI", "HoT", "CoT", "BU", "BA", "HoTI", "CoTI", "HoT", "CoT", "BU", "BA"}
	holds := func(cs []Claim) []bool {
		var out []bool
		for _, c := range cs {
			out = append(out, c.Holds)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		std, ha2r *Result
		want      []bool
	}{
		{"as the paper says", fakeRun("standard", rr, 300, true), fakeRun("ha2r", []string{"INVITE"}, 100, true), []bool{true, true, true}},
		{"ha2r runs Return Routability", fakeRun("standard", rr, 300, true), fakeRun("ha2r", []string{"INVITE", "HoTI"}, 100, true), []bool{false, true, true}},
		{"ha2r no fewer messages", fakeRun("standard", []string{"INVITE"}, 300, true), fakeRun("ha2r", []string{"INVITE"}, 100, true), []bool{false, true, true}},
		{"ha2r direct later", fakeRun("standard", rr, 300, true), fakeRun("ha2r", []string{"INVITE"}, 400, true), []bool{true, false, true}},
		{"call dies at the move", fakeRun("standard", rr, 300, false), fakeRun("ha2r", []string{"INVITE"}, 100, true), []bool{true, true, false}},
		{"sender starved of CPU", fakeRun("standard", rr, 300, true), starved(0.1), []bool{true, true, true}},
	} {
		got := holds(Claims(tc.std, tc.ha2r))
		for i := range tc.want {
			if got[i] != tc.want[i] {
				t.Errorf("%s: claim %d holds=%v, want %v (%+v)", tc.name, i, got[i], tc.want[i], Claims(tc.std, tc.ha2r)[i])
			}
		}
	}
}

// Each handover's media gap is the longest silence between it and the next
// move: with moves 3 s apart, a gap after the second move used to be
// reported for the first as well.
func TestGapAroundStopsAtNextMove(t *testing.T) {
	var arr []Arrival
	for ms := 0; ms < 8000; ms += 20 {
		if (ms > 1000 && ms < 1100) || (ms > 4000 && ms < 4200) {
			continue // silences of 100 and 200 ms after the moves at 0.9 and 3.9 s
		}
		arr = append(arr, Arrival{T: float64(ms) / 1000})
	}
	first, second := gapAround(arr, 0.9, 3.9), gapAround(arr, 3.9, 8.9)
	if first < 99 || first > 101 {
		t.Errorf("first move's gap %.1f ms, want 100", first)
	}
	if second < 199 || second > 201 {
		t.Errorf("second move's gap %.1f ms, want 200", second)
	}
}

// A lossy path is judged against itself: 60 % delivered before and after
// the move holds; 60 % before and 20 % after does not.
func TestSurvivalAgainstTheDeliveryBefore(t *testing.T) {
	lossy := func(after int) *Result {
		r := fakeRun("ha2r", []string{"INVITE"}, 100, true)
		for i := range 2 {
			r.Arrivals[i] = nil
			for k, t := range r.Departures[1-i] {
				keep := k%5 < 3 // 60 %
				if t > 2 {
					keep = k%5 < after
				}
				if keep {
					r.Arrivals[i] = append(r.Arrivals[i], Arrival{T: t + 0.01})
				}
			}
		}
		return r
	}
	std := fakeRun("standard", nil, 300, true)
	if c := Claims(std, lossy(3))[2]; c.Verdict != VerdictHolds {
		t.Errorf("60 %% before and after: %+v", c)
	}
	if c := Claims(std, lossy(1))[2]; c.Verdict != VerdictFails {
		t.Errorf("60 %% before, 20 %% after: %+v", c)
	}
}

// CPU starvation is flagged, not turned into a failed verdict: a sender
// that fell behind its clock but whose packets all arrived holds, with a
// note; one that sent nothing at all leaves the verdict unknown; a path
// that lost the packets fails, with the figures it rests on.
func TestSurvivalVerdictUnderStarvation(t *testing.T) {
	std := fakeRun("standard", nil, 300, true)
	c := Claims(std, starved(0.1))[2]
	if c.Verdict != VerdictHolds || len(c.Notes) == 0 || !strings.Contains(c.Notes[0], "machine overloaded: MN2 (ha2r)") {
		t.Errorf("starved sender, all received: %+v; want holds with an overload note", c)
	}
	stalled := starved(100) // nothing at all after the move
	if c := Claims(std, stalled)[2]; c.Verdict != VerdictUnknown || c.Holds {
		t.Errorf("stalled sender: %+v; want cannot tell", c)
	}
	broken := fakeRun("ha2r", nil, 100, false)
	c = Claims(std, broken)[2]
	if c.Verdict != VerdictFails || len(c.Notes) != 0 || len(c.Figures) != 8 || !strings.Contains(c.Why[0], "received 0 of the") {
		t.Errorf("broken path: %+v; want does not hold, with figures and no overload note", c)
	}
}
