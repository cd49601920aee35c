package seqwindow

import (
	"math/rand/v2"
	"testing"
)

// The window accepts each counter once, in any order within its width,
// and nothing older than the width behind the newest.
func TestWindow(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	var w Window
	seen := map[uint64]bool{}
	var newest uint64
	for i := 0; i < 200000; i++ {
		c := newest + uint64(r.IntN(300)) - 150
		if c > newest+150 { // wrapped below zero
			c = uint64(r.IntN(100))
		}
		if r.IntN(50) == 0 {
			c = newest + uint64(r.IntN(20000)) // a jump ahead
		}
		tooOld := newest > c && newest-c > Size
		want := !seen[c] && !tooOld
		if got := w.Accept(c); got != want {
			t.Fatalf("seed %d: accept(%d) after newest %d = %v, want %v", seed, c, newest, got, want)
		}
		if want {
			seen[c] = true
			newest = max(newest, c)
		}
	}
}
