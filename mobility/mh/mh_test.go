package mh

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/ha2r/mip6testbed/ip6"
)

var (
	hoa = netip.MustParseAddr("2001:db8:1::10")
	coa = netip.MustParseAddr("2001:db8:11::abcd")
	ha  = netip.MustParseAddr("2001:db8:1::1")
)

// sample returns one message of every kind this codec speaks, with options.
func samples() map[string]*Message {
	bu := &Message{Type: TypeBU, Sequence: 4711, Flags: FlagA | FlagH | FlagL, Lifetime: 100}
	bu.Options.Set(OptAltCoA)
	bu.Options.AltCoA = coa
	bu.Options.Set(OptMsgID)
	bu.Options.Timestamp = 0x0123456789abcdef
	bu.Options.Set(OptAuth)
	bu.Options.Auth = AuthOption{Subtype: AuthSubtypeMNHA, SPI: 4097, Data: bytes.Repeat([]byte{0xaa}, 12)}

	cnBU := &Message{Type: TypeBU, Sequence: 9, Flags: FlagA, Lifetime: 105}
	cnBU.Options.Set(OptNonceIndices)
	cnBU.Options.HomeNonceIndex, cnBU.Options.CareOfNonceIndex = 3, 4
	cnBU.Options.Set(OptBAD)
	cnBU.Options.Authenticator = bytes.Repeat([]byte{0x5a}, 12)

	ba := &Message{Type: TypeBA, Status: StatusSeqOutOfWindow, Flags: uint16(BAFlagK) << 8, Sequence: 77, Lifetime: 50}
	ba.Options.Set(OptRefreshAdvice)
	ba.Options.RefreshInterval = 40
	ba.Options.Set(OptBAD)
	ba.Options.Authenticator = bytes.Repeat([]byte{0x11}, 12)

	req := &Message{Type: TypeExperimental, Subtype: SubtypeMNAuthRequest, Sequence: 3, Flags: FlagA, Lifetime: 75}
	req.Options.Set(OptAltCoA)
	req.Options.AltCoA = coa
	req.Options.AddExpAddr(ExpHAAddress, ha)
	req.Options.AddExpAddr(ExpHomeAddr, hoa)
	req.Options.Set(OptMsgID)
	req.Options.Timestamp = 42
	req.Options.Set(OptAuth)
	req.Options.Auth = AuthOption{Subtype: AuthSubtypeMNHA, SPI: 4097, Data: bytes.Repeat([]byte{0xbb}, 12)}

	rep := &Message{Type: TypeExperimental, Subtype: SubtypeMNAuthReply, Status: StatusAccepted, Sequence: 3, Lifetime: 75}
	rep.Options.Set(OptAltCoA)
	rep.Options.AltCoA = coa
	rep.Options.AddExpAddr(ExpHAAddress, ha)
	rep.Options.AddExp(ExpKeyForHA2R, bytes.Repeat([]byte{1}, 60))
	rep.Options.AddExp(ExpKeyForMN, bytes.Repeat([]byte{2}, 60))
	rep.Options.Set(OptAuth)
	rep.Options.Auth = AuthOption{Subtype: AuthSubtypeMNHA, SPI: 4097, Data: bytes.Repeat([]byte{0xcc}, 12)}

	return map[string]*Message{
		"BRR":                  {Type: TypeBRR},
		"HoTI":                 {Type: TypeHoTI, Cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		"CoTI":                 {Type: TypeCoTI, Cookie: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}},
		"HoT":                  {Type: TypeHoT, NonceIndex: 0xbeef, Cookie: [8]byte{1}, Token: [8]byte{9, 9, 9, 9, 9, 9, 9, 9}},
		"CoT":                  {Type: TypeCoT, NonceIndex: 7, Cookie: [8]byte{2}, Token: [8]byte{3}},
		"BU home registration": bu,
		"BU to correspondent":  cnBU,
		"BA":                   ba,
		"BE":                   {Type: TypeBE, Status: BEUnknownHAO, Address: hoa},
		"MN Auth Request":      req,
		"MN Auth Reply":        rep,
		"Experimental other":   {Type: TypeExperimental, Subtype: 77, ExpData: []byte{1, 2, 3}},
	}
}

