package mh

// SeqNewer reports whether sequence number a is newer than b, comparing
// modulo 2^16 as RFC 6275 9.5.1 asks: a is newer if it lies less than 2^15
// ahead of b.
func SeqNewer(a, b uint16) bool {
	d := a - b
	return d != 0 && d < 0x8000
}
