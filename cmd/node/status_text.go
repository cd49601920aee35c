package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/secure"
)

// printStatus writes a node's status as text: what the node is, then one
// aligned table per thing it holds (links, neighbours, routes; bindings,
// anchors, binding update list; SIP registration and calls), counters
// last. now is the reference for "expires in" columns.
func printStatus(out io.Writer, st node.Status, now time.Time) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "node %s (%s)", st.Name, st.Role)
	if st.Backend != "" {
		fmt.Fprintf(w, ", device: %s", st.Backend)
	}
	if st.Underlay.Encrypted {
		fmt.Fprintf(w, ", underlay: encrypted (public key %s)", st.Underlay.PublicKey)
	} else {
		fmt.Fprint(w, ", underlay: IN CLEAR")
	}
	fmt.Fprintln(w)
	printUnderlay(w, st.Underlay)
	if r := st.Router; r != nil {
		printRouter(w, r)
	}
	if h := st.Host; h != nil {
		printHost(w, h)
	}
	if m := st.Mobility; m != nil {
		printMobility(w, m, now)
	}
	if s := st.SIP; s != nil {
		printSIP(w, s, now)
	}
	names := make([]string, 0, len(st.Counters))
	for k := range st.Counters {
		names = append(names, k)
	}
	sort.Strings(names)
	table(w, "COUNTER\tVALUE")
	for _, k := range names {
		fmt.Fprintf(w, "%s\t%d\n", k, st.Counters[k])
	}
}

// printUnderlay lists the peers a node has sessions with.
func printUnderlay(w io.Writer, u secure.Status) {
	var live []secure.PeerStatus
	for _, p := range u.Peers {
		if p.Session {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return
	}
	table(w, "UNDERLAY PEER\tENDPOINT\tSESSION AGE")
	for _, p := range live {
		fmt.Fprintf(w, "%s\t%s\t%.0f s\n", p.Name, orDash(p.Endpoint), p.SessionAge)
	}
}

// table starts a table with its header after a blank line.
func table(w io.Writer, header string) { fmt.Fprintf(w, "\n%s\n", header) }

func printRouter(w io.Writer, r *overlay.RouterStatus) {
	fmt.Fprintf(w, "address %s, link-layer %s, underlay port %d\n", r.Address, r.LinkAddr, r.Port)
	table(w, "LINK\tID\tPREFIX\tMTU\tLINK-LOCAL\tHOSTS")
	for _, l := range r.Links {
		fmt.Fprintf(w, "%s\t%08x\t%s\t%d\t%s\t%d\n", l.Name, l.ID, l.Prefix, l.MTU, l.LinkLocal, l.Hosts)
	}
	table(w, "NEIGHBOUR\tLINK\tLINK-LAYER\tENDPOINT\tSTATE")
	for _, nb := range r.Neighbours {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", nb.Address, nb.Link, nb.LinkAddr, orDash(nb.Endpoint), nb.State)
	}
	table(w, "ROUTE\tVIA")
	for _, rt := range r.Routes {
		fmt.Fprintf(w, "%s\t%s\n", rt.Prefix, rt.Via)
	}
}

func printHost(w io.Writer, h *overlay.HostStatus) {
	state := "attaching"
	if h.Attached {
		state = "attached since " + h.Since.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "link %s via router %s: %s\n", orDash(h.Link), orDash(h.Router), state)
	if h.Attached {
		fmt.Fprintf(w, "prefix %s, address %s, router %s, MTU %d\n", h.Prefix, h.Address, h.RouterLL, h.MTU)
	}
	fmt.Fprintf(w, "access links: %s\n", strings.Join(h.Links, ", "))
	table(w, "ADDRESS ("+orDash(h.Device)+")\tSTATE")
	for _, a := range h.Addresses {
		addr, note, _ := strings.Cut(a, " ")
		state := "preferred"
		if note != "" {
			state = "deprecated: old sessions only"
		}
		fmt.Fprintf(w, "%s\t%s\n", addr, state)
	}
	if len(h.Routes) > 0 {
		table(w, "ROUTE\tVIA")
		for _, rt := range h.Routes {
			fmt.Fprintf(w, "%s\t%s\n", rt.Prefix, rt.Via)
		}
	}
}

func printMobility(w io.Writer, m *node.MobilityStatus, now time.Time) {
	if len(m.HomeBindings) > 0 {
		table(w, "HOME BINDING\tCARE-OF ADDRESS\tSEQ\tEXPIRES IN")
		for _, b := range m.HomeBindings {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", b.Home, b.CareOf, b.Seq, left(b.Expires, now))
		}
	}
	if len(m.Anchors) > 0 {
		table(w, "ANCHORED ADDRESS\tTUNNELLED TO\tSEQ\tEXPIRES IN")
		for _, b := range m.Anchors {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", b.Home, b.CareOf, b.Seq, left(b.Expires, now))
		}
	}
	if len(m.PeerBindings) > 0 {
		printPeerBindings(w, m.PeerBindings, now)
	}
	mn := m.MobileNode
	if mn == nil {
		return
	}
	fmt.Fprintf(w, "\nscheme %s, home address %s", mn.Scheme, mn.Home)
	switch {
	case mn.AtHome:
		fmt.Fprintf(w, ", at home")
	case mn.HomeBound:
		fmt.Fprintf(w, ", registered with the home agent (expires in %s)", left(mn.HomeExpires, now))
	default:
		fmt.Fprintf(w, ", not registered with the home agent yet")
	}
	fmt.Fprintf(w, "\ncare-of address %s, contact (source of new sessions) %s\n", orDash(mn.CareOf), orDash(mn.Contact))
	if len(mn.Anchors) > 0 {
		table(w, "ANCHOR (CARE-OF)\tHA2R\tSTATE\tEXPIRES IN\tIDLE")
		for _, a := range mn.Anchors {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%.0f s\n", a.CareOf, a.HA2R, a.State, left(a.Expires, now), a.IdleSecs)
		}
	}
	if len(mn.BindingUpdateList) > 0 {
		table(w, "BINDING UPDATE LIST (PEER)\tSTATE\tCARE-OF ADDRESS\tSEQ\tEXPIRES IN")
		for _, e := range mn.BindingUpdateList {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", e.Peer, e.State, orDash(e.CareOf), e.Seq, left(e.Expires, now))
		}
	}
	if len(mn.PeerBindings) > 0 {
		printPeerBindings(w, mn.PeerBindings, now)
	}
}

func printPeerBindings(w io.Writer, bs []mobility.Binding, now time.Time) {
	table(w, "BINDING CACHE (HOME)\tCARE-OF ADDRESS\tSEQ\tEXPIRES IN")
	for _, b := range bs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", b.Home, b.CareOf, b.Seq, left(b.Expires, now))
	}
}

