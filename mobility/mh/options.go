package mh

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Mobility option types.
const (
	OptPad1            = 0
	OptPadN            = 1
	OptRefreshAdvice   = 2  // Binding Refresh Advice, 2n
	OptAltCoA          = 3  // Alternate Care-of Address, 8n+6
	OptNonceIndices    = 4  // 2n
	OptBAD             = 5  // Binding Authorization Data, 8n+2, last
	OptMNID            = 8  // Mobile Node Identifier (RFC 4283)
	OptAuth            = 9  // Mobility Message Authentication (RFC 4285), last
	OptMsgID           = 10 // Mobility Message Identification (RFC 4285)
	OptExperimental    = 18 // RFC 5096
	OptVendorSpecific  = 19 // RFC 5094
	AuthenticatorLen   = 12 // 96-bit authenticators (RR, RFC 4285 MN-HA)
	AuthSubtypeMNHA    = 1  // RFC 4285 subtypes
	AuthSubtypeMNAAA   = 2
	maxExperimentalOpt = 8
)

// Sub-TLVs this project carries in Experimental Mobility Options (type 18)
// of its MN Authentication messages: the first data octet says which.
const (
	ExpHAAddress  uint8 = 1 // the home agent's address (16 bytes)
	ExpHomeAddr   uint8 = 2 // the mobile node's home address (16 bytes)
	ExpKeyForHA2R uint8 = 3 // the MN-HA2R key sealed with the HA-HA2R key
	ExpKeyForMN   uint8 = 4 // the MN-HA2R key sealed with the MN-HA key
)

// ErrAuthNotLast: the RFC 4285 authentication option must be last too.
var ErrAuthNotLast = errors.New("mh: Mobility Message Authentication option is not the last option")

// AuthOption is an RFC 4285 Mobility Message Authentication option.
type AuthOption struct {
	Subtype uint8
	SPI     uint32
	Data    []byte // authentication data, pointing into the message
	DataOff int    // offset of Data within the Mobility Header
}

// ExpOption is an Experimental Mobility Option (its data, after type and length).
type ExpOption struct {
	Data []byte
}

// Options are the mobility options of a message. A field is meaningful only
// when Has says the option was present.
type Options struct {
	present uint64

	RefreshInterval  uint16 // units of 4 s
	AltCoA           netip.Addr
	HomeNonceIndex   uint16
	CareOfNonceIndex uint16
	Authenticator    []byte // Binding Authorization Data, pointing into the message
	AuthenticatorOff int    // its offset within the Mobility Header
	Auth             AuthOption
	Timestamp        uint64 // Mobility Message Identification (NTP format)
	MNIDSubtype      uint8
	MNID             []byte
	Experimental     []ExpOption
	Unknown          int // options skipped because this codec does not know them
}

// Has reports whether an option of type t was present (or is to be sent).
func (o *Options) Has(t uint8) bool { return t < 64 && o.present&(1<<t) != 0 }

// Set marks an option as present, for building.
func (o *Options) Set(t uint8) { o.present |= 1 << t }

func (o *Options) reset(prev *Options) {
	*o = Options{Experimental: prev.Experimental[:0]}
}

// Exp returns the data (after the sub-TLV octet) of the first Experimental
// option whose sub-TLV octet is sub.
func (o *Options) Exp(sub uint8) ([]byte, bool) {
	for _, e := range o.Experimental {
		if len(e.Data) >= 1 && e.Data[0] == sub {
			return e.Data[1:], true
		}
	}
	return nil, false
}

// ExpAddr returns an address carried in an Experimental option sub-TLV.
func (o *Options) ExpAddr(sub uint8) (netip.Addr, bool) {
	d, ok := o.Exp(sub)
	if !ok || len(d) != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(d)), true
}

// AddExp appends an Experimental option with a sub-TLV octet, for building.
func (o *Options) AddExp(sub uint8, data []byte) {
	d := make([]byte, 1+len(data))
	d[0] = sub
	copy(d[1:], data)
	o.Experimental = append(o.Experimental, ExpOption{Data: d})
	o.Set(OptExperimental)
}

// AddExpAddr appends an address sub-TLV.
func (o *Options) AddExpAddr(sub uint8, a netip.Addr) {
	a16 := a.As16()
	o.AddExp(sub, a16[:])
}

