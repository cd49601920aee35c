package lab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/softphone"
)

// sipCall places a call from mn1 to mn2, lets mn1 send before 20 ms
// packets, moves mn1 to move (if any), lets it send after more, and hangs
// up.
func sipCall(t *testing.T, l *Lab, before, after uint64, move string) (softphone.Report, softphone.Report) {
	t.Helper()
	waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "sip.registered", 1, 10*time.Second)
	callee := l.Node("mn2").SIP.Phone
	callee.SetAudio(func(string, bool) (softphone.Source, softphone.Sink) {
		return &softphone.TestPattern{Seed: 2}, softphone.Discard{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := l.Node("mn1").SIP.Phone.Call(ctx, sip.Uri{User: "user2", Host: "domain2"},
		softphone.CallOptions{Source: &softphone.TestPattern{Seed: 1}, Sink: softphone.Discard{}, Verify: &softphone.TestPattern{Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	talk := func(n uint64) {
		t.Helper()
		start := c.Report().PacketsSent
		testenv.WaitFor(t, time.Duration(n)*time.Second/10, "mn1 to send its media", func() bool { return c.Report().PacketsSent >= start+n })
	}
	talk(before)
	if move != "" {
		if _, err := l.Handover(ctx, "mn1", move); err != nil {
			t.Fatal(err)
		}
	}
	talk(after)
	var far *softphone.Call
	for _, x := range callee.Calls() {
		far = x
	}
	r := c.Hangup(ctx)
	if far == nil {
		t.Fatal("the callee has no call")
	}
	select {
	case <-far.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the callee's side did not end")
	}
	return r, far.Report()
}

// MN1 calls MN2 through both home agents' proxies, in each scheme; the known
// signal arrives intact, MN1 moves mid-call, and the call goes on.
func TestSIPCallAcrossHandover(t *testing.T) {
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		t.Run(string(scheme), func(t *testing.T) {
			l := startFig4Scheme(t, scheme, Options{})
			caller, callee := sipCall(t, l, 100, 150, "ar1p")
			t.Logf("%s caller:\n%s", scheme, caller.Text())
			t.Logf("%s callee:\n%s", scheme, callee.Text())
			if caller.FramesMismatched != 0 || caller.FramesVerified < 200 {
				t.Errorf("audio at the caller: %d intact, %d differ", caller.FramesVerified, caller.FramesMismatched)
			}
			if callee.PacketsReceived < 200 || caller.PacketsReceived < 200 {
				t.Errorf("received %d (callee) and %d (caller) of ~250", callee.PacketsReceived, caller.PacketsReceived)
			}
			if len(caller.Handovers) != 1 {
				t.Fatalf("handovers in the report: %+v", caller.Handovers)
			}
			// Registrations went to both proxies, with the scheme's contact.
			reg := l.Node("ha1").SIP.Proxy.Registrations()["user1@domain1"]
			want := l.Topo.NodeByName("mn1").HomeAddress.String()
			if scheme == config.SchemeHA2R {
				want = l.Node("mn1").Mobility.MobileNode.Status().CareOf.String()
			}
			if len(reg) != 1 || !contains(reg[0], want) {
				t.Errorf("user1's registration %v, want contact %s", reg, want)
			}
		})
	}
}

// With 5 % loss emulated on MN2's access link, the reports show about 5 %.
func TestSIPCallReportsLoss(t *testing.T) {
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo.LinkByName("ar2").Loss = 0.05
	l := startTopo(t, topo, Options{Seed: 3})
	caller, callee := sipCall(t, l, 500, 0, "")
	t.Logf("caller:\n%s\ncallee:\n%s", caller.Text(), callee.Text())
	for _, r := range []softphone.Report{caller, callee} {
		if r.LossPercent < 2.5 || r.LossPercent > 8 {
			t.Errorf("loss %.2f %%, want about 5 %%", r.LossPercent)
		}
		if r.MOS >= 4.3 {
			t.Errorf("MOS %.2f ignores the loss", r.MOS)
		}
	}
	if caller.FramesMismatched != 0 {
		t.Errorf("%d frames arrived altered", caller.FramesMismatched)
	}
}

// RTP from a third host, aimed at a call's media port, is ignored and
// counted; the call's own audio is untouched.
func TestRTPFromUnexpectedSource(t *testing.T) {
	l := startFig4Scheme(t, config.SchemeHA2R, Options{NoDelay: true})
	waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "sip.registered", 1, 10*time.Second)
	l.Node("mn2").SIP.Phone.SetAudio(func(string, bool) (softphone.Source, softphone.Sink) {
		return &softphone.TestPattern{Seed: 2}, softphone.Discard{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := l.Node("mn1").SIP.Phone.Call(ctx, sip.Uri{User: "user2", Host: "domain2"},
		softphone.CallOptions{Source: &softphone.Tone{}, Sink: softphone.Discard{}, Verify: &softphone.TestPattern{Seed: 2}})
	if err != nil {
		t.Fatal(err)
	}
	media, err := netip.ParseAddrPort(c.Report().Local)
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := l.Userspace("cn").DialUDP(netip.AddrPort{}, media)
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	pkt := append([]byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}, make([]byte, 160)...)
	for i := 0; i < 25; i++ {
		intruder.Write(pkt)
	}
	testenv.WaitFor(t, 5*time.Second, "the intruding packets to be counted", func() bool { return c.Report().UnexpectedSource >= 25 })
	start := c.Report().FramesVerified
	testenv.WaitFor(t, 5*time.Second, "the call's own audio to go on", func() bool { return c.Report().FramesVerified >= start+20 })
	r := c.Hangup(ctx)
	if r.UnexpectedSource != 25 {
		t.Errorf("%d of 25 intruding packets were counted as ignored", r.UnexpectedSource)
	}
	if r.FramesMismatched != 0 || r.FramesVerified < 20 {
		t.Errorf("the call's audio: %d intact, %d differ", r.FramesVerified, r.FramesMismatched)
	}
}

// Calls reach a mobile node at home, in each scheme: its proxy routes to
// its own registration (the home address) and never asks DNS about its own
// domain.
func TestCallToMobileNodeAtHome(t *testing.T) {
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		t.Run(string(scheme), func(t *testing.T) {
			l := startFig4Scheme(t, scheme, Options{NoDelay: true})
			waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
			waitCounter(t, l, "mn2", "sip.registered", 1, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := l.Handover(ctx, "mn1", "home1"); err != nil {
				t.Fatal(err)
			}
			hoa1 := l.Topo.NodeByName("mn1").HomeAddress.String()
			testenv.WaitFor(t, 10*time.Second, "user1's contact to be the home address", func() bool {
				reg := l.Node("ha1").SIP.Proxy.Registrations()["user1@domain1"]
				return len(reg) == 1 && contains(reg[0], hoa1)
			})
			c, err := l.Node("mn2").SIP.Phone.Call(ctx, sip.Uri{User: "user1", Host: "domain1"}, softphone.CallOptions{})
			if err != nil {
				t.Fatalf("calling user1 at home: %v", err)
			}
			start := c.Report().PacketsReceived
			testenv.WaitFor(t, 10*time.Second, "media from mn1 at home", func() bool { return c.Report().PacketsReceived >= start+25 })
			c.Hangup(ctx)
		})
	}
}

// A call that cannot be set up ends with a report that says why, and an
// error (node call exits non-zero on it): an unknown user, a phone that
// declines. No MOS is claimed for a call that received nothing.
func TestFailedCallReports(t *testing.T) {
	l := startFig4Scheme(t, config.SchemeStandard, Options{NoDelay: true})
	waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "sip.registered", 1, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ to, want string }{{"sip:nobody@domain2", "404"}} {
		rep, err := l.Node("mn1").PlaceCall(ctx, node.CallRequest{To: tc.to, Duration: time.Second})
		if err == nil {
			t.Fatalf("call to %s: no error", tc.to)
		}
		if !rep.Ended || !strings.Contains(rep.Failure, tc.want) || rep.MOS != 0 {
			t.Errorf("call to %s: ended %v, failure %q, MOS %.2f", tc.to, rep.Ended, rep.Failure, rep.MOS)
		}
		if !strings.Contains(rep.Text(), "FAILED") {
			t.Errorf("the report text does not say the call failed:\n%s", rep.Text())
		}
	}
}
