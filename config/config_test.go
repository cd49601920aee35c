package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

const minimal = `name: t
links:
  - {name: lan, prefix: "2001:db8:100::/64", router: r1, delay: 3ms, loss: 5%}
  - {name: home, prefix: "2001:db8:1::/64", router: ha}
nodes:
  - {name: r1, role: ar, underlay: "10.0.0.1:7000"}
  - {name: ha, role: ha, underlay: "10.0.0.2:7000", sip_domain: d1}
  - name: mn
    role: mn
    home_agent: ha
    home_address: "2001:db8:1::10"
    mn_ha_key: {spi: 300, secret: "hex:00112233445566778899aabbccddeeff"}
    access: [{link: lan, network: 192.168.1.0/24}, {link: home}]
backbone:
  delay: 15ms
  pairs:
    - {from: [r1], to: [ha], delay: 7ms}
`

func TestParseMinimal(t *testing.T) {
	topo, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	lan := topo.LinkByName("lan")
	if lan.Delay != 3*time.Millisecond || lan.Loss != 0.05 || lan.MTU != DefaultMTU || lan.ID == 0 {
		t.Errorf("lan = %+v", lan)
	}
	r1 := topo.NodeByName("r1")
	if r1.Address.String() != "2001:db8:100::1" || len(r1.ServedLink) != 1 || r1.HostStack {
		t.Errorf("r1 = %+v", r1)
	}
	if !topo.NodeByName("ha").HostStack {
		t.Error("a home agent should have a host stack by default (its SIP proxy runs there)")
	}
	mn := topo.NodeByName("mn")
	if mn.Start != "lan" || mn.Scheme != SchemeHA2R || mn.MNHAKey.SPI != 300 || len(mn.MNHAKey.Secret) != 16 {
		t.Errorf("mn = %+v", mn)
	}
	if d, _ := topo.BackboneDelay("ha", "r1"); d != 7*time.Millisecond {
		t.Errorf("pair delay = %v", d)
	}
}

func TestExamplesLoad(t *testing.T) {
	for _, f := range []string{"../examples/fig4.yaml", "../examples/two-node.yaml"} {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	topo, err := Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a, b string
		d    time.Duration
	}{{"ar1", "ar1p", 2 * time.Millisecond}, {"ar1", "ar2", 15 * time.Millisecond}, {"ar2", "ha1", 10 * time.Millisecond}, {"ha2", "ha1", 20 * time.Millisecond}} {
		if d, _ := topo.BackboneDelay(c.a, c.b); d != c.d {
			t.Errorf("delay %s-%s = %v, want %v", c.a, c.b, d, c.d)
		}
	}
}

