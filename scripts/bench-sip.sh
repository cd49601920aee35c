#!/usr/bin/env bash
# SIP benchmark: REGISTERs per second and INVITE transactions (calls) per
# second through our proxy/registrar (node sip-proxy), and the same SIPp load
# against kamailio in the same run, as the reference. Everything on IPv6
# loopback. Needs sipp and kamailio (apt-get install sip-tester kamailio).
#
# Both get the same fixed offered load; the script reports what each
# completed (and failed), the achieved rate, and the proxy processes' CPU
# time per 1,000 transactions, which is the fair comparison on a shared
# 2-core machine where SIPp itself needs one core.
#
# Usage: scripts/bench-sip.sh [--registers N] [--calls N] [--json FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/scripts/find-go.sh"
REGS=10000
REG_RATE=2000
CALLS=2500
CALL_RATE=500
JSON=""
while [ $# -gt 0 ]; do
	case "$1" in
		--registers) REGS=$2; shift 2 ;;
		--calls) CALLS=$2; shift 2 ;;
		--json) JSON=$2; shift 2 ;;
		*) echo "usage: $0 [--registers N] [--calls N] [--json FILE]" >&2; exit 2 ;;
	esac
done
for t in sipp kamailio go; do
	command -v "$t" >/dev/null || { echo "bench-sip: $t is missing (apt-get install sip-tester kamailio)" >&2; exit 1; }
done
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$ROOT" && go build -o "$WORK/node" ./cmd/node)
OURS=25070
KAM=25080
"$WORK/node" sip-proxy --listen "[::1]:$OURS" --domain bench 2>"$WORK/ours.log" &
PIDS+=($!)
kamailio -f "$ROOT/scripts/sip/kamailio.cfg" -l "udp:[::1]:$KAM" -a no -m 512 -M 16 -DD -E >"$WORK/kamailio.log" 2>&1 &
PIDS+=($!)
sleep 1

now() { date +%s.%N; }
ticks() { # PID... -> utime+stime summed
	local s=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		s=$(( s + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
	done
	echo "$s"
}
TCK=$(getconf CLK_TCK)

# run NAME PIDS -- SIPP-ARGS: runs SIPp at a fixed offered load and prints
# "successful failed per_second cpu_ms_per_1000"
run() {
	local name=$1 pids=$2; shift 3
	local t0 t1 c0 c1
	# shellcheck disable=SC2086
	c0=$(ticks $pids)
	t0=$(now)
	sipp "$@" -i ::1 -nostdin -trace_err -error_file "$WORK/$name.err" >"$WORK/$name.out" 2>&1 || true
	[ -n "${SIP_BENCH_DEBUG:-}" ] && cp "$WORK/$name.out" "$WORK/$name.err" "$WORK/kamailio.log" "$SIP_BENCH_DEBUG/" 2>/dev/null
	t1=$(now)
	# shellcheck disable=SC2086
	c1=$(ticks $pids)
	local ok failed
	ok=$(sed -n 's/^ *Successful call *| *[0-9]* *| *\([0-9]*\).*/\1/p' "$WORK/$name.out" | tail -1)
	failed=$(sed -n 's/^ *Failed call *| *[0-9]* *| *\([0-9]*\).*/\1/p' "$WORK/$name.out" | tail -1)
	ok=${ok:-0}; failed=${failed:-0}
	awk -v ok="$ok" -v f="$failed" -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v t="$TCK" \
		'BEGIN{ printf "%d %d %.0f %.1f\n", ok, f, ok/(b-a), (ok>0)? (c1-c0)/t*1000*1000/ok : 0 }'
}

measure() { # NAME PORT BASE PIDS
	local name=$1 port=$2 base=$3 pids=$4
	local reg calls
	reg=$(run "$name-register" "$pids" -- -sf "$ROOT/scripts/sip/register.xml" "[::1]:$port" -s bench -p "$base" \
		-m "$REGS" -r "$REG_RATE" -rp 1000 -l 2000)
	sipp -sf "$ROOT/scripts/sip/register-uas.xml" "[::1]:$port" -s bench -i ::1 -p $((base + 1)) -m 1 -nostdin >/dev/null 2>&1
	sipp -sn uas -i ::1 -p $((base + 1)) -nostdin -bg >/dev/null 2>&1
	sleep 0.5
	calls=$(run "$name-calls" "$pids" -- -sn uac "[::1]:$port" -s callee -p $((base + 2)) -m "$CALLS" -r "$CALL_RATE" -rp 1000 -l 2000 -d 0)
	pkill -f "sipp -sn uas -i ::1 -p $((base + 1))" || true
	echo "$reg $calls"
}

OURS_PID=${PIDS[0]}
KAM_PIDS=$(pgrep -f "kamailio -f $ROOT/scripts/sip/kamailio.cfg" | tr '\n' ' ')
read -r OR_OK OR_F OR_R OR_C OC_OK OC_F OC_R OC_C <<<"$(measure ours "$OURS" 25100 "$OURS_PID")"
read -r KR_OK KR_F KR_R KR_C KC_OK KC_F KC_R KC_C <<<"$(measure kamailio "$KAM" 25200 "$KAM_PIDS")"

printf "\nSIPp load: %d REGISTERs offered at %d/s, %d calls (INVITE, ACK, BYE) at %d/s, IPv6 loopback, same run\n\n" "$REGS" "$REG_RATE" "$CALLS" "$CALL_RATE"
printf "%-10s %10s %8s %10s %16s | %10s %8s %10s %16s\n" proxy "REGISTER ok" failed "per s" "CPU ms/1000" "calls ok" failed "per s" "CPU ms/1000"
printf "%-10s %10s %8s %10s %16s | %10s %8s %10s %16s\n" ours "$OR_OK" "$OR_F" "$OR_R" "$OR_C" "$OC_OK" "$OC_F" "$OC_R" "$OC_C"
printf "%-10s %10s %8s %10s %16s | %10s %8s %10s %16s\n" kamailio "$KR_OK" "$KR_F" "$KR_R" "$KR_C" "$KC_OK" "$KC_F" "$KC_R" "$KC_C"
RR=$(awk -v a="$OR_C" -v b="$KR_C" 'BEGIN{ printf "%.2f", (b>0)? a/b : 0 }')
RC=$(awk -v a="$OC_C" -v b="$KC_C" 'BEGIN{ printf "%.2f", (b>0)? a/b : 0 }')
echo
echo "CPU per transaction, ours / kamailio: REGISTER x$RR, call x$RC"
if [ -n "$JSON" ]; then
	printf '{"ours":{"register_ok":%s,"register_failed":%s,"register_per_s":%s,"register_cpu_ms_per_1000":%s,"calls_ok":%s,"calls_failed":%s,"calls_per_s":%s,"call_cpu_ms_per_1000":%s},"kamailio":{"register_ok":%s,"register_failed":%s,"register_per_s":%s,"register_cpu_ms_per_1000":%s,"calls_ok":%s,"calls_failed":%s,"calls_per_s":%s,"call_cpu_ms_per_1000":%s}}\n' \
		"$OR_OK" "$OR_F" "$OR_R" "$OR_C" "$OC_OK" "$OC_F" "$OC_R" "$OC_C" "$KR_OK" "$KR_F" "$KR_R" "$KR_C" "$KC_OK" "$KC_F" "$KC_R" "$KC_C" >"$JSON"
fi
