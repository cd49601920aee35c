package mh

import (
	"bytes"
	"testing"
)

func addSamples(f *testing.F) {
	for _, m := range samples() {
		f.Add(m.Marshal())
	}
}

// FuzzParse: no input makes Parse panic, read out of bounds or loop; what
// parses re-encodes to something that parses to the same message.
func FuzzParse(f *testing.F) {
	addSamples(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := Parse(b, &m); err != nil {
			return
		}
		if m.Type == TypeExperimental && m.Subtype != SubtypeMNAuthRequest && m.Subtype != SubtypeMNAuthReply {
			return // opaque data: nothing to re-encode structurally
		}
		m.Options.Unknown = 0
		again := m.Marshal()
		var m2 Message
		if err := Parse(again, &m2); err != nil {
			t.Fatalf("re-encoded message does not parse: %v\n%x", err, again)
		}
		if m2.Type != m.Type || m2.Sequence != m.Sequence || m2.Lifetime != m.Lifetime || m2.Status != m.Status ||
			m2.Options.AltCoA != m.Options.AltCoA || !bytes.Equal(m2.Options.Authenticator, m.Options.Authenticator) {
			t.Fatalf("re-encoding changed the message:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzParseMNAuth aims the fuzzer at the paper's messages: a valid
// Experimental MH header with fuzzed message data.
func FuzzParseMNAuth(f *testing.F) {
	for _, name := range []string{"MN Auth Request", "MN Auth Reply"} {
		f.Add(samples()[name].Marshal()[6:])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2040 {
			return
		}
		b := append([]byte{PayloadProtoNone, 0, byte(TypeExperimental), 0, 0, 0}, data...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		b[1] = byte(len(b)/8 - 1)
		var m Message
		if err := Parse(b, &m); err != nil {
			return
		}
		m.Options.ExpAddr(ExpHAAddress)
		m.Options.Exp(ExpKeyForMN)
	})
}

// FuzzExtHeaders: the Home Address option and type 2 routing header parsers.
func FuzzExtHeaders(f *testing.F) {
	var d [HAOHeaderLen]byte
	PutHAODestOpts(d[:], 6, hoa)
	f.Add(d[:])
	var r [RH2Len]byte
	PutRH2(r[:], 135, hoa)
	f.Add(r[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, off, err := ParseHAO(b); err == nil {
			if off+16 > len(b) || !bytes.Equal(b[off:off+16], a.AsSlice()) {
				t.Fatal("HAO address not where reported")
			}
		}
		ParseRH2(b)
	})
}
