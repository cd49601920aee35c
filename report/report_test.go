package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/demo"
)

func fakeResult(scheme string) *demo.Result {
	t0 := time.Unix(1000, 0)
	return &demo.Result{
		Scheme: scheme, Start: t0, InviteAt: t0.Add(time.Second), TeardownAt: t0.Add(5 * time.Second), End: t0.Add(6 * time.Second),
		Phases: []demo.PhaseSummary{{Phase: demo.PhaseSetup, Messages: 3, Bytes: 300, SIP: 3,
			ByType: map[string]int{"SIP INVITE": 3}, BytesBy: map[string]int{"SIP INVITE": 300}}},
		Lanes: []string{"mn1", "ha1", "<mn2>"},
		Messages: []demo.Message{
			{Kind: "sip", Type: "INVITE", From: "mn1", To: "<mn2>", Via: []demo.Hop{{Node: "ha1", At: t0.Add(1010 * time.Millisecond)}},
				Sent: t0.Add(time.Second), Received: t0.Add(1020 * time.Millisecond), Phase: demo.PhaseSetup},
			{Kind: "mobility", Type: "<script>alert(1)</script>", From: "mn1", To: "ha1", Sent: t0.Add(2 * time.Second), Phase: demo.PhaseHandover},
		},
		Handovers: []demo.Handover{{Link: "ar1p", At: t0.Add(3 * time.Second), GapToMN1: 22.5, GapToMN2: 41}},
		Arrivals:  [2][]demo.Arrival{{{T: 0.1}, {T: 0.12, Tunnelled: true}}, {{T: 0.2}}},
	}
}

// TestRenderings checks that the text and the page carry the figures and
// that nothing recorded can inject markup into the page.
func TestRenderings(t *testing.T) {
	rep := New(demo.Defaults(), []*demo.Result{fakeResult("standard"), fakeResult("ha2r")})
	var text, page bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 (300 B) in 0.0 s", "22.5 ms", "41.0 ms", "ar1p"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	p := page.String()
	if strings.Contains(p, "<script>") || strings.Contains(p, "<mn2>") {
		t.Error("the page carries unescaped recorded text")
	}
	for _, want := range []string{"&lt;script&gt;", "<svg", "MN1 to ar1p"} {
		if !strings.Contains(p, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The relayed INVITE is drawn as two arrows (mn1 > ha1 > <mn2>); the
	// never-accepted message is dashed.
	seq := SequenceSVG(rep.Results[0])
	if n := strings.Count(seq, "<line x1=") - len(rep.Results[0].Lanes); n != 3 {
		t.Errorf("%d message arrows, want 3", n)
	}
	if strings.Count(seq, `stroke="`+colourLost+`" stroke-dasharray`) != 1 {
		t.Error("the never-accepted message is not drawn dashed")
	}
}

// The handover comparison has a column per scheme and way of moving, in
// that order, with each run's own figures.
func TestCompareHandovers(t *testing.T) {
	bbm := New(demo.Defaults(), []*demo.Result{fakeResult("standard"), fakeResult("ha2r")})
	o := demo.Defaults()
	o.MakeBeforeBreak = true
	m := []*demo.Result{fakeResult("standard"), fakeResult("ha2r")}
	m[1].Caller.PacketsLost = 7
	m[1].Handovers = append(m[1].Handovers, demo.Handover{Link: "ar1", GapToMN1: 30, AttachMs: 35}, demo.Handover{Link: "ar1p", GapToMN1: 21, AttachMs: 33})
	cmp := CompareHandovers(bbm, New(o, m))
	if got, want := strings.Join(cmp.Table.Columns, ","), "standard bbm,standard mbb,ha2r bbm,ha2r mbb"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	var text bytes.Buffer
	if err := cmp.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	lost := cmp.Table.Rows[0]
	if lost.Cells[3] != "7" || lost.Cells[2] != "0" {
		t.Errorf("lost row %v: want ha2r mbb 7, ha2r bbm 0", lost.Cells)
	}
	if !strings.Contains(text.String(), "21.0-30.0 ms") {
		t.Errorf("the ha2r mbb gaps over three moves are not shown as a range:\n%s", text.String())
	}
}
