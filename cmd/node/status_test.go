package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/lab"
	"github.com/ha2r/mip6testbed/softphone"
)

// `node status` as text shows, per role, what the README says it does:
// home registration with its lifetime, care-of addresses and which are
// preferred, anchors and their routers, binding caches, SIP registrations
// and calls. (It once showed none of these; only --json had them.)
func TestStatusText(t *testing.T) {
	topo, err := config.Load("../../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lab.UseScheme(topo, config.SchemeHA2R)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, topo, lab.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mn1 := l.Node("mn1")
	testenv.WaitFor(t, 10*time.Second, "mn1 and mn2 to register", func() bool {
		return mn1.Metrics.Get("sip.registered") >= 1 && l.Node("mn2").Metrics.Get("sip.registered") >= 1
	})
	call, err := mn1.SIP.Phone.Call(ctx, sip.Uri{User: "user2", Host: "domain2"}, softphone.CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Hangup(ctx)
	testenv.WaitFor(t, 5*time.Second, "media both ways", func() bool { return call.Media().Report().PacketsReceived > 0 })
	if _, err := l.Handover(ctx, "mn1", "ar1p"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "mn1 to anchor its old address and register the new one", func() bool {
		st := mn1.Status().Mobility.MobileNode
		return len(st.Anchors) > 0 && st.HomeBound && st.Contact == st.CareOf && mn1.SIP.Phone.Registration().Contact == st.CareOf
	})

	text := func(name string) string {
		var b strings.Builder
		printStatus(&b, l.Node(name).Status(), time.Now())
		return b.String()
	}
	expect := func(name string, wants ...string) {
		t.Helper()
		s := text(name)
		for _, w := range wants {
			if !strings.Contains(s, w) {
				t.Errorf("node status %s lacks %q:\n%s", name, w, s)
			}
		}
	}
	st := mn1.Status().Mobility.MobileNode
	expect("mn1",
		"link ar1p", "registered with the home agent (expires in", "care-of address "+st.CareOf.String(),
		"ANCHOR (CARE-OF)", st.Anchors[0].CareOf.String(), "preferred", "deprecated",
		"SIP sip:user1@domain1: registered as "+st.CareOf.String(), "CALL (PEER)", "in progress", "COUNTER")
	expect("ha1", "HOME BINDING", topo.NodeByName("mn1").HomeAddress.String(), "SIP REGISTRATION (domain1)", "user1@domain1")
	expect("ar1", "ANCHORED ADDRESS", st.Anchors[0].CareOf.String())
}
