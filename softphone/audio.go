// Package softphone is the testbed's SIP side: a user agent that registers,
// calls and answers (sipgo), carries G.711 audio in RTP with RTCP reports
// (pion/rtp, pion/rtcp), negotiates with SDP offer/answer (pion/sdp), and
// reports call quality; and the proxy/registrar a home agent runs for its
// domain. Every socket comes from a Network, so that on the userspace stack
// all SIP and RTP traffic goes through the node's overlay.
package softphone

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Audio is 8 kHz mono 16-bit linear PCM, in 20 ms frames of 160 samples.
const (
	SampleRate   = 8000
	FrameSamples = 160
	FrameTime    = 20 // ms
)

// Source produces audio one frame at a time; io.EOF ends it.
type Source interface {
	ReadFrame(pcm []int16) error
}

// Sink consumes received audio one frame at a time.
type Sink interface {
	WriteFrame(pcm []int16) error
}

// Tone is an endless sine tone (the default sound of a call).
type Tone struct {
	Freq float64
	Amp  float64
	n    int
}

func (t *Tone) ReadFrame(pcm []int16) error {
	f, a := t.Freq, t.Amp
	if f == 0 {
		f = 440
	}
	if a == 0 {
		a = 8000
	}
	for i := range pcm {
		pcm[i] = int16(a * math.Sin(2*math.Pi*f*float64(t.n)/SampleRate))
		t.n++
	}
	return nil
}

// TestPattern is a known signal whose every sample the far end can
// recompute from the sample index (the RTP timestamp): a sweep with a
// pseudo-random component, so no two frames look alike and a frame that
// arrives corrupted or out of place is caught.
type TestPattern struct {
	Seed uint32
	n    uint32
}

// Sample returns the pattern's sample at index n.
func (p *TestPattern) Sample(n uint32) int16 {
	x := n*2654435761 ^ p.Seed
	x ^= x >> 13
	x *= 0x5bd1e995
	x ^= x >> 15
	sweep := 6000 * math.Sin(2*math.Pi*float64(n%16000)*float64(n%16000)/(2*16000*SampleRate)*1000)
	return int16(sweep) + int16(x%2001) - 1000
}

func (p *TestPattern) ReadFrame(pcm []int16) error {
	for i := range pcm {
		pcm[i] = p.Sample(p.n)
		p.n++
	}
	return nil
}

// Discard is a Sink that drops audio.
type Discard struct{}

func (Discard) WriteFrame([]int16) error { return nil }

// RawSource reads signed 16-bit little-endian PCM (as `arecord -f S16_LE -r
// 8000 -c 1 -t raw` writes it).
type RawSource struct{ R io.Reader }

func (s RawSource) ReadFrame(pcm []int16) error {
	buf := make([]byte, 2*len(pcm))
	if _, err := io.ReadFull(s.R, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return io.EOF
		}
		return err
	}
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(buf[2*i:]))
	}
	return nil
}

// RawSink writes signed 16-bit little-endian PCM (for `aplay -f S16_LE -r
// 8000 -c 1 -t raw`).
type RawSink struct{ W io.Writer }

func (s RawSink) WriteFrame(pcm []int16) error {
	buf := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(v))
	}
	_, err := s.W.Write(buf)
	return err
}

// OpenWAV opens a WAV file as a Source. It must be 8 kHz, mono, 16-bit PCM.
func OpenWAV(path string) (Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(f)
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a WAV file", path)
	}
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s has no data chunk", path)
		}
		size := int(binary.LittleEndian.Uint32(ch[4:]))
		switch string(ch[:4]) {
		case "fmt ":
			fm := make([]byte, size)
			if _, err := io.ReadFull(r, fm); err != nil || size < 16 {
				f.Close()
				return nil, nil, fmt.Errorf("%s: bad fmt chunk", path)
			}
			format, chans := binary.LittleEndian.Uint16(fm[0:]), binary.LittleEndian.Uint16(fm[2:])
			rate, bits := binary.LittleEndian.Uint32(fm[4:]), binary.LittleEndian.Uint16(fm[14:])
			if format != 1 || chans != 1 || rate != SampleRate || bits != 16 {
				f.Close()
				return nil, nil, fmt.Errorf("%s is %d Hz, %d channel(s), %d-bit (format %d); calls need 8000 Hz mono 16-bit PCM (convert with: sox IN -r 8000 -c 1 -b 16 OUT.wav)", path, rate, chans, bits, format)
			}
		case "data":
			return RawSource{R: io.LimitReader(r, int64(size))}, f, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size+size%2)); err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("%s: truncated", path)
			}
		}
	}
}

// WAVSink writes an 8 kHz mono 16-bit WAV file; Close finishes the header.
type WAVSink struct {
	f *os.File
	w *bufio.Writer
	n int
}

// CreateWAV starts a WAV file at path.
func CreateWAV(path string) (*WAVSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	s := &WAVSink{f: f, w: bufio.NewWriter(f)}
	s.w.Write(make([]byte, 44)) // header, written on Close
	return s, nil
}

func (s *WAVSink) WriteFrame(pcm []int16) error {
	s.n += len(pcm)
	return RawSink{W: s.w}.WriteFrame(pcm)
}

// Close writes the header and closes the file.
func (s *WAVSink) Close() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+2*s.n))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], SampleRate)
	binary.LittleEndian.PutUint32(h[28:], 2*SampleRate)
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(2*s.n))
	if _, err := s.f.WriteAt(h, 0); err != nil {
		return err
	}
	return s.f.Close()
}
