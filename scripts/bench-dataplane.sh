#!/usr/bin/env bash
# Data-path benchmark, overlay against wireguard-go in the same run, on
# kernel TUNs in network namespaces:
#
#  1. two nodes (examples/two-node.yaml, with key pairs from node init: the
#     underlay encrypted) in two namespaces joined by one veth, and
#     wireguard-go on the same veth, both up at once: single-stream TCP
#     throughput (iperf3), the CPU time the two processes spend and ping RTT,
#     measured in --rounds rounds that alternate which goes first (the
#     machine's load drifts; one run each is not a comparison), reported per
#     round and as the median of the rounds' ratios; then UDP with 64- and
#     1200-byte payloads offered as fast as iperf3 can send (-b 0): packets
#     per second delivered and the loss; then the two nodes in clear;
#  2. a line of three (examples/line.yaml): host, router, host, each in its
#     namespace, the router with no TUN at all: the router's forwarding rate
#     in packets per second, UDP 64 B and 1200 B, and TCP throughput.
#
# With --baseline REV|FILE, a second build of node (a git revision of this
# repository, built here, or a node binary) runs in the same rounds, in
# alternating order too, and the report gives this build / the baseline:
# the way to tell a change's effect from the machine's drift, which moves
# single runs by more than most changes do.
#
# Needs root, iperf3, ping, wg (wireguard-tools) and Go (to build node and
# wireguard-go).
#
# Usage: sudo scripts/bench-dataplane.sh [--duration SECONDS] [--rounds N] [--baseline REV|FILE] [--json FILE]
# PROFILE_DIR=DIR also writes the two nodes' CPU profiles there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/find-go.sh"
DUR=10
ROUNDS=3
JSON=""
BASELINE=""
while [ $# -gt 0 ]; do
	case "$1" in
		--duration) DUR=$2; shift 2 ;;
		--rounds) ROUNDS=$2; shift 2 ;;
		--json) JSON=$2; shift 2 ;;
		--baseline) BASELINE=$2; shift 2 ;;
		*) echo "usage: $0 [--duration SECONDS] [--rounds N] [--baseline REV|FILE] [--json FILE]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-dataplane: needs root (namespaces, TUN)" >&2; exit 1; }
for t in ip iperf3 ping wg go ss python3; do
	command -v "$t" >/dev/null || { echo "bench-dataplane: $t is missing (apt-get install iproute2 iperf3 iputils-ping wireguard-tools)" >&2; exit 1; }
done

ID=${BENCH_ID:-mip6bench}
A=$ID-a
B=$ID-b
C=$ID-c
NSS=("$A" "$B" "$C")
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for ns in "${NSS[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building node and wireguard-go..." >&2
(cd "$ROOT" && go build -o "$WORK/node" ./cmd/node)
WGVER=$(cd "$ROOT" && go list -m -f '{{.Version}}' golang.zx2c4.com/wireguard)
GOBIN="$WORK" go install "golang.zx2c4.com/wireguard@$WGVER"
if [ -n "$BASELINE" ]; then
	if [ -f "$BASELINE" ]; then
		cp "$BASELINE" "$WORK/node-base"
	else
		echo "building the baseline, $BASELINE..." >&2
		mkdir "$WORK/base-src"
		git -C "$ROOT" archive "$BASELINE" | tar -x -C "$WORK/base-src" ||
			{ echo "bench-dataplane: --baseline $BASELINE is neither a file nor a revision of $ROOT" >&2; exit 2; }
		(cd "$WORK/base-src" && go build -o "$WORK/node-base" ./cmd/node)
	fi
fi

for ns in "${NSS[@]}"; do
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
ip link add veth0 netns "$A" type veth peer name veth0 netns "$B"
ip -n "$A" addr add 10.98.0.1/24 dev veth0
ip -n "$B" addr add 10.98.0.2/24 dev veth0
for n in "$A" "$B"; do ip -n "$n" link set veth0 up; done

