package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/report"
)

// runDemo runs both schemes once, shortened, and shares the result between
// the tests below (a run takes about ten seconds).
var shared struct {
	rs  []*demo.Result
	o   demo.Options
	err error
	ran bool
}

func results(t *testing.T) ([]*demo.Result, demo.Options) {
	t.Helper()
	if testing.Short() {
		t.Skip("the demo runs for about ten seconds")
	}
	if !shared.ran {
		shared.ran = true
		o := demo.Defaults()
		o.Before, o.Between, o.After = time.Second, time.Second, 2500*time.Millisecond
		var progress bytes.Buffer
		o.Progress = &progress
		shared.o = o
		shared.rs, shared.err = demo.Run(context.Background(), o)
		t.Logf("progress:\n%s", progress.String())
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.rs, shared.o
}

func byScheme(t *testing.T, rs []*demo.Result, scheme string) *demo.Result {
	for _, r := range rs {
		if r.Scheme == scheme {
			return r
		}
	}
	t.Fatalf("no %s result", scheme)
	return nil
}

// TestFiguresMatchCounters checks the report's figures against the nodes'
// own counters: every mobility message each node counted as sent is in
// exactly one phase with its bytes, and every SIP request a proxy counted
// was recorded.
func TestFiguresMatchCounters(t *testing.T) {
	rs, o := results(t)
	for _, r := range rs {
		for _, p := range r.CounterProblems() {
			t.Error(p)
		}
		if r.Phase(demo.PhaseAttach).Mobility == 0 {
			t.Errorf("%s: no mobility messages at attach", r.Scheme)
		}
		for _, typ := range []string{"SIP INVITE", "SIP ACK", "SIP BYE", "SIP REGISTER"} {
			if r.CounterCheck[typ].Counted == 0 {
				t.Errorf("%s: no %s counted by the proxies", r.Scheme, typ)
			}
		}
	}

	// The rendered report carries the same figures.
	dir := t.TempDir()
	rep := report.New(o, rs)
	if err := rep.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []struct {
			Scheme string `json:"scheme"`
			Phases []struct {
				Phase    string `json:"phase"`
				Messages int    `json:"messages"`
			} `json:"phases"`
		} `json:"results"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || json.Unmarshal(b, &back) != nil || len(back.Results) != len(rs) {
		t.Fatalf("report.json: %v", err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "report.txt"))
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	for i, r := range rs {
		for j, p := range r.Phases {
			if back.Results[i].Phases[j].Messages != p.Messages {
				t.Errorf("report.json %s %s: %d messages, measured %d", r.Scheme, p.Phase, back.Results[i].Phases[j].Messages, p.Messages)
			}
		}
		var row string
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "  "+demo.PhaseSetup+" ") {
				row = line
			}
		}
		if want := strconv.Itoa(r.Phase(demo.PhaseSetup).Messages) + " ("; !strings.Contains(row, want) {
			t.Errorf("report.txt setup row %q lacks %s's %q", row, r.Scheme, want)
		}
	}
	for _, want := range []string{"<svg", "MNAuthReq", "HoTI", "MN1 to ar1p", "<h3>ha2r</h3>", "<h3>standard</h3>"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	if bytes.Contains(page, []byte("http://")) && !bytes.Contains(page, []byte(`xmlns="http://www.w3.org/2000/svg"`)) {
		t.Error("index.html refers to an external resource")
	}
	for _, ref := range []string{"src=", "href=", "@import", "url(http"} {
		if bytes.Contains(page, []byte(ref)) {
			t.Errorf("index.html is not self-contained: it has %q", ref)
		}
	}
}

// TestPaperClaims asserts, from the measured figures, what the paper claims
// for its scheme.
func TestPaperClaims(t *testing.T) {
	rs, _ := results(t)
	std, ha2r := byScheme(t, rs, "standard"), byScheme(t, rs, "ha2r")

	for _, c := range demo.Claims(std, ha2r) {
		if !c.Holds {
			t.Errorf("claim %q does not hold: %s", c.Claim, strings.Join(c.Why, "; "))
		}
	}
	// What the claims rest on: Return Routability each way in the standard
	// scheme, whose media starts through the tunnels; the paper's media is
	// direct from its first packet.
	for _, typ := range []string{"HoTI", "CoTI", "HoT", "CoT", "BU"} {
		if std.Phase(demo.PhaseSetup).ByType[typ] != 2 {
			t.Errorf("standard session setup: %d %s, want one each way", std.Phase(demo.PhaseSetup).ByType[typ], typ)
		}
	}
	for i, mn := range []string{"MN1", "MN2"} {
		if h := ha2r.InviteToDirect[i]; h != ha2r.InviteToMedia[i] {
			t.Errorf("ha2r: first media at %s after %.1f ms, first direct after %.1f ms", mn, ha2r.InviteToMedia[i], h)
		}
		if s := std.InviteToDirect[i]; s <= std.InviteToMedia[i] {
			t.Errorf("standard: media at %s was direct from the start (%.1f ms): no Return Routability?", mn, s)
		}
	}
	for _, r := range rs {
		if len(r.Handovers) != 1 {
			t.Fatalf("%s: %d handovers", r.Scheme, len(r.Handovers))
		}
		if g := max(r.Handovers[0].GapToMN1, r.Handovers[0].GapToMN2); g <= 0 || g > 1500 {
			t.Errorf("%s: media gap at the handover %.0f ms", r.Scheme, g)
		}
		if r.Caller.FramesMismatched != 0 || r.Callee.FramesMismatched != 0 || r.Caller.FramesVerified == 0 {
			t.Errorf("%s: audio frames verified %d, garbled %d, %d", r.Scheme, r.Caller.FramesVerified, r.Caller.FramesMismatched, r.Callee.FramesMismatched)
		}
	}
	// After the move the paper's scheme keeps the old care-of address: its
	// media goes through AR1's tunnel, the standard's straight to AR1'.
	tunnelled := func(ps []demo.PathSample) bool {
		for _, p := range ps {
			if !p.Tunnelled {
				return false
			}
		}
		return len(ps) == 2
	}
	if !tunnelled(ha2r.PathAfter) || tunnelled(std.PathAfter) || tunnelled(ha2r.PathBefore) {
		t.Errorf("paths: ha2r before %+v after %+v; standard after %+v", ha2r.PathBefore, ha2r.PathAfter, std.PathAfter)
	}
}

// TestSameSeedSameCounts runs the standard scheme twice over lossy links
// with one seed: the signalling messages sent, by type, are the same.
func TestSameSeedSameCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo twice")
	}
	counts := func() map[string]int {
		o := demo.Defaults()
		o.Schemes = o.Schemes[:1]
		o.Before, o.Between, o.After = time.Second, time.Second, 2500*time.Millisecond
		o.Loss, o.Seed = 0.05, 7
		rs, err := demo.Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, p := range rs[0].Phases {
			for typ, n := range p.ByType {
				out[typ] += n
			}
		}
		return out
	}
	a, b := counts(), counts()
	if len(a) == 0 {
		t.Fatal("no messages")
	}
	for typ := range a {
		if a[typ] != b[typ] {
			t.Errorf("%s: %d, then %d", typ, a[typ], b[typ])
		}
	}
	for typ := range b {
		if _, ok := a[typ]; !ok {
			t.Errorf("%s: only in the second run", typ)
		}
	}
}
