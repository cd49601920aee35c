package mobility

import (
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// The retransmission rule of RFC 6275 11.8: an initial wait, doubled each
// time up to MAX_BINDACK_TIMEOUT, giving up after maxSends (or never).
func TestRetransmitterBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		initial  time.Duration
		maxSends int
		want     []time.Duration // waits between the sends that happen
	}{
		{"home registration: 1.5 s, never gives up", 1500 * time.Millisecond, 0,
			[]time.Duration{1500, 3000, 6000, 12000, 24000, 32000, 32000, 32000}},
		{"return routability: 1 s, six sends", time.Second, 6,
			[]time.Duration{1000, 2000, 4000, 8000, 16000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(epoch)
			r := newRetransmitter(clk, tc.initial, tc.maxSends)
			var sends []time.Time
			gaveUp := false
			var send func()
			send = func() {
				sends = append(sends, clk.Now())
				r.sent(func(gen uint64) {
					if !r.current(gen) {
						t.Fatal("a stale timer fired")
					}
					if r.exhausted() {
						gaveUp = true
						return
					}
					send()
				})
			}
			send()
			for len(sends) < len(tc.want)+1 && !gaveUp {
				clk.Advance(time.Second)
			}
			clk.Advance(5 * time.Minute)
			if tc.maxSends > 0 && (!gaveUp || len(sends) != tc.maxSends) {
				t.Fatalf("gave up %v after %d sends, want after %d", gaveUp, len(sends), tc.maxSends)
			}
			for i, w := range tc.want {
				if got := sends[i+1].Sub(sends[i]); got != w*time.Millisecond {
					t.Errorf("wait %d: %v, want %v", i, got, w*time.Millisecond)
				}
			}
			r.reset()
			if r.pending() || clk.Pending() != 0 {
				t.Error("reset left a timer")
			}
		})
	}
}

// A timer that fires after the message was answered does nothing: reset
// changes the generation it checks.
func TestRetransmitterStaleTimer(t *testing.T) {
	clk := clock.NewFake(epoch)
	r := newRetransmitter(clk, time.Second, 0)
	var fired uint64
	r.sent(func(gen uint64) { fired = gen })
	r.reset()
	clk.Advance(time.Minute)
	if fired != 0 && r.current(fired) {
		t.Error("a reset retransmission still counts as current")
	}
}

func TestRefreshAfter(t *testing.T) {
	for _, c := range []struct{ lifetime, want time.Duration }{
		{420 * time.Second, 336 * time.Second}, // a fifth left
		{8 * time.Second, 6 * time.Second},     // at least 2 s left
		{2 * time.Second, time.Second},         // shorter: halfway
	} {
		if got := refreshAfter(c.lifetime); got != c.want {
			t.Errorf("refreshAfter(%v) = %v, want %v", c.lifetime, got, c.want)
		}
	}
}

// Lifetimes convert once, on the message type: 4-second units rounded
// down, never 0 for a positive lifetime, clamped to the field.
func TestLifetimeUnits(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint16
	}{
		{0, 0}, {-time.Second, 0}, {time.Second, 1}, {4 * time.Second, 1}, {7 * time.Second, 1},
		{420 * time.Second, 105}, {mh.MaxLifetime, 0xffff}, {100 * time.Hour, 0xffff},
	} {
		var m mh.Message
		m.SetLifetime(c.d)
		if m.Lifetime != c.want {
			t.Errorf("SetLifetime(%v) = %d, want %d", c.d, m.Lifetime, c.want)
		}
	}
}