// Each broken file must give one error that names the line and the field.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, edit, want string
		line             int
	}{
		{"unknown top-level field", "name: t\n", "unknown field \"colour\"", 2},
		{"unknown node field", `{name: r1, role: ar, underlay: "10.0.0.1:7000"}`, "nodes[0].colour: unknown field", 6},
		{"bad endpoint", `underlay: "10.0.0.1:7000"}`, "nodes[0].underlay: \"10.0.0.1\" is not a usable underlay endpoint", 6},
		{"router without port", `underlay: "10.0.0.1:7000"}`, "a router needs a concrete address", 6},
		{"overlapping prefix", `underlay: "10.0.0.1:7000"}`, "nodes[0].prefixes[0]: prefix 2001:db8::/32 overlaps 2001:db8:100::/64 of link lan (line 3)", 6},
		{"not a /64", `prefix: "2001:db8:100::/64"`, "must be a /64", 3},
		{"host bits", `prefix: "2001:db8:100::/64"`, "has host bits set", 3},
		{"duplicate node name", `- name: mn`, "node name \"ha\" is already used on line 7", 8},
		{"duplicate address", `home_address: "2001:db8:1::10"`, "address 2001:db8:1::1 is already used by node ha (line 7)", 11},
		{"unserved access link", `{link: home}`, "no link is called \"nowhere\"", 13},
		{"wrong role", `role: mn`, "unknown role \"wizard\"", 9},
		{"missing field", `    home_agent: ha` + "\n", "missing required field \"home_agent\"", 8},
		{"home agent not ha", `home_agent: ha`, "\"r1\" is not a home agent", 10},
		{"field of another role", `{name: r1, role: ar,`, "field \"home_address\" does not apply to a node of role ar", 6},
		{"bad duration", `delay: 15ms`, "\"fast\" is not a duration", 15},
		{"bad loss", `loss: 5%`, "is not a loss ratio", 3},
		{"bad secret", `secret: "hex:00112233445566778899aabbccddeeff"`, "at least 16 bytes", 12},
		{"unknown backbone router", `from: [r1]`, "\"r9\" is not a router", 17},
		{"bad public key", `{name: r1, role: ar,`, "nodes[0].public_key: \"abc\" is not a public key", 6},
		{"keys on some nodes", `{name: r1, role: ar,`, "nodes r1 have a public_key but ha, mn have none", 7},
		{"key file without key", `{name: r1, role: ar,`, "node r1 names a private key file but has no public_key", 6},
		{"bicast too long", "name: t\n", "mobility.bicast: 5s is longer than a replaced care-of address is accepted", 2},
		{"dead path too soon", "name: t\n", "timers.dead_after: 10ms is too short", 2},
	}
	replace := map[string]string{
		"unknown top-level field": "name: t\ncolour: red\n",
		"unknown node field":      `{name: r1, role: ar, underlay: "10.0.0.1:7000", colour: red}`,
		"bad endpoint":            `underlay: "10.0.0.1"}`,
		"router without port":     `underlay: "10.0.0.1:0"}`,
		"overlapping prefix":      `underlay: "10.0.0.1:7000", prefixes: ["2001:db8::/32"]}`,
		"not a /64":               `prefix: "2001:db8:100::/56"`,
		"host bits":               `prefix: "2001:db8:100::1/64"`,
		"duplicate node name":     `- name: ha`,
		"duplicate address":       `home_address: "2001:db8:1::1"`,
		"unserved access link":    `{link: nowhere}`,
		"wrong role":              `role: wizard`,
		"missing field":           "",
		"home agent not ha":       `home_agent: r1`,
		"field of another role":   `{name: r1, role: ar, home_address: "2001:db8:100::5",`,
		"bad duration":            `delay: fast`,
		"bad loss":                `loss: 150%`,
		"bad secret":              `secret: "hex:0011"`,
		"unknown backbone router": `from: [r9]`,
		"bad public key":          `{name: r1, role: ar, public_key: abc,`,
		"keys on some nodes":      `{name: r1, role: ar, public_key: "173pd2v0HZvo/IqIrBBK7DDw5mEXi5ttOYu7t1ql83M=", private_key_file: r1.key,`,
		"key file without key":    `{name: r1, role: ar, private_key_file: r1.key,`,
		"bicast too long":         "name: t\nmobility: {bicast: 5s}\n",
		"dead path too soon":      "name: t\ntimers: {dead_after: 10ms}\n",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := minimal
			if !strings.Contains(src, c.edit) {
				t.Fatalf("test bug: %q not in the minimal file", c.edit)
			}
			src = strings.Replace(src, c.edit, replace[c.name], 1)
			_, err := Parse("t.yaml", []byte(src))
			if err == nil {
				t.Fatalf("no error for:\n%s", src)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if ce.Line != c.line {
				t.Errorf("error %q is on line %d, want %d", err, ce.Line, c.line)
			}
			if !strings.HasPrefix(err.Error(), "t.yaml:") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/k", []byte("00112233445566778899aabbccddeeff0011\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(minimal, `"hex:00112233445566778899aabbccddeeff"`, `"file:k"`, 1)
	topo, err := Parse(dir+"/t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(topo.NodeByName("mn").MNHAKey.Secret); got != 18 {
		t.Errorf("secret from file has %d bytes, want 18", got)
	}
}

// YAML syntax errors are reported on the line to fix: yaml.v3 numbers its
// parser's errors from 0 (an unclosed '{' on line 3 came out as line 2).
func TestSyntaxErrorLines(t *testing.T) {
	cases := []struct {
		src  string
		line int
		want string
	}{
		{"name: t\nlinks: []\nnodes: [{name: a, role: ha\nbackbone: {}\n", 3, "not closed"},
		{"name: t\nlinks: [{name: l\n", 2, "not closed"},
		{"name: t\nlinks:\n\t- x\n", 3, "cannot start"},
		{"name: t\nlinks: \"abc\n", 2, "end of stream"},
		{"name: t\nlinks: [{name: l}\nnodes: []\n", 2, "not closed"},
	}
	for _, c := range cases {
		_, err := Parse("t.yaml", []byte(c.src))
		var ce *Error
		if !errors.As(err, &ce) || ce.Line != c.line || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want line %d mentioning %q", c.src, err, c.line, c.want)
		}
	}
}

// Every error of a file is reported at once, in line order, up to a limit.
func TestEveryErrorAtOnce(t *testing.T) {
	src := strings.NewReplacer(`role: mn`, `role: wizard`, `delay: 15ms`, `delay: fast`, "name: t\n", "name: t\ncolour: red\n").Replace(minimal)
	_, err := Parse("t.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("got %v; want three errors", err)
	}
	for i, want := range []string{"colour", "wizard", "fast"} {
		if !strings.Contains(es[i].Error(), want) {
			t.Errorf("error %d is %q, want it to mention %q", i, es[i], want)
		}
	}
	var first *Error
	if !errors.As(err, &first) || first != es[0] {
		t.Errorf("errors.As(*Error) = %v, want the first error", first)
	}
	many := make(Errors, maxErrors+5)
	for i := range many {
		many[i] = &Error{File: "t.yaml", Line: i + 1, Msg: "bad"}
	}
	if s := many.Error(); strings.Count(s, "\n") != maxErrors || !strings.HasSuffix(s, "(and 5 more errors)") {
		t.Errorf("%d errors print as:\n%s", len(many), s)
	}
}

