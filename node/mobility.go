package node

import (
	"fmt"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/mobility/auth"
	"github.com/ha2r/mip6testbed/state"
)

// Mobility holds the node's mobility engine, whichever its role has.
type Mobility struct {
	Signals       *mobility.Signals
	HomeAgent     *mobility.HomeAgent
	HA2R          *mobility.HA2R
	MobileNode    *mobility.MobileNode
	Correspondent *mobility.CorrespondentHost
}

// setupMobility installs the engine the node's role calls for.
func (n *Node) setupMobility() error {
	t, nc := n.Topo, n.Cfg
	n.Mobility.Signals = mobility.NewSignals(nc.Name, n.Metrics, n.opts.Clock)
	sig := n.Mobility.Signals
	switch nc.Role {
	case config.RoleHA:
		cfg := mobility.HomeAgentConfig{Log: n.opts.Log, State: n.store("mobility"), Bicast: t.Mobility.Bicast}
		for _, mn := range t.Nodes {
			if mn.Role == config.RoleMN && mn.HomeAgent == nc.Name {
				cfg.MobileNodes = append(cfg.MobileNodes, mobility.MNCredential{Name: mn.Name, Home: mn.HomeAddress, SPI: mn.MNHAKey.SPI, Key: mn.MNHAKey.Secret})
			}
		}
		for _, ar := range t.Routers() {
			if !ar.HA2R {
				continue
			}
			cfg.HA2Rs = append(cfg.HA2Rs, mobility.HA2RPeer{
				Name: ar.Name, Address: ar.Address, Prefixes: ar.OwnedPrefixes(),
				In:         auth.DeriveHA2RSA(t.HA2RKeySeed, nc.Name, ar.Name, true),
				Out:        auth.DeriveHA2RSA(t.HA2RKeySeed, nc.Name, ar.Name, false),
				SealSecret: auth.DeriveHA2RSecret(t.HA2RKeySeed, nc.Name, ar.Name),
			})
		}
		ha, err := mobility.NewHomeAgent(n.Router, sig, cfg)
		if err != nil {
			return err
		}
		n.Mobility.HomeAgent = ha
		n.AddCloser(func() error { ha.Close(); return nil })
	case config.RoleAR:
		if !nc.HA2R {
			return nil
		}
		cfg := mobility.HA2RConfig{Log: n.opts.Log, State: n.store("mobility"), Bicast: t.Mobility.Bicast}
		for _, ha := range t.Routers() {
			if ha.Role != config.RoleHA {
				continue
			}
			cfg.HomeAgents = append(cfg.HomeAgents, mobility.HAPeer{
				Name: ha.Name, Address: ha.Address,
				Out:        auth.DeriveHA2RSA(t.HA2RKeySeed, ha.Name, nc.Name, true),
				In:         auth.DeriveHA2RSA(t.HA2RKeySeed, ha.Name, nc.Name, false),
				SealSecret: auth.DeriveHA2RSecret(t.HA2RKeySeed, ha.Name, nc.Name),
			})
		}
		x, err := mobility.NewHA2R(n.Router, sig, cfg)
		if err != nil {
			return fmt.Errorf("node %s: %w", nc.Name, err)
		}
		n.Mobility.HA2R = x
		n.AddCloser(func() error { x.Close(); return nil })
	case config.RoleMN:
		ha := t.NodeByName(nc.HomeAgent)
		var homeLink *config.Link
		for _, l := range ha.ServedLink {
			if l.Prefix.Contains(nc.HomeAddress) {
				homeLink = l
			}
		}
		cfg := mobility.MobileNodeConfig{
			Home: nc.HomeAddress, HomePrefix: homeLink.Prefix, HomeAgent: ha.Address,
			SPI: nc.MNHAKey.SPI, Key: nc.MNHAKey.Secret, Scheme: nc.Scheme,
			HomeLifetime: t.Mobility.HomeLifetime, AnchorIdle: t.Mobility.AnchorIdle,
			MNAuthOnFirstSession: t.Mobility.MNAuth == "first_session",
			HA2RLinks:            map[string]bool{}, Log: n.opts.Log, Bicast: t.Mobility.Bicast,
		}
		switch t.Mobility.RRTrigger {
		case "tunnelled":
			cfg.RRTrigger = mobility.RROnTunnelled
		case "first_packet":
			cfg.RRTrigger = mobility.RROnFirstPacket
		case "both":
			cfg.RRTrigger = mobility.RROnTunnelled | mobility.RROnFirstPacket
		}
		for _, a := range nc.Access {
			l := t.LinkByName(a.Link)
			if r := t.NodeByName(l.Router); r != nil && r.HA2R {
				cfg.HA2RLinks[l.Name] = true
			}
		}
		mn := mobility.NewMobileNode(n.Host, sig, cfg)
		n.Mobility.MobileNode = mn
		n.AddCloser(func() error { mn.Close(); return nil })
	case config.RoleCN:
		c := mobility.NewCorrespondentHost(n.Host, sig, n.opts.Log)
		n.Mobility.Correspondent = c
		n.AddCloser(func() error { c.Close(); return nil })
	}
	return nil
}

// MobilityStatus is the mobility part of `node status`.
type MobilityStatus struct {
	HomeBindings []mobility.Binding `json:"home_bindings,omitempty"`
	Anchors      []mobility.Binding `json:"ha2r_anchors,omitempty"`
	MobileNode   *mobility.MNStatus `json:"mobile_node,omitempty"`
	PeerBindings []mobility.Binding `json:"correspondent_bindings,omitempty"`
}

func (n *Node) mobilityStatus() *MobilityStatus {
	m := n.Mobility
	s := &MobilityStatus{}
	switch {
	case m.HomeAgent != nil:
		s.HomeBindings = m.HomeAgent.Bindings().All()
	case m.HA2R != nil:
		s.Anchors = m.HA2R.Anchors().All()
	case m.MobileNode != nil:
		st := m.MobileNode.Status()
		s.MobileNode = &st
	case m.Correspondent != nil:
		s.PeerBindings = m.Correspondent.Correspondent().Bindings().All()
	default:
		return nil
	}
	return s
}

// store returns the node's store for one part of its state, or nil when it
// keeps none.
func (n *Node) store(part string) state.Store {
	if n.opts.State == nil {
		return nil
	}
	return n.opts.State.Store(part)
}
