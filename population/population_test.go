package population

import (
	"context"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
)

// A small population, both schemes: everyone registers, the pattern
// moves and calls, calls are set up and carry media, and the routers'
// loads add up (home agents hold every binding; in the paper's scheme
// HA2Rs hold anchors and see MN Authentication).
func TestSmallPopulation(t *testing.T) {
	o := Defaults()
	o.MNs, o.Routers, o.Duration, o.MoveEvery, o.CallEvery, o.Talk = 12, 4, 6*time.Second, 4*time.Second, 3*time.Second, 3*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d results, want one per scheme", len(rs))
	}
	for _, r := range rs {
		if r.Moves == 0 || r.MovesFailed > 0 || r.Calls == 0 || r.CallsSetUp != r.Calls {
			t.Errorf("%s: moves %d (%d failed), calls %d set up %d", r.Scheme, r.Moves, r.MovesFailed, r.Calls, r.CallsSetUp)
		}
		t.Logf("%s: %d calls, MOS min/median/max %.2f/%.2f/%.2f", r.Scheme, r.Calls, r.MOS[0], r.MOS[1], r.MOS[2])
		if r.MOS[1] < 3.5 {
			t.Errorf("%s: median MOS %.2f", r.Scheme, r.MOS[1])
		}
		bindings, anchors := 0, 0
		for _, l := range r.Loads {
			switch l.Role {
			case "ha":
				bindings += l.Held
				if l.MHPerSec <= 0 || l.SIPPerSec <= 0 {
					t.Errorf("%s: home agent %s saw no signalling: %+v", r.Scheme, l.Name, l)
				}
			case "ar":
				anchors += l.Held
			}
		}
		if bindings != o.MNs {
			t.Errorf("%s: home agents hold %d bindings, want %d", r.Scheme, bindings, o.MNs)
		}
		if (r.Scheme == config.SchemeHA2R) != (anchors > 0) {
			t.Errorf("%s: HA2Rs hold %d anchors", r.Scheme, anchors)
		}
	}
}