// Two mobile nodes of one home agent with the same SPI cannot both
// authenticate (RFC 4285 finds the key by SPI): refused at load, with the
// line of each.
func TestDuplicateSPI(t *testing.T) {
	second := `  - name: mn2
    role: mn
    home_agent: ha
    home_address: "2001:db8:1::11"
    mn_ha_key: {spi: 300, secret: "hex:00112233445566778899aabbccddeeff"}
    access: [{link: lan, network: 192.168.2.0/24}]
backbone:`
	src := strings.Replace(minimal, "backbone:", second, 1)
	_, err := Parse("t.yaml", []byte(src))
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 18 || !strings.Contains(err.Error(), "SPI 300 is already mn's key with home agent ha (line 12)") {
		t.Fatalf("got %v; want the duplicate SPI on line 18", err)
	}
}

// A missing file is a bad topology like any other (exit status 2), and
// says how to get one.
func TestMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/nope.yaml")
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "node init") {
		t.Fatalf("got %v; want a *config.Error naming node init", err)
	}
}

// node init's rewrite: every hex secret fresh (and no placeholder), the
// REPLACE markers gone, everything else as written.
func TestFreshSecrets(t *testing.T) {
	src := strings.Replace(minimal, `"hex:00112233445566778899aabbccddeeff"}`, `"hex:000000000000000000000000000000aa"}  # REPLACE`, 1)
	src = "ha2r_key_seed: hex:00000000000000000000000000000000000000000000000000000000000000ff  # REPLACE\n" + src
	topo, err := Parse("t.yaml", []byte(src))
	if err != nil || len(topo.Placeholders) != 2 {
		t.Fatalf("placeholders %v, err %v; want 2", topo.Placeholders, err)
	}
	out, n, err := FreshSecrets([]byte(src), rand.Reader)
	if err != nil || n != 2 {
		t.Fatalf("replaced %d, %v; want 2", n, err)
	}
	if strings.Contains(string(out), "REPLACE") || strings.Contains(string(out), "00000000") {
		t.Errorf("placeholders left:\n%s", out)
	}
	fresh, err := Parse("t.yaml", out)
	if err != nil || len(fresh.Placeholders) != 0 {
		t.Fatalf("rewritten file: placeholders %v, err %v", fresh.Placeholders, err)
	}
	if len(fresh.HA2RKeySeed) != 32 || len(fresh.NodeByName("mn").MNHAKey.Secret) != 32 {
		t.Errorf("secrets are %d and %d bytes, want 32", len(fresh.HA2RKeySeed), len(fresh.NodeByName("mn").MNHAKey.Secret))
	}
	if strings.Count(string(out), "\n") != strings.Count(src, "\n") || !strings.Contains(string(out), "backbone:\n  delay: 15ms") {
		t.Errorf("the rest of the file changed:\n%s", out)
	}
}

// WithKeys gives every node its key, in flow and block style, and
// changes nothing else of the text.
func TestWithKeys(t *testing.T) {
	src := strings.Replace(minimal, "nodes:\n", "nodes:  # the nodes\n", 1)
	public := map[string]string{
		"r1": "173pd2v0HZvo/IqIrBBK7DDw5mEXi5ttOYu7t1ql83M=", "ha": "/BiQqxtSq3Ruc7blHuinAeEAmXtTSkUlKCZYzVCj8BM=",
		"mn": "fPRz6lwBRf5PrJwbiJI7hnMdXnjg/Xy7KYgGAujXSVQ="}
	files := map[string]string{"r1": "r1.key", "ha": "ha.key", "mn": "/etc/mip6/mn.key"}
	out, err := WithKeys([]byte(src), public, files)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := Parse("t.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !topo.Secure() {
		t.Fatal("not every node has a key")
	}
	for name, pub := range public {
		n := topo.NodeByName(name)
		if base64.StdEncoding.EncodeToString(n.PublicKey[:]) != pub || n.PrivateKeyFile != files[name] {
			t.Errorf("%s: key %x file %q", name, n.PublicKey, n.PrivateKeyFile)
		}
	}
	var kept []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, "public_key") && !strings.Contains(l, "private_key_file") {
			kept = append(kept, l)
		}
	}
	if !strings.Contains(string(out), "nodes:  # the nodes") || len(kept) != strings.Count(src, "\n")+1-2 {
		t.Errorf("WithKeys changed more than the keys:\n%s", out)
	}
}
