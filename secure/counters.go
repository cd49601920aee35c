package secure

import (
	"sync/atomic"

	"github.com/ha2r/mip6testbed/metrics"
)

// counters are resolved once, so the data path does no map lookups.
type counters struct {
	sealed, opened, keepalives                        *atomic.Uint64
	initiations, retries, responses, sessions         *atomic.Uint64
	handshakeGaveUp, stagedDropped                    *atomic.Uint64
	noPeer, malformed, plaintext, unknownIndex        *atomic.Uint64
	authFailed, replayed, expired, wrongLinkAddr      *atomic.Uint64
	badMAC1, rateLimited, staleInitiation, unknownKey *atomic.Uint64
	hintsSent, hintsHeeded, hintsIgnored              *atomic.Uint64
	cookieSent, cookieReceived, cookieAdmitted        *atomic.Uint64
	crossedInitiation, staleResponse                  *atomic.Uint64
}

func (c *counters) resolve(m *metrics.Set) {
	for name, p := range map[string]**atomic.Uint64{
		"secure.sealed": &c.sealed, "secure.opened": &c.opened, "secure.keepalives": &c.keepalives,
		"secure.handshake.initiations": &c.initiations, "secure.handshake.retries": &c.retries,
		"secure.handshake.responses": &c.responses, "secure.sessions": &c.sessions,
		"secure.handshake.gave_up": &c.handshakeGaveUp, "secure.drop.staged": &c.stagedDropped,
		"secure.drop.no_peer": &c.noPeer, "secure.drop.malformed": &c.malformed, "secure.drop.plaintext": &c.plaintext,
		"secure.drop.unknown_index": &c.unknownIndex, "secure.drop.auth": &c.authFailed, "secure.drop.replayed": &c.replayed,
		"secure.drop.expired": &c.expired, "secure.drop.wrong_link_addr": &c.wrongLinkAddr, "secure.drop.mac1": &c.badMAC1,
		"secure.drop.rate_limited": &c.rateLimited, "secure.drop.stale_initiation": &c.staleInitiation,
		"secure.drop.unknown_key":     &c.unknownKey,
		"secure.unknown_session.sent": &c.hintsSent, "secure.unknown_session.heeded": &c.hintsHeeded,
		"secure.unknown_session.ignored": &c.hintsIgnored,
		"secure.cookie.sent":             &c.cookieSent, "secure.cookie.received": &c.cookieReceived, "secure.cookie.admitted": &c.cookieAdmitted,
		"secure.handshake.crossed": &c.crossedInitiation, "secure.drop.stale_response": &c.staleResponse,
	} {
		*p = m.Counter(name)
	}
}
