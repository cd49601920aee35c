package mobility

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

type mnRig struct {
	clk *clock.Fake
	h   *fakeHost
	sig *Signals
	mn  *MobileNode
}

func newMNRig(t *testing.T, scheme Scheme) *mnRig {
	t.Helper()
	clk := clock.NewFake(epoch)
	g := &mnRig{clk: clk, h: &fakeHost{name: "mn", clk: clk}, sig: newSignals("mn", clk)}
	g.mn = NewMobileNode(g.h, g.sig, MobileNodeConfig{Home: hoa, HomePrefix: homeP, HomeAgent: haAddr, SPI: mnSPI, Key: mnKey,
		Scheme: scheme, HomeLifetime: 420 * time.Second, HA2RLinks: map[string]bool{"ar1": true, "ar2": true}, AnchorIdle: 30 * time.Second, Log: quiet})
	t.Cleanup(g.mn.Close)
	return g
}

// sentBUs returns the home Binding Updates sent since the last call.
func (g *mnRig) homeBUs(t *testing.T) []sentMsg {
	var out []sentMsg
	for _, s := range g.h.messages(t) {
		if s.ok && s.m.Type == mh.TypeBU && s.m.Flags&mh.FlagH != 0 && s.info.Dst == haAddr {
			out = append(out, s)
		}
	}
	return out
}

// haBA is the home agent's answer to a BU, as it reaches the mobile node at
// careOf.
func haBA(status uint8, seq uint16, lifetime time.Duration, careOf netip.Addr, at time.Time) []byte {
	ba := &mh.Message{Type: mh.TypeBA, Status: status, Sequence: seq}
	ba.SetLifetime(lifetime)
	sign := mnhaCredential{spi: mnSPI, key: mnKey}.authenticate(ba, at, careOf, hoa)
	a := mh.Addressing{Src: haAddr, Dst: careOf}
	if careOf != hoa {
		a.RoutedTo = hoa
	}
	return mh.BuildPacket(a, 64, ba, sign)
}

// An unanswered home registration is retransmitted with the same sequence
// number after 1.5 s, 3 s, 6 s... up to 32 s, and on at 32 s for as long as
// it goes unanswered (RFC 6275 11.8); a BA stops it; the binding is
// refreshed with a fifth of its lifetime left.
func TestHomeRegistrationRetransmitAndRefresh(t *testing.T) {
	g := newMNRig(t, SchemeStandard)
	g.h.attach(attachment("ar1", arP, careOf1))
	first := g.homeBUs(t)
	if len(first) != 1 || first[0].info.Src != careOf1 || first[0].info.HomeAddress != hoa || first[0].m.LifetimeDuration() != 420*time.Second {
		t.Fatalf("first BU: %+v", first)
	}
	seq := first[0].m.Sequence
	var waits []time.Duration
	last := g.clk.Now()
	for len(waits) < 8 {
		g.clk.Advance(500 * time.Millisecond)
		for _, s := range g.homeBUs(t) {
			if s.m.Sequence != seq {
				t.Fatalf("retransmission %d has sequence %d, want %d", len(waits)+1, s.m.Sequence, seq)
			}
			waits = append(waits, g.clk.Now().Sub(last))
			last = g.clk.Now()
		}
	}
	want := []time.Duration{1500, 3000, 6000, 12000, 24000, 32000, 32000, 32000}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Errorf("wait %d: %v, want %v", i, waits[i], want[i]*time.Millisecond)
		}
	}
	// The BA for that number stops the retransmissions.
	g.h.deliver(haBA(mh.StatusAccepted, seq, 300*time.Second, careOf1, g.clk.Now()))
	if st := g.mn.Status(); !st.HomeBound {
		t.Fatal("not bound after the BA")
	}
	g.clk.Advance(time.Duration(239) * time.Second)
	if n := len(g.homeBUs(t)); n != 0 {
		t.Fatalf("%d BUs after the BA", n)
	}
	// 300 s granted: refreshed at 240 s with a new number, and that one
	// is retransmitted again from INITIAL_BINDACK_TIMEOUT (1 s).
	g.clk.Advance(time.Second)
	ref := g.homeBUs(t)
	if len(ref) != 1 || ref[0].m.Sequence != seq+1 {
		t.Fatalf("refresh at 240 s: %+v", ref)
	}
	g.clk.Advance(time.Second)
	if re := g.homeBUs(t); len(re) != 1 || re[0].m.Sequence != seq+1 {
		t.Fatalf("refresh retransmission after 1 s: %d", len(re))
	}
}

