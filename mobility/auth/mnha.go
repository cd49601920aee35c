package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"net/netip"
	"time"
)

// MNHAAuthenticator computes the RFC 4285 (section 5.2) MN-HA
// authentication data First(96, HMAC_SHA1(MN-HA key, care-of address | home
// address | MH data)), where MH data runs from the start of the Mobility
// Header up to and including the option's SPI (dataOff is where the
// authentication data starts) with the checksum taken as zero.
func MNHAAuthenticator(key []byte, careOf, home netip.Addr, mhb []byte, dataOff int) [AuthenticLen]byte {
	m := hmac.New(sha1.New, key)
	c, h := careOf.As16(), home.As16()
	m.Write(c[:])
	m.Write(h[:])
	writeZeroChecksum(m, mhb[:dataOff])
	var a [AuthenticLen]byte
	copy(a[:], m.Sum(nil))
	return a
}

// VerifyMNHA checks RFC 4285 MN-HA authentication data in constant time.
func VerifyMNHA(key []byte, careOf, home netip.Addr, mhb []byte, dataOff int) bool {
	if dataOff < 6 || dataOff+AuthenticLen > len(mhb) {
		return false
	}
	want := MNHAAuthenticator(key, careOf, home, mhb, dataOff)
	return hmac.Equal(want[:], mhb[dataOff:dataOff+AuthenticLen])
}

// ntpEpochOffset is the number of seconds from 1900-01-01 to 1970-01-01.
const ntpEpochOffset = 2208988800

// NTPTime encodes t in the 64-bit NTP format RFC 4285's Mobility Message
// Identification option carries: seconds since 1900 and a binary fraction.
func NTPTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// FromNTP decodes an NTP timestamp.
func FromNTP(v uint64) time.Time {
	secs := int64(v>>32) - ntpEpochOffset
	nsec := int64((v & 0xffffffff) * 1e9 >> 32)
	return time.Unix(secs, nsec)
}

// Fresh reports whether an identification timestamp is within window of
// now (RFC 4285 section 6: timestamps protect against replay; a receiver
// also remembers the last one it accepted per mobile node).
func Fresh(ts uint64, now time.Time, window time.Duration) bool {
	d := now.Sub(FromNTP(ts))
	return d <= window && d >= -window
}
