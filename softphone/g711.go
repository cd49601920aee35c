package softphone

// G.711 (ITU-T) companding: mu-law (PCMU, payload type 0) and A-law (PCMA,
// payload type 8), the two codecs every SIP phone speaks. The encoders are
// the classic segment-search formulations; decoding uses tables built once.

const (
	ulawBias = 0x84
	ulawClip = 32635
)

// EncodeULaw compands one 16-bit linear sample to mu-law.
func EncodeULaw(s int16) byte {
	sample := int(s)
	sign := 0
	if sample < 0 {
		sign = 0x80
		sample = -sample
	}
	if sample > ulawClip {
		sample = ulawClip
	}
	sample += ulawBias
	exp := 7
	for mask := 0x4000; sample&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (sample >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// DecodeULaw expands a mu-law byte.
func DecodeULaw(b byte) int16 { return ulawTable[b] }

// EncodeALaw compands one 16-bit linear sample to A-law.
func EncodeALaw(s int16) byte {
	sample := int(s) >> 3 // A-law works on 13-bit magnitudes
	sign := 0x80
	if sample < 0 {
		sign = 0
		sample = -sample - 1
	}
	if sample > 0xfff {
		sample = 0xfff
	}
	var out int
	if sample < 32 {
		out = sample >> 1
	} else {
		exp := 1
		for v := sample >> 5; v > 1; v >>= 1 {
			exp++
		}
		out = exp<<4 | (sample>>exp)&0x0f
	}
	return byte((out | sign) ^ 0x55)
}

// DecodeALaw expands an A-law byte.
func DecodeALaw(b byte) int16 { return alawTable[b] }

var ulawTable, alawTable [256]int16

func init() {
	for i := 0; i < 256; i++ {
		u := ^byte(i)
		sign := u & 0x80
		exp := int(u>>4) & 0x07
		mant := int(u & 0x0f)
		v := ((mant << 3) + ulawBias) << exp
		v -= ulawBias
		if sign != 0 {
			v = -v
		}
		ulawTable[i] = int16(v)

		a := byte(i) ^ 0x55
		m := int(a&0x0f) << 4
		e := int(a>>4) & 0x07
		switch e {
		case 0:
			m += 8
		case 1:
			m += 0x108
		default:
			m += 0x108
			m <<= e - 1
		}
		if a&0x80 == 0 {
			m = -m
		}
		alawTable[i] = int16(m)
	}
}

// Codec is a G.711 variant.
type Codec struct {
	Name        string // PCMU or PCMA
	PayloadType uint8
	encode      func(int16) byte
	decode      func(byte) int16
}

var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, encode: EncodeULaw, decode: DecodeULaw}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, encode: EncodeALaw, decode: DecodeALaw}
)

// Encode appends the companded frame to dst.
func (c Codec) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, c.encode(s))
	}
	return dst
}

// Decode appends the linear frame to dst.
func (c Codec) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, c.decode(b))
	}
	return dst
}

func codecByPT(pt uint8) (Codec, bool) {
	switch pt {
	case 0:
		return PCMU, true
	case 8:
		return PCMA, true
	}
	return Codec{}, false
}
