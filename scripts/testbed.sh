#!/usr/bin/env bash
# Brings a topology up in network namespaces with real kernel TUNs.
#
# Every router and host gets its own namespace; a "core" namespace plays the
# underlay Internet: one bridge for the routers' backbone, and one bridge per
# underlay network that hosts reach their access links through (the "Wi-Fi"
# networks of a mobile node). tc netem puts the topology's delays and losses
# on the backbone and on the access networks; on kernels built without
# sch_netem the nodes apply the same delays themselves (node run
# --emulate-delays), and the script says so. A host has one veth per
# underlay network; only the current one is up and addressed, and `switch`
# moves it to another one, which the node notices over netlink.
#
# Usage:
#   scripts/testbed.sh up TOPOLOGY            bring up, stay until Ctrl-C, tear down
#   scripts/testbed.sh start TOPOLOGY         bring up and return (tear down with: down)
#   scripts/testbed.sh run TOPOLOGY -- CMD..  bring up, run CMD, tear down whatever happens
#   scripts/testbed.sh down                   stop every node and delete the namespaces
#   scripts/testbed.sh exec NODE -- CMD..     run CMD inside NODE's namespace
#   scripts/testbed.sh switch HOST LINK       move HOST's underlay to LINK's network
#   scripts/testbed.sh add HOST LINK          bring LINK's network up beside HOST's current one
#                                             (then: node handover --make-before-break)
#   scripts/testbed.sh drop HOST LINK         take HOST's LINK network down (also: down HOST LINK)
#   scripts/testbed.sh blackhole HOST LINK    HOST's path to LINK's router dies silently (no link event)
#   scripts/testbed.sh status NODE [--json]   ask a node for its status
#   scripts/testbed.sh addr HOST              print the address HOST has on its current link
#   scripts/testbed.sh demo [TOPOLOGY] [-- DEMO-FLAGS]
#                                             node demo on kernel TUNs: for each scheme, bring
#                                             the topology (default examples/fig4.yaml) up,
#                                             run the call and the Wi-Fi switch, tear down;
#                                             then write the same report (--out DIR, default
#                                             demo-report-testbed)
#
# Environment:
#   TESTBED_ID   prefix of the namespaces (default mip6tb); several testbeds
#                with different IDs can run at once
#   TESTBED_DIR  state directory (default /tmp/TESTBED_ID)
#   NODE_BIN     the node binary (default: built from this checkout)
#   NODE_ARGS    extra arguments for every `node run`
#   TESTBED_CLEAR=1  run a topology without key pairs in clear (by default
#                its copy in TESTBED_DIR/keyed gets a key pair per node)
set -euo pipefail

ID=${TESTBED_ID:-mip6tb}
DIR=${TESTBED_DIR:-/tmp/$ID}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CORE="$ID-core"

die() { echo "testbed: $*" >&2; exit 1; }
ns() { echo "$ID-$1"; }
inns() { local n=$1; shift; ip netns exec "$n" "$@"; }
# The namespaces a testbed creates are listed in $DIR/netns, and only those
# are deleted: TESTBED_ID=x must not touch testbed x-s's x-s-core.
ns_exists() { ip netns list | awk '{print $1}' | grep -qxF -- "$1"; }
add_ns() { ip netns add "$1" && echo "$1" >>"$DIR/netns"; }
# is_node PID NAME: whether PID is still this testbed's node NAME (a pid
# file left from an earlier boot may name an unrelated process by now).
is_node() {
	[ -r "/proc/$1/cmdline" ] && tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "$DIR/$2.sock"
}

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, tc); try: sudo $0 $*"
	command -v ip >/dev/null || die "needs iproute2 (apt-get install iproute2)"
	command -v tc >/dev/null || die "needs tc from iproute2"
}

node_bin() {
	if [ -n "${NODE_BIN:-}" ]; then echo "$NODE_BIN"; return; fi
	mkdir -p "$DIR"
	# Always rebuild (the build cache makes it quick): a binary left in the
	# state directory by an older checkout would be silently stale.
	. "$ROOT/scripts/find-go.sh" || die "no Go to build node with"
	(cd "$ROOT" && go build -o "$DIR/node" ./cmd/node) || die "building node failed"
	echo "$DIR/node"
}

