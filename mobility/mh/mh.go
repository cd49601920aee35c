// Package mh is the wire codec of the Mobility Header (RFC 6275 section 6.1)
// and of this project's Experimental Mobility Header messages (RFC 5096)
// that carry the paper's MN Authentication Request and Reply, together with
// the two IPv6 extension headers Mobile IPv6 adds: the Home Address
// destination option and the type 2 routing header.
//
// Parse decodes into a caller-owned Message without allocating, so that a
// home agent can parse Binding Updates at line rate. Every malformation has
// its own error; the reaction RFC 6275 prescribes for it is documented on
// the error, for the roles to apply:
//
//	ErrChecksum      silently discard (9.2)
//	ErrPayloadProto  discard; ICMPv6 Parameter Problem code 0 pointing at
//	                 the Payload Proto field (9.2)
//	ErrHeaderLen     discard; ICMPv6 Parameter Problem code 0 pointing at
//	                 the Header Len field (9.2)
//	ErrUnknownType   Binding Error with status 2 (9.2, 9.3.3)
//	ErrTruncated, ErrOptionOverrun, ErrMisaligned, ErrBADNotLast,
//	ErrOptionLength  silently discard (the message is malformed; 6.2)
package mh

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"time"
)

// Type is an MH Type.
type Type uint8

const (
	TypeBRR          Type = 0 // Binding Refresh Request
	TypeHoTI         Type = 1 // Home Test Init
	TypeCoTI         Type = 2 // Care-of Test Init
	TypeHoT          Type = 3 // Home Test
	TypeCoT          Type = 4 // Care-of Test
	TypeBU           Type = 5 // Binding Update
	TypeBA           Type = 6 // Binding Acknowledgement
	TypeBE           Type = 7 // Binding Error
	TypeExperimental Type = 11
)

var typeNames = map[Type]string{
	TypeBRR: "BRR", TypeHoTI: "HoTI", TypeCoTI: "CoTI", TypeHoT: "HoT", TypeCoT: "CoT",
	TypeBU: "BU", TypeBA: "BA", TypeBE: "BE", TypeExperimental: "Experimental",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "MH-" + strconv.Itoa(int(t))
}

// Subtypes of this project's Experimental MH messages (the first octet of
// the message data; PROTOCOL.md "The paper's new messages").
const (
	SubtypeMNAuthRequest uint8 = 1
	SubtypeMNAuthReply   uint8 = 2
)

// Binding Update flags (RFC 6275 6.1.7).
const (
	FlagA uint16 = 0x8000 // acknowledge
	FlagH uint16 = 0x4000 // home registration
	FlagL uint16 = 0x2000 // link-local address compatibility
	FlagK uint16 = 0x1000 // key management mobility capability
)

// BAFlagK is the Binding Acknowledgement K flag (in the octet after Status).
const BAFlagK uint8 = 0x80

// Binding Acknowledgement status codes (RFC 6275 6.1.8).
const (
	StatusAccepted                  uint8 = 0
	StatusAcceptedPrefixDiscovery   uint8 = 1
	StatusReasonUnspecified         uint8 = 128
	StatusAdminProhibited           uint8 = 129
	StatusInsufficientResources     uint8 = 130
	StatusHomeRegNotSupported       uint8 = 131
	StatusNotHomeSubnet             uint8 = 132
	StatusNotHomeAgentForMN         uint8 = 133
	StatusDADFailed                 uint8 = 134
	StatusSeqOutOfWindow            uint8 = 135
	StatusExpiredHomeNonce          uint8 = 136
	StatusExpiredCareOfNonce        uint8 = 137
	StatusExpiredNonces             uint8 = 138
	StatusRegistrationTypeChangeDis uint8 = 139
)

// Binding Error status codes (RFC 6275 6.1.9).
const (
	BEUnknownHAO    uint8 = 1 // unknown binding for Home Address destination option
	BEUnknownMHType uint8 = 2 // unrecognized MH Type value
)

// PayloadProtoNone is the only Payload Proto value accepted (IPPROTO_NONE).
const PayloadProtoNone = 59

// Errors of Parse. See the package comment for the reaction to each.
var (
	ErrTruncated     = errors.New("mh: message shorter than its Header Len says")
	ErrPayloadProto  = errors.New("mh: Payload Proto is not 59 (IPPROTO_NONE)")
	ErrHeaderLen     = errors.New("mh: Header Len too small for the MH Type")
	ErrUnknownType   = errors.New("mh: unrecognized MH Type")
	ErrChecksum      = errors.New("mh: bad checksum")
	ErrOptionOverrun = errors.New("mh: option length overruns the message")
	ErrMisaligned    = errors.New("mh: option violates its alignment requirement")
	ErrBADNotLast    = errors.New("mh: Binding Authorization Data option is not the last option")
	ErrOptionLength  = errors.New("mh: option has the wrong length for its type")
	ErrTooManyOpts   = errors.New("mh: too many options of one kind")
)

// ParamProblemPointer returns the offset, within the Mobility Header, that
// an ICMPv6 Parameter Problem about err should point at (RFC 6275 9.2), and
// false for errors that get no ICMPv6 answer.
func ParamProblemPointer(err error) (int, bool) {
	switch {
	case errors.Is(err, ErrPayloadProto):
		return 0, true
	case errors.Is(err, ErrHeaderLen):
		return 1, true
	}
	return 0, false
}

// minLen is the smallest Mobility Header, in bytes, for each known type:
// the 6-byte header plus the fixed message data, rounded up to 8.
var minLen = map[Type]int{
	TypeBRR: 8, TypeHoTI: 16, TypeCoTI: 16, TypeHoT: 24, TypeCoT: 24,
	TypeBU: 16, TypeBA: 16, TypeBE: 24, TypeExperimental: 8,
}