// A BA with status 135 carries the home agent's number; the mobile node
// continues from it at once. A BA for another number, or one that fails
// authentication, changes nothing.
func TestHomeRegistrationResynchronises(t *testing.T) {
	g := newMNRig(t, SchemeStandard)
	g.h.attach(attachment("ar1", arP, careOf1))
	seq := g.homeBUs(t)[0].m.Sequence
	g.h.deliver(haBA(mh.StatusAccepted, seq+7, 300*time.Second, careOf1, g.clk.Now()))
	bad := haBA(mh.StatusAccepted, seq, 300*time.Second, careOf1, g.clk.Now())
	bad[len(bad)-1] ^= 1
	mh.SetChecksum(bad[40+mh.RH2Len:], haAddr, hoa)
	g.h.deliver(bad)
	if g.mn.Status().HomeBound || dropped(g.sig, DropBAStale) != 1 || dropped(g.sig, DropBABadAuthenticator) != 1 {
		t.Fatalf("stale %d, forged %d", dropped(g.sig, DropBAStale), dropped(g.sig, DropBABadAuthenticator))
	}
	g.h.deliver(haBA(mh.StatusSeqOutOfWindow, 5000, 0, careOf1, g.clk.Now()))
	next := g.homeBUs(t)
	if len(next) != 1 || next[0].m.Sequence != 5001 {
		t.Fatalf("after 135 with 5000: %+v", next)
	}
	g.h.deliver(haBA(mh.StatusAccepted, 5001, 300*time.Second, careOf1, g.clk.Now()))
	if !g.mn.Status().HomeBound {
		t.Fatal("not bound")
	}
}

// At home the mobile node deregisters: lifetime 0, from the home address,
// without a Home Address option (RFC 6275 11.5.4).
func TestHomeRegistrationDeregistersAtHome(t *testing.T) {
	g := newMNRig(t, SchemeStandard)
	g.h.attach(attachment("ar1", arP, careOf1))
	g.homeBUs(t)
	g.h.attach(attachment("home1", homeP, hoa))
	bu := g.homeBUs(t)
	if len(bu) != 1 || bu[0].info.Src != hoa || bu[0].info.HomeAddress.IsValid() || bu[0].m.Lifetime != 0 {
		t.Fatalf("deregistration: %+v", bu)
	}
	g.h.deliver(haBA(mh.StatusAccepted, bu[0].m.Sequence, 0, hoa, g.clk.Now()))
	g.clk.Advance(time.Hour)
	if n := len(g.homeBUs(t)); n != 0 {
		t.Errorf("%d BUs at home after the deregistration was acknowledged", n)
	}
}

// A make-before-break move: the prepared address is registered with the
// home agent while the old one stays the node's care-of address (its
// packets still leave by the old link); the host is moved only when the
// home agent's acknowledgement for the new address arrives, and a forged
// one moves nothing.
func TestMakeBeforeBreakCommitsOnAcknowledgement(t *testing.T) {
	g := newMNRig(t, SchemeStandard)
	g.h.attach(attachment("ar1", arP, careOf1))
	g.h.deliver(haBA(mh.StatusAccepted, g.homeBUs(t)[0].m.Sequence, 300*time.Second, careOf1, g.clk.Now()))
	g.h.prepare(attachment("ar2", ar2P, careOf2))
	bu := g.homeBUs(t)
	if len(bu) != 1 || bu[0].info.Src != careOf2 {
		t.Fatalf("no home BU from the prepared address: %+v", bu)
	}
	if g.h.commits != 0 || g.mn.Status().CareOf != careOf1 {
		t.Fatalf("moved before the acknowledgement (commits %d, care-of %s)", g.h.commits, g.mn.Status().CareOf)
	}
	forged := haBA(mh.StatusAccepted, bu[0].m.Sequence, 300*time.Second, careOf2, g.clk.Now())
	forged[len(forged)-1] ^= 1
	mh.SetChecksum(forged[40+mh.RH2Len:], haAddr, hoa)
	g.h.deliver(forged)
	if g.h.commits != 0 {
		t.Fatal("a forged BA moved the node")
	}
	g.h.deliver(haBA(mh.StatusAccepted, bu[0].m.Sequence, 300*time.Second, careOf2, g.clk.Now()))
	if g.h.commits != 1 || g.mn.Status().CareOf != careOf2 || !g.mn.Status().HomeBound {
		t.Fatalf("after the BA: commits %d, care-of %s, bound %v", g.h.commits, g.mn.Status().CareOf, g.mn.Status().HomeBound)
	}
	if n := len(g.homeBUs(t)); n != 0 {
		t.Errorf("the commit sent %d more home BUs; the registration was already made", n)
	}
}