// comparable strips what Parse fills from the wire only.
func normalize(m *Message) Message {
	c := *m
	c.Checksum = 0
	c.PayloadProto = 0
	c.Options.AuthenticatorOff = 0
	c.Options.Auth.DataOff = 0
	if len(c.Options.Experimental) == 0 {
		c.Options.Experimental = nil
	}
	if c.Type == TypeExperimental && c.Subtype != SubtypeMNAuthRequest && c.Subtype != SubtypeMNAuthReply {
		// Opaque data cannot tell its padding apart: compare what was sent.
		c.ExpData = c.ExpData[:min(len(c.ExpData), 3)]
	}
	return c
}

func TestRoundTripEveryMessage(t *testing.T) {
	for name, m := range samples() {
		t.Run(name, func(t *testing.T) {
			b := m.Marshal()
			if len(b)%8 != 0 {
				t.Fatalf("length %d is not a multiple of 8", len(b))
			}
			if int(b[1]) != len(b)/8-1 {
				t.Fatalf("Header Len %d for %d bytes", b[1], len(b))
			}
			SetChecksum(b, coa, ha)
			if !VerifyChecksum(b, coa, ha) {
				t.Fatal("checksum does not verify")
			}
			if VerifyChecksum(b, hoa, ha) {
				t.Fatal("checksum verifies with another source address")
			}
			var got Message
			if err := Parse(b, &got); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.PayloadProto != PayloadProtoNone {
				t.Errorf("Payload Proto %d", got.PayloadProto)
			}
			want, have := normalize(m), normalize(&got)
			if !reflect.DeepEqual(want, have) {
				t.Errorf("round trip differs:\n got  %+v\n want %+v", have, want)
			}
			// The alignment rules of RFC 6275 6.2 hold on what we send.
			o := got.Options
			if o.Has(OptBAD) {
				if (o.AuthenticatorOff-2)%8 != 2 || o.AuthenticatorOff+AuthenticatorLen != len(b) {
					t.Errorf("BAD at %d is not 8n+2 or not last", o.AuthenticatorOff-2)
				}
			}
			if o.Has(OptAuth) && o.Auth.DataOff+len(o.Auth.Data) != len(b) {
				t.Errorf("authentication option not last")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	bu := samples()["BU to correspondent"].Marshal()
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"wrong Payload Proto", func(b []byte) []byte { b[0] = 6; return b }, ErrPayloadProto},
		{"Header Len too small", func(b []byte) []byte { b[1] = 0; return b[:8] }, ErrHeaderLen},
		{"Header Len beyond the data", func(b []byte) []byte { b[1] = 20; return b }, ErrTruncated},
		{"shorter than 8", func(b []byte) []byte { return b[:7] }, ErrTruncated},
		{"unknown MH type", func(b []byte) []byte { b[2] = 42; return b }, ErrUnknownType},
		{"option overruns", func(b []byte) []byte { b[12+1] = 200; return b }, ErrOptionOverrun},
		{"nonce indices length", func(b []byte) []byte { b[12+1] = 2; return b }, ErrOptionLength},
		{"BAD not last", func(b []byte) []byte {
			// Put a Refresh Advice after the BAD option in an extra 8 bytes.
			b = append(b, OptRefreshAdvice, 2, 0, 1, OptPadN, 2, 0, 0)
			b[1]++
			return b
		}, ErrBADNotLast},
		{"misaligned BAD", func(b []byte) []byte {
			// Shift the BAD option by one byte with a Pad1 in front.
			var m Message
			Parse(b, &m)
			off := m.Options.AuthenticatorOff - 2
			out := append([]byte(nil), b[:off]...)
			out = append(out, OptPad1)
			out = append(out, b[off:]...)
			out = append(out, 1, 5, 0, 0, 0, 0, 0) // PadN to a multiple of 8
			out[1] = byte(len(out)/8 - 1)
			return out
		}, ErrMisaligned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mod(append([]byte(nil), bu...))
			var m Message
			if err := Parse(b, &m); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Misaligned Alternate Care-of Address.
	b := []byte{59, 3, byte(TypeBU), 0, 0, 0, 0, 1, 0x80, 0, 0, 1, OptAltCoA, 16}
	b = append(b, hoa.AsSlice()...)
	b = append(b, 0, 0)
	var m Message
	if err := Parse(b, &m); !errors.Is(err, ErrMisaligned) {
		t.Errorf("ACoA at 12: got %v, want ErrMisaligned", err)
	}
	// Bad checksum.
	good := samples()["HoTI"].Marshal()
	SetChecksum(good, hoa, ha)
	good[10] ^= 1
	if VerifyChecksum(good, hoa, ha) {
		t.Error("a flipped bit passed the checksum")
	}
}

func TestParamProblemPointers(t *testing.T) {
	if p, ok := ParamProblemPointer(ErrPayloadProto); !ok || p != 0 {
		t.Error("Payload Proto pointer")
	}
	if p, ok := ParamProblemPointer(ErrHeaderLen); !ok || p != 1 {
		t.Error("Header Len pointer")
	}
	if _, ok := ParamProblemPointer(ErrChecksum); ok {
		t.Error("a bad checksum is discarded silently")
	}
}

func TestUnknownOptionsSkipped(t *testing.T) {
	b := []byte{59, 1, byte(TypeBRR), 0, 0, 0, 0, 0, 99, 2, 1, 2, OptPadN, 2, 0, 0}
	var m Message
	if err := Parse(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Options.Unknown != 1 {
		t.Errorf("unknown options = %d", m.Options.Unknown)
	}
}

func TestSeqNewer(t *testing.T) {
	cases := []struct {
		a, b uint16
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {5, 5, false},
		{0, 65535, true},     // wrap-around
		{65535, 0, false},    // behind across the wrap
		{32768, 1, true},     // 32767 ahead
		{32769, 1, false},    // 32768 ahead counts as behind
		{100, 32869, true},   // 32767 ahead, across the wrap
		{100, 32868, false},  // exactly 32768 ahead is not newer
		{40000, 7231, false}, // exactly 32769 ahead
	}
	for _, c := range cases {
		if got := SeqNewer(c.a, c.b); got != c.want {
			t.Errorf("SeqNewer(%d, %d) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestHAOAndRH2(t *testing.T) {
	var d [HAOHeaderLen]byte
	PutHAODestOpts(d[:], ip6.ProtoTCP, hoa)
	a, off, err := ParseHAO(d[:])
	if err != nil || a != hoa || off != 8 {
		t.Fatalf("ParseHAO = %v %d %v", a, off, err)
	}
	var r [RH2Len]byte
	PutRH2(r[:], ip6.ProtoMH, hoa)
	a, sl, err := ParseRH2(r[:])
	if err != nil || a != hoa || sl != 1 {
		t.Fatalf("ParseRH2 = %v %d %v", a, sl, err)
	}
	// A packet built with both walks as expected.
	pkt := ip6.Compose(ip6.Fields{HopLimit: 64, Src: coa, Dst: ha},
		[]ip6.Ext{{Proto: ip6.ProtoRouting, Data: r[:]}, {Proto: ip6.ProtoDstOpts, Data: d[:]}}, ip6.ProtoNoNext, nil)
	var c ip6.Chain
	if err := ip6.Walk(pkt, &c); err != nil || c.N != 2 || c.Upper != ip6.ProtoNoNext {
		t.Fatalf("walk: %v %+v", err, c)
	}
	cases := []struct {
		mod  func(d, r []byte)
		hao  bool
		want error
	}{
		{func(d, r []byte) { d[7] = 15 }, true, ErrHAOLength},
		{func(d, r []byte) {
			// PadN(0) then the option at offset 4, then PadN(0) to fill 24.
			copy(d[2:], append(append([]byte{1, 0, OptHomeAddress, 16}, hoa.AsSlice()...), 1, 0))
		}, true, ErrHAOAlign},
		{func(d, r []byte) { d[6] = 0x8a }, true, ErrDestOptAction},
		{func(d, r []byte) { copy(d[8:], netip.MustParseAddr("ff02::1").AsSlice()) }, true, ErrHAOAddress},
		{func(d, r []byte) { r[2] = 0 }, false, ErrRH2Type},
		{func(d, r []byte) { r[1] = 4 }, false, ErrRH2Length},
		{func(d, r []byte) { r[3] = 2 }, false, ErrRH2Segments},
	}
	for i, c := range cases {
		dd, rr := d, r
		c.mod(dd[:], rr[:])
		var err error
		if c.hao {
			_, _, err = ParseHAO(dd[:])
		} else {
			_, _, err = ParseRH2(rr[:])
		}
		if !errors.Is(err, c.want) {
			t.Errorf("case %d: got %v, want %v", i, err, c.want)
		}
	}
}

// Parsing a Binding Update into a reused Message allocates nothing.
func TestParseDoesNotAllocate(t *testing.T) {
	b := samples()["BU home registration"].Marshal()
	var m Message
	n := testing.AllocsPerRun(1000, func() {
		if err := Parse(b, &m); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Parse allocates %.1f times per BU", n)
	}
}