// fixedEnd is where options start, per type (for Experimental: per subtype).
var fixedEnd = map[Type]int{
	TypeBRR: 8, TypeHoTI: 16, TypeCoTI: 16, TypeHoT: 24, TypeCoT: 24,
	TypeBU: 12, TypeBA: 12, TypeBE: 24,
}

// Experimental message layouts (after the 6-byte MH header):
//
//	MN Authentication Request: Subtype=1 (8) | Reserved (8) | Sequence (16) |
//	                           Flags (16) | Lifetime (16) | options...  (options at 14)
//	MN Authentication Reply:   Subtype=2 (8) | Status (8) | Sequence (16) |
//	                           Lifetime (16) | options...               (options at 12)
//
// The Request's flags use the Binding Update bit positions.
const (
	expRequestEnd = 14
	expReplyEnd   = 12
)

// Message is a decoded Mobility Header. Fields that a type does not have
// stay zero. Byte-slice fields point into the parsed message.
type Message struct {
	Type         Type
	PayloadProto uint8 // 59 unless a caller builds a broken one on purpose
	Checksum     uint16

	Sequence   uint16 // BU, BA, MN Auth Request/Reply
	Flags      uint16 // BU flags; for a BA, the K flag in the top bit of the high byte
	Lifetime   uint16 // BU, BA, MN Auth Request/Reply; in units of 4 s
	Status     uint8  // BA, BE, MN Auth Reply
	Cookie     [8]byte
	Token      [8]byte
	NonceIndex uint16     // HoT, CoT
	Address    netip.Addr // BE: the home address
	Subtype    uint8      // Experimental
	ExpData    []byte     // Experimental messages of unknown subtype: the data after Subtype

	Options Options
}

// LifetimeUnit is the unit of the Lifetime fields (RFC 6275 6.1.7).
const LifetimeUnit = 4 * time.Second

// MaxLifetime is the longest lifetime the field can carry.
const MaxLifetime = 0xffff * LifetimeUnit

// LifetimeDuration returns the Lifetime field as a duration.
func (m *Message) LifetimeDuration() time.Duration { return time.Duration(m.Lifetime) * LifetimeUnit }

// SetLifetime sets the Lifetime field to d in 4-second units: rounded down
// (a granted lifetime never outlasts the binding) but never to zero for a
// positive d (zero means deregistration), and clamped to MaxLifetime.
func (m *Message) SetLifetime(d time.Duration) { m.Lifetime = LifetimeUnits(d) }

// LifetimeUnits converts d as SetLifetime does.
func LifetimeUnits(d time.Duration) uint16 {
	switch {
	case d <= 0:
		return 0
	case d >= MaxLifetime:
		return 0xffff
	case d < LifetimeUnit:
		return 1
	}
	return uint16(d / LifetimeUnit)
}

// Reset clears m for reuse without freeing its option slices' storage.
func (m *Message) Reset() {
	opts := m.Options
	*m = Message{}
	m.Options.reset(&opts)
}

// Parse decodes the Mobility Header in b (which starts with Payload Proto and
// may be followed by nothing else: b is exactly the MH as found in the
// packet, or longer when the packet has trailing bytes, which are ignored).
// It checks structure only; VerifyChecksum checks the checksum, which needs
// the packet's addresses.
func Parse(b []byte, m *Message) error {
	m.Reset()
	if len(b) < 8 {
		return ErrTruncated
	}
	total := (int(b[1]) + 1) * 8
	if total > len(b) {
		return ErrTruncated
	}
	b = b[:total]
	m.PayloadProto = b[0]
	m.Type = Type(b[2])
	m.Checksum = binary.BigEndian.Uint16(b[4:6])
	if b[0] != PayloadProtoNone {
		return ErrPayloadProto
	}
	min, known := minLen[m.Type]
	if !known {
		return ErrUnknownType
	}
	if total < min {
		return ErrHeaderLen
	}
	optStart := fixedEnd[m.Type]
	switch m.Type {
	case TypeBRR:
	case TypeHoTI, TypeCoTI:
		copy(m.Cookie[:], b[8:16])
	case TypeHoT, TypeCoT:
		m.NonceIndex = binary.BigEndian.Uint16(b[6:8])
		copy(m.Cookie[:], b[8:16])
		copy(m.Token[:], b[16:24])
	case TypeBU:
		m.Sequence = binary.BigEndian.Uint16(b[6:8])
		m.Flags = binary.BigEndian.Uint16(b[8:10])
		m.Lifetime = binary.BigEndian.Uint16(b[10:12])
	case TypeBA:
		m.Status = b[6]
		m.Flags = uint16(b[7]) << 8
		m.Sequence = binary.BigEndian.Uint16(b[8:10])
		m.Lifetime = binary.BigEndian.Uint16(b[10:12])
	case TypeBE:
		m.Status = b[6]
		m.Address = netip.AddrFrom16([16]byte(b[8:24]))
	case TypeExperimental:
		m.Subtype = b[6]
		switch m.Subtype {
		case SubtypeMNAuthRequest:
			if total < 16 {
				return ErrHeaderLen
			}
			m.Sequence = binary.BigEndian.Uint16(b[8:10])
			m.Flags = binary.BigEndian.Uint16(b[10:12])
			m.Lifetime = binary.BigEndian.Uint16(b[12:14])
			optStart = expRequestEnd
		case SubtypeMNAuthReply:
			if total < 16 {
				return ErrHeaderLen
			}
			m.Status = b[7]
			m.Sequence = binary.BigEndian.Uint16(b[8:10])
			m.Lifetime = binary.BigEndian.Uint16(b[10:12])
			optStart = expReplyEnd
		default:
			m.ExpData = b[7:]
			return nil
		}
	}
	return m.Options.parse(b, optStart)
}
