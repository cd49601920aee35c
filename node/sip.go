package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
	"github.com/ha2r/mip6testbed/tun"
)

// SIP holds the node's SIP service: a home agent's proxy, a host's phone.
type SIP struct {
	Proxy *softphone.Proxy
	Phone *softphone.Phone
}

// stackNetwork opens sockets on the node's userspace stack.
type stackNetwork struct{ u *tun.Userspace }

func (s stackNetwork) ListenUDP(at netip.AddrPort) (net.PacketConn, error) {
	c, err := s.u.ListenUDP(at)
	if err != nil {
		return nil, err
	}
	return stackConn{c}, nil
}

// stackConn reports a read on a closed socket as net.ErrClosed, as kernel
// sockets do: gVisor's gonet says io.EOF, which sipgo takes for a failure
// and logs at ERROR level at every clean shutdown.
type stackConn struct{ *gonet.UDPConn }

func (c stackConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.UDPConn.ReadFrom(b)
	if errors.Is(err, io.EOF) {
		err = &net.OpError{Op: "read", Net: "udp", Addr: c.LocalAddr(), Err: net.ErrClosed}
	}
	return n, a, err
}

// network returns where the node's SIP and RTP sockets live: its userspace
// stack, or the kernel (a kernel TUN carries the node's addresses).
func (n *Node) network() softphone.Network {
	if u, ok := n.Dev.(*tun.Userspace); ok {
		return stackNetwork{u}
	}
	if n.Dev == nil {
		return softphone.KernelNetwork{}
	}
	// Only the overlay: SIP and media must not be reachable from the
	// underlay.
	return softphone.KernelNetwork{Device: n.Dev.Name()}
}

// SIPDomains maps every SIP domain of the topology to its proxy.
func SIPDomains(t *config.Topology) map[string]netip.AddrPort {
	m := map[string]netip.AddrPort{}
	for _, r := range t.Routers() {
		if r.SIPDomain != "" {
			m[strings.ToLower(r.SIPDomain)] = netip.AddrPortFrom(r.Address, 5060)
		}
	}
	return m
}

func parseAOR(s string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, err
	}
	return sip.Uri{User: u.User, Host: strings.ToLower(u.Host)}, nil
}

// startSIP starts the node's SIP service; call after Start (it needs the
// node's addresses).
func (n *Node) startSIP() error {
	t, nc := n.Topo, n.Cfg
	switch {
	case nc.Role == config.RoleHA && nc.SIPDomain != "" && n.Dev != nil:
		var users []string
		passwords := map[string]string{}
		for _, h := range t.Nodes {
			if u, err := parseAOR(h.SIPURI); err == nil && h.SIPURI != "" && strings.EqualFold(u.Host, nc.SIPDomain) {
				users = append(users, u.User)
				if pw := sipPassword(t, h); pw != "" {
					passwords[u.User] = pw
				}
			}
		}
		others := SIPDomains(t)
		delete(others, strings.ToLower(nc.SIPDomain))
		p, err := softphone.NewProxy(softphone.ProxyConfig{Domain: strings.ToLower(nc.SIPDomain), Addr: nc.Address, Net: n.network(),
			Domains: others, Users: users, Passwords: passwords, Overlay: t.AllPrefixes(), State: n.store("registrar"), Metrics: n.Metrics, Log: n.Log})
		if err != nil {
			return fmt.Errorf("node %s: SIP proxy: %w", nc.Name, err)
		}
		n.SIP.Proxy = p
		n.AddCloser(p.Close)
	case n.Host != nil && nc.SIPURI != "":
		aor, err := parseAOR(nc.SIPURI)
		if err != nil {
			return fmt.Errorf("node %s: sip_uri: %w", nc.Name, err)
		}
		proxy, ok := SIPDomains(t)[aor.Host]
		if !ok {
			return fmt.Errorf("node %s: no home agent serves SIP domain %q (set sip_domain on one)", nc.Name, aor.Host)
		}
		ph, err := softphone.NewPhone(softphone.PhoneConfig{AOR: aor, Proxy: proxy, Net: n.network(), Contact: n.sipContact,
			AutoAnswer: nc.AutoAnswer, AnswerDelay: answerDelay, AnswerT2: n.answerT2(), AcceptDirect: nc.AcceptDirect, Log: n.Log, OnCall: n.onCall, Password: sipPassword(t, nc),
			OnRegister: func(_ netip.Addr, err error) {
				if err != nil {
					n.Metrics.Add("sip.register_failed", 1)
					return
				}
				n.Metrics.Add("sip.registered", 1)
			}})
		if err != nil {
			return fmt.Errorf("node %s: softphone: %w", nc.Name, err)
		}
		n.SIP.Phone = ph
		n.AddCloser(ph.Close)
		n.Host.OnMove(func(link string) {
			now := time.Now()
			n.mu.Lock()
			defer n.mu.Unlock()
			live := n.calls[:0]
			for _, c := range n.calls {
				select {
				case <-c.Done():
					continue
				default:
				}
				live = append(live, c)
				if m := c.Media(); m != nil {
					m.MarkHandover(link, now)
				}
			}
			n.calls = live
		})
		// The contact follows the node: the paper's scheme registers a
		// care-of address once the node is authenticated at its HA2R, the
		// home address before that and at home.
		reregister := func() {
			ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
			defer cancel()
			ph.ContactChanged(ctx) // a failure is retried by the phone
		}
		if mn := n.Mobility.MobileNode; mn != nil {
			mn.OnContactChange(func(netip.Addr) { reregister() })
			// A home agent that lost the node's binding restarted without
			// its state: its registrar has lost the node's registration too.
			// An anchor whose HA2R died: the calls on its address move to
			// the contact address now with a re-INVITE.
			mn.OnAnchorLost(func(coa netip.Addr) {
				ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
				defer cancel()
				if moved, err := ph.MoveCalls(ctx, coa); moved > 0 || err != nil {
					n.Metrics.Add("sip.calls_moved", uint64(moved))
				}
			})
			mn.OnHomeRestored(func() {
				ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
				defer cancel()
				n.Metrics.Add("sip.reregister.home_restored", 1)
				ph.Reregister(ctx)
			})
		} else {
			n.Host.OnAttach(func(overlay.Attachment) { go reregister() })
		}
		go n.registerPhone()
	}
	return nil
}

