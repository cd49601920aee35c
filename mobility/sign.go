package mobility

import (
	"net/netip"
	"time"

	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// The two ways signalling is authenticated, each written once: the RFC 4285
// MN-HA option (home registration, MN Authentication) and the Binding
// Authorization Data of RFC 6275 6.2.7 (Return Routability, and the paper's
// MN-HA2R key in its place).

// mnhaCredential is a mobile node's RFC 4285 MN-HA security association.
type mnhaCredential struct {
	spi uint32
	key []byte
}

// authenticate adds the Mobility Message Identification (timestamp now)
// and MN-HA authentication options to m and returns the function that
// signs the encoded message over careOf and home (BuildPacket's sign).
func (c mnhaCredential) authenticate(m *mh.Message, now time.Time, careOf, home netip.Addr) func([]byte) {
	m.Options.Set(mh.OptMsgID)
	m.Options.Timestamp = auth.NTPTime(now)
	m.Options.Set(mh.OptAuth)
	m.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: c.spi}
	return func(b []byte) {
		x := auth.MNHAAuthenticator(c.key, careOf, home, b, m.Options.Auth.DataOff)
		copy(b[m.Options.Auth.DataOff:], x[:])
	}
}

// verify checks a received message's MN-HA authentication option: present,
// of this SPI, and with an authenticator that verifies over careOf and home.
func (c mnhaCredential) verify(info mh.PacketInfo, m *mh.Message, careOf, home netip.Addr) bool {
	o := &m.Options
	return hasMNHA(m) && o.Auth.SPI == c.spi && auth.VerifyMNHA(c.key, careOf, home, info.MH, o.Auth.DataOff)
}

// hasMNHA reports whether m carries a well-formed MN-HA option (the SPI is
// what finds its key).
func hasMNHA(m *mh.Message) bool {
	o := &m.Options
	return o.Has(mh.OptAuth) && o.Auth.Subtype == mh.AuthSubtypeMNHA && len(o.Auth.Data) == mh.AuthenticatorLen
}

// bindingAuth adds a Binding Authorization Data option to m and returns the
// function that fills in its authenticator with key over careOf and the
// correspondent's address.
func bindingAuth(m *mh.Message, key []byte, careOf, correspondent netip.Addr) func([]byte) {
	m.Options.Set(mh.OptBAD)
	return func(b []byte) {
		x := auth.BindingAuthenticator(key, careOf, correspondent, b, m.Options.AuthenticatorOff)
		copy(b[m.Options.AuthenticatorOff:], x[:])
	}
}

// verifyBindingAuth checks a received message's Binding Authorization Data.
func verifyBindingAuth(info mh.PacketInfo, m *mh.Message, key []byte, careOf, correspondent netip.Addr) bool {
	return m.Options.Has(mh.OptBAD) && auth.VerifyBinding(key, careOf, correspondent, info.MH, m.Options.AuthenticatorOff)
}
