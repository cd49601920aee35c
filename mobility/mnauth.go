package mobility

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

// HA2RPeer is an access router acting as HA2R, as its home agent partner
// knows it: where it is, which prefixes it hands care-of addresses from, and
// the manually keyed security associations both ways (the paper's "each AR
// and each HA share a secret").
type HA2RPeer struct {
	Name     string
	Address  netip.Addr
	Prefixes []netip.Prefix
	// In protects what the HA2R sends to the home agent, Out the reverse.
	In, Out auth.SA
	// SealSecret seals MN-HA2R keys for the HA2R.
	SealSecret []byte
}

// DefaultAnchorLifetime is the lifetime a home agent grants an HA2R anchor.
const DefaultAnchorLifetime = 420 * time.Second

// haMNAuth is the home agent's side of the paper's MN authentication: it
// checks the HA2R's Authentication Header and the mobile node's RFC 4285
// authentication, makes an MN-HA2R key and answers with it sealed twice.
type haMNAuth struct {
	ha     *HomeAgent
	mu     sync.Mutex
	peers  map[uint32]*haPeerState // by inbound SPI
	byAddr map[netip.Addr]*haPeerState
}

type haPeerState struct {
	peer   HA2RPeer
	window auth.ReplayWindow
	outSeq uint32
}

func newHAMNAuth(ha *HomeAgent, peers []HA2RPeer) *haMNAuth {
	a := &haMNAuth{ha: ha, peers: map[uint32]*haPeerState{}, byAddr: map[netip.Addr]*haPeerState{}}
	for _, p := range peers {
		st := &haPeerState{peer: p}
		a.peers[p.In.SPI] = st
		a.byAddr[p.Address] = st
	}
	return a
}

