package mobility

import (
	"crypto/rand"
	"net/netip"
	"time"

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
	ha    *HomeAgent
	ah    ahPeers
	ha2rs map[netip.Addr]HA2RPeer
}

func newHAMNAuth(ha *HomeAgent, peers []HA2RPeer) *haMNAuth {
	a := &haMNAuth{ha: ha, ah: newAHPeers(), ha2rs: map[netip.Addr]HA2RPeer{}}
	for _, p := range peers {
		a.ah.add(&ahPeer{addr: p.Address, in: p.In, out: p.Out})
		a.ha2rs[p.Address] = p
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
	inner, peer, err := a.ah.open(pkt)
	if err != nil {
		ha.sig.Drop(ahDrop(err))
		return
	}
	ar := a.ha2rs[peer.addr]
	var m mh.Message
	pi, err := mh.ParsePacket(inner, &m)
	if err != nil || m.Type != mh.TypeExperimental || m.Subtype != mh.SubtypeMNAuthRequest {
		ha.sig.Drop(DropMNAuthMalformed)
		return
	}
	ha.sig.Received(MsgName(&m, false), pkt)
	status, rec, home, coa := a.authenticateMN(pi, &m, ar)
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
		rep.SetLifetime(min(m.LifetimeDuration(), DefaultAnchorLifetime))
		key := make([]byte, auth.MNHA2RKeyLen)
		rnd := ha.cfg.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		rnd.Read(key)
		forAR, err1 := auth.SealKey(ar.SealSecret, auth.ForHA2R, home, coa, m.Sequence, key, rnd)
		forMN, err2 := auth.SealKey(rec.cred.key, auth.ForMN, home, coa, m.Sequence, key, rnd)
		if err1 != nil || err2 != nil {
			ha.sig.Drop(DropMNAuthSealFailed)
			return
		}
		rep.Options.AddExp(mh.ExpKeyForHA2R, forAR)
		rep.Options.AddExp(mh.ExpKeyForMN, forMN)
		sign = rec.cred.authenticate(rep, ha.clk.Now(), coa, home)
		ha.sig.Add("mnauth.accepted", 1)
	} else {
		ha.sig.Add("mnauth.refused", 1)
	}
	out := mh.BuildPacket(mh.Addressing{Src: ha.addr, Dst: peer.addr}, 64, rep, sign)
	prot, err := peer.protect(out)
	if err != nil {
		ha.sig.Drop(DropMNAuthAHSeqExhausted)
		return
	}
	ha.sig.Sent(MsgName(rep, false), prot)
	ha.r.Send(prot)
}

// authenticateMN checks the mobile node's part of a relayed request.
func (a *haMNAuth) authenticateMN(pi mh.PacketInfo, m *mh.Message, ar HA2RPeer) (status uint8, rec *mnRecord, home, coa netip.Addr) {
	ha := a.ha
	o := &m.Options
	home, _ = o.ExpAddr(mh.ExpHomeAddr)
	if o.Has(mh.OptAltCoA) {
		coa = o.AltCoA
	}
	refuse := func(d Drop) (uint8, *mnRecord, netip.Addr, netip.Addr) {
		ha.sig.Drop(d)
		return mh.StatusAdminProhibited, nil, home, coa
	}
	if !home.IsValid() || !coa.IsValid() || !hasMNHA(m) {
		return refuse(DropMNAuthIncomplete)
	}
	ha.mu.Lock()
	rec, ok := ha.bySPI[o.Auth.SPI]
	ha.mu.Unlock()
	if !ok {
		return refuse(DropMNAuthUnknownMN)
	}
	if !rec.cred.verify(pi, m, coa, home) {
		return refuse(DropMNAuthBadAuthenticator)
	}
	if !ha.fresh(rec, o, kindMNAuth) {
		return refuse(DropMNAuthReplayed)
	}
	if rec.home != home {
		return refuse(DropMNAuthNotAuthorised)
	}
	for _, p := range ar.Prefixes {
		if p.Contains(coa) {
			return mh.StatusAccepted, rec, home, coa
		}
	}
	return refuse(DropMNAuthForeignCareOf)
}
