package pcap

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

func TestWriterLayout(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	pkt := []byte{0x60, 0, 0, 0, 0, 0, 59, 64}
	at := time.Unix(1700000000, 123456789)
	if err := w.WritePacket(at, pkt); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	b := buf.Bytes()
	if len(b) != 24+16+len(pkt) {
		t.Fatalf("capture is %d bytes", len(b))
	}
	if binary.LittleEndian.Uint32(b[0:]) != 0xa1b23c4d || binary.LittleEndian.Uint32(b[20:]) != LinkTypeIPv6 {
		t.Error("bad file header")
	}
	if binary.LittleEndian.Uint32(b[24:]) != 1700000000 || binary.LittleEndian.Uint32(b[28:]) != 123456789 {
		t.Error("bad timestamp")
	}
	if !bytes.Equal(b[40:], pkt) {
		t.Error("packet bytes differ")
	}
}
