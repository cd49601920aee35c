package softphone

import "testing"

// Known values from ITU-T G.711 tables: silence, the positive and negative
// full-scale codes, and re-encoding every code word gives it back.
func TestG711(t *testing.T) {
	if EncodeULaw(0) != 0xff || EncodeALaw(0) != 0xd5 {
		t.Errorf("silence: mu %#x a %#x", EncodeULaw(0), EncodeALaw(0))
	}
	if EncodeULaw(32767) != 0x80 || EncodeULaw(-32768) != 0x00 {
		t.Errorf("mu-law full scale: %#x %#x", EncodeULaw(32767), EncodeULaw(-32768))
	}
	if EncodeALaw(32767) != 0xaa || EncodeALaw(-32768) != 0x2a {
		t.Errorf("A-law full scale: %#x %#x", EncodeALaw(32767), EncodeALaw(-32768))
	}
	for i := 0; i < 256; i++ {
		b := byte(i)
		if b == 0x7f { // mu-law has two zeros; 0x7f decodes to -0 = 0 which encodes as 0xff
			continue
		}
		if got := EncodeULaw(DecodeULaw(b)); got != b {
			t.Errorf("mu-law %#x -> %d -> %#x", b, DecodeULaw(b), got)
		}
		if got := EncodeALaw(DecodeALaw(b)); got != b {
			t.Errorf("A-law %#x -> %d -> %#x", b, DecodeALaw(b), got)
		}
	}
	// Companding error stays within the quantisation step.
	for s := -32000; s < 32000; s += 37 {
		d := int(DecodeULaw(EncodeULaw(int16(s)))) - s
		if d < 0 {
			d = -d
		}
		if lim := max(abs(s)/16, 8); d > lim {
			t.Fatalf("mu-law error %d at %d", d, s)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
