package node

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/secure"
)

// secureUnderlay wraps the node's underlay in package secure when the
// topology gives every node a key pair (or the lab handed out keys):
// frames are then sealed per peer after a Noise IK handshake, and only
// frames from nodes the topology lists reach the overlay.
func (n *Node) secureUnderlay(inner overlay.Bind) (overlay.Bind, error) {
	keys, private, err := n.underlayKeys()
	if err != nil {
		return nil, err
	}
	if keys == nil {
		n.Log.Warn("the underlay runs in clear: anyone on its path can read, forge and redirect this node's traffic (give every node a key pair: node init, or node keygen --pair)")
		return inner, nil
	}
	nc := n.Cfg
	warm := map[string]bool{}
	if nc.Role.IsRouter() {
		for _, r := range n.Topo.Routers() {
			warm[r.Name] = true // the backbone
		}
	} else {
		for _, a := range nc.Access {
			warm[n.Topo.LinkByName(a.Link).Router] = true
		}
	}
	var peers []secure.Peer
	for _, other := range n.Topo.Nodes {
		if other.Name == nc.Name {
			continue
		}
		p := secure.Peer{Name: other.Name, PublicKey: keys[other.Name]}
		if other.Role.IsRouter() {
			p.Endpoint, p.Warm = n.endpoint(other.Name), warm[other.Name]
		}
		peers = append(peers, p)
	}
	b, err := secure.New(inner, secure.Config{PrivateKey: private, Peers: peers, Clock: n.opts.Clock, Metrics: n.Metrics, Log: n.Log})
	if err != nil {
		return nil, fmt.Errorf("node %s: underlay security: %w", nc.Name, err)
	}
	n.secure = b
	if b.PublicKey() != keys[nc.Name] {
		return nil, fmt.Errorf("node %s: the private key does not match the node's public_key in %s (was the key file of another node copied here?)", nc.Name, n.Topo.File)
	}
	return b, nil
}

// underlayKeys returns every node's public key and this node's private
// key: from the options (the lab's keys) or from the topology and the
// node's private_key_file; nil keys when the underlay runs in clear.
func (n *Node) underlayKeys() (map[string]secure.Key, secure.Key, error) {
	if n.opts.Keys != nil {
		private, ok := n.opts.Keys.Private[n.Cfg.Name]
		if !ok {
			return nil, secure.Key{}, fmt.Errorf("node %s: no private key among the lab's keys", n.Cfg.Name)
		}
		return n.opts.Keys.Public, private, nil
	}
	if !n.Topo.Secure() {
		return nil, secure.Key{}, nil
	}
	keys := map[string]secure.Key{}
	for _, other := range n.Topo.Nodes {
		keys[other.Name] = secure.Key(other.PublicKey)
	}
	private, err := ReadPrivateKey(n.Topo.File, n.Cfg.Name, n.Cfg.PrivateKeyFile)
	return keys, private, err
}

// ReadPrivateKey reads node name's private key file (relative to the
// topology file's directory), which only its owner may read.
func ReadPrivateKey(topoFile, name, file string) (secure.Key, error) {
	if file == "" {
		return secure.Key{}, fmt.Errorf("node %s: the topology has public keys but names no private_key_file for %s (node keygen --pair FILE writes one)", name, name)
	}
	if !filepath.IsAbs(file) && topoFile != "" {
		file = filepath.Join(filepath.Dir(topoFile), file)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return secure.Key{}, fmt.Errorf("node %s: private key: %w", name, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return secure.Key{}, fmt.Errorf("node %s: private key %s is readable by others (mode %v): chmod 600 %s", name, file, fi.Mode().Perm(), file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return secure.Key{}, fmt.Errorf("node %s: private key: %w", name, err)
	}
	k, err := secure.ParseKey(string(b))
	if err != nil {
		return secure.Key{}, fmt.Errorf("node %s: private key file %s: %w", name, file, err)
	}
	return k, nil
}

// Keys are a whole topology's key pairs, for the lab, which makes them
// fresh for each run rather than reading files.
type Keys struct {
	Public  map[string]secure.Key
	Private map[string]secure.Key
}

// NewKeys makes a key pair for each name.
func NewKeys(names []string) (*Keys, error) {
	k := &Keys{Public: map[string]secure.Key{}, Private: map[string]secure.Key{}}
	for _, name := range names {
		priv, err := secure.GenerateKey()
		if err != nil {
			return nil, err
		}
		k.Private[name], k.Public[name] = priv, priv.Public()
	}
	return k, nil
}
