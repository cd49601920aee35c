package mh_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/pcap"
)

var (
	hoa  = netip.MustParseAddr("2001:db8:1::10")
	coa  = netip.MustParseAddr("2001:db8:11::abcd")
	ha   = netip.MustParseAddr("2001:db8:1::1")
	cn   = netip.MustParseAddr("2001:db8:21::77")
	ar   = netip.MustParseAddr("2001:db8:11::1")
	kbm  = bytes.Repeat([]byte{7}, 20)
	mnha = bytes.Repeat([]byte{9}, 16)
)

// capturePackets returns one packet of every kind, as the roles send them.
func capturePackets(t *testing.T) [][]byte {
	t.Helper()
	var pkts [][]byte
	add := func(a mh.Addressing, m *mh.Message, sign func([]byte)) {
		p := mh.BuildPacket(a, 64, m, sign)
		// Our own parser agrees before tshark is asked.
		var back mh.Message
		if _, err := mh.ParsePacket(p, &back); err != nil {
			t.Fatalf("%v: own parser: %v", m.Type, err)
		}
		pkts = append(pkts, p)
	}
	add(mh.Addressing{Src: cn, Dst: hoa}, &mh.Message{Type: mh.TypeBRR}, nil)
	add(mh.Addressing{Src: hoa, Dst: cn}, &mh.Message{Type: mh.TypeHoTI, Cookie: [8]byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}}, nil)
	add(mh.Addressing{Src: coa, Dst: cn}, &mh.Message{Type: mh.TypeCoTI, Cookie: [8]byte{0, 0, 0, 0, 0, 0, 0x56, 0x78}}, nil)
	add(mh.Addressing{Src: cn, Dst: hoa}, &mh.Message{Type: mh.TypeHoT, NonceIndex: 21, Cookie: [8]byte{7: 0x34}, Token: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}, nil)
	add(mh.Addressing{Src: cn, Dst: coa}, &mh.Message{Type: mh.TypeCoT, NonceIndex: 22, Cookie: [8]byte{7: 0x78}, Token: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}}, nil)

	home := &mh.Message{Type: mh.TypeBU, Sequence: 4711, Flags: mh.FlagA | mh.FlagH | mh.FlagL, Lifetime: 100}
	home.Options.Set(mh.OptMsgID)
	home.Options.Timestamp = auth.NTPTime(time.Unix(1800000000, 0))
	home.Options.Set(mh.OptAuth)
	home.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 4097}
	add(mh.Addressing{Src: coa, Dst: ha, HomeAddress: hoa}, home, func(b []byte) {
		a := auth.MNHAAuthenticator(mnha, coa, hoa, b, home.Options.Auth.DataOff)
		copy(b[home.Options.Auth.DataOff:], a[:])
	})
	ro := &mh.Message{Type: mh.TypeBU, Sequence: 12, Flags: mh.FlagA, Lifetime: 105}
	ro.Options.Set(mh.OptNonceIndices)
	ro.Options.HomeNonceIndex, ro.Options.CareOfNonceIndex = 21, 22
	ro.Options.Set(mh.OptAltCoA)
	ro.Options.AltCoA = coa
	ro.Options.Set(mh.OptBAD)
	add(mh.Addressing{Src: coa, Dst: cn, HomeAddress: hoa}, ro, func(b []byte) {
		a := auth.BindingAuthenticator(kbm, coa, cn, b, ro.Options.AuthenticatorOff)
		copy(b[ro.Options.AuthenticatorOff:], a[:])
	})
	ba := &mh.Message{Type: mh.TypeBA, Status: mh.StatusSeqOutOfWindow, Sequence: 4712, Lifetime: 100}
	ba.Options.Set(mh.OptRefreshAdvice)
	ba.Options.RefreshInterval = 90
	ba.Options.Set(mh.OptBAD)
	add(mh.Addressing{Src: cn, Dst: coa, RoutedTo: hoa}, ba, func(b []byte) {
		a := auth.BindingAuthenticator(kbm, coa, cn, b, ba.Options.AuthenticatorOff)
		copy(b[ba.Options.AuthenticatorOff:], a[:])
	})
	add(mh.Addressing{Src: cn, Dst: coa}, &mh.Message{Type: mh.TypeBE, Status: mh.BEUnknownHAO, Address: hoa}, nil)

	req := &mh.Message{Type: mh.TypeExperimental, Subtype: mh.SubtypeMNAuthRequest, Sequence: 3, Flags: mh.FlagA, Lifetime: 75}
	req.Options.Set(mh.OptAltCoA)
	req.Options.AltCoA = coa
	req.Options.AddExpAddr(mh.ExpHAAddress, ha)
	req.Options.AddExpAddr(mh.ExpHomeAddr, hoa)
	req.Options.Set(mh.OptAuth)
	req.Options.Auth = mh.AuthOption{Subtype: mh.AuthSubtypeMNHA, SPI: 4097}
	relay := mh.BuildPacket(mh.Addressing{Src: ar, Dst: ha}, 64, req, nil)
	sa := auth.DeriveHA2RSA([]byte("tshark test seed................"), "ha1", "ar1", true)
	withAH, err := sa.Protect(relay, 1)
	if err != nil {
		t.Fatal(err)
	}
	pkts = append(pkts, withAH)
	return pkts
}

