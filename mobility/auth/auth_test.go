package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/mh"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Known-answer tests for HMAC-SHA-256 (RFC 4231 test cases 1 and 2) and
// HMAC-SHA-256-128 as AH uses it (RFC 4868 AUTH256 test cases 1 and 2).
func TestHMACSHA256KnownAnswers(t *testing.T) {
	cases := []struct {
		key, data []byte
		full      string
	}{
		{bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{[]byte("Jefe"), []byte("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{bytes.Repeat([]byte{0x0b}, 32), []byte("Hi There"), "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"},
		{[]byte("JefeJefeJefeJefeJefeJefeJefeJefe"), []byte("what do ya want for nothing?"), "167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6"},
	}
	for i, c := range cases {
		m := ahMAC(c.key)
		m.Write(c.data)
		got := m.Sum(nil)
		if hex.EncodeToString(got) != c.full {
			t.Errorf("case %d: %x", i, got)
		}
		if i >= 2 && hex.EncodeToString(got[:AHICVLen]) != c.full[:32] {
			t.Errorf("case %d: truncated ICV differs", i)
		}
	}
}

var (
	kcn   = unhex("00112233445566778899aabbccddeeff00112233")
	hoa   = netip.MustParseAddr("2001:db8:1::10")
	coa   = netip.MustParseAddr("2001:db8:11::abcd")
	cnAdr = netip.MustParseAddr("2001:db8:21::77")
)

// A Return Routability run worked by hand. The expected tokens and Kbm were
// computed outside Go, with `openssl dgst -sha1 -mac HMAC`:
//
//	home token = First(64, HMAC_SHA1(Kcn, 2001:db8:1::10 | 0102030405060708 | 00))
//	care-of    = First(64, HMAC_SHA1(Kcn, 2001:db8:11::abcd | 1112131415161718 | 01))
//	Kbm        = SHA1(home token | care-of token)
func TestReturnRoutabilityWorkedExample(t *testing.T) {
	homeNonce, coaNonce := unhex("0102030405060708"), unhex("1112131415161718")
	ht := KeygenToken(kcn, hoa, homeNonce, false)
	ct := KeygenToken(kcn, coa, coaNonce, true)
	if hex.EncodeToString(ht[:]) != "b4e4ca5fed46b1a5" {
		t.Errorf("home keygen token %x", ht)
	}
	if hex.EncodeToString(ct[:]) != "b9c463b92ca3bf4d" {
		t.Errorf("care-of keygen token %x", ct)
	}
	kbm := Kbm(ht, ct, false)
	if hex.EncodeToString(kbm[:]) != "94cd42f20f84d31081152564efeead599e76eb8c" {
		t.Errorf("Kbm %x", kbm)
	}
	if k := Kbm(ht, ct, true); hex.EncodeToString(k[:]) != "5b4ddb240cd4b4120e60c3543716f737ca9b5ffe" {
		t.Errorf("Kbm when deregistering %x", k)
	}

	// The mobile node's BU to the correspondent, authorised with Kbm.
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 1, Flags: mh.FlagA, Lifetime: 105}
	bu.Options.Set(mh.OptNonceIndices)
	bu.Options.HomeNonceIndex, bu.Options.CareOfNonceIndex = 5, 6
	bu.Options.Set(mh.OptBAD)
	b := bu.Marshal()
	off := bu.Options.AuthenticatorOff
	a := BindingAuthenticator(kbm[:], coa, cnAdr, b, off)
	copy(b[off:], a[:])
	mh.SetChecksum(b, hoa, cnAdr)

	// By hand: HMAC_SHA1(Kbm, care-of | correspondent | BU with zero
	// checksum and without the authenticator), first 96 bits.
	byHand := append([]byte(nil), b[:off]...)
	byHand[4], byHand[5] = 0, 0
	m := hmac.New(sha1.New, kbm[:])
	m.Write(coa.AsSlice())
	m.Write(cnAdr.AsSlice())
	m.Write(byHand)
	if want := m.Sum(nil)[:12]; !bytes.Equal(want, a[:]) {
		t.Fatalf("authenticator %x, by hand %x", a, want)
	}
	if !VerifyBinding(kbm[:], coa, cnAdr, b, off) {
		t.Fatal("the correspondent rejects a good BU")
	}
	b[9] ^= 0x40 // the H flag
	if VerifyBinding(kbm[:], coa, cnAdr, b, off) {
		t.Fatal("a modified BU passes")
	}
	b[9] ^= 0x40
	if VerifyBinding(kbm[:], hoa, cnAdr, b, off) {
		t.Fatal("a BU passes with another care-of address")
	}
}

func TestMNHAAuthentication(t *testing.T) {
	key := unhex("3a9c5e7f1b2d4e6f8a0c2e4f6a8b0d2f")
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 10, Flags: mh.FlagA | mh.FlagH, Lifetime: 60}
	bu.Options.Set(mh.OptMsgID)
	bu.Options.Timestamp = NTPTime(time.Unix(1800000000, 0))
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 4097}
	b := bu.Marshal()
	off := bu.Options.Auth.DataOff
	a := MNHAAuthenticator(key, coa, hoa, b, off)
	copy(b[off:], a[:])
	mh.SetChecksum(b, hoa, netip.MustParseAddr("2001:db8:1::1"))
	// The checksum is not covered: verify after it was set.
	if !VerifyMNHA(key, coa, hoa, b, off) {
		t.Fatal("home agent rejects a good BU")
	}
	if VerifyMNHA(unhex("3a9c5e7f1b2d4e6f8a0c2e4f6a8b0d20"), coa, hoa, b, off) {
		t.Fatal("a BU passes under another key")
	}
	if VerifyMNHA(key, coa, cnAdr, b, off) {
		t.Fatal("a BU passes for another home address")
	}
	b[7]++ // the sequence number
	if VerifyMNHA(key, coa, hoa, b, off) {
		t.Fatal("a modified BU passes")
	}
	now := time.Unix(1800000000, 0)
	if !Fresh(bu.Options.Timestamp, now.Add(3*time.Second), 5*time.Second) || Fresh(bu.Options.Timestamp, now.Add(time.Minute), 5*time.Second) {
		t.Error("timestamp freshness")
	}
	if got := FromNTP(NTPTime(now.Add(250 * time.Millisecond))); got.Sub(now) < 249*time.Millisecond || got.Sub(now) > 251*time.Millisecond {
		t.Errorf("NTP round trip gives %v", got)
	}
}