// parse decodes the options of MH b starting at off.
func (o *Options) parse(b []byte, off int) error {
	lastSeen := false // BAD or Auth seen: only padding may follow
	var lastErr error
	for off < len(b) {
		t := b[off]
		if t == OptPad1 {
			off++
			continue
		}
		if off+2 > len(b) {
			return ErrOptionOverrun
		}
		l := int(b[off+1])
		if off+2+l > len(b) {
			return ErrOptionOverrun
		}
		data := b[off+2 : off+2+l]
		if t == OptPadN {
			off += 2 + l
			continue
		}
		if lastSeen {
			return lastErr
		}
		switch t {
		case OptRefreshAdvice:
			if off%2 != 0 {
				return ErrMisaligned
			}
			if l != 2 {
				return ErrOptionLength
			}
			o.RefreshInterval = binary.BigEndian.Uint16(data)
		case OptAltCoA:
			if off%8 != 6 {
				return ErrMisaligned
			}
			if l != 16 {
				return ErrOptionLength
			}
			o.AltCoA = netip.AddrFrom16([16]byte(data))
		case OptNonceIndices:
			if off%2 != 0 {
				return ErrMisaligned
			}
			if l != 4 {
				return ErrOptionLength
			}
			o.HomeNonceIndex = binary.BigEndian.Uint16(data[0:2])
			o.CareOfNonceIndex = binary.BigEndian.Uint16(data[2:4])
		case OptBAD:
			if off%8 != 2 {
				return ErrMisaligned
			}
			if l != AuthenticatorLen {
				return ErrOptionLength
			}
			o.Authenticator, o.AuthenticatorOff = data, off+2
			lastSeen, lastErr = true, ErrBADNotLast
		case OptAuth:
			// Alignment 4n+1 per RFC 4285; accepted anywhere (we emit 8n+5).
			if l < 5 {
				return ErrOptionLength
			}
			o.Auth = AuthOption{Subtype: data[0], SPI: binary.BigEndian.Uint32(data[1:5]), Data: data[5:], DataOff: off + 7}
			lastSeen, lastErr = true, ErrAuthNotLast
		case OptMsgID:
			if l != 8 {
				return ErrOptionLength
			}
			o.Timestamp = binary.BigEndian.Uint64(data)
		case OptMNID:
			if l < 1 {
				return ErrOptionLength
			}
			o.MNIDSubtype, o.MNID = data[0], data[1:]
		case OptExperimental:
			if len(o.Experimental) == maxExperimentalOpt {
				return ErrTooManyOpts
			}
			o.Experimental = append(o.Experimental, ExpOption{Data: data})
		default:
			// RFC 6275 6.2.1: unknown options are skipped.
			o.Unknown++
			off += 2 + l
			continue
		}
		if t < 64 {
			o.present |= 1 << t
		}
		off += 2 + l
	}
	return nil
}

// pad appends padding so that the next byte lands at offset ≡ y (mod x)
// from the start of the Mobility Header (at mhStart in b).
func pad(b []byte, mhStart, x, y int) []byte {
	n := ((y-(len(b)-mhStart))%x + x) % x
	switch {
	case n == 1:
		b = append(b, OptPad1)
	case n >= 2:
		b = append(b, OptPadN, byte(n-2))
		b = append(b, make([]byte, n-2)...)
	}
	return b
}

// appendOptions writes the options in a fixed order that meets every
// alignment rule and keeps BAD or Auth last, and records the offsets where
// authenticators go.
func (o *Options) appendOptions(b []byte, mhStart int) []byte {
	if o.Has(OptRefreshAdvice) {
		b = pad(b, mhStart, 2, 0)
		b = append(b, OptRefreshAdvice, 2, byte(o.RefreshInterval>>8), byte(o.RefreshInterval))
	}
	if o.Has(OptNonceIndices) {
		b = pad(b, mhStart, 2, 0)
		b = append(b, OptNonceIndices, 4, byte(o.HomeNonceIndex>>8), byte(o.HomeNonceIndex), byte(o.CareOfNonceIndex>>8), byte(o.CareOfNonceIndex))
	}
	if o.Has(OptAltCoA) {
		b = pad(b, mhStart, 8, 6)
		a := o.AltCoA.As16()
		b = append(b, OptAltCoA, 16)
		b = append(b, a[:]...)
	}
	if o.Has(OptMNID) {
		b = append(b, OptMNID, byte(1+len(o.MNID)), o.MNIDSubtype)
		b = append(b, o.MNID...)
	}
	if o.Has(OptExperimental) {
		for _, e := range o.Experimental {
			b = append(b, OptExperimental, byte(len(e.Data)))
			b = append(b, e.Data...)
		}
	}
	if o.Has(OptMsgID) {
		b = pad(b, mhStart, 8, 6)
		b = append(b, OptMsgID, 8)
		b = binary.BigEndian.AppendUint64(b, o.Timestamp)
	}
	switch {
	case o.Has(OptAuth):
		n := len(o.Auth.Data)
		if n == 0 {
			n = AuthenticatorLen
		}
		// 8n+5 satisfies RFC 4285's 4n+1 and, with a 96-bit authenticator,
		// ends the option (and so the message) on an 8-byte boundary.
		b = pad(b, mhStart, 8, 5)
		b = append(b, OptAuth, byte(5+n), o.Auth.Subtype)
		b = binary.BigEndian.AppendUint32(b, o.Auth.SPI)
		o.Auth.DataOff = len(b) - mhStart
		if len(o.Auth.Data) > 0 {
			b = append(b, o.Auth.Data...)
		} else {
			b = append(b, make([]byte, n)...)
		}
	case o.Has(OptBAD):
		b = pad(b, mhStart, 8, 2)
		b = append(b, OptBAD, AuthenticatorLen)
		o.AuthenticatorOff = len(b) - mhStart
		if len(o.Authenticator) == AuthenticatorLen {
			b = append(b, o.Authenticator...)
		} else {
			b = append(b, make([]byte, AuthenticatorLen)...)
		}
	}
	return b
}