// tshark, an independent decoder, must read what we write as we meant it,
// and flag nothing as malformed.
func TestTsharkDecodesEveryMessage(t *testing.T) {
	testenv.RequireTools(t, "tshark")
	file := filepath.Join(t.TempDir(), "mh.pcap")
	w, err := pcap.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range capturePackets(t) {
		w.WritePacket(time.Unix(1800000000+int64(i), 0), p)
	}
	w.Close()

	fields := []string{"mip6.mhtype", "mip6.bu.seqnr", "mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.l_flag", "mip6.bu.k_flag",
		"mip6.bu.lifetime", "mip6.ba.status", "mip6.ba.seqnr", "mip6.hoti.cookie", "mip6.coti.cookie", "mip6.hot.nindex",
		"mip6.cot.nindex", "mip6.ni.hni", "mip6.ni.cni", "mip6.bad.auth", "mip6.acoa.acoa", "mip6.be.status", "mip6.be.haddr",
		"ipv6.opt.mipv6.home_address", "ipv6.routing.type", "ipv6.routing.segleft", "ipv6.routing.mipv6.home_address",
		"ah.spi", "ah.sequence", "mip6.auth.mobility_spi", "mip6.bra.interval", "mip6.csum"}
	args := []string{"-r", file, "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "Running as user") {
			continue
		}
		vals := strings.Split(line, "|")
		row := map[string]string{}
		for i, f := range fields {
			if i < len(vals) {
				row[f] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	if len(rows) != 10 {
		t.Fatalf("tshark shows %d packets, want 10:\n%s", len(rows), out)
	}
	expect := []map[string]string{
		{"mip6.mhtype": "0"},
		{"mip6.mhtype": "1", "mip6.hoti.cookie": "0x0000000000001234"},
		{"mip6.mhtype": "2", "mip6.coti.cookie": "0x0000000000005678"},
		{"mip6.mhtype": "3", "mip6.hot.nindex": "21"},
		{"mip6.mhtype": "4", "mip6.cot.nindex": "22"},
		{"mip6.mhtype": "5", "mip6.bu.seqnr": "4711", "mip6.bu.a_flag": "1", "mip6.bu.h_flag": "1", "mip6.bu.l_flag": "1",
			"mip6.bu.k_flag": "0", "mip6.bu.lifetime": "100", "ipv6.opt.mipv6.home_address": hoa.String(), "mip6.auth.mobility_spi": "4097"},
		{"mip6.mhtype": "5", "mip6.bu.seqnr": "12", "mip6.bu.h_flag": "0", "mip6.ni.hni": "21", "mip6.ni.cni": "22",
			"mip6.acoa.acoa": coa.String(), "ipv6.opt.mipv6.home_address": hoa.String()},
		{"mip6.mhtype": "6", "mip6.ba.status": "135", "mip6.ba.seqnr": "4712", "ipv6.routing.type": "2", "ipv6.routing.segleft": "1",
			"ipv6.routing.mipv6.home_address": hoa.String(), "mip6.bra.interval": "90"},
		{"mip6.mhtype": "7", "mip6.be.status": "1", "mip6.be.haddr": hoa.String()},
		{"mip6.mhtype": "11", "ah.sequence": "1"},
	}
	for i, want := range expect {
		for k, v := range want {
			if got := rows[i][k]; !strings.EqualFold(got, v) {
				t.Errorf("packet %d: %s = %q, want %q", i+1, k, got, v)
			}
		}
	}
	// The BAD authenticator tshark shows is the one we computed.
	pk := capturePackets(t)[6]
	var m mh.Message
	info, _ := mh.ParsePacket(pk, &m)
	if want := fmt.Sprintf("%x", info.MH[m.Options.AuthenticatorOff:]); rows[6]["mip6.bad.auth"] != want {
		t.Errorf("BU authenticator shown as %q, sent %q", rows[6]["mip6.bad.auth"], want)
	}
	if rows[9]["ah.spi"] == "" {
		t.Error("AH SPI not decoded")
	}

	// Nothing malformed, nothing tshark warns about.
	out, err = exec.Command("tshark", "-r", file, "-Y", "_ws.malformed || _ws.expert.severity >= warning").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var bad []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("tshark flags packets:\n%s", strings.Join(bad, "\n"))
		detail, _ := exec.Command("tshark", "-r", file, "-V", "-Y", "_ws.expert").CombinedOutput()
		t.Logf("%s", detail)
	}
}

// tshark does not verify Mobility Header checksums, so a plain reference
// sum, written independently of ip6.Sum, checks what tshark showed.
func TestChecksumAgainstReference(t *testing.T) {
	for i, p := range capturePackets(t) {
		var m mh.Message
		info, err := mh.ParsePacket(p, &m)
		if err != nil {
			t.Fatal(err)
		}
		src, dst := info.Src, info.Dst
		if info.HomeAddress.IsValid() {
			src = info.HomeAddress
		}
		if info.RoutedTo.IsValid() {
			dst = info.RoutedTo
		}
		var sum uint32
		words := append(append(append([]byte{}, src.AsSlice()...), dst.AsSlice()...), 0, 0, byte(len(info.MH)>>8), byte(len(info.MH)), 0, 0, 0, 135)
		words = append(words, info.MH...)
		for j := 0; j+1 < len(words); j += 2 {
			sum += uint32(words[j])<<8 | uint32(words[j+1])
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			t.Errorf("packet %d: reference sum %#x, want 0xffff", i, sum)
		}
	}
}

// Our packets are also what ParsePacket expects: HAO only on BUs, RH2 only on BAs.
func TestParsePacketRules(t *testing.T) {
	m := &mh.Message{Type: mh.TypeHoTI}
	p := mh.BuildPacket(mh.Addressing{Src: coa, Dst: cn, HomeAddress: hoa}, 64, m, nil)
	var back mh.Message
	if _, err := mh.ParsePacket(p, &back); err != mh.ErrHAONotAllowed {
		t.Errorf("HoTI with HAO: %v", err)
	}
	p = mh.BuildPacket(mh.Addressing{Src: cn, Dst: coa, RoutedTo: hoa}, 64, &mh.Message{Type: mh.TypeBU}, nil)
	if _, err := mh.ParsePacket(p, &back); err != mh.ErrRH2NotAllowed {
		t.Errorf("BU with RH2: %v", err)
	}
	p = mh.BuildPacket(mh.Addressing{Src: coa, Dst: cn, HomeAddress: hoa}, 64, &mh.Message{Type: mh.TypeBU}, nil)
	p[len(p)-1] ^= 0xff
	if _, err := mh.ParsePacket(p, &back); err != mh.ErrChecksum {
		t.Errorf("bad checksum: %v", err)
	}
}
