package mobility

import (
	"crypto/rand"
	"time"

	"github.com/ha2r/mip6testbed/clock"
)

// retransmitter resends a message until it is answered, as RFC 6275 11.8
// asks of a mobile node: the first wait is initial, each next wait twice
// the last, up to MAX_BINDACK_TIMEOUT; after maxSends transmissions it gives
// up (0: it goes on at MAX_BINDACK_TIMEOUT for as long as it is not
// answered, as 11.8 allows for home registration).
//
// It is not safe for concurrent use: the part that owns it calls it under
// its own lock, and its fire function takes that lock and checks current
// before acting, so a timer that fired just as it was stopped does nothing.
type retransmitter struct {
	clk      clock.Clock
	initial  time.Duration
	maxSends int

	timer clock.Timer
	wait  time.Duration
	sends int
	gen   uint64
}

func newRetransmitter(clk clock.Clock, initial time.Duration, maxSends int) retransmitter {
	return retransmitter{clk: clk, initial: initial, maxSends: maxSends}
}

// sent records a transmission and arms the timer for the next one: fire
// runs after the current wait with the generation it must check with
// current. The first call after reset waits initial.
func (r *retransmitter) sent(fire func(gen uint64)) {
	r.stopTimer()
	if r.wait == 0 {
		r.wait = r.initial
	} else {
		r.wait = min(2*r.wait, MaxBindackTimeout)
	}
	r.sends++
	r.gen++
	gen := r.gen
	r.timer = r.clk.AfterFunc(r.wait, func() { fire(gen) })
}

// current reports whether a firing timer is still the pending one.
func (r *retransmitter) current(gen uint64) bool { return r.timer != nil && gen == r.gen }

// exhausted reports whether the message was sent maxSends times already.
func (r *retransmitter) exhausted() bool { return r.maxSends > 0 && r.sends >= r.maxSends }

// reset stops retransmission (the message was answered, or a new message
// replaces it); the next sent starts from the initial wait again.
func (r *retransmitter) reset() {
	r.stopTimer()
	r.wait, r.sends = 0, 0
}

// pending reports whether a retransmission is scheduled.
func (r *retransmitter) pending() bool { return r.timer != nil }

func (r *retransmitter) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.gen++
}

// schedule is one pending action that replaces any earlier one: a binding
// refresh, an expiry. Like retransmitter it lives under its owner's lock.
type schedule struct {
	timer clock.Timer
	gen   uint64
}

// at runs fire after d, replacing what was scheduled before.
func (s *schedule) at(clk clock.Clock, d time.Duration, fire func(gen uint64)) {
	s.stop()
	gen := s.gen
	s.timer = clk.AfterFunc(d, func() { fire(gen) })
}

// current reports whether a firing action is still the scheduled one.
func (s *schedule) current(gen uint64) bool { return s.timer != nil && gen == s.gen }

func (s *schedule) stop() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.gen++
}

// refreshAfter is when a binding granted for lifetime is refreshed: with a
// fifth of it (at least 2 s) left, so that a lost refresh still has time for
// retransmissions before the binding lapses (RFC 6275 11.7.1 leaves the
// moment to the mobile node). Every binding a mobile node holds follows it.
func refreshAfter(lifetime time.Duration) time.Duration {
	margin := max(lifetime/5, 2*time.Second)
	if margin >= lifetime {
		return lifetime / 2
	}
	return lifetime - margin
}

// randomSeq is where a sequence number space starts: random, so that a
// restarted node is unlikely to reuse numbers its peers still hold.
func randomSeq() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}
