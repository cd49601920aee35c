package sweep

import (
	"context"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/examples"
)

// Without loss every call of the sweep is set up and survives its move, in
// both schemes, and the point says so with its registrations.
func TestCallsWithoutLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pts, err := Calls(ctx, CallOptions{Topology: examples.Fig4, TopologyName: "fig4.yaml",
		Schemes: []config.Scheme{config.SchemeStandard, config.SchemeHA2R}, Loss: []float64{0},
		Calls: 4, Batch: 2, Talk: 500 * time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Scheme != config.SchemeStandard || pts[1].Scheme != config.SchemeHA2R {
		t.Fatalf("points %+v; want standard then ha2r", pts)
	}
	for _, p := range pts {
		if p.Calls != 4 || p.SetUp != 4 || p.Survived != 4 || !p.HomeRegistered {
			t.Errorf("%s: %d of %d set up, %d survived, home registered %v; failures %v, broken %v",
				p.Scheme, p.SetUp, p.Calls, p.Survived, p.HomeRegistered, p.Failures, p.Broken)
		}
		if p.Scheme == config.SchemeHA2R && !p.Authenticated {
			t.Errorf("ha2r: not authenticated after the move")
		}
		if p.SetupMedian <= 0 || p.SetupP95 < p.SetupMedian {
			t.Errorf("%s: setup median %v, p95 %v", p.Scheme, p.SetupMedian, p.SetupP95)
		}
	}
}
