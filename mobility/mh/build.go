package mh

import (
	"encoding/binary"
	"net/netip"

	"github.com/ha2r/mip6testbed/ip6"
)

// Append encodes m as a Mobility Header at the end of b and returns the
// extended slice. The checksum is left zero (SetChecksum fills it once any
// authenticator is in place). Offsets of authenticator fields are recorded
// in m.Options (AuthenticatorOff, Auth.DataOff), relative to the start of
// the Mobility Header.
func (m *Message) Append(b []byte) []byte {
	start := len(b)
	proto := m.PayloadProto
	if proto == 0 {
		proto = PayloadProtoNone
	}
	b = append(b, proto, 0, byte(m.Type), 0, 0, 0)
	switch m.Type {
	case TypeBRR:
		b = append(b, 0, 0)
	case TypeHoTI, TypeCoTI:
		b = append(b, 0, 0)
		b = append(b, m.Cookie[:]...)
	case TypeHoT, TypeCoT:
		b = binary.BigEndian.AppendUint16(b, m.NonceIndex)
		b = append(b, m.Cookie[:]...)
		b = append(b, m.Token[:]...)
	case TypeBU:
		b = binary.BigEndian.AppendUint16(b, m.Sequence)
		b = binary.BigEndian.AppendUint16(b, m.Flags)
		b = binary.BigEndian.AppendUint16(b, m.Lifetime)
	case TypeBA:
		b = append(b, m.Status, byte(m.Flags>>8))
		b = binary.BigEndian.AppendUint16(b, m.Sequence)
		b = binary.BigEndian.AppendUint16(b, m.Lifetime)
	case TypeBE:
		b = append(b, m.Status, 0)
		a := m.Address.As16()
		b = append(b, a[:]...)
	case TypeExperimental:
		switch m.Subtype {
		case SubtypeMNAuthRequest:
			b = append(b, m.Subtype, 0)
			b = binary.BigEndian.AppendUint16(b, m.Sequence)
			b = binary.BigEndian.AppendUint16(b, m.Flags)
			b = binary.BigEndian.AppendUint16(b, m.Lifetime)
		case SubtypeMNAuthReply:
			b = append(b, m.Subtype, m.Status)
			b = binary.BigEndian.AppendUint16(b, m.Sequence)
			b = binary.BigEndian.AppendUint16(b, m.Lifetime)
		default:
			b = append(b, m.Subtype)
			b = append(b, m.ExpData...)
		}
	}
	b = m.Options.appendOptions(b, start)
	b = pad(b, start, 8, 0)
	b[start+1] = byte((len(b)-start)/8 - 1)
	return b
}

// Marshal returns m encoded as a new Mobility Header.
func (m *Message) Marshal() []byte { return m.Append(make([]byte, 0, 64)) }

// SetChecksum computes the Mobility Header checksum (RFC 6275 6.1.1) for a
// packet from src to dst and writes it. src is the home address when the
// packet carries a Home Address option; dst is the final destination when
// it carries a type 2 routing header.
func SetChecksum(mhb []byte, src, dst netip.Addr) {
	mhb[4], mhb[5] = 0, 0
	binary.BigEndian.PutUint16(mhb[4:6], ip6.Checksum(src, dst, ip6.ProtoMH, mhb))
}

// VerifyChecksum reports whether mhb's checksum is right for src and dst
// (with the same address rules as SetChecksum).
func VerifyChecksum(mhb []byte, src, dst netip.Addr) bool {
	if len(mhb) < 6 {
		return false
	}
	return ip6.Fold(ip6.Sum(mhb, ip6.PseudoHeaderSum(src, dst, ip6.ProtoMH, len(mhb)))) == 0
}
