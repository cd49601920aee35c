// Package pcap writes packet captures in the classic libpcap format with the
// raw-IPv6 link type (LINKTYPE_IPV6, 229), so that Wireshark and tshark
// decode what a node sent and received, Mobility Header included.
package pcap

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"time"
)

// LinkTypeIPv6 is LINKTYPE_IPV6: each record is a bare IPv6 packet.
const LinkTypeIPv6 = 229

// Writer appends packets to a capture. It is safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	c    io.Closer
	snap int
}

// Create writes a new capture file at path.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.c = f
	return w, nil
}

// NewWriter writes the file header to w.
func NewWriter(w io.Writer) (*Writer, error) {
	pw := &Writer{w: bufio.NewWriterSize(w, 64<<10), snap: 65535}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond timestamps
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(pw.snap))
	binary.LittleEndian.PutUint32(h[20:], LinkTypeIPv6)
	if _, err := pw.w.Write(h[:]); err != nil {
		return nil, err
	}
	return pw, nil
}

// WritePacket records one packet seen at t.
func (w *Writer) WritePacket(t time.Time, pkt []byte) error {
	n := len(pkt)
	if n > w.snap {
		n = w.snap
	}
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(h[8:], uint32(n))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(pkt)))
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.w.Write(pkt[:n])
	return err
}

// Flush writes buffered records out.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Flush()
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if w.c != nil {
		if cerr := w.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