func mhPacket(src, dst netip.Addr) []byte {
	m := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: 1, Lifetime: 10}
	b := m.Marshal()
	mh.SetChecksum(b, src, dst)
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoMH, HopLimit: 64, Src: src, Dst: dst}, b)
}

func TestAHProtectOpen(t *testing.T) {
	sa := DeriveHA2RSA([]byte("operator seed, sixteen+ bytes"), "ha1", "ar1", true)
	if sa.SPI < 256 || len(sa.Key) != 32 {
		t.Fatalf("derived SA %+v", sa)
	}
	ar, ha := netip.MustParseAddr("2001:db8:11::1"), netip.MustParseAddr("2001:db8:1::1")
	pkt := mhPacket(ar, ha)
	prot, err := sa.Protect(pkt, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(prot) != len(pkt)+AHLen || prot[6] != ip6.ProtoAH || prot[ip6.HeaderLen+1] != 6 {
		t.Fatalf("AH layout: len %d, next %d, payload len %d", len(prot), prot[6], prot[ip6.HeaderLen+1])
	}
	var win ReplayWindow
	lookup := func(spi uint32) (*SA, *ReplayWindow, bool) {
		if spi != sa.SPI {
			return nil, nil, false
		}
		return &sa, &win, true
	}
	// Mutable fields may change en route.
	mut := append([]byte(nil), prot...)
	mut[7] = 3     // hop limit
	mut[1] |= 0x0f // flow label
	mut[0] |= 0x0f // traffic class
	inner, info, err := Open(mut, lookup)
	if err != nil {
		t.Fatalf("Open after mutable changes: %v", err)
	}
	if info.Seq != 1 || !bytes.Equal(inner[ip6.HeaderLen:], pkt[ip6.HeaderLen:]) || inner[6] != ip6.ProtoMH {
		t.Fatal("Open did not give back the original packet")
	}
	// Replay of the same packet.
	if _, _, err := Open(prot, lookup); !errors.Is(err, ErrAHReplay) {
		t.Fatalf("replay: %v", err)
	}
	// Any immutable byte changed fails.
	for _, i := range []int{4, 9, 24, 39, ip6.HeaderLen + 4, ip6.HeaderLen + 12, len(prot) - 1} {
		p2, _ := sa.Protect(pkt, uint32(100+i))
		p2[i] ^= 0x01
		if _, _, err := Open(p2, lookup); err == nil {
			t.Errorf("byte %d modified, still verifies", i)
		}
	}
	// Unknown SPI.
	other := DeriveHA2RSA([]byte("another operator seed......"), "ha1", "ar1", true)
	p3, _ := other.Protect(pkt, 7)
	if _, _, err := Open(p3, lookup); !errors.Is(err, ErrAHSPI) {
		t.Errorf("unknown SPI: %v", err)
	}
	// Missing AH.
	if _, _, err := Open(pkt, lookup); !errors.Is(err, ErrAHMissing) {
		t.Errorf("no AH: %v", err)
	}
	if _, err := sa.Protect(pkt, 0); err == nil {
		t.Error("sequence number 0 is never sent")
	}
}

// The anti-replay window of RFC 4302 3.4.3.
func TestReplayWindow(t *testing.T) {
	var w ReplayWindow
	steps := []struct {
		seq    uint32
		accept bool
	}{
		{0, false}, {1, true}, {1, false}, {3, true}, {2, true}, {2, false},
		{100, true}, {37, true}, {36, false}, {36 + 64, false}, {99, true},
		{5000, true}, {4937, true}, {4936, false}, {5000, false}, {5001, true},
	}
	for i, s := range steps {
		ok := w.Check(s.seq)
		if ok != s.accept {
			t.Fatalf("step %d: seq %d accepted=%v, want %v", i, s.seq, ok, s.accept)
		}
		if ok {
			w.Update(s.seq)
		}
	}
}

func TestSealKey(t *testing.T) {
	secret := []byte("home agent and HA2R secret......")
	key := make([]byte, MNHA2RKeyLen)
	rand.Read(key)
	sealed, err := SealKey(secret, ForHA2R, hoa, coa, 7, key, rand.Reader)
	if err != nil || len(sealed) != SealedLen {
		t.Fatalf("seal: %v, %d bytes", err, len(sealed))
	}
	got, err := OpenKey(secret, ForHA2R, hoa, coa, 7, sealed)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("open: %v", err)
	}
	bad := []struct {
		name string
		f    func() ([]byte, error)
	}{
		{"other recipient", func() ([]byte, error) { return OpenKey(secret, ForMN, hoa, coa, 7, sealed) }},
		{"other sequence", func() ([]byte, error) { return OpenKey(secret, ForHA2R, hoa, coa, 8, sealed) }},
		{"other care-of address", func() ([]byte, error) { return OpenKey(secret, ForHA2R, hoa, cnAdr, 7, sealed) }},
		{"other secret", func() ([]byte, error) { return OpenKey([]byte("x"), ForHA2R, hoa, coa, 7, sealed) }},
		{"tampered", func() ([]byte, error) {
			s := append([]byte(nil), sealed...)
			s[20] ^= 1
			return OpenKey(secret, ForHA2R, hoa, coa, 7, s)
		}},
		{"truncated", func() ([]byte, error) { return OpenKey(secret, ForHA2R, hoa, coa, 7, sealed[:30]) }},
	}
	for _, b := range bad {
		if _, err := b.f(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v", b.name, err)
		}
	}
}

