package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/ha2r/mip6testbed/config"
)

// cmdPlan prints a topology as simple lines for scripts/testbed.sh, which
// builds network namespaces from them (parsing YAML in shell is not wise):
//
//	router NAME UNDERLAY-IP PORT
//	access HOST LINK NETWORK LINK-DELAY-MS LINK-LOSS-PERCENT ROUTER
//	start HOST LINK
//	pair ROUTER-A ROUTER-B DELAY-MS LOSS-PERCENT
func cmdPlan(args []string) error {
	fs := newFlags("testbed-plan", "node testbed-plan --config FILE")
	cfgPath := fs.String("config", "", "the topology file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErr("testbed-plan: --config is required")
	}
	topo, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	return writePlan(os.Stdout, topo)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
}
func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) }

func writePlan(w io.Writer, topo *config.Topology) error {
	routers := topo.Routers()
	for _, r := range routers {
		if !r.Underlay.Addr().Is4() {
			return fmt.Errorf("the namespace testbed needs IPv4 underlay endpoints; %s has %s", r.Name, r.Underlay)
		}
		fmt.Fprintf(w, "router %s %s %d\n", r.Name, r.Underlay.Addr(), r.Underlay.Port())
	}
	for _, n := range topo.Nodes {
		if n.Role.IsRouter() {
			continue
		}
		for _, a := range n.Access {
			if !a.Network.IsValid() {
				continue
			}
			if !a.Network.Addr().Is4() || a.Network.Bits() > 29 {
				return fmt.Errorf("the namespace testbed needs IPv4 underlay networks of /29 or wider; %s's network for %s is %s", n.Name, a.Link, a.Network)
			}
			l := topo.LinkByName(a.Link)
			fmt.Fprintf(w, "access %s %s %s %s %s %s\n", n.Name, a.Link, a.Network, ms(l.Delay), pct(l.Loss), l.Router)
		}
		fmt.Fprintf(w, "start %s %s\n", n.Name, n.Start)
	}
	for i, a := range routers {
		for _, b := range routers[i+1:] {
			d, loss := topo.BackboneDelay(a.Name, b.Name)
			fmt.Fprintf(w, "pair %s %s %s %s\n", a.Name, b.Name, ms(d), pct(loss))
		}
	}
	return nil
}