# ip4 network helpers, for /24-style networks: base N.0/len -> N.k
addr_in() { # NETWORK HOSTNUM
	local net=${1%/*} k=$2
	IFS=. read -r a b c d <<<"$net"
	local n=$(( (a<<24) + (b<<16) + (c<<8) + d + k ))
	echo "$(( (n>>24)&255 )).$(( (n>>16)&255 )).$(( (n>>8)&255 )).$(( n&255 ))"
}
plen() { echo "${1#*/}"; }

cmd_start() {
	local topo=$1
	[ -f "$topo" ] || die "no topology file $topo"
	need_root start
	topo=$(cd "$(dirname "$topo")" && pwd)/$(basename "$topo")
	if ns_exists "$CORE"; then die "testbed $ID is already up (run: $0 down)"; fi
	mkdir -p "$DIR"
	local bin; bin=$(node_bin)
	# A topology without key pairs gets them (node init --from), so that the
	# nodes' underlay is encrypted as in a deployment; TESTBED_CLEAR=1 keeps
	# it in clear.
	if [ -z "${TESTBED_CLEAR:-}" ] && ! grep -q '^[^#]*public_key:' "$topo"; then
		rm -rf "$DIR/keyed"
		mkdir -p "$DIR/keyed"
		"$bin" init --from "$topo" "$DIR/keyed/$(basename "$topo")" >/dev/null || die "could not give $topo key pairs"
		topo=$DIR/keyed/$(basename "$topo")
	fi
	"$bin" testbed-plan --config "$topo" >"$DIR/plan" || die "the topology cannot be laid out"
	cp "$DIR/plan" "$DIR/plan.copy"
	echo "$topo" >"$DIR/topology"
	echo "$bin" >"$DIR/bin"
	STARTING=1
	local node_args=${NODE_ARGS:-}
	if has_netem; then
		USE_TC=1
	else
		USE_TC=0
		node_args="$node_args --emulate-delays"
		echo "testbed: this kernel has no sch_netem; the nodes emulate the topology's delays themselves" >&2
	fi

	add_ns "$CORE"
	inns "$CORE" ip link set lo up
	inns "$CORE" sysctl -qw net.ipv4.ip_forward=1
	inns "$CORE" ip link add brr type bridge
	inns "$CORE" ip link set brr up

	local i=0 name ip
	declare -A gw_done=()
	while read -r kind name ip _; do
		[ "$kind" = router ] || continue
		i=$((i+1))
		local n; n=$(ns "$name")
		add_ns "$n"
		inns "$n" ip link set lo up
		ip link add eth0 netns "$n" type veth peer name "r$i" netns "$CORE"
		inns "$CORE" ip link set "r$i" master brr up
		local gw="${ip%.*}.254"
		if [ -z "${gw_done[$gw]:-}" ]; then
			inns "$CORE" ip addr add "$gw/24" dev brr
			gw_done[$gw]=1
		fi
		inns "$n" ip addr add "$ip/24" dev eth0
		inns "$n" ip link set eth0 up
		inns "$n" ip route add default via "$gw"
		echo "$name r$i" >>"$DIR/routers"
	done <"$DIR/plan"

	# Backbone delays: an htb class with netem per peer on each router's eth0.
	local a b d loss
	declare -A cls=()
	while read -r kind a b d loss; do
		if [ "$kind" != pair ] || [ "$USE_TC" != 1 ]; then continue; fi
		[ "$d" = 0 ] && [ "$loss" = 0 ] && continue
		for pairdir in "$a $b" "$b $a"; do
			read -r from to <<<"$pairdir"
			local nf; nf=$(ns "$from")
			if [ -z "${cls[$from]:-}" ]; then
				inns "$nf" tc qdisc add dev eth0 root handle 1: htb default 1
				inns "$nf" tc class add dev eth0 parent 1: classid 1:1 htb rate 100gbit
				cls[$from]=1
			fi
			cls[$from]=$(( ${cls[$from]} + 1 ))
			local c=${cls[$from]}
			local toip; toip=$(awk -v r="$to" '$1=="router" && $2==r {print $3}' <"$DIR/plan.copy")
			inns "$nf" tc class add dev eth0 parent 1: classid "1:$c" htb rate 100gbit
			inns "$nf" tc qdisc add dev eth0 parent "1:$c" netem delay "${d}ms" loss "${loss}%" limit 100000
			inns "$nf" tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst "$toip/32" flowid "1:$c"
		done
	done <"$DIR/plan"

	# Access networks: a bridge per underlay network in the core; a veth per
	# (host, network), down until the host uses that network.
	local host link net j=0
	declare -A bridge=() nexthost=()
	while read -r kind host link net d loss router; do
		[ "$kind" = access ] || continue
		j=$((j+1))
		local n; n=$(ns "$host")
		ns_exists "$n" || { add_ns "$n"; inns "$n" ip link set lo up; }
		if [ -z "${bridge[$net]:-}" ]; then
			bridge[$net]="bn$j"
			nexthost[$net]=10
			inns "$CORE" ip link add "bn$j" type bridge
			inns "$CORE" ip addr add "$(addr_in "$net" 1)/$(plen "$net")" dev "bn$j"
			inns "$CORE" ip link set "bn$j" up
		fi
		local k=${nexthost[$net]}
		nexthost[$net]=$((k+1))
		ip link add "wl$j" netns "$n" type veth peer name "h$j" netns "$CORE"
		inns "$CORE" ip link set "h$j" master "${bridge[$net]}" up
		if [ "$USE_TC" = 1 ] && { [ "$d" != 0 ] || [ "$loss" != 0 ]; }; then
			inns "$n" tc qdisc add dev "wl$j" root netem delay "${d}ms" loss "${loss}%" limit 100000
			inns "$CORE" tc qdisc add dev "h$j" root netem delay "${d}ms" loss "${loss}%" limit 100000
		fi
		echo "$host $link wl$j $(addr_in "$net" "$k")/$(plen "$net") $(addr_in "$net" 1) $router" >>"$DIR/access"
	done <"$DIR/plan"

	while read -r kind host link; do
		[ "$kind" = start ] || continue
		if grep -q "^$host $link " "$DIR/access" 2>/dev/null; then
			net_up "$host" "$link"
		fi
	done <"$DIR/plan"

	# Routers first, so that hosts' first solicitations find them.
	for kind in router host; do
		for name in $(nodes_of "$kind"); do
			local n; n=$(ns "$name")
			# shellcheck disable=SC2086
			ip netns exec "$n" "$bin" run --config "$topo" --name "$name" --backend kernel \
				--control "$DIR/$name.sock" --state "$DIR/state" $node_args >"$DIR/$name.log" 2>&1 &
			echo $! >"$DIR/$name.pid"
		done
		for name in $(nodes_of "$kind"); do
			wait_socket "$name"
		done
	done
	STARTING=0
	echo "testbed $ID is up: $(nodes_of router | wc -w) routers, $(nodes_of host | wc -w) hosts; logs in $DIR"
}

# has_netem reports whether this kernel has the netem qdisc.
has_netem() {
	local t="$ID-probe"
	ip netns add "$t" 2>/dev/null || return 1
	local ok=1
	ip netns exec "$t" tc qdisc add dev lo root netem delay 1ms 2>/dev/null && ok=0
	ip netns del "$t"
	return $ok
}

nodes_of() { # router|host
	if [ "$1" = router ]; then awk '$1=="router"{print $2}' "$DIR/plan"; else awk '$1=="start"{print $2}' "$DIR/plan"; fi
}

wait_socket() {
	local name=$1 t=0
	while [ ! -S "$DIR/$name.sock" ]; do
		if ! kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
			cat "$DIR/$name.log" >&2
			die "node $name exited"
		fi
		t=$((t+1)); [ $t -gt 200 ] && die "node $name did not open its control socket"
		sleep 0.05
	done
}

net_up() { # HOST LINK: give HOST its address on LINK's network and route through it
	local host=$1 link=$2 n; n=$(ns "$host")
	local line; line=$(grep "^$host $link " "$DIR/access") || die "$host has no underlay network for link $link"
	read -r _ _ ifc addr gw _ <<<"$line"
	inns "$n" ip link set "$ifc" up
	inns "$n" ip addr add "$addr" dev "$ifc"
	inns "$n" ip route replace default via "$gw" dev "$ifc"
	echo "$link" >"$DIR/$host.active"
}

net_down() { # HOST LINK
	local host=$1 link=$2 n; n=$(ns "$host")
	local line; line=$(grep "^$host $link " "$DIR/access") || return 0
	read -r _ _ ifc _ _ <<<"$line"
	inns "$n" ip addr flush dev "$ifc"
	inns "$n" ip link set "$ifc" down
}

# need_network CMD HOST LINK: the testbed is up and HOST has LINK's network.
need_network() {
	need_root "$1"
	[ -f "$DIR/access" ] || die "testbed $ID is not up"
	grep -q "^$2 $3 " "$DIR/access" || die "$2 has no underlay network for link $3"
}

cmd_switch() {
	local host=$1 link=$2
	need_network switch "$host" "$link"
	local cur=""; [ -f "$DIR/$host.active" ] && cur=$(cat "$DIR/$host.active")
	# The old Wi-Fi goes away, then the new one comes up, as when walking
	# out of one network's range into another's.
	[ -n "$cur" ] && net_down "$host" "$cur"
	net_up "$host" "$link"
}

# cmd_add brings a second underlay network of HOST up without taking the
# current one down (a phone hotspot beside the Wi-Fi), for make-before-break
# moves; cmd_drop takes one down.
cmd_add() {
	need_network add "$1" "$2"
	net_up "$1" "$2"
}

cmd_drop() {
	need_network drop "$1" "$2"
	net_down "$1" "$2"
}

# cmd_blackhole makes the path between HOST and LINK's router die without
# a link event (Wi-Fi out of range, a NAT that forgot the mapping):
# blackhole routes in both namespaces, so the interface stays up and
# addressed and only the traffic vanishes (this kernel may lack tc netem).
cmd_blackhole() {
	local host=$1 link=$2 router rip a
	need_network blackhole "$host" "$link"
	router=$(awk -v h="$host" -v l="$link" '$1==h && $2==l {print $6}' "$DIR/access")
	rip=$(awk -v r="$router" '$1=="router" && $2==r {print $3}' "$DIR/plan.copy")
	[ -n "$rip" ] || die "no router $router for link $link in the plan"
	inns "$(ns "$host")" ip route add blackhole "$rip/32"
	for a in $(awk -v h="$host" '$1==h {split($4, p, "/"); print p[1]}' "$DIR/access"); do
		inns "$(ns "$router")" ip route add blackhole "$a/32"
	done
}

cmd_down() {
	set +e
	local pidf name pid
	for pidf in "$DIR"/*.pid; do
		[ -f "$pidf" ] || continue
		name=$(basename "$pidf" .pid) pid=$(cat "$pidf")
		is_node "$pid" "$name" && kill -TERM "$pid" 2>/dev/null
	done
	for pidf in "$DIR"/*.pid; do
		[ -f "$pidf" ] || continue
		name=$(basename "$pidf" .pid) pid=$(cat "$pidf")
		for _ in $(seq 1 60); do is_node "$pid" "$name" || break; sleep 0.05; done
		is_node "$pid" "$name" && kill -KILL "$pid" 2>/dev/null
		rm -f "$pidf"
	done
	if [ -f "$DIR/netns" ]; then
		for n in $(sort -u "$DIR/netns"); do
			ns_exists "$n" || continue
			ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
			ip netns del "$n"
		done
	fi
	rm -f "$DIR"/plan "$DIR"/plan.copy "$DIR"/access "$DIR"/routers "$DIR"/*.active "$DIR"/*.sock "$DIR"/topology "$DIR"/netns
	rm -rf "$DIR"/keyed
	set -e
}

cmd_demo() {
	local topo=$1; shift
	local out=demo-report-testbed args=()
	while [ $# -gt 0 ]; do
		case "$1" in
			--out) out=$2; shift 2 ;;
			--out=*) out=${1#--out=}; shift ;;
			*) args+=("$1"); shift ;;
		esac
	done
	need_root demo
	local bin; bin=$(node_bin)
	local base_args=${NODE_ARGS:-} where saved=()
	if has_netem; then
		where="network namespaces: a kernel TUN per node, IPv6 in UDP over veths, tc netem delays"
	else
		where="network namespaces: a kernel TUN per node, IPv6 in UDP over veths, delays applied by the nodes (this kernel has no sch_netem)"
	fi
	TEARDOWN=1
	for scheme in standard ha2r; do
		NODE_ARGS="$base_args --scheme $scheme --hold" cmd_start "$topo"
		"$bin" demo --testbed "$DIR" --scheme "$scheme" --switch "$0 switch" --where "$where" \
			--save "$DIR/result-$scheme.json" --out "$DIR/report-$scheme" "${args[@]}" >/dev/null
		saved+=("$DIR/result-$scheme.json")
		cmd_down
	done
	"$bin" demo --from "$(IFS=,; echo "${saved[*]}")" --out "$out"
}

cmd_addr() {
	local host=$1 bin; bin=$(cat "$DIR/bin")
	"$bin" status --control "$DIR/$host.sock" --json | sed -n 's/.*"address": "\([^"]*\)".*/\1/p' | head -1
}

# A start that fails half way, or any exit of up/run, tears everything down.
STARTING=0
TEARDOWN=0
on_exit() {
	local rc=$?
	if [ "$TEARDOWN" = 1 ] || [ "$STARTING" = 1 ]; then
		[ "$STARTING" = 1 ] && echo "testbed: start failed, tearing down" >&2
		cmd_down
	fi
	exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

cmd=${1:-}
[ -n "$cmd" ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
shift
case "$cmd" in
	start) [ $# -ge 1 ] || die "usage: $0 start TOPOLOGY"; cmd_start "$1" ;;
	up)
		[ $# -ge 1 ] || die "usage: $0 up TOPOLOGY"
		TEARDOWN=1
		cmd_start "$1"
		echo "Ctrl-C tears it down. Try: $0 status mn1; $0 exec mn1 -- ping -6 -c3 <address>; $0 switch mn1 ar1p"
		while sleep 3600; do :; done
		;;
	run)
		[ $# -ge 1 ] || die "usage: $0 run TOPOLOGY -- CMD..."
		topo=$1; shift; [ "${1:-}" = -- ] && shift
		TEARDOWN=1
		cmd_start "$topo"
		TESTBED_ID=$ID TESTBED_DIR=$DIR "$@"
		;;
	down)
		if [ $# -eq 2 ]; then cmd_drop "$1" "$2"; else need_root down; cmd_down; fi
		;;
	exec)
		[ $# -ge 1 ] || die "usage: $0 exec NODE -- CMD..."
		n=$(ns "$1"); shift; [ "${1:-}" = -- ] && shift
		exec ip netns exec "$n" "$@"
		;;
	switch) [ $# -eq 2 ] || die "usage: $0 switch HOST LINK"; cmd_switch "$1" "$2" ;;
	add) [ $# -eq 2 ] || die "usage: $0 add HOST LINK"; cmd_add "$1" "$2" ;;
	drop) [ $# -eq 2 ] || die "usage: $0 drop HOST LINK"; cmd_drop "$1" "$2" ;;
	blackhole) [ $# -eq 2 ] || die "usage: $0 blackhole HOST LINK"; cmd_blackhole "$1" "$2" ;;
	status) [ $# -ge 1 ] || die "usage: $0 status NODE"; n=$1; shift; exec "$(cat "$DIR/bin")" status --control "$DIR/$n.sock" "$@" ;;
	addr) [ $# -eq 1 ] || die "usage: $0 addr HOST"; cmd_addr "$1" ;;
	demo)
		topo=$ROOT/examples/fig4.yaml
		if [ $# -gt 0 ] && [ "$1" != -- ]; then topo=$1; shift; fi
		[ "${1:-}" = -- ] && shift
		cmd_demo "$topo" "$@"
		;;
	*) die "unknown command $cmd (start, up, run, down, exec, switch, add, drop, blackhole, status, addr, demo)" ;;
esac
