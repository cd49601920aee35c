package overlay

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	b := make([]byte, FrameHeaderLen+40)
	h := FrameHeader{Type: FrameTypePacket, LinkID: 0xdeadbeef, Src: NodeLinkAddr("mn1")}
	h.Put(b)
	b[FrameHeaderLen] = 0x60
	var got FrameHeader
	payload, err := ParseFrame(b, &got)
	if err != nil {
		t.Fatal(err)
	}
	if got != h || len(payload) != 40 {
		t.Errorf("got %+v (%d bytes), want %+v", got, len(payload), h)
	}
}

func TestFrameErrors(t *testing.T) {
	good := func() []byte {
		b := make([]byte, FrameHeaderLen+40)
		(&FrameHeader{Type: FrameTypePacket, LinkID: 7}).Put(b)
		b[FrameHeaderLen] = 0x60
		return b
	}
	cases := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:FrameHeaderLen-1] }, ErrShortFrame},
		{"magic", func(b []byte) []byte { b[0] = 0x45; return b }, ErrBadMagic},
		{"version", func(b []byte) []byte { b[1] = 2; return b }, ErrVersion},
		{"flags", func(b []byte) []byte { b[3] = 1; return b }, ErrFlags},
		{"type", func(b []byte) []byte { b[2] = 9; return b }, ErrFrameType},
		{"ipv4 payload", func(b []byte) []byte { b[FrameHeaderLen] = 0x45; return b }, ErrNotIPv6},
		{"empty packet", func(b []byte) []byte { return b[:FrameHeaderLen] }, ErrNotIPv6},
	}
	for _, c := range cases {
		var h FrameHeader
		if _, err := ParseFrame(c.mod(good()), &h); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// A keepalive has no payload and is fine.
	k := make([]byte, FrameHeaderLen)
	(&FrameHeader{Type: FrameTypeKeep, LinkID: 7}).Put(k)
	var h FrameHeader
	if _, err := ParseFrame(k, &h); err != nil {
		t.Errorf("keepalive: %v", err)
	}
}

func TestNodeLinkAddrIsLocalUnicast(t *testing.T) {
	a, b := NodeLinkAddr("mn1"), NodeLinkAddr("mn2")
	if a == b {
		t.Fatal("two nodes share a link-layer address")
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("%s is not locally administered unicast", a)
	}
	if a != NodeLinkAddr("mn1") {
		t.Error("not stable")
	}
}

func FuzzParseFrame(f *testing.F) {
	b := make([]byte, FrameHeaderLen+40)
	(&FrameHeader{Type: FrameTypePacket, LinkID: 1}).Put(b)
	b[FrameHeaderLen] = 0x60
	f.Add(b)
	k := make([]byte, FrameHeaderLen)
	(&FrameHeader{Type: FrameTypeKeep}).Put(k)
	f.Add(k)
	f.Add([]byte{FrameMagic, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h FrameHeader
		payload, err := ParseFrame(data, &h)
		if err != nil {
			return
		}
		if len(data) < FrameHeaderLen || !bytes.Equal(payload, data[FrameHeaderLen:]) {
			t.Fatal("payload is not what follows the header")
		}
		// What parses re-encodes to the same header bytes.
		out := make([]byte, FrameHeaderLen)
		h.Put(out)
		if !bytes.Equal(out[:14], data[:14]) {
			t.Fatalf("re-encoded header %x differs from %x", out[:14], data[:14])
		}
	})
}
