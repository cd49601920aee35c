package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a problem in a topology file, located by line and field path.
type Error struct {
	File  string
	Line  int
	Field string // e.g. "nodes[2].underlay"
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// decoder walks a yaml.Node tree by hand so that every error knows its line
// and path, and so that unknown fields are caught with the list of known ones.
type decoder struct {
	file string
	dir  string // for file: references
	errs []*Error
	// pending are names used before every name was read.
	pending []pendingRef
	// lines maps every field path seen to the line of its value.
	lines map[string]int
	// placeholders are secrets left as a template had them.
	placeholders []*Error
}

// lineOf returns the line where path was written, or that of its nearest
// written parent.
func (d *decoder) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// field is one key of a mapping with its value.
type field struct {
	key  *yaml.Node
	val  *yaml.Node
	path string
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// maxErrors bounds how many errors one check reports.
const maxErrors = 20

// result returns every error in the file in line order (one *Error, or
// Errors when there are several), or nil.
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	if len(d.errs) == 1 {
		return d.errs[0]
	}
	return Errors(d.errs)
}

// Errors is every error found in a topology file, in line order.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i == maxErrors {
			fmt.Fprintf(&b, "\n(and %d more errors)", len(es)-maxErrors)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// As lets errors.As find the first error as an *Error, so that a caller
// that asks "was this a bad file?" gets yes for several errors too.
func (es Errors) As(target any) bool {
	if p, ok := target.(**Error); ok && len(es) > 0 {
		*p = es[0]
		return true
	}
	return false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping returns the fields of a mapping node, reporting unknown and
// duplicate keys. known lists the accepted keys.
func (d *decoder) mapping(n *yaml.Node, path string, known ...string) map[string]field {
	out := map[string]field{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "must be a mapping of fields (%s)", strings.Join(known, ", "))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		ok := false
		for _, kn := range known {
			if kn == k.Value {
				ok = true
			}
		}
		if !ok {
			d.errorf(k.Line, p, "unknown field %q (known fields: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.errorf(k.Line, p, "field given twice")
			continue
		}
		out[k.Value] = field{key: k, val: v, path: p}
		d.lines[p] = v.Line
	}
	return out
}

func (d *decoder) require(m map[string]field, parent *yaml.Node, path string, keys ...string) bool {
	ok := true
	for _, k := range keys {
		if _, has := m[k]; !has {
			line := 0
			if parent != nil {
				line = parent.Line
			}
			d.errorf(line, join(path, k), "missing required field %q", k)
			ok = false
		}
	}
	return ok
}

func (d *decoder) scalar(f field) (string, bool) {
	if f.val.Kind != yaml.ScalarNode {
		d.errorf(f.val.Line, f.path, "must be a single value")
		return "", false
	}
	return f.val.Value, true
}

func (d *decoder) str(m map[string]field, key string) string {
	f, ok := m[key]
	if !ok {
		return ""
	}
	s, _ := d.scalar(f)
	return s
}

// choice reads one of a fixed set of words (def when absent).
func (d *decoder) choice(m map[string]field, key, def string, allowed ...string) string {
	f, ok := m[key]
	if !ok {
		return def
	}
	s, ok := d.scalar(f)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	d.errorf(f.val.Line, f.path, "%q is not one of: %s", s, strings.Join(allowed, ", "))
	return def
}

func (d *decoder) integer(m map[string]field, key string, min, max int64) (int64, bool) {
	f, ok := m[key]
	if !ok {
		return 0, false
	}
	s, ok := d.scalar(f)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		d.errorf(f.val.Line, f.path, "%q is not an integer", s)
		return 0, false
	}
	if v < min || v > max {
		d.errorf(f.val.Line, f.path, "%d is out of range [%d, %d]", v, min, max)
		return 0, false
	}
	return v, true
}

func (d *decoder) boolean(m map[string]field, key string, def bool) bool {
	f, ok := m[key]
	if !ok {
		return def
	}
	s, ok := d.scalar(f)
	if !ok {
		return def
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	d.errorf(f.val.Line, f.path, "%q is not true or false", s)
	return def
}

func (d *decoder) duration(m map[string]field, key string, def time.Duration) time.Duration {
	f, ok := m[key]
	if !ok {
		return def
	}
	s, ok := d.scalar(f)
	if !ok {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.errorf(f.val.Line, f.path, "%q is not a duration like 15ms or 2s", s)
		return def
	}
	return v
}

// ratio accepts "5%" or a fraction such as 0.05.
func (d *decoder) ratio(m map[string]field, key string) float64 {
	f, ok := m[key]
	if !ok {
		return 0
	}
	s, ok := d.scalar(f)
	if !ok {
		return 0
	}
	scale := 1.0
	if strings.HasSuffix(s, "%") {
		s, scale = strings.TrimSuffix(s, "%"), 0.01
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	v *= scale
	if err != nil || v < 0 || v > 1 {
		d.errorf(f.val.Line, f.path, "%q is not a loss ratio like 5%% or 0.05", f.val.Value)
		return 0
	}
	return v
}

func (d *decoder) prefix(f field) (netip.Prefix, bool) {
	s, ok := d.scalar(f)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		d.errorf(f.val.Line, f.path, "%q is not an IPv6 prefix like 2001:db8:1::/64", s)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		d.errorf(f.val.Line, f.path, "%q has host bits set; did you mean %s?", s, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

func (d *decoder) addr6(m map[string]field, key string) netip.Addr {
	f, ok := m[key]
	if !ok {
		return netip.Addr{}
	}
	s, ok := d.scalar(f)
	if !ok {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || a.IsMulticast() || a.IsUnspecified() {
		d.errorf(f.val.Line, f.path, "%q is not an IPv6 unicast address", s)
		return netip.Addr{}
	}
	return a
}

// endpoint parses an underlay endpoint "ip:port", "[ip6]:port" or ":port".
func (d *decoder) endpoint(m map[string]field, key string, needHost bool) netip.AddrPort {
	f, ok := m[key]
	if !ok {
		return netip.AddrPort{}
	}
	s, ok := d.scalar(f)
	if !ok {
		return netip.AddrPort{}
	}
	bad := func(why string) netip.AddrPort {
		d.errorf(f.val.Line, f.path, "%q is not a usable underlay endpoint: %s (write ip:port, [ipv6]:port or :port)", s, why)
		return netip.AddrPort{}
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return bad(err.Error())
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return bad("the port is not a number from 0 to 65535")
	}
	var a netip.Addr
	if host == "" {
		a = netip.IPv4Unspecified()
	} else if a, err = netip.ParseAddr(host); err != nil {
		return bad("the host is not an IP address")
	}
	a = a.Unmap()
	if needHost && (a.IsUnspecified() || p == 0) {
		return bad("a router needs a concrete address and port that others can send to")
	}
	if a.IsMulticast() {
		return bad("multicast addresses cannot be endpoints")
	}
	return netip.AddrPortFrom(a, uint16(p))
}

func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || len(s) < end+2 || s[end+1] != ':' {
			return "", "", fmt.Errorf("missing ]:port")
		}
		return s[1:end], s[end+2:], nil
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", "", fmt.Errorf("missing :port")
	}
	if strings.Contains(s[:i], ":") {
		return "", "", fmt.Errorf("IPv6 addresses need brackets")
	}
	return s[:i], s[i+1:], nil
}

func (d *decoder) list(m map[string]field, key string) []field {
	f, ok := m[key]
	if !ok {
		return nil
	}
	if f.val.Kind != yaml.SequenceNode {
		d.errorf(f.val.Line, f.path, "must be a list")
		return nil
	}
	out := make([]field, len(f.val.Content))
	for i, item := range f.val.Content {
		out[i] = field{key: f.key, val: item, path: fmt.Sprintf("%s[%d]", f.path, i)}
		d.lines[out[i].path] = item.Line
	}
	return out
}

func (d *decoder) strings(m map[string]field, key string) []string {
	var out []string
	for _, f := range d.list(m, key) {
		if s, ok := d.scalar(f); ok {
			out = append(out, s)
		}
	}
	return out
}

// secret reads "hex:0011..." inline or "file:path" (raw bytes, or hex text),
// relative to the topology file.
func (d *decoder) secret(f field) []byte {
	b := d.readSecret(f)
	if b != nil && Placeholder(b) {
		d.placeholders = append(d.placeholders, &Error{File: d.file, Line: f.val.Line, Field: f.path,
			Msg: "this secret is a template placeholder; put a fresh one here (node keygen prints one) or write the topology with node init"})
	}
	return b
}

// Placeholder reports whether a secret is too regular to be one: fewer
// than 8 different byte values, as in the templates' hex:000...00aa
// placeholders. 16 random bytes have that few with a probability below
// 1e-9.
func Placeholder(b []byte) bool {
	var seen [256]bool
	n := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			n++
		}
	}
	return n < 8
}

func (d *decoder) readSecret(f field) []byte {
	s, ok := d.scalar(f)
	if !ok {
		return nil
	}
	switch {
	case strings.HasPrefix(s, "hex:"):
		b, err := hex.DecodeString(strings.TrimPrefix(s, "hex:"))
		if err != nil || len(b) < 16 {
			d.errorf(f.val.Line, f.path, "hex secret must be at least 16 bytes of hex digits")
			return nil
		}
		return b
	case strings.HasPrefix(s, "file:"):
		p := strings.TrimPrefix(s, "file:")
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.dir, p)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			d.errorf(f.val.Line, f.path, "cannot read secret: %v", err)
			return nil
		}
		b := raw
		if h, err := hex.DecodeString(strings.TrimSpace(string(raw))); err == nil {
			b = h
		}
		if len(b) < 16 {
			d.errorf(f.val.Line, f.path, "secret in %s is shorter than 16 bytes", p)
			return nil
		}
		return b
	}
	d.errorf(f.val.Line, f.path, "a secret is written hex:<digits> or file:<path>")
	return nil
}
