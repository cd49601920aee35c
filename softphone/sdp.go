package softphone

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"

	"github.com/pion/sdp/v3"
)

// Offer builds an SDP offer (RFC 4566, RFC 3264) for audio at addr:port with
// the codecs in order of preference.
func Offer(addr netip.Addr, port uint16, codecs []Codec) ([]byte, error) {
	return describe(addr, port, codecs, rand.Uint64()>>2)
}

func describe(addr netip.Addr, port uint16, codecs []Codec, session uint64) ([]byte, error) {
	at := "IP6"
	if addr.Is4() {
		at = "IP4"
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: int(port)}, Protos: []string{"RTP", "AVP"}},
	}
	for _, c := range codecs {
		pt := strconv.Itoa(int(c.PayloadType))
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", pt+" "+c.Name+"/8000"))
	}
	md.Attributes = append(md.Attributes, sdp.NewAttribute("ptime", "20"), sdp.NewPropertyAttribute("sendrecv"))
	s := &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "-", SessionID: session, SessionVersion: session, NetworkType: "IN", AddressType: at,
			UnicastAddress: addr.String()},
		SessionName:           "mip6 call",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: at, Address: &sdp.Address{Address: addr.String()}},
		TimeDescriptions:      []sdp.TimeDescription{{}},
		MediaDescriptions:     []*sdp.MediaDescription{md},
	}
	return s.Marshal()
}

// Media description errors answer with 488 Not Acceptable Here.
var (
	ErrSDPMalformed = errors.New("sdp: malformed session description")
	ErrNoAudio      = errors.New("sdp: no audio stream")
	ErrNoCodec      = errors.New("sdp: no codec in common (PCMU or PCMA)")
)

// Remote is what a peer's SDP says about its audio.
type Remote struct {
	Addr   netip.AddrPort
	Codecs []Codec // in the peer's order, those we support
}

// ParseSDP reads a peer's offer or answer.
func ParseSDP(body []byte) (Remote, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		return Remote{}, fmt.Errorf("%w: %v", ErrSDPMalformed, err)
	}
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = s.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return Remote{}, fmt.Errorf("%w: no connection address", ErrSDPMalformed)
		}
		a, err := netip.ParseAddr(ci.Address.Address)
		if err != nil {
			return Remote{}, fmt.Errorf("%w: connection address %q", ErrSDPMalformed, ci.Address.Address)
		}
		if md.MediaName.Port.Value < 1 || md.MediaName.Port.Value > 65535 {
			return Remote{}, fmt.Errorf("%w: port %d", ErrSDPMalformed, md.MediaName.Port.Value)
		}
		r := Remote{Addr: netip.AddrPortFrom(a.Unmap(), uint16(md.MediaName.Port.Value))}
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if c, ok := codecByPT(uint8(pt)); ok && pt < 128 {
				r.Codecs = append(r.Codecs, c)
			}
		}
		if len(r.Codecs) == 0 {
			return Remote{}, ErrNoCodec
		}
		return r, nil
	}
	return Remote{}, ErrNoAudio
}

// Answer builds the answer to an offer: the first of the offer's codecs we
// support, at our address and port.
func Answer(offer Remote, addr netip.Addr, port uint16) ([]byte, Codec, error) {
	if len(offer.Codecs) == 0 {
		return nil, Codec{}, ErrNoCodec
	}
	c := offer.Codecs[0]
	b, err := describe(addr, port, []Codec{c}, rand.Uint64()>>2)
	return b, c, err
}
