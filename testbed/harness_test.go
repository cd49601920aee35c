package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

var nodeBin string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "mip6-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		nodeBin = filepath.Join(dir, "node")
		out, err := exec.Command("go", "build", "-o", nodeBin, "../cmd/node").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building node: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// requireRoot skips (or, in CI, fails) a test that needs root and tools.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	testenv.RequireRoot(t, tools...)
}

// bed is one running scripts/testbed.sh instance.
type bed struct {
	t    *testing.T
	id   string
	dir  string
	args string // NODE_ARGS for every node
}

var bedSeq int

func startBed(t *testing.T, topo string, nodeArgs ...string) *bed {
	t.Helper()
	bedSeq++
	b := &bed{t: t, id: fmt.Sprintf("t%dx%d", os.Getpid()%100000, bedSeq), args: strings.Join(nodeArgs, " ")}
	b.dir = filepath.Join(t.TempDir(), "bed")
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(b.dir, "*.log"))
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				node := strings.TrimSuffix(filepath.Base(l), ".log")
				t.Logf("--- %s (drops: %s)\n%s", filepath.Base(l), b.dropCounters(node), lastLines(string(data), 15))
			}
		}
		b.script("down")
	})
	if out, err := b.script("start", topo); err != nil {
		t.Fatalf("testbed start: %v\n%s", err, out)
	}
	return b
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (b *bed) script(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/testbed.sh", args...)
	cmd.Env = append(os.Environ(), "TESTBED_ID="+b.id, "TESTBED_DIR="+b.dir, "NODE_BIN="+nodeBin, "NODE_ARGS="+b.args)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// exec runs a command in a node's namespace.
func (b *bed) exec(timeout time.Duration, node string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", b.id + "-" + node}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// hostStatus is the part of `node status --json` the tests read.
type hostStatus struct {
	Host struct {
		Link     string `json:"link"`
		Attached bool   `json:"attached"`
		Address  string `json:"address"`
		Prefix   string `json:"prefix"`
	} `json:"host"`
	Mobility struct {
		MobileNode struct {
			CareOf    string   `json:"care_of_address"`
			HomeBound bool     `json:"home_registered"`
			RO        []string `json:"route_optimised_peers"`
			Anchors   []struct {
				CareOf string `json:"care_of_address"`
				State  string `json:"state"`
			} `json:"anchors"`
		} `json:"mobile_node"`
	} `json:"mobility"`
	SIP struct {
		Refused uint64 `json:"refused_datagrams"`
	} `json:"sip"`
	Underlay struct {
		Encrypted bool `json:"encrypted"`
	} `json:"underlay_security"`
	Counters map[string]uint64 `json:"counters"`
}

// waitSIPRefused polls a node until its phone has refused want datagrams.
func (b *bed) waitSIPRefused(node string, want uint64, limit time.Duration) hostStatus {
	b.t.Helper()
	var st hostStatus
	testenv.Poll(b.t, 20*time.Millisecond, limit, fmt.Sprintf("%s's phone to refuse %d datagrams", node, want), func() bool {
		var err error
		st, err = b.status(node)
		return err == nil && st.SIP.Refused >= want
	})
	return st
}

// waitCounter polls a node until its counter reaches want.
func (b *bed) waitCounter(node, counter string, want uint64, limit time.Duration) hostStatus {
	b.t.Helper()
	var st hostStatus
	testenv.Poll(b.t, 20*time.Millisecond, limit, fmt.Sprintf("%s's %s to reach %d", node, counter, want), func() bool {
		var err error
		st, err = b.status(node)
		return err == nil && st.Counters[counter] >= want
	})
	return st
}

// waitListening waits until a TCP port listens in node's namespace (an
// iperf3 server that daemonised).
func (b *bed) waitListening(node string, port int) {
	b.t.Helper()
	testenv.Poll(b.t, 20*time.Millisecond, 10*time.Second, fmt.Sprintf("port %d to listen in %s", port, node), func() bool {
		out, err := b.exec(2*time.Second, node, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		return err == nil && strings.TrimSpace(out) != ""
	})
}

// waitFlowing waits until node has sent n more packets from its TCP
// stack than when called: a transfer is under way.
func (b *bed) waitFlowing(node string, n uint64) {
	b.t.Helper()
	st, _ := b.status(node)
	b.waitCounter(node, "packets.from_tun", st.Counters["packets.from_tun"]+n, 10*time.Second)
}

// iperf runs an iperf3 client in node against server for secs seconds and
// returns the bytes received and the bit rate.
func (b *bed) iperf(node, server string, secs int) (bytes, bps float64) {
	b.t.Helper()
	out, err := b.exec(time.Duration(secs+30)*time.Second, node, "iperf3", "-c", server, "-t", strconv.Itoa(secs), "-J")
	if err != nil {
		b.t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes float64 `json:"bytes"`
				Bps   float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return res.End.SumReceived.Bytes, res.End.SumReceived.Bps
}

func (b *bed) status(node string) (hostStatus, error) {
	var st hostStatus
	out, err := exec.Command(nodeBin, "status", "--control", filepath.Join(b.dir, node+".sock"), "--json").Output()
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(out, &st)
	return st, err
}

// waitAttached polls a host until it is attached to link, and returns its
// status and how long that took.
func (b *bed) waitAttached(node, link string, limit time.Duration) (hostStatus, time.Duration) {
	b.t.Helper()
	start := time.Now()
	var st hostStatus
	testenv.Poll(b.t, 20*time.Millisecond, limit, fmt.Sprintf("%s to attach to %s", node, link), func() bool {
		var err error
		st, err = b.status(node)
		return err == nil && st.Host.Attached && st.Host.Link == link
	})
	return st, time.Since(start)
}

// dropCounters lists node's non-zero drop counters, for a failure
// message: where the packets went.
func (b *bed) dropCounters(node string) string {
	st, err := b.status(node)
	if err != nil {
		return "(no status: " + err.Error() + ")"
	}
	var drops []string
	for k, v := range st.Counters {
		if v != 0 && strings.Contains(k, "drop") {
			drops = append(drops, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(drops)
	return strings.Join(drops, " ")
}
