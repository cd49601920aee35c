#!/usr/bin/env bash
# Data-path benchmark, overlay against wireguard-go in the same run, on
# kernel TUNs in network namespaces:
#
#  1. two nodes (examples/two-node.yaml, with key pairs from node init: the
#     underlay encrypted) in two namespaces joined by one veth, then
#     wireguard-go on the same veth, then the two nodes in clear: single-stream TCP
#     throughput (iperf3), the CPU time the two processes spend, ping RTT,
#     and UDP with 64- and 1200-byte payloads offered as fast as iperf3 can
#     send (-b 0): packets per second delivered and the loss;
#  2. a line of three (examples/line.yaml): host, router, host, each in its
#     namespace, the router with no TUN at all: the router's forwarding rate
#     in packets per second, UDP 64 B and 1200 B, and TCP throughput.
#
# Needs root, iperf3, ping, wg (wireguard-tools) and Go (to build node and
# wireguard-go).
#
# Usage: sudo scripts/bench-dataplane.sh [--duration SECONDS] [--json FILE]
# PROFILE_DIR=DIR also writes the two nodes' CPU profiles there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/find-go.sh"
DUR=10
JSON=""
while [ $# -gt 0 ]; do
	case "$1" in
		--duration) DUR=$2; shift 2 ;;
		--json) JSON=$2; shift 2 ;;
		*) echo "usage: $0 [--duration SECONDS] [--json FILE]" >&2; exit 2 ;;
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
	ip netns exec "$ns" "$WORK/node" run --config "$topo" --name "$name" --backend kernel --tun "$tun" --state none \
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

