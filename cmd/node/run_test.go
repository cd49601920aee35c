package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/report"
	"github.com/ha2r/mip6testbed/secure"
)

// Every node of a testbed started with the same --pcap writes its own
// file (a literal path shared by all of them came out corrupt).
func TestCapturePathPerNode(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new") + "/"
	cases := []struct{ arg, want string }{
		{dir, filepath.Join(dir, "mn1.pcap")},                                       // an existing directory
		{fresh, filepath.Join(dir, "new", "mn1.pcap")},                              // a directory to create
		{filepath.Join(dir, "cap-{name}.pcap"), filepath.Join(dir, "cap-mn1.pcap")}, // a pattern
		{filepath.Join(dir, "one.pcap"), filepath.Join(dir, "one.pcap")},            // a file
	}
	for _, c := range cases {
		got, err := capturePath(c.arg, "mn1")
		if err != nil || got != c.want {
			t.Errorf("capturePath(%q) = %q, %v; want %q", c.arg, got, err, c.want)
		}
	}
	if fi, err := os.Stat(fresh); err != nil || !fi.IsDir() {
		t.Errorf("%s was not created: %v", fresh, err)
	}
	a, _ := capturePath(dir, "mn1")
	b, _ := capturePath(dir, "mn2")
	if a == b {
		t.Errorf("two nodes share the capture %s", a)
	}
}

