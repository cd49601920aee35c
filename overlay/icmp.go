package overlay

import (
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"golang.org/x/time/rate"
)

// icmpErrors sends a router's ICMPv6 errors: RFC 4443 2.4 (e) decides
// whether one may be sent at all, a token bucket (2.4 (f)) how often; the
// bucket reads the node's clock, so fake-clock tests drive it too.
type icmpErrors struct {
	limit *rate.Limiter
	c     *counters
}

// allow reports whether an error of type typ about invoking may go out now,
// and counts it either way.
func (e *icmpErrors) allow(now time.Time, typ, code uint8, invoking []byte) bool {
	if !ip6.MayAnswerWithError(invoking, typ) {
		return false
	}
	if !e.limit.AllowN(now, 1) {
		e.c.icmpLimited.Add(1)
		return false
	}
	e.c.icmp(typ, code)
	return true
}
