package config

// Sections lists every field of the topology file, by where it is written:
// "" is the top level, "nodes[]" a node, "nodes[].access[]" one of a host's
// access links. The decoder accepts exactly these, and docs/topology.md
// documents each (a test holds the two together).
var Sections = map[string][]string{
	"":                  {"name", "mtu", "scheme", "ha2r_key_seed", "timers", "mobility", "links", "nodes", "backbone"},
	"timers":            {"keepalive", "ra_interval", "rs_interval", "sip_t2", "dead_after"},
	"mobility":          {"rr_trigger", "anchor_idle", "mn_auth", "home_lifetime", "standby", "bicast", "handover"},
	"links[]":           {"name", "prefix", "router", "mtu", "delay", "loss"},
	"nodes[]":           {"name", "role", "underlay", "public_key", "private_key_file", "address", "prefixes", "ha2r", "host_stack", "sip_domain", "access", "start", "home_agent", "home_address", "sip_uri", "scheme", "mn_ha_key", "auto_answer", "auto_attach", "static_address", "watch_underlay", "accept_direct"},
	"nodes[].access[]":  {"link", "network", "interface", "gateway", "gateway_mac", "default"},
	"nodes[].mn_ha_key": {"spi", "secret"},
	"backbone":          {"delay", "loss", "pairs"},
	"backbone.pairs[]":  {"from", "to", "delay", "loss"},
}

// RoleFields are the node fields beyond name, role, underlay, public_key
// and private_key_file that apply to each role.
var RoleFields = map[Role][]string{
	RoleHA: {"address", "prefixes", "host_stack", "sip_domain"},
	RoleAR: {"address", "prefixes", "host_stack", "ha2r"},
	RoleMN: {"access", "start", "home_agent", "home_address", "sip_uri", "scheme", "mn_ha_key", "auto_answer", "auto_attach", "watch_underlay", "accept_direct"},
	RoleCN: {"access", "start", "sip_uri", "auto_answer", "auto_attach", "static_address", "watch_underlay", "accept_direct"},
}