// The same kind of error exits with the same status whatever the
// subcommand: a missing or bad topology file is 2 (a missing file was 1
// with run and 2 with demo).
func TestBadTopologyExitStatus(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: t\nlinks: [{name: l\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{missing, bad} {
		for _, args := range [][]string{
			{"run", "--config", file, "--name", "x"},
			{"demo", "--config", file},
			{"sweep", "calls", "--config", file},
			{"testbed-plan", "--config", file},
		} {
			if got := run(args); got != 2 {
				t.Errorf("node %v exited %d, want 2", args, got)
			}
		}
	}
}

// node init writes a topology that loads, with fresh secrets, readable by
// its owner only, and will not overwrite one; a real node refuses a
// template's placeholder secrets (exit 2) and runs with init's.
func TestInitAndPlaceholders(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if got := run([]string{"init", "--template", "laptop-cloud", file}); got != 0 {
		t.Fatalf("init exited %d", got)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("init wrote %v, %v; want mode 0600", fi, err)
	}
	topo, err := config.Load(file)
	if err != nil || len(topo.Placeholders) != 0 {
		t.Fatalf("init's file: %v, placeholders %v", err, topo.Placeholders)
	}
	if !topo.Secure() {
		t.Fatal("init's topology has no key pairs")
	}
	for _, nc := range topo.Nodes {
		fi, err := os.Stat(filepath.Join(dir, nc.PrivateKeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s's key file: %v, %v; want mode 0600", nc.Name, fi, err)
		}
		k, err := node.ReadPrivateKey(file, nc.Name, nc.PrivateKeyFile)
		if err != nil || k.Public() != secure.Key(nc.PublicKey) {
			t.Fatalf("%s's private key %v does not match its public key", nc.Name, err)
		}
	}
	if got := run([]string{"init", file}); got != 2 {
		t.Errorf("init over an existing file exited %d, want 2", got)
	}
	if got := run([]string{"init", "--force", "--template", "two-node", file}); got != 0 {
		t.Errorf("init --force exited %d", got)
	}
	if got := run([]string{"run", "--config", "../../examples/laptop-cloud.yaml", "--name", "mn1"}); got != 2 {
		t.Errorf("run with the template's placeholder secrets exited %d, want 2", got)
	}
	if got := run([]string{"keygen"}); got != 0 {
		t.Errorf("keygen exited %d", got)
	}
	// --from: key pairs for an existing topology, its secrets kept.
	keyed := filepath.Join(dir, "keyed", "fig4.yaml")
	os.Mkdir(filepath.Dir(keyed), 0o700)
	if got := run([]string{"init", "--from", "../../examples/fig4.yaml", keyed}); got != 0 {
		t.Fatalf("init --from exited %d", got)
	}
	orig, _ := config.Load("../../examples/fig4.yaml")
	kt, err := config.Load(keyed)
	if err != nil || !kt.Secure() || string(kt.HA2RKeySeed) != string(orig.HA2RKeySeed) {
		t.Fatalf("init --from: %v, secure %v, the seed kept %v", err, kt != nil && kt.Secure(), kt != nil && string(kt.HA2RKeySeed) == string(orig.HA2RKeySeed))
	}
	if got := run([]string{"init", "--from", keyed, filepath.Join(dir, "again.yaml")}); got != 2 {
		t.Errorf("init --from a topology with keys exited %d, want 2", got)
	}
	pair := filepath.Join(dir, "extra.key")
	if got := run([]string{"keygen", "--pair", pair}); got != 0 {
		t.Errorf("keygen --pair exited %d", got)
	}
	if _, err := node.ReadPrivateKey("", "extra", pair); err != nil {
		t.Errorf("keygen --pair wrote an unreadable key: %v", err)
	}
	if got := run([]string{"keygen", "--pair", pair}); got != 2 {
		t.Errorf("keygen --pair over an existing key exited %d, want 2", got)
	}
}

// node demo's exit status follows the verdicts: 0 when every claim holds,
// 3 when one does not (here, ha2r's call dies at the move).
func TestDemoExitStatusFollowsVerdicts(t *testing.T) {
	run1 := func(scheme string, setup int, mediaAfterMove bool) *demo.Result {
		t0 := time.Unix(1000, 0)
		r := &demo.Result{Scheme: scheme, InviteAt: t0, TeardownAt: t0.Add(6 * time.Second),
			InviteToMedia: [2]float64{100, 100}, InviteToDirect: [2]float64{100, 100},
			Handovers: []demo.Handover{{Link: "ar1p", At: t0.Add(2 * time.Second)}},
			Phases:    []demo.PhaseSummary{{Phase: demo.PhaseSetup, Messages: setup}, {Phase: demo.PhaseTeardown, ByType: map[string]int{"SIP 200 BYE": 3}}}}
		for i := range 2 {
			for k := range 300 {
				at := float64(k) * 0.02
				r.Departures[1-i] = append(r.Departures[1-i], at)
				if mediaAfterMove || at < 2 {
					r.Arrivals[i] = append(r.Arrivals[i], demo.Arrival{T: at + 0.01})
				}
			}
		}
		return r
	}
	dir := t.TempDir()
	save := func(name string, rs ...*demo.Result) string {
		f := filepath.Join(dir, name)
		b, err := json.Marshal(report.Report{Results: rs})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	good := save("good.json", run1("standard", 26, true), run1("ha2r", 14, true))
	bad := save("bad.json", run1("standard", 26, true), run1("ha2r", 14, false))
	if got := run([]string{"demo", "--from", good, "--out", filepath.Join(dir, "g"), "--json"}); got != 0 {
		t.Errorf("every claim holds: exit %d, want 0", got)
	}
	for _, bad := range [][]string{{"demo", "--handover", "sideways"}, {"demo", "--handover", "mbb", "--testbed", dir}, {"demo", "--handover", "both", "--runs", "2"}} {
		if got := run(bad); got != 2 {
			t.Errorf("%v exited %d, want 2 (usage)", bad, got)
		}
	}
	if got := run([]string{"demo", "--from", bad, "--out", filepath.Join(dir, "b"), "--json"}); got != 3 {
		t.Errorf("a claim does not hold: exit %d, want 3", got)
	}
	// The verdicts, with their figures, are in the JSON report.
	b, err := os.ReadFile(filepath.Join(dir, "b", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Claims) != 3 || rep.Claims[2].Verdict != demo.VerdictFails || len(rep.Claims[2].Figures) == 0 {
		t.Errorf("report.json claims %+v (%v); want three with the failed survival and its figures", rep.Claims, err)
	}
}

// node run answers calls by itself only when the file says so; the lab
// (config's default) answers.
func TestRunDoesNotAutoAnswerByDefault(t *testing.T) {
	topo, err := config.Load("../../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mn1, mn2 := topo.NodeByName("mn1"), topo.NodeByName("mn2")
	if !mn1.AutoAnswer {
		t.Fatal("the lab's default is to answer")
	}
	runDefaults(mn1)
	runDefaults(mn2)
	if mn1.AutoAnswer || !mn2.AutoAnswer {
		t.Errorf("node run: mn1 (unset) answers %v, mn2 (auto_answer: true) answers %v", mn1.AutoAnswer, mn2.AutoAnswer)
	}
}