# --- 1. ours: router r1 (with its own stack) in A, host h1 in B ---
two_nodes() { # TOPOLOGY LABEL: sets RESULT_TCP, RESULT_U64, RESULT_U1200
	local topo=$1 label=$2
	R1=$(start_node "$A" r1 "$topo" mip6b0 ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/r1-$label.pprof"})
	PIDS+=("$R1")
	H1=$(start_node "$B" h1 "$topo" mip6b1 ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/h1-$label.pprof"})
	PIDS+=("$H1")
	wait_attached h1
	RESULT_TCP=$(tcp "$label" "$B" "$A" 2001:db8:100::1 "$(child "$R1")" "$(child "$H1")")
	RESULT_U64=$(udp "$label" "$B" "$A" 2001:db8:100::1 64)
	RESULT_U1200=$(udp "$label" "$B" "$A" 2001:db8:100::1 1200)
	kill "$R1" "$H1"; wait "$R1" "$H1" 2>/dev/null || true
	PIDS=()
}
two_nodes "$WORK/two/two-node.yaml" overlay
OURS=$RESULT_TCP OURS_U64=$RESULT_U64 OURS_U1200=$RESULT_U1200
two_nodes "$ROOT/examples/two-node.yaml" overlay-clear
CLEAR=$RESULT_TCP CLEAR_U64=$RESULT_U64 CLEAR_U1200=$RESULT_U1200

# --- forged messages: what 10,000 a second cost a router ---
# From h1's namespace, python sends 10,000 datagrams a second to r1's
# underlay port for DUR seconds: a third each of transport messages under
# random session indices, handshake initiations of the right length with
# a wrong mac1, and random bytes. r1's CPU time then is the cost, measured
# on the encrypted router and, as the baseline of receiving datagrams at
# all, on the router in clear.
forge() { # TOPOLOGY LABEL: sets FORGE_BUSY (% of a core) and FORGED (drops counted)
	local topo=$1 label=$2
	R1=$(start_node "$A" r1 "$topo" mip6b0 ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/r1-forged-$label.pprof"}); PIDS+=("$R1")
	H1=$(start_node "$B" h1 "$topo" mip6b1); PIDS+=("$H1")
	wait_attached h1
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
	kill "$R1" "$H1"; wait "$R1" "$H1" 2>/dev/null || true
	PIDS=()
}
forge "$WORK/two/two-node.yaml" encrypted
FORGE_ENC=$FORGE_BUSY FORGED_ENC=$FORGED
forge "$ROOT/examples/two-node.yaml" clear
FORGE_CLEAR=$FORGE_BUSY FORGED_CLEAR=$FORGED

# --- 1. wireguard-go over the same veth ---
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
# shellcheck disable=SC2086
WG=$(tcp wireguard-go "$B" "$A" fd00::1 $WGPIDS)
WG_U64=$(udp wireguard-go "$B" "$A" fd00::1 64)
WG_U1200=$(udp wireguard-go "$B" "$A" fd00::1 1200)
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
PIDS=()

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
read -r _ og oc or _ <<<"$OURS"
read -r _ wgg wc wr _ <<<"$WG"
printf "\nTwo nodes, one veth (%s s each); overlay: encrypted (AES-256-GCM), overlay-clear: without underlay security\n" "$DUR"
printf "%-14s %10s %12s %14s %10s %12s\n" "TCP" "Gbit/s" "CPU s" "Gbit per CPU s" "RTT ms" "retransmits"
for line in "$OURS" "$WG" "$CLEAR"; do
	read -r n g c r x <<<"$line"
	printf "%-14s %10.2f %12.2f %14.2f %10.3f %12s\n" "$n" "$g" "$c" "$(awk -v g="$g" -v c="$c" -v d="$DUR" 'BEGIN{print (c>0)? g*d/c : 0}')" "$r" "$x"
done
printf "%-14s %10s %14s %16s %8s\n" "UDP" "payload" "offered pkt/s" "delivered pkt/s" "loss %"
for line in "$OURS_U64" "$WG_U64" "$CLEAR_U64" "$OURS_U1200" "$WG_U1200" "$CLEAR_U1200"; do
	read -r n l s d p <<<"$line"
	printf "%-14s %10s %14s %16s %8s\n" "$n" "$l B" "$s" "$d" "$p"
done
RATIO_T=$(awk -v a="$og" -v b="$wgg" 'BEGIN{printf "%.2f", a/b}')
RATIO_C=$(awk -v a="$og" -v ac="$oc" -v b="$wgg" -v bc="$wc" 'BEGIN{printf "%.2f", (a/ac)/(b/bc)}')
RATIO_R=$(awk -v a="$or" -v b="$wr" 'BEGIN{printf "%.2f", a/b}')
ratio_pps() { awk -v a="$(echo "$1" | awk '{print $4}')" -v b="$(echo "$2" | awk '{print $4}')" 'BEGIN{printf "%.2f", (b>0)? a/b : 0}'; }
RATIO_U64=$(ratio_pps "$OURS_U64" "$WG_U64")
RATIO_U1200=$(ratio_pps "$OURS_U1200" "$WG_U1200")
echo
echo "overlay / wireguard-go: TCP throughput x$RATIO_T, per CPU-second x$RATIO_C, RTT x$RATIO_R;"
echo "  UDP delivered packets/s x$RATIO_U64 (64 B), x$RATIO_U1200 (1200 B)"
read -r _ cg cc _ <<<"$CLEAR"
echo "10,000 forged messages a second: the encrypted r1 used ${FORGE_ENC} % of a core (dropped $FORGED_ENC), r1 in clear ${FORGE_CLEAR} % (dropped $FORGED_CLEAR)"
echo "encrypted / in clear: TCP throughput x$(awk -v a="$og" -v b="$cg" 'BEGIN{printf "%.2f", a/b}'), per CPU-second x$(awk -v a="$og" -v ac="$oc" -v b="$cg" -v bc="$cc" 'BEGIN{printf "%.2f", (a/ac)/(b/bc)}')"
read -r _ lg _ lr _ <<<"$LINE_TCP"
read -r _ _ _ l64 l64loss <<<"$LINE_U64"
read -r _ _ _ l1200 l1200loss <<<"$LINE_U1200"
printf "\nLine h1 - r1 - h2, the router without a TUN: TCP %.2f Gbit/s (RTT %s ms); UDP forwarded %s pkt/s at 64 B (loss %s %%), %s pkt/s at 1200 B (loss %s %%); the router used %s CPU s over the three runs\n" \
	"$lg" "$lr" "$l64" "$l64loss" "$l1200" "$l1200loss" "$ROUTER_CPU"
if [ -n "$JSON" ]; then
	u() { echo "$1" | awk '{printf "{\"offered_pps\":%s,\"delivered_pps\":%s,\"loss_pct\":%s}", $3, $4, $5}'; }
	printf '{"duration_s":%s,"overlay_encrypted":true,"overlay":{"gbps":%s,"cpu_s":%s,"rtt_ms":%s,"udp64":%s,"udp1200":%s},"wireguard_go":{"gbps":%s,"cpu_s":%s,"rtt_ms":%s,"udp64":%s,"udp1200":%s},"ratio_throughput":%s,"ratio_per_cpu":%s,"ratio_rtt":%s,"ratio_udp64_pps":%s,"ratio_udp1200_pps":%s,"forged_10k_per_s":{"encrypted_router_cpu_pct":%s,"clear_router_cpu_pct":%s,"dropped":%s},"line":{"tcp_gbps":%s,"udp64":%s,"udp1200":%s,"router_cpu_s":%s}}\n' \
		"$DUR" "$og" "$oc" "$or" "$(u "$OURS_U64")" "$(u "$OURS_U1200")" "$wgg" "$wc" "$wr" "$(u "$WG_U64")" "$(u "$WG_U1200")" \
		"$RATIO_T" "$RATIO_C" "$RATIO_R" "$RATIO_U64" "$RATIO_U1200" "$FORGE_ENC" "$FORGE_CLEAR" "$FORGED_ENC" "$lg" "$(u "$LINE_U64")" "$(u "$LINE_U1200")" "$ROUTER_CPU" >"$JSON"
fi
