package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/node"
)

func cmdStatus(args []string) error {
	fs := newFlags("status", "node status [--name NAME | --control PATH] [--json]")
	var cf controlFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	path, err := cf.socket()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := control.Call(ctx, path, control.Request{Cmd: "status"})
	if err != nil {
		return err
	}
	if *asJSON {
		var v any
		json.Unmarshal(raw, &v)
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	var st node.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	printStatus(os.Stdout, st)
	return nil
}

func printStatus(out io.Writer, st node.Status) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "node %s (%s)", st.Name, st.Role)
	if st.Backend != "" {
		fmt.Fprintf(w, ", device: %s", st.Backend)
	}
	fmt.Fprintln(w)
	if r := st.Router; r != nil {
		fmt.Fprintf(w, "address %s, link-layer %s, underlay port %d\n\nLINK\tID\tPREFIX\tMTU\tLINK-LOCAL\tHOSTS\n", r.Address, r.LinkAddr, r.Port)
		for _, l := range r.Links {
			fmt.Fprintf(w, "%s\t%08x\t%s\t%d\t%s\t%d\n", l.Name, l.ID, l.Prefix, l.MTU, l.LinkLocal, l.Hosts)
		}
		fmt.Fprintf(w, "\nNEIGHBOUR\tLINK\tLINK-LAYER\tENDPOINT\tSTATE\n")
		for _, nb := range r.Neighbours {
			ep := ""
			if nb.Endpoint.IsValid() {
				ep = nb.Endpoint.String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", nb.Address, nb.Link, nb.LinkAddr, ep, nb.State)
		}
		fmt.Fprintf(w, "\nROUTE\tVIA\n")
		for _, rt := range r.Routes {
			fmt.Fprintf(w, "%s\t%s\n", rt.Prefix, rt.Via)
		}
	}
	if h := st.Host; h != nil {
		state := "attaching"
		if h.Attached {
			state = "attached since " + h.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "link %s via router %s: %s\n", h.Link, h.Router, state)
		if h.Attached {
			fmt.Fprintf(w, "prefix %s, address %s, router %s\n", h.Prefix, h.Address, h.RouterLL)
		}
		fmt.Fprintf(w, "access links: %s\ndevice %s addresses: %s\n", strings.Join(h.Links, ", "), h.Device, strings.Join(h.Addresses, ", "))
		for _, rt := range h.Routes {
			fmt.Fprintf(w, "route %s via %s\n", rt.Prefix, rt.Via)
		}
	}
	names := make([]string, 0, len(st.Counters))
	for k := range st.Counters {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\nCOUNTER\tVALUE\n")
	for _, k := range names {
		fmt.Fprintf(w, "%s\t%d\n", k, st.Counters[k])
	}
	w.Flush()
}

func cmdHandover(args []string) error {
	fs := newFlags("handover", "node handover --to LINK [--name NAME | --control PATH]")
	var cf controlFlags
	cf.register(fs)
	to := fs.String("to", "", "the access link to move to (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageErr("handover: --to LINK is required")
	}
	path, err := cf.socket()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	raw, err := control.Call(ctx, path, control.Request{Cmd: "handover", Args: map[string]string{"to": *to}})
	if err != nil {
		return err
	}
	var r struct {
		Link    string  `json:"link"`
		Address string  `json:"address"`
		Prefix  string  `json:"prefix"`
		TookMS  float64 `json:"took_ms"`
	}
	json.Unmarshal(raw, &r)
	fmt.Printf("attached to %s (prefix %s) as %s in %.1f ms\n", r.Link, r.Prefix, r.Address, r.TookMS)
	return nil
}