// answerT2 is the cap on the phone's 2xx retransmission interval: the
// option's (the lab's, a sweep's) or the topology's timers.sip_t2.
func (n *Node) answerT2() time.Duration {
	if n.opts.SIPAnswerT2 > 0 {
		return n.opts.SIPAnswerT2
	}
	return n.Topo.Timers.SIPT2
}

// answerDelay is how long an auto-answering mobile node rings: long enough
// that its 180 and 200 do not reach the proxy together, short against the
// session setup it is part of.
const answerDelay = 20 * time.Millisecond

// registerPhone registers once the node has an address; a REGISTER that
// fails is retried by the phone itself, with back-off.
func (n *Node) registerPhone() {
	for i := 0; n.ctx.Err() == nil; i++ {
		if n.sipContact().IsValid() {
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			defer cancel()
			// ContactChanged registers unless a contact change already has.
			n.SIP.Phone.ContactChanged(ctx)
			return
		}
		if i%50 == 49 {
			n.Log.Warn("SIP registration waits for an address")
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sipContact is the address the phone registers and uses for new sessions:
// a mobile node's is its engine's (the home address in the standard scheme;
// in the paper's, the care-of address once authenticated at its HA2R); a
// fixed host's is its address on its link.
func (n *Node) sipContact() netip.Addr {
	if mn := n.Mobility.MobileNode; mn != nil {
		return mn.Contact()
	}
	if a, ok := n.Host.Current(); ok {
		return a.Address
	}
	return netip.Addr{}
}

// onCall marks handovers in calls as they happen.
func (n *Node) onCall(c *softphone.Call) {
	n.mu.Lock()
	n.calls = append(n.calls, c)
	n.allCalls = append(n.allCalls, c)
	if len(n.allCalls) > maxCallReports {
		n.allCalls = n.allCalls[len(n.allCalls)-maxCallReports:]
	}
	n.mu.Unlock()
}

// maxCallReports is how many past calls `calls` remembers.
const maxCallReports = 16

// SIPStatus is what `node status` shows of the node's SIP service.
type SIPStatus struct {
	// A host's phone: its address of record, registration and calls.
	AOR          string                        `json:"aor,omitempty"`
	Registration *softphone.RegistrationStatus `json:"registration,omitempty"`
	// Refused counts datagrams from neither the proxy nor a call's peer.
	Refused uint64             `json:"refused_datagrams,omitempty"`
	Calls   []softphone.Report `json:"calls,omitempty"`
	// A home agent's registrar: contacts by address of record.
	Domain        string              `json:"domain,omitempty"`
	Registrations map[string][]string `json:"registrations,omitempty"`
}

func (n *Node) sipStatus() *SIPStatus {
	switch {
	case n.SIP.Phone != nil:
		reg := n.SIP.Phone.Registration()
		s := &SIPStatus{AOR: n.Cfg.SIPURI, Registration: &reg, Refused: n.SIP.Phone.Refused()}
		for _, c := range n.SIP.Phone.Calls() {
			s.Calls = append(s.Calls, c.Report())
		}
		return s
	case n.SIP.Proxy != nil:
		return &SIPStatus{Domain: n.Cfg.SIPDomain, Registrations: n.SIP.Proxy.Registrations()}
	}
	return nil
}

// sipPassword is a SIP user's digest password, derived from a secret the
// topology already has for it: a mobile node's MN-HA key, else the
// topology's ha2r_key_seed; "" when there is neither (the registrar then
// refuses the user).
func sipPassword(t *config.Topology, n *config.Node) string {
	switch {
	case n.SIPURI == "":
		return ""
	case len(n.MNHAKey.Secret) > 0:
		return softphone.SIPPassword(n.MNHAKey.Secret, strings.TrimPrefix(n.SIPURI, "sip:"))
	case len(t.HA2RKeySeed) > 0:
		return softphone.SIPPassword(t.HA2RKeySeed, strings.TrimPrefix(n.SIPURI, "sip:"))
	}
	return ""
}