func FuzzAHOpen(f *testing.F) {
	sa := DeriveHA2RSA([]byte("fuzz seed......................."), "ha1", "ar1", true)
	pkt := mhPacket(netip.MustParseAddr("2001:db8:11::1"), netip.MustParseAddr("2001:db8:1::1"))
	p, _ := sa.Protect(pkt, 1)
	f.Add(p)
	f.Add(pkt)
	f.Fuzz(func(t *testing.T, b []byte) {
		var w ReplayWindow
		Open(b, func(spi uint32) (*SA, *ReplayWindow, bool) { return &sa, &w, true })
	})
}

func BenchmarkMNHAAuthenticator(b *testing.B) {
	key := unhex("3a9c5e7f1b2d4e6f8a0c2e4f6a8b0d2f")
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 10, Flags: mh.FlagA | mh.FlagH, Lifetime: 60}
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 4097}
	buf := bu.Marshal()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		MNHAAuthenticator(key, coa, hoa, buf, bu.Options.Auth.DataOff)
	}
}

func BenchmarkVerifyMNHA(b *testing.B) {
	key := unhex("3a9c5e7f1b2d4e6f8a0c2e4f6a8b0d2f")
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 10, Flags: mh.FlagA | mh.FlagH, Lifetime: 60}
	bu.Options.Set(mh.OptAuth)
	bu.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 4097}
	buf := bu.Marshal()
	a := MNHAAuthenticator(key, coa, hoa, buf, bu.Options.Auth.DataOff)
	copy(buf[bu.Options.Auth.DataOff:], a[:])
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !VerifyMNHA(key, coa, hoa, buf, bu.Options.Auth.DataOff) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkBindingAuthenticator(b *testing.B) {
	kbm := Kbm([8]byte{1}, [8]byte{2}, false)
	bu := &mh.Message{Type: mh.TypeBU, Sequence: 1, Flags: mh.FlagA, Lifetime: 105}
	bu.Options.Set(mh.OptBAD)
	buf := bu.Marshal()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		BindingAuthenticator(kbm[:], coa, cnAdr, buf, bu.Options.AuthenticatorOff)
	}
}

func BenchmarkAHOpen(b *testing.B) {
	sa := DeriveHA2RSA([]byte("bench seed......................"), "ha1", "ar1", true)
	pkt := mhPacket(netip.MustParseAddr("2001:db8:11::1"), netip.MustParseAddr("2001:db8:1::1"))
	b.ReportAllocs()
	var w ReplayWindow
	prots := make([][]byte, 1024)
	for i := range prots {
		prots[i], _ = sa.Protect(pkt, uint32(i+1))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%1024 == 0 {
			w = ReplayWindow{}
		}
		if _, _, err := Open(prots[i%1024], func(uint32) (*SA, *ReplayWindow, bool) { return &sa, &w, true }); err != nil {
			b.Fatal(err)
		}
	}
}
