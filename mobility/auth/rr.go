// Package auth holds the cryptography of the mobility signalling: Return
// Routability tokens and binding authenticators (RFC 6275 5.2), the RFC 4285
// MN-HA authentication option, IPsec AH with HMAC-SHA-256-128 (RFC 4302,
// RFC 4868) with its anti-replay window, and the sealing of the MN-HA2R key
// for the paper's MN Authentication Reply. Every MAC comparison is constant
// time.
package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"net/netip"
)

// Return Routability sizes (RFC 6275 5.2).
const (
	KcnLen        = 20 // the correspondent's secret
	NonceLen      = 8
	TokenLen      = 8
	KbmLen        = 20
	AuthenticLen  = 12
	homeTokenByte = 0
	coaTokenByte  = 1
)

// KeygenToken computes First(64, HMAC_SHA1(Kcn, address | nonce | 0 or 1))
// (RFC 6275 5.2.5): the home keygen token with the home address and 0, the
// care-of keygen token with the care-of address and 1.
func KeygenToken(kcn []byte, addr netip.Addr, nonce []byte, careOf bool) [TokenLen]byte {
	m := hmac.New(sha1.New, kcn)
	a := addr.As16()
	m.Write(a[:])
	m.Write(nonce)
	if careOf {
		m.Write([]byte{coaTokenByte})
	} else {
		m.Write([]byte{homeTokenByte})
	}
	var t [TokenLen]byte
	copy(t[:], m.Sum(nil))
	return t
}

// Kbm is the binding management key SHA1(home token | care-of token), or
// SHA1(home token) when the mobile node deregisters at home (RFC 6275 5.2.5).
func Kbm(home, careOf [TokenLen]byte, deregistering bool) [KbmLen]byte {
	h := sha1.New()
	h.Write(home[:])
	if !deregistering {
		h.Write(careOf[:])
	}
	var k [KbmLen]byte
	copy(k[:], h.Sum(nil))
	return k
}

// BindingAuthenticator computes the Binding Authorization Data
// authenticator First(96, HMAC_SHA1(key, care-of address | correspondent |
// MH data)) (RFC 6275 6.2.7). mhb is the whole Mobility Header; the checksum
// is taken as zero and the authenticator field (12 bytes at authOff) is
// left out. key is Kbm, or the MN-HA2R key in the paper's scheme.
func BindingAuthenticator(key []byte, careOf, correspondent netip.Addr, mhb []byte, authOff int) [AuthenticLen]byte {
	m := hmac.New(sha1.New, key)
	c, r := careOf.As16(), correspondent.As16()
	m.Write(c[:])
	m.Write(r[:])
	writeZeroChecksum(m, mhb[:authOff])
	if end := authOff + AuthenticLen; end < len(mhb) {
		m.Write(mhb[end:])
	}
	var a [AuthenticLen]byte
	copy(a[:], m.Sum(nil))
	return a
}

// VerifyBinding checks a Binding Authorization Data authenticator in
// constant time.
func VerifyBinding(key []byte, careOf, correspondent netip.Addr, mhb []byte, authOff int) bool {
	if authOff < 6 || authOff+AuthenticLen > len(mhb) {
		return false
	}
	want := BindingAuthenticator(key, careOf, correspondent, mhb, authOff)
	return hmac.Equal(want[:], mhb[authOff:authOff+AuthenticLen])
}

// writeZeroChecksum writes b (the start of a Mobility Header) with its
// checksum bytes (4 and 5) as zero.
func writeZeroChecksum(w interface{ Write([]byte) (int, error) }, b []byte) {
	if len(b) <= 4 {
		w.Write(b)
		return
	}
	w.Write(b[:4])
	if len(b) >= 6 {
		w.Write([]byte{0, 0})
		w.Write(b[6:])
	} else {
		w.Write(make([]byte, len(b)-4))
	}
}