func printSIP(w io.Writer, s *node.SIPStatus, now time.Time) {
	if s.Domain != "" {
		aors := make([]string, 0, len(s.Registrations))
		for a := range s.Registrations {
			aors = append(aors, a)
		}
		sort.Strings(aors)
		table(w, "SIP REGISTRATION ("+s.Domain+")\tCONTACT")
		for _, a := range aors {
			fmt.Fprintf(w, "%s\t%s\n", a, strings.Join(s.Registrations[a], ", "))
		}
	}
	if r := s.Registration; r != nil {
		fmt.Fprintf(w, "\nSIP %s: ", s.AOR)
		switch {
		case r.Contact.IsValid() && r.Expires.After(now):
			fmt.Fprintf(w, "registered as %s (expires in %s)", r.Contact, left(r.Expires, now))
		default:
			fmt.Fprintf(w, "not registered")
		}
		if r.Failures > 0 {
			fmt.Fprintf(w, "; %d failed attempts in a row, last: %s", r.Failures, r.LastError)
		}
		fmt.Fprintln(w)
	}
	if len(s.Calls) > 0 {
		table(w, "CALL (PEER)\tSTATE\tFOR\tSENT\tRECEIVED\tLOST\tMEDIA FROM -> TO")
		for _, c := range s.Calls {
			state := "in progress"
			switch {
			case c.Failure != "":
				state = "failed: " + c.Failure
			case c.Ended:
				state = "ended"
			case c.FirstPacket.IsZero():
				state = "setting up"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s -> %s\n", c.Peer, state, since(c.Started, now), c.PacketsSent,
				c.PacketsReceived, c.PacketsLost, orDash(c.Local), orDash(c.Remote))
		}
	}
}

// left says how long until t, rounded to the second.
func left(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return d.String()
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

// orDash prints a missing value as "-".
func orDash[T any](v T) string {
	switch x := any(v).(type) {
	case string:
		if x == "" {
			return "-"
		}
		return x
	case netip.Addr:
		if !x.IsValid() {
			return "-"
		}
	case netip.AddrPort:
		if !x.IsValid() {
			return "-"
		}
	}
	return fmt.Sprint(v)
}
