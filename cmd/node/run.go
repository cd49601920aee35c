package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/pcap"
	"github.com/ha2r/mip6testbed/state"
	"github.com/ha2r/mip6testbed/tun"
)

// defaultStateDir is where routers keep their state: systemd's
// STATE_DIRECTORY, /var/lib/mip6testbed for root, else the user's XDG state
// directory.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mip6testbed"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mip6testbed")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "mip6testbed")
	}
	return filepath.Join(os.TempDir(), "mip6testbed")
}

func cmdRun(args []string, mode string) error {
	synopsis := "node run --config FILE --name NAME [flags]"
	if mode == "role" {
		synopsis = "node --role ROLE --config FILE --name NAME [flags]"
	}
	fs := newFlags("run", synopsis)
	cfgPath := fs.String("config", "", "the topology file (YAML) that every node of the deployment shares (required)")
	name := fs.String("name", "", "which node of the topology this process is (required)")
	role := fs.String("role", "", "the role this node must have in the file: ha, ar, mn or cn (refused if the file disagrees)")
	backend := fs.String("backend", "auto", "device backend: auto (kernel TUN when /dev/net/tun and CAP_NET_ADMIN are there, else userspace), kernel or userspace")
	tunName := fs.String("tun", "", "name of the kernel TUN interface (default mip6N)")
	ctlPath := fs.String("control", "", "control socket for node status/handover/call (default "+control.DefaultPath("NAME")+")")
	pcapPath := fs.String("pcap", "", "write every IPv6 packet this node sends and receives to a pcap file (raw IPv6 link type): a directory (DIR/NAME.pcap; end it with / to create it), or a file name where {name} stands for the node's")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	noWatch := fs.Bool("no-watch", false, "hosts: do not switch access links when underlay networks appear or disappear")
	hold := fs.Bool("hold", false, "hosts: do not attach until told to (the control socket's release; scripts/testbed.sh demo uses it to trace from the first message)")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the node to this file (for performance work)")
	scheme := fs.String("scheme", "", "mobile nodes: run this mobility scheme (standard or ha2r) instead of the file's")
	emulate := fs.Bool("emulate-delays", false, "apply the topology's link delays and losses to what this node sends, in userspace (for testbeds without tc netem)")
	stateDir := fs.String("state", "", "routers: directory for what must survive a restart (bindings, anchors, AH sequence numbers); none keeps nothing (default "+defaultStateDir()+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("run: unexpected argument %q", fs.Arg(0))
	}
	if *cfgPath == "" || *name == "" {
		return usageErr("run: --config and --name are required (see node run --help)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr("run: --log-level %q: use debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("creating CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	topo, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if len(topo.Placeholders) > 0 {
		// The lab and the demo run with a template's secrets; a real node
		// must not: anyone who read the template could pose as its peers.
		return topo.Placeholders
	}
	nc := topo.NodeByName(*name)
	if nc == nil {
		return usageErr("%s has no node called %q", *cfgPath, *name)
	}
	if *role != "" && config.Role(*role) != nc.Role {
		return &config.Error{File: topo.File, Line: nc.Line, Field: "role",
			Msg: fmt.Sprintf("node %s is a %s in this file, not a %s; fix --role or the file", nc.Name, nc.Role, *role)}
	}
	runDefaults(nc)
	switch *scheme {
	case "":
	case string(config.SchemeStandard), string(config.SchemeHA2R):
		topo.Scheme = config.Scheme(*scheme)
		for _, n := range topo.Nodes {
			if n.Role == config.RoleMN {
				n.Scheme = topo.Scheme
			}
		}
	default:
		return usageErr("run: --scheme %q: use standard or ha2r", *scheme)
	}
	switch *backend {
	case tun.BackendAuto, tun.BackendKernel, tun.BackendUserspace:
	default:
		return usageErr("run: --backend %q: use auto, kernel or userspace", *backend)
	}

	opts := node.Options{Backend: *backend, TunName: *tunName, Log: log, EmulateDelays: *emulate, Hold: *hold}
	if nc.Role.IsRouter() && *stateDir != "none" {
		dir := *stateDir
		if dir == "" {
			dir = defaultStateDir()
		}
		opts.State = state.Dir{Path: dir, Node: *name}
	}
	n, err := node.New(topo, *name, opts)
	if err != nil {
		return err
	}
	defer n.Close()
	if *pcapPath != "" {
		file, err := capturePath(*pcapPath, *name)
		if err != nil {
			return err
		}
		w, err := pcap.Create(file)
		if err != nil {
			return fmt.Errorf("creating capture: %w", err)
		}
		n.SetTap(func(_ overlay.Direction, _ uint32, at time.Time, pkt []byte) { w.WritePacket(at, pkt) })
		n.AddCloser(w.Close)
	}
	path := *ctlPath
	if path == "" {
		path = control.DefaultPath(*name)
	}
	srv, err := control.Listen(path)
	if err != nil {
		return err
	}
	n.AddCloser(srv.Close)
	n.RegisterControl(srv)
	go srv.Serve(n.Context())

	if err := n.Start(!*noWatch); err != nil {
		return err
	}
	backendName := "none"
	if n.Dev != nil {
		backendName = n.Status().Backend
		if backendName == tun.BackendUserspace && n.Host != nil {
			log.Warn("no kernel TUN here (needs root or CAP_NET_ADMIN): the node runs on a userspace stack that only its own services (SIP, calls) can use")
		}
	}
	log.Info("node running", "role", nc.Role, "device", backendName, "underlay_port", n.Port(), "control", path)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

// capturePath is where node name's capture goes for --pcap arg: in a
// directory (an existing one, or arg ends with a slash) a file named after
// the node, else arg with {name} replaced, so that every node of a testbed
// started with the same arguments writes its own file.
func capturePath(arg, name string) (string, error) {
	if strings.Contains(arg, "{name}") {
		return strings.ReplaceAll(arg, "{name}", name), nil
	}
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return filepath.Join(arg, name+".pcap"), nil
	}
	if strings.HasSuffix(arg, "/") || strings.HasSuffix(arg, string(filepath.Separator)) {
		if err := os.MkdirAll(arg, 0o755); err != nil {
			return "", fmt.Errorf("--pcap: creating the capture directory: %w", err)
		}
		return filepath.Join(arg, name+".pcap"), nil
	}
	return arg, nil
}

// runDefaults applies what differs for a real node from the lab: outside
// it a phone rings until someone answers it (node call from the other
// end, or a person), unless the file says auto_answer: true; a node that
// answers anyone by itself is an open microphone.
func runDefaults(nc *config.Node) {
	if !nc.AutoAnswerSet {
		nc.AutoAnswer = false
	}
}
