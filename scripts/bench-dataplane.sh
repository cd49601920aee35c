#!/usr/bin/env bash
# Data-path benchmark: two nodes on kernel TUNs in two network namespaces
# joined by one veth. Measures single-stream TCP throughput (iperf3), the
# CPU time the two overlay processes spend per gigabit, and ping RTT; then
# does the same through wireguard-go over the same veth, in the same run,
# and prints both with their ratios. Needs root, iperf3, ping, wg
# (wireguard-tools) and Go (to build node and wireguard-go).
#
# Usage: sudo scripts/bench-dataplane.sh [--duration SECONDS] [--json FILE]
# PROFILE_DIR=DIR also writes the two nodes' CPU profiles there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
for t in ip iperf3 ping wg go; do
	command -v "$t" >/dev/null || { echo "bench-dataplane: $t is missing (apt-get install iproute2 iperf3 iputils-ping wireguard-tools)" >&2; exit 1; }
done

ID=${BENCH_ID:-mip6bench}
A=$ID-a
B=$ID-b
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	ip netns pids "$A" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns pids "$B" 2>/dev/null | xargs -r kill -9 2>/dev/null
	ip netns del "$A" 2>/dev/null
	ip netns del "$B" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building node and wireguard-go..." >&2
(cd "$ROOT" && go build -o "$WORK/node" ./cmd/node)
WGVER=$(cd "$ROOT" && go list -m -f '{{.Version}}' golang.zx2c4.com/wireguard)
GOBIN="$WORK" go install "golang.zx2c4.com/wireguard@$WGVER"

ip netns del "$A" 2>/dev/null || true
ip netns del "$B" 2>/dev/null || true
ip netns add "$A"
ip netns add "$B"
ip link add veth0 netns "$A" type veth peer name veth0 netns "$B"
ip -n "$A" addr add 10.98.0.1/24 dev veth0
ip -n "$B" addr add 10.98.0.2/24 dev veth0
for n in "$A" "$B"; do ip -n "$n" link set lo up; ip -n "$n" link set veth0 up; done

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

# measure NAME SERVER-ADDRESS PID...: prints "name gbps cpu_s rtt_ms"
measure() {
	local name=$1 srv=$2; shift 2
	ip netns exec "$A" iperf3 -s -1 -D -B "$srv" -p 5201 >/dev/null
	sleep 0.5
	ip netns exec "$B" ping -6 -c 5 -i 0.2 -q "$srv" >/dev/null
	local c0; c0=$(cpu_ticks "$@")
	local out; out=$(ip netns exec "$B" iperf3 -c "$srv" -p 5201 -t "$DUR" -J)
	local c1; c1=$(cpu_ticks "$@")
	local bps; bps=$(echo "$out" | sed -n '/"sum_received"/,/}/s/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | head -1)
	local rtt; rtt=$(ip netns exec "$B" ping -6 -c 200 -i 0.01 -q "$srv" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
	local cpu; cpu=$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN{printf "%.2f", (b-a)/t}')
	awk -v n="$name" -v b="$bps" -v c="$cpu" -v r="$rtt" 'BEGIN{printf "%s %.3f %s %s\n", n, b/1e9, c, r}'
}

# --- ours: router r1 (with its own stack) in A, host h1 in B ---
"$WORK/node" testbed-plan --config "$ROOT/examples/two-node.yaml" >/dev/null
ip netns exec "$A" "$WORK/node" run --config "$ROOT/examples/two-node.yaml" --name r1 --backend kernel --tun mip6b0 \
	--control "$WORK/r1.sock" --log-level warn ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/r1.pprof"} &
PIDS+=($!); R1=$!
sleep 0.3
ip netns exec "$B" "$WORK/node" run --config "$ROOT/examples/two-node.yaml" --name h1 --backend kernel --tun mip6b1 \
	--control "$WORK/h1.sock" --log-level warn ${PROFILE_DIR:+--cpuprofile "$PROFILE_DIR/h1.pprof"} &
PIDS+=($!); H1=$!
for _ in $(seq 1 100); do
	"$WORK/node" status --control "$WORK/h1.sock" --json 2>/dev/null | grep -q '"attached": true' && break
	sleep 0.05
done
OURS=$(measure overlay 2001:db8:100::1 "$(pgrep -P "$R1" node || echo "$R1")" "$(pgrep -P "$H1" node || echo "$H1")")
kill "$R1" "$H1"; wait "$R1" "$H1" 2>/dev/null || true
PIDS=()

# --- wireguard-go over the same veth ---
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
WG=$(measure wireguard-go fd00::1 $WGPIDS)

read -r _ og oc or <<<"$OURS"
read -r _ wgg wc wr <<<"$WG"
printf "\n%-14s %10s %12s %14s %10s\n" "data path" "Gbit/s" "CPU s" "Gbit per CPU s" "RTT ms"
for line in "$OURS" "$WG"; do
	read -r n g c r <<<"$line"
	printf "%-14s %10.2f %12.2f %14.2f %10.3f\n" "$n" "$g" "$c" "$(awk -v g="$g" -v c="$c" -v d="$DUR" 'BEGIN{print (c>0)? g*d/c : 0}')" "$r"
done
RATIO_T=$(awk -v a="$og" -v b="$wgg" 'BEGIN{printf "%.2f", a/b}')
RATIO_C=$(awk -v a="$og" -v ac="$oc" -v b="$wgg" -v bc="$wc" 'BEGIN{printf "%.2f", (a/ac)/(b/bc)}')
RATIO_R=$(awk -v a="$or" -v b="$wr" 'BEGIN{printf "%.2f", a/b}')
echo
echo "overlay / wireguard-go: throughput x$RATIO_T, throughput per CPU-second x$RATIO_C, RTT x$RATIO_R (${DUR} s single-stream TCP, one veth)"
if [ -n "$JSON" ]; then
	printf '{"duration_s":%s,"overlay":{"gbps":%s,"cpu_s":%s,"rtt_ms":%s},"wireguard_go":{"gbps":%s,"cpu_s":%s,"rtt_ms":%s},"ratio_throughput":%s,"ratio_per_cpu":%s,"ratio_rtt":%s}\n' \
		"$DUR" "$og" "$oc" "$or" "$wgg" "$wc" "$wr" "$RATIO_T" "$RATIO_C" "$RATIO_R" >"$JSON"
fi