// handleRelayed processes an AH-protected MN Authentication Request that an
// HA2R relayed.
//
// Reactions: a packet whose AH does not verify (unknown SPI, wrong ICV,
// replayed sequence number) or that comes from an address other than its
// SA's HA2R is dropped silently and counted: its sender is unknown. A
// request from a known HA2R whose mobile-node authentication fails (unknown
// SPI, bad authenticator, stale or replayed timestamp, a home address that
// is not the SPI's, a care-of address outside the HA2R's prefixes) is
// answered, under AH, with status 129 and no key, so the HA2R can forget it.
func (a *haMNAuth) handleRelayed(pkt []byte) {
	ha := a.ha
	src := ip6.Header(pkt).Src()
	var peer *haPeerState
	inner, info, err := auth.Open(pkt, func(spi uint32) (*auth.SA, *auth.ReplayWindow, bool) {
		a.mu.Lock()
		defer a.mu.Unlock()
		st, ok := a.peers[spi]
		if !ok {
			return nil, nil, false
		}
		peer = st
		return &st.peer.In, &st.window, true
	})
	if err != nil {
		switch {
		case errors.Is(err, auth.ErrAHSPI):
			ha.sig.Drop("mnauth.ah_unknown_spi")
		case errors.Is(err, auth.ErrAHReplay):
			ha.sig.Drop("mnauth.ah_replay")
		default:
			ha.sig.Drop("mnauth.ah_bad")
		}
		return
	}
	if peer.peer.Address != src {
		ha.sig.Drop("mnauth.ah_wrong_sender")
		return
	}
	_ = info
	var m mh.Message
	pi, err := mh.ParsePacket(inner, &m)
	if err != nil || m.Type != mh.TypeExperimental || m.Subtype != mh.SubtypeMNAuthRequest {
		ha.sig.Drop("mnauth.malformed")
		return
	}
	ha.sig.Received(MsgName(&m, false), pkt)
	status, rec, home, coa := a.authenticateMN(pi, &m, peer)
	lifetime := time.Duration(m.Lifetime) * 4 * time.Second
	if lifetime > DefaultAnchorLifetime {
		lifetime = DefaultAnchorLifetime
	}
	rep := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthReply, Status: status, Sequence: m.Sequence}
	if coa.IsValid() {
		rep.Options.Set(mh.OptAltCoA)
		rep.Options.AltCoA = coa
	}
	rep.Options.AddExpAddr(mh.ExpHAAddress, ha.addr)
	if home.IsValid() {
		rep.Options.AddExpAddr(mh.ExpHomeAddr, home)
	}
	var sign func([]byte)
	if status == mh.StatusAccepted {
		rep.Lifetime = uint16(lifetime / (4 * time.Second))
		key := make([]byte, auth.MNHA2RKeyLen)
		rnd := ha.cfg.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		rnd.Read(key)
		forAR, err1 := auth.SealKey(peer.peer.SealSecret, auth.ForHA2R, home, coa, m.Sequence, key, rnd)
		forMN, err2 := auth.SealKey(rec.cred.Key, auth.ForMN, home, coa, m.Sequence, key, rnd)
		if err1 != nil || err2 != nil {
			ha.sig.Drop("mnauth.seal_failed")
			return
		}
		rep.Options.AddExp(mh.ExpKeyForHA2R, forAR)
		rep.Options.AddExp(mh.ExpKeyForMN, forMN)
		rep.Options.Set(mh.OptMsgID)
		rep.Options.Timestamp = auth.NTPTime(ha.clk.Now())
		rep.Options.Set(mh.OptAuth)
		rep.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: rec.cred.SPI}
		sign = func(b []byte) {
			x := auth.MNHAAuthenticator(rec.cred.Key, coa, home, b, rep.Options.Auth.DataOff)
			copy(b[rep.Options.Auth.DataOff:], x[:])
		}
		ha.sig.Add("mnauth.accepted", 1)
	} else {
		ha.sig.Add("mnauth.refused", 1)
	}
	out := mh.BuildPacket(mh.Addressing{Src: ha.addr, Dst: peer.peer.Address}, 64, rep, sign)
	a.mu.Lock()
	peer.outSeq++
	seq := peer.outSeq
	a.mu.Unlock()
	prot, err := peer.peer.Out.Protect(out, seq)
	if err != nil {
		ha.sig.Drop("mnauth.ah_seq_exhausted")
		return
	}
	ha.sig.Sent(MsgName(rep, false), prot)
	ha.r.Send(prot)
}

// authenticateMN checks the mobile node's part of a relayed request.
func (a *haMNAuth) authenticateMN(pi mh.PacketInfo, m *mh.Message, peer *haPeerState) (status uint8, rec *mnRecord, home, coa netip.Addr) {
	ha := a.ha
	o := &m.Options
	home, _ = o.ExpAddr(mh.ExpHomeAddr)
	if o.Has(mh.OptAltCoA) {
		coa = o.AltCoA
	}
	refuse := func(reason string) (uint8, *mnRecord, netip.Addr, netip.Addr) {
		ha.sig.Drop("mnauth." + reason)
		return mh.StatusAdminProhibited, nil, home, coa
	}
	if !home.IsValid() || !coa.IsValid() || !o.Has(mh.OptAuth) || len(o.Auth.Data) != mh.AuthenticatorLen {
		return refuse("incomplete")
	}
	ha.mu.Lock()
	rec, ok := ha.bySPI[o.Auth.SPI]
	ha.mu.Unlock()
	if !ok {
		return refuse("unknown_mn")
	}
	if !auth.VerifyMNHA(rec.cred.Key, coa, home, pi.MH, o.Auth.DataOff) {
		return refuse("bad_authenticator")
	}
	if !ha.fresh(rec, o) {
		return refuse("replayed")
	}
	if rec.cred.Home != home {
		return refuse("not_authorised")
	}
	inPrefix := false
	for _, p := range peer.peer.Prefixes {
		if p.Contains(coa) {
			inPrefix = true
		}
	}
	if !inPrefix {
		return refuse("foreign_care_of")
	}
	return mh.StatusAccepted, rec, home, coa
}