TCK=$(getconf CLK_TCK)
cpu_ticks() { # PID... -> utime+stime ticks summed
	local s=0
	for p in "$@"; do
		# fields 14 and 15 of /proc/PID/stat, after the ")" of the command name
		local f; f=$(sed 's/^.*) //' "/proc/$p/stat")
		s=$(( s + $(echo "$f" | awk '{print $12 + $13}') ))
	done
	echo "$s"
}

# iperf_server NS ADDRESS: a one-shot iperf3 server, once it listens.
iperf_server() {
	ip netns exec "$1" iperf3 -s -1 -D -B "$2" -p 5201 >/dev/null
	for _ in $(seq 1 100); do
		[ -n "$(ip netns exec "$1" ss -Hltn 'sport = :5201')" ] && return 0
		sleep 0.05
	done
	echo "bench-dataplane: iperf3 server did not start in $1" >&2
	exit 1
}

# tcp NAME CLIENT-NS SERVER-NS SERVER PID...: prints "name gbps cpu_s rtt_ms
# retransmits" (segments TCP sent again: a run whose throughput falls short
# with CPU to spare shows them)
tcp() {
	local name=$1 cns=$2 sns=$3 srv=$4; shift 4
	iperf_server "$sns" "$srv"
	ip netns exec "$cns" ping -6 -c 5 -i 0.2 -q "$srv" >/dev/null
	local c0; c0=$(cpu_ticks "$@")
	local out; out=$(ip netns exec "$cns" timeout $((DUR + 30)) iperf3 -c "$srv" -p 5201 -t "$DUR" -J)
	local c1; c1=$(cpu_ticks "$@")
	local bps; bps=$(echo "$out" | sed -n '/"sum_received"/,/}/s/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | head -1)
	local retr; retr=$(echo "$out" | sed -n '/"sum_sent"/,/}/s/.*"retransmits":[[:space:]]*\([0-9]*\).*/\1/p' | head -1)
	local rtt; rtt=$(ip netns exec "$cns" ping -6 -c 200 -i 0.01 -q "$srv" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
	local cpu; cpu=$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')
	awk -v n="$name" -v b="$bps" -v c="$cpu" -v r="$rtt" -v x="${retr:-0}" 'BEGIN{printf "%s %.3f %s %s %s\n", n, b/1e9, c, r, x}'
}

# udp NAME CLIENT-NS SERVER-NS SERVER LEN: offers UDP datagrams of LEN
# payload bytes as fast as iperf3 sends for DUR seconds; prints
# "name len sent_pps delivered_pps loss_pct".
udp() {
	local name=$1 cns=$2 sns=$3 srv=$4 len=$5
	iperf_server "$sns" "$srv"
	local out; out=$(ip netns exec "$cns" timeout $((DUR + 30)) iperf3 -c "$srv" -p 5201 -u -b 0 -l "$len" -t "$DUR" -J)
	echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
s = r["end"]["sum"]
secs = s["seconds"] or 1
sent = s["packets"]
lost = s["lost_packets"]
print(sys.argv[1], sys.argv[2], round(sent / secs), round((sent - lost) / secs), round(100.0 * lost / max(sent, 1), 2))
' "$name" "$len"
}

start_node() { # NS NAME TOPOLOGY TUN [ARGS...]: prints the node's pid
	local ns=$1 name=$2 topo=$3 tun=$4; shift 4
	ip netns exec "$ns" "${NODE_BIN:-$WORK/node}" run --config "$topo" --name "$name" --backend kernel --tun "$tun" --state none \
		--control "$WORK/$name.sock" --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
	echo $!
}
wait_attached() { # NAME
	for _ in $(seq 1 200); do
		"$WORK/node" status --control "$WORK/$1.sock" --json 2>/dev/null | grep -q '"attached": true' && return 0
		sleep 0.05
	done
	echo "bench-dataplane: $1 did not attach" >&2; cat "$WORK/$1.log" >&2; exit 1
}
child() { pgrep -P "$1" node || echo "$1"; }

# Keyed copies of the topologies (node init gives every node a key pair):
# the overlay runs encrypted, like wireguard-go; the two-node run is also
# made in clear, to show what the encryption costs.
mkdir -p "$WORK/two" "$WORK/line"
"$WORK/node" init --template two-node "$WORK/two/two-node.yaml" >/dev/null
"$WORK/node" init --template line "$WORK/line/line.yaml" >/dev/null

# --- 1. wireguard-go and ours on the same veth, TCP in alternating rounds ---
umask 077
wg genkey >"$WORK/ka"; wg pubkey <"$WORK/ka" >"$WORK/pa"
wg genkey >"$WORK/kb"; wg pubkey <"$WORK/kb" >"$WORK/pb"
# The UAPI sockets live in the shared /var/run/wireguard, so the two
# interfaces need different names.
for side in a b; do
	ns=$A; [ "$side" = b ] && ns=$B
	ip netns exec "$ns" "$WORK/wireguard" -f "wg$side" >"$WORK/wg-$side.log" 2>&1 &
	PIDS+=($!)
done
for side in a b; do
	for _ in $(seq 1 100); do [ -S "/var/run/wireguard/wg$side.sock" ] && break; sleep 0.05; done
done
ip netns exec "$A" wg set wga listen-port 51820 private-key "$WORK/ka" peer "$(cat "$WORK/pb")" allowed-ips fd00::2/128 endpoint 10.98.0.2:51820
ip netns exec "$B" wg set wgb listen-port 51820 private-key "$WORK/kb" peer "$(cat "$WORK/pa")" allowed-ips fd00::1/128 endpoint 10.98.0.1:51820
ip -n "$A" -6 addr add fd00::1/64 dev wga nodad
ip -n "$B" -6 addr add fd00::2/64 dev wgb nodad
ip -n "$A" link set wga up
ip -n "$B" link set wgb up
WGPIDS=$(for p in "${PIDS[@]}"; do pgrep -P "$p" wireguard || echo "$p"; done)
WG_STARTED=("${PIDS[@]}")

# ours: router r1 (with its own stack) in A, host h1 in B
start_pair() { # TOPOLOGY LABEL: sets R1 and H1
	R1=$(start_node "$A" r1 "$1" mip6b0 ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/r1-$2.pprof"})
	PIDS+=("$R1")
	H1=$(start_node "$B" h1 "$1" mip6b1 ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/h1-$2.pprof"})
	PIDS+=("$H1")
	wait_attached h1
}
stop_pair() {
	kill "$R1" "$H1"; wait "$R1" "$H1" 2>/dev/null || true
	PIDS=("${WG_STARTED[@]}")
}
pair_tcp() { # LABEL: tcp from h1 to r1 over the pair, both processes' CPU counted
	tcp "$1" "$B" "$A" 2001:db8:100::1 "$(child "$R1")" "$(child "$H1")"
}
# One round: this build, the baseline (if any) and wireguard-go, in an
# order that alternates. Each overlay build gets a fresh pair of nodes.
overlay_round() { # BINARY LABEL: prints the tcp line
	NODE_BIN=$1 start_pair "$WORK/two/two-node.yaml" "$2-$r"
	local line; line=$(pair_tcp "$2")
	stop_pair
	echo "$line"
}
OURS_R=() WG_R=() BASE_R=()
for r in $(seq 1 "$ROUNDS"); do
	order="ours base wg"
	[ $((r % 2)) = 0 ] && order="wg base ours"
	for who in $order; do
		case $who in
		ours) OURS_R+=("$(overlay_round "$WORK/node" overlay)") ;;
		base) if [ -n "$BASELINE" ]; then BASE_R+=("$(overlay_round "$WORK/node-base" baseline)"); fi ;;
		# shellcheck disable=SC2086
		wg) WG_R+=("$(tcp wireguard-go "$B" "$A" fd00::1 $WGPIDS)") ;;
		esac
	done
done
start_pair "$WORK/two/two-node.yaml" overlay
OURS_U64=$(udp overlay "$B" "$A" 2001:db8:100::1 64)
OURS_U1200=$(udp overlay "$B" "$A" 2001:db8:100::1 1200)
WG_U64=$(udp wireguard-go "$B" "$A" fd00::1 64)
WG_U1200=$(udp wireguard-go "$B" "$A" fd00::1 1200)
stop_pair
for p in "${WG_STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
WG_STARTED=()
PIDS=()

# ours in clear, once: what the encryption costs
start_pair "$ROOT/examples/two-node.yaml" overlay-clear
CLEAR=$(pair_tcp overlay-clear)
CLEAR_U64=$(udp overlay-clear "$B" "$A" 2001:db8:100::1 64)
CLEAR_U1200=$(udp overlay-clear "$B" "$A" 2001:db8:100::1 1200)
stop_pair

# --- forged messages: what 10,000 a second cost a router ---
# From h1's namespace, python sends 10,000 datagrams a second to r1's
# underlay port for DUR seconds: a third each of transport messages under
# random session indices, handshake initiations of the right length with
# a wrong mac1, and random bytes. r1's CPU time then is the cost, measured
# on the encrypted router and, as the baseline of receiving datagrams at
# all, on the router in clear.
forge() { # TOPOLOGY LABEL: sets FORGE_BUSY (% of a core) and FORGED (drops counted)
	start_pair "$1" "forged-$2"
	local rc f1 f2; rc=$(child "$R1")
	f1=$(cpu_ticks "$rc")
	ip netns exec "$B" python3 - "$DUR" <<'PY'
import os, socket, struct, sys, time
dur = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rate, sent, start = 10000, 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= dur:
        break
    while sent < now * rate:
        k = sent % 3
        if k == 0:
            m = struct.pack("!B3xIQ", 4, int.from_bytes(os.urandom(4), "big"), sent) + os.urandom(1200)
        elif k == 1:
            m = struct.pack("!B3x", 1) + os.urandom(120)
        else:
            m = os.urandom(200)
        s.sendto(m, ("10.98.0.1", 7000))
        sent += 1
    time.sleep(0.001)
PY
	f2=$(cpu_ticks "$rc")
	FORGED=$("$WORK/node" status --control "$WORK/r1.sock" --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
print(sum(v for k, v in c.items() if k.startswith("secure.drop.") or k.startswith("drop.")))')
	FORGE_BUSY=$(awk -v a="$f1" -v b="$f2" -v t="$TCK" -v d="$DUR" 'BEGIN{printf "%.1f", 100*(b-a)/t/d}')
	stop_pair
}
forge "$WORK/two/two-node.yaml" encrypted
FORGE_ENC=$FORGE_BUSY FORGED_ENC=$FORGED
forge "$ROOT/examples/two-node.yaml" clear
FORGE_CLEAR=$FORGE_BUSY FORGED_CLEAR=$FORGED

# --- 2. the line: h1 in B, r1 in A (no TUN), h2 in C ---
ip -n "$A" link del veth0
ip link add va netns "$A" type veth peer name va netns "$B"
ip link add vc netns "$A" type veth peer name vc netns "$C"
ip -n "$A" addr add 10.97.0.1/32 dev lo
ip -n "$A" addr add 10.97.1.1/24 dev va
ip -n "$A" addr add 10.97.2.1/24 dev vc
ip -n "$B" addr add 10.97.1.2/24 dev va
ip -n "$C" addr add 10.97.2.2/24 dev vc
ip -n "$A" link set va up; ip -n "$A" link set vc up
ip -n "$B" link set va up; ip -n "$C" link set vc up
ip -n "$B" route add 10.97.0.1/32 via 10.97.1.1
ip -n "$C" route add 10.97.0.1/32 via 10.97.2.1
LINE=$WORK/line/line.yaml
LR=$(start_node "$A" r1 "$LINE" unused); PIDS+=("$LR")
LH1=$(start_node "$B" h1 "$LINE" mip6l1); PIDS+=("$LH1")
LH2=$(start_node "$C" h2 "$LINE" mip6l2); PIDS+=("$LH2")
wait_attached h1
wait_attached h2
H2ADDR=$("$WORK/node" status --control "$WORK/h2.sock" --json | sed -n 's/.*"address": "\(2001:[^"]*\)".*/\1/p' | head -1)
rc0=$(cpu_ticks "$(child "$LR")")
LINE_TCP=$(tcp line "$B" "$C" "$H2ADDR" "$(child "$LR")")
LINE_U64=$(udp line "$B" "$C" "$H2ADDR" 64)
LINE_U1200=$(udp line "$B" "$C" "$H2ADDR" 1200)
rc1=$(cpu_ticks "$(child "$LR")")
ROUTER_CPU=$(awk -v a="$rc0" -v b="$rc1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')

# --- report ---
# Every result line goes to python in the environment: "name gbps cpu_s
# rtt_ms retransmits" for TCP, "name len offered delivered loss" for UDP.
export DUR ROUNDS JSON CLEAR OURS_U64 OURS_U1200 WG_U64 WG_U1200 CLEAR_U64 CLEAR_U1200 \
	FORGE_ENC FORGE_CLEAR FORGED_ENC FORGED_CLEAR LINE_TCP LINE_U64 LINE_U1200 ROUTER_CPU
OURS_ROUNDS=$(printf '%s\n' "${OURS_R[@]}") WG_ROUNDS=$(printf '%s\n' "${WG_R[@]}") \
	BASE_ROUNDS=$(printf '%s\n' "${BASE_R[@]}") BASELINE=$BASELINE python3 - <<'PY'
import json, os, statistics

e = os.environ
dur = float(e["DUR"])
def tcp(line):
    n, g, c, r, x = line.split()
    g, c, r = float(g), float(c), float(r)
    return {"name": n, "gbps": g, "cpu_s": c, "gbit_per_cpu_s": g * dur / c if c else 0, "rtt_ms": r, "retransmits": int(x)}
def udp(line):
    n, l, s, d, p = line.split()
    return {"name": n, "payload": int(l), "offered_pps": int(s), "delivered_pps": int(d), "loss_pct": float(p)}
ours = [tcp(l) for l in e["OURS_ROUNDS"].splitlines()]
wg = [tcp(l) for l in e["WG_ROUNDS"].splitlines()]
clear = tcp(e["CLEAR"])
rounds = []
for o, w in zip(ours, wg):
    rounds.append({"overlay": o, "wireguard_go": w,
                   "ratio_throughput": o["gbps"] / w["gbps"],
                   "ratio_per_cpu": o["gbit_per_cpu_s"] / w["gbit_per_cpu_s"],
                   "ratio_rtt": o["rtt_ms"] / w["rtt_ms"]})
med = {k: statistics.median(r[k] for r in rounds) for k in ("ratio_throughput", "ratio_per_cpu", "ratio_rtt")}
rng = {k: (min(r[k] for r in rounds), max(r[k] for r in rounds)) for k in med}

print(f"\nTwo nodes, one veth ({e['DUR']} s each); overlay: encrypted (AES-256-GCM), overlay-clear: without underlay security")
print(f"{'TCP':<18} {'Gbit/s':>8} {'CPU s':>8} {'Gbit/CPU s':>11} {'RTT ms':>8} {'retrans':>8}   ratios: throughput, per CPU s, RTT")
def row(label, t, extra=""):
    print(f"{label:<18} {t['gbps']:8.2f} {t['cpu_s']:8.2f} {t['gbit_per_cpu_s']:11.2f} {t['rtt_ms']:8.3f} {t['retransmits']:8d}   {extra}")
base = [tcp(l) for l in e["BASE_ROUNDS"].splitlines() if l.strip()]
for i, r in enumerate(rounds, 1):
    row(f"round {i} overlay", r["overlay"], f"x{r['ratio_throughput']:.2f}, x{r['ratio_per_cpu']:.2f}, x{r['ratio_rtt']:.2f}")
    if base:
        row(f"round {i} baseline", base[i - 1])
    row(f"round {i} wg-go", r["wireguard_go"])
row("overlay-clear", clear)
print(f"{'UDP':<18} {'payload':>8} {'offered pkt/s':>14} {'delivered pkt/s':>16} {'loss %':>8}")
u = {k: udp(e[k]) for k in ("OURS_U64", "WG_U64", "CLEAR_U64", "OURS_U1200", "WG_U1200", "CLEAR_U1200")}
for k in ("OURS_U64", "WG_U64", "CLEAR_U64", "OURS_U1200", "WG_U1200", "CLEAR_U1200"):
    x = u[k]
    print(f"{x['name']:<18} {str(x['payload']) + ' B':>8} {x['offered_pps']:14d} {x['delivered_pps']:16d} {x['loss_pct']:8.2f}")
def pps(a, b):
    return u[a]["delivered_pps"] / u[b]["delivered_pps"] if u[b]["delivered_pps"] else 0
print()
def mr(xs):  # "x<median> (<min>-<max>)"
    return f"x{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"
def ratios(k):
    return [r[k] for r in rounds]
print(f"overlay / wireguard-go, median of {len(rounds)} rounds (range): TCP throughput {mr(ratios('ratio_throughput'))}, "
      f"per CPU-second {mr(ratios('ratio_per_cpu'))}, RTT {mr(ratios('ratio_rtt'))};")
print(f"  UDP delivered packets/s x{pps('OURS_U64', 'WG_U64'):.2f} (64 B), x{pps('OURS_U1200', 'WG_U1200'):.2f} (1200 B)")
vs_base = None
if base:
    vs_base = {"throughput": [o["gbps"] / b["gbps"] for o, b in zip(ours, base)],
               "per_cpu": [o["gbit_per_cpu_s"] / b["gbit_per_cpu_s"] for o, b in zip(ours, base)],
               "baseline_vs_wg": [b["gbps"] / w["gbps"] for b, w in zip(base, wg)]}
    print(f"this build / baseline {e['BASELINE']}, median of {len(base)} rounds (range): TCP throughput {mr(vs_base['throughput'])}, "
          f"per CPU-second {mr(vs_base['per_cpu'])}; baseline / wireguard-go throughput {mr(vs_base['baseline_vs_wg'])}")
print(f"10,000 forged messages a second: the encrypted r1 used {e['FORGE_ENC']} % of a core (dropped {e['FORGED_ENC']}), r1 in clear {e['FORGE_CLEAR']} % (dropped {e['FORGED_CLEAR']})")
mo = statistics.median(o["gbps"] for o in ours)
mc = statistics.median(o["gbit_per_cpu_s"] for o in ours)
print(f"encrypted (median round) / in clear: TCP throughput x{mo / clear['gbps']:.2f}, per CPU-second x{mc / clear['gbit_per_cpu_s']:.2f}")
line = tcp(e["LINE_TCP"])
l64, l1200 = udp(e["LINE_U64"]), udp(e["LINE_U1200"])
print(f"\nLine h1 - r1 - h2, the router without a TUN: TCP {line['gbps']:.2f} Gbit/s (RTT {line['rtt_ms']} ms); "
      f"UDP forwarded {l64['delivered_pps']} pkt/s at 64 B (loss {l64['loss_pct']} %), {l1200['delivered_pps']} pkt/s at 1200 B "
      f"(loss {l1200['loss_pct']} %); the router used {e['ROUTER_CPU']} CPU s over the three runs")
if e.get("JSON"):
    out = {"duration_s": dur, "rounds_n": len(rounds), "overlay_encrypted": True, "rounds": rounds,
           "ratio_throughput": med["ratio_throughput"], "ratio_per_cpu": med["ratio_per_cpu"], "ratio_rtt": med["ratio_rtt"],
           "ratio_range": rng, "overlay_clear": clear,
           "baseline": {"build": e["BASELINE"], "rounds": base, "ratios": vs_base} if base else None,
           "udp": u, "ratio_udp64_pps": pps("OURS_U64", "WG_U64"), "ratio_udp1200_pps": pps("OURS_U1200", "WG_U1200"),
           "forged_10k_per_s": {"encrypted_router_cpu_pct": float(e["FORGE_ENC"]), "clear_router_cpu_pct": float(e["FORGE_CLEAR"]),
                                "dropped": int(e["FORGED_ENC"])},
           "line": {"tcp": line, "udp64": l64, "udp1200": l1200, "router_cpu_s": float(e["ROUTER_CPU"])}}
    with open(e["JSON"], "w") as f:
        json.dump(out, f, indent=1)
PY
