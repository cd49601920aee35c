package softphone

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// nonceLifetime is how long a registrar's nonce is good for: a phone
// reuses it (with a growing nonce count) for its refreshes, so that a
// refresh costs one round trip, not two.
const nonceLifetime = time.Hour

// digestGuard is a registrar's HTTP digest authentication (RFC 3261 22.4,
// with SHA-256 first and MD5 for old clients, RFC 8760). Nonces are
// stateless: a timestamp and its HMAC under a key the guard makes at
// start, so a restarted registrar simply challenges again.
type digestGuard struct {
	realm      string
	key        [32]byte
	passwords  map[string]string // by user
	algorithms []string          // offered, in order of preference

	// The nonce counts each user has used with each nonce (RFC 7616
	// 3.4.5): a captured Authorization replayed within the nonce's hour is
	// refused. A window, not a strict order, because a phone's REGISTER
	// refresh and INVITE may cross on the way.
	mu   sync.Mutex
	used map[usedKey]*ncWindow
}

type usedKey struct{ user, nonce string }

// ncWindow is the nonce counts seen for one user and nonce: the highest,
// and which of the 64 below it.
type ncWindow struct {
	max     uint32
	seen    uint64 // bit i: max-1-i was used
	expires time.Time
}

// maxUsedNonces bounds the table; expired entries go when it fills.
const maxUsedNonces = 1 << 16

func newDigestGuard(realm string, passwords map[string]string, algorithms []string) *digestGuard {
	if len(algorithms) == 0 {
		algorithms = []string{"SHA-256", "MD5"}
	}
	g := &digestGuard{realm: realm, passwords: passwords, algorithms: algorithms, used: map[usedKey]*ncWindow{}}
	rand.Read(g.key[:])
	return g
}

// nonce is a timestamp and 8 random bytes under an HMAC: unique per
// challenge, so that clients that count from 1 for every challenge (SIPp)
// are not taken for replays of each other.
func (g *digestGuard) nonce(now time.Time) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.Unix()))
	rand.Read(raw[8:])
	m := hmac.New(sha256.New, g.key[:])
	m.Write(raw[:])
	return hex.EncodeToString(raw[:]) + hex.EncodeToString(m.Sum(nil)[:12])
}

// fresh reports whether nonce is one of ours and still good.
func (g *digestGuard) fresh(nonce string, now time.Time) bool {
	raw, err := hex.DecodeString(nonce)
	if err != nil || len(raw) != 28 {
		return false
	}
	m := hmac.New(sha256.New, g.key[:])
	m.Write(raw[:16])
	if !hmac.Equal(m.Sum(nil)[:12], raw[16:]) {
		return false
	}
	age := now.Sub(time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0))
	return age >= -time.Minute && age < nonceLifetime
}

// A registrar challenges with 401 and WWW-Authenticate and reads
// Authorization; a proxy with 407, Proxy-Authenticate, Proxy-Authorization.
type authRole struct {
	code                 int
	reason, challengeHdr string
	credentialsHdr       string
}

var (
	asRegistrar = authRole{401, "Unauthorized", "WWW-Authenticate", "Authorization"}
	asProxy     = authRole{407, "Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"}
)

// challenge answers req with a challenge per algorithm.
func (g *digestGuard) challenge(req *sip.Request, role authRole, stale bool) *sip.Response {
	res := sip.NewResponseFromRequest(req, role.code, role.reason, nil)
	n := g.nonce(time.Now())
	for _, alg := range g.algorithms {
		v := fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, g.realm, n, alg)
		if stale {
			v += ", stale=true"
		}
		res.AppendHeader(sip.NewHeader(role.challengeHdr, v))
	}
	return res
}

// check verifies req's Authorization for user: ok when the credentials are
// right; stale when they would be but the nonce is old (the client should
// retry with the new one, no password needed).
func (g *digestGuard) check(req *sip.Request, role authRole, user string) (ok, stale bool) {
	h := req.GetHeader(role.credentialsHdr)
	if h == nil {
		return false, false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username != user || cred.Realm != g.realm || cred.Userhash {
		return false, false
	}
	password, known := g.passwords[user]
	if !known {
		return false, false
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	offered := false
	for _, a := range g.algorithms {
		offered = offered || strings.EqualFold(a, alg)
	}
	if !offered {
		return false, false
	}
	chal := &digest.Challenge{Realm: g.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: req.Method.String(), URI: cred.URI, Username: user, Password: password,
		Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return false, false
	}
	now := time.Now()
	if !g.fresh(cred.Nonce, now) {
		return false, true
	}
	nc := uint32(cred.Nc)
	if cred.QOP == "" {
		// An RFC 2069 answer carries no count: its nonce is good once
		// (RFC 2617 3.2.3 lets a server make nonces one-time), and such
		// a client answers a challenge per request.
		nc = 1
	}
	if !g.firstUse(user, cred.Nonce, nc, now) {
		return false, false // a replay: challenged afresh
	}
	return true, false
}

// firstUse records nonce count nc of user with nonce, and reports whether
// it is new.
func (g *digestGuard) firstUse(user, nonce string, nc uint32, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := usedKey{user, nonce}
	w := g.used[k]
	if w == nil {
		if len(g.used) >= maxUsedNonces {
			for key, x := range g.used {
				if now.After(x.expires) {
					delete(g.used, key)
				}
			}
			if len(g.used) >= maxUsedNonces {
				return false // full of live nonces: refuse rather than forget
			}
		}
		g.used[k] = &ncWindow{max: nc, expires: now.Add(nonceLifetime + time.Minute)}
		return true
	}
	switch {
	case nc > w.max:
		shift := nc - w.max
		if shift >= 64 {
			w.seen = 0
		} else {
			w.seen = w.seen<<shift | 1<<(shift-1)
		}
		w.max = nc
		return true
	case nc == w.max || w.max-nc > 64:
		return false
	}
	bit := uint64(1) << (w.max - nc - 1)
	if w.seen&bit != 0 {
		return false
	}
	w.seen |= bit
	return true
}

// SIPPassword derives a SIP user's digest password from a secret the
// topology already holds for that user (a mobile node's MN-HA key), so that
// the file needs no second secret: the first 32 hex digits of
// HMAC-SHA-256(secret, "mip6testbed SIP digest " + address of record).
func SIPPassword(secret []byte, aor string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mip6testbed SIP digest " + strings.ToLower(aor)))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// authorize adds credentials for req from the phone's cached challenge
// (nonce count one up), so that a refresh, or an INVITE to the proxy of
// the same realm, needs no new challenge while the nonce is good. It
// reports false without one.
func (p *Phone) authorize(req *sip.Request, role authRole) bool {
	p.mu.Lock()
	chal := p.regChallenge
	p.regNC++
	nc := p.regNC
	p.mu.Unlock()
	if chal == nil {
		return false
	}
	cred, err := digest.Digest(chal, digest.Options{Method: req.Method.String(), URI: req.Recipient.Addr(),
		Username: p.cfg.AOR.User, Password: p.cfg.Password, Count: nc})
	if err != nil {
		return false
	}
	req.RemoveHeader(role.credentialsHdr)
	req.AppendHeader(sip.NewHeader(role.credentialsHdr, cred.String()))
	return true
}

// learnChallenge keeps the first challenge of a 401 the phone can answer.
func (p *Phone) learnChallenge(res *sip.Response) {
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil || !digest.CanDigest(chal) {
			continue
		}
		p.mu.Lock()
		p.regChallenge, p.regNC = chal, 0
		p.mu.Unlock()
		return
	}
}
