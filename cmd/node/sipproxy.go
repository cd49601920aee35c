package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/softphone"
)

// cmdSIPProxy runs the SIP proxy/registrar on its own, on the host's
// sockets: to put a registrar in front of ordinary phones, and to load-test
// it (scripts/bench-sip.sh).
func cmdSIPProxy(args []string) error {
	fs := newFlags("sip-proxy", "node sip-proxy --listen [ADDR]:PORT --domain DOMAIN")
	listen := fs.String("listen", "[::1]:5060", "address and port to serve SIP on (UDP)")
	domain := fs.String("domain", "", "the SIP domain this proxy and registrar serves (required)")
	stats := fs.Duration("stats", 0, "print request counters this often (0: never)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *domain == "" {
		return usageErr("sip-proxy: --domain is required")
	}
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return usageErr("sip-proxy: --listen %q: %v (write [::1]:5060 or 127.0.0.1:5060)", *listen, err)
	}
	m := &metrics.Set{}
	p, err := softphone.NewProxy(softphone.ProxyConfig{Domain: strings.ToLower(*domain), Addr: ap.Addr(), Port: int(ap.Port()),
		Net: softphone.KernelNetwork{}, Metrics: m, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(os.Stderr, "sip proxy for %s on %s\n", *domain, ap)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stats > 0 {
		t := time.NewTicker(*stats)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				fmt.Fprintln(os.Stderr, m.Snapshot())
			}
		}
	}
	<-ctx.Done()
	return nil
}
