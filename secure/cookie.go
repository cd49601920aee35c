package secure

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Under a flood of initiations (WireGuard's cookie mechanism, simplified):
// a node answers HandshakesPerSecond initiations a second. Past that, an
// initiation is answered only if its mac2 proves that its sender received
// a cookie at its source address, which a flood from spoofed addresses
// cannot; those get a cookie reply instead: an HMAC and a seal, about a
// microsecond, and smaller than the initiation, so no amplification. (Not
// rate-limited: a limit the flood could spend would starve the real
// initiators of cookies.) Initiations with a valid mac2 have a budget of
// their own, so the flood cannot spend that either. The cookie is an HMAC
// of the source address under a secret replaced every two minutes; the
// reply carries it sealed under a key derived from the replier's public
// key, with the initiation's mac1 as additional data, so only the one who
// sent that initiation (and knows whom it was for) can use it.

// cookieLifetime is how long a secret, and so a cookie, is good for.
const cookieLifetime = 2 * time.Minute

// cookieJar is the responder's side.
type cookieJar struct {
	mu     sync.Mutex
	secret [32]byte
	born   time.Time
	admits *rate.Limiter // initiations with a valid mac2 answered
}

// heldCookie is the initiator's side: a peer's last cookie.
type heldCookie struct {
	value [16]byte
	at    time.Time
}

func (j *cookieJar) init(perSecond float64) {
	j.admits = rate.NewLimiter(rate.Limit(perSecond), handshakeBurst(perSecond))
}

// handshakeBurst is the burst of the handshake budgets: a fifth of a
// second's worth, at least 1, at most 200.
func handshakeBurst(perSecond float64) int {
	return min(max(int(perSecond/5), 1), 200)
}

// cookieFor is the cookie of source address from now.
func (j *cookieJar) cookieFor(from netip.AddrPort, now time.Time) [16]byte {
	j.mu.Lock()
	if j.born.IsZero() || now.Sub(j.born) >= cookieLifetime {
		rand.Read(j.secret[:])
		j.born = now
	}
	m := hmac.New(sha256.New, j.secret[:])
	j.mu.Unlock()
	b, _ := from.MarshalBinary()
	m.Write(b)
	var c [16]byte
	copy(c[:], m.Sum(nil))
	return c
}

// mac2 is the mac2 of body under cookie.
func mac2(cookie [16]byte, body []byte) [mac2Len]byte {
	m := hmac.New(sha256.New, cookie[:])
	m.Write(body)
	var out [mac2Len]byte
	copy(out[:], m.Sum(nil))
	return out
}

// cookieKey seals cookies from the holder of public.
func cookieKey(public Key) cipher.AEAD {
	k := sha256.Sum256(append([]byte("mip6 cookie"), public[:]...))
	block, _ := aes.NewCipher(k[:])
	aead, _ := cipher.NewGCM(block)
	return aead
}

// admit decides whether an initiation (mac1 checked) gets a handshake:
// within the budget, always; past it, with a valid mac2, within that
// budget; otherwise it gets a cookie reply.
func (b *Bind) admit(msg []byte, from netip.AddrPort) bool {
	now := b.clk.Now()
	if b.limiter.AllowN(now, 1) {
		return true
	}
	body, got := msg[:len(msg)-mac2Len], msg[len(msg)-mac2Len:]
	want := mac2(b.cookies.cookieFor(from, now), body)
	if hmac.Equal(want[:], got) {
		if b.cookies.admits.AllowN(now, 1) {
			b.c.cookieAdmitted.Add(1)
			return true
		}
		b.c.rateLimited.Add(1)
		return false
	}
	b.c.rateLimited.Add(1)
	b.sendCookie(msg, from, now)
	return false
}

// sendCookie answers initiation msg from with a cookie reply.
func (b *Bind) sendCookie(msg []byte, from netip.AddrPort, now time.Time) {
	c := b.cookies.cookieFor(from, now)
	reply := make([]byte, 20, cookieLen)
	reply[0] = typeCookie
	copy(reply[4:8], msg[4:8]) // the initiator's index
	rand.Read(reply[8:20])
	mac1 := msg[len(msg)-mac2Len-mac1Len : len(msg)-mac2Len]
	reply = b.cookieSeal.Seal(reply, reply[8:20], c[:], mac1)
	b.c.cookieSent.Add(1)
	b.inner.Send([][]byte{reply}, from)
}

// cookieReply takes a cookie for one of our initiations and initiates
// again at once, with mac2.
func (b *Bind) cookieReply(msg []byte) {
	idx := binary.BigEndian.Uint32(msg[4:8])
	b.mu.RLock()
	hs := b.pending[idx]
	b.mu.RUnlock()
	if hs == nil {
		b.c.unknownIndex.Add(1)
		return
	}
	c, err := hs.peer.cookieOpen.Open(nil, msg[8:20], msg[20:], hs.mac1[:])
	if err != nil || len(c) != 16 {
		b.c.authFailed.Add(1)
		return
	}
	hc := &heldCookie{at: b.clk.Now()}
	copy(hc.value[:], c)
	hs.peer.cookie.Store(hc)
	b.c.cookieReceived.Add(1)
	hs.peer.mu.Lock()
	to := hs.peer.endpoint
	hs.peer.mu.Unlock()
	if to.IsValid() {
		b.sendInitiation(hs.peer, to)
	}
}

// mac2For is the mac2 of an initiation to p: zero without a fresh cookie.
func (b *Bind) mac2For(p *peer, body []byte) [mac2Len]byte {
	hc := p.cookie.Load()
	if hc == nil || b.clk.Now().Sub(hc.at) >= cookieLifetime {
		return [mac2Len]byte{}
	}
	return mac2(hc.value, body)
}
