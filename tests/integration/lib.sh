# lib.sh - shared by the integration suites (sourced): check counting, and
# starting/stopping sluiced in a namespace of the test's own.
#
# Each suite gets a unique namespace, tap name, EAL file prefix and control
# socket (from its name and PID), so suites may run side by side.

. "$(dirname "${BASH_SOURCE[0]}")/../../firmware-config/netns.sh"

T_PASS=0
T_FAIL=0
T_SKIP=0
ok()   { T_PASS=$((T_PASS + 1)); echo "ok   - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $*"; }
skip() { T_SKIP=$((T_SKIP + 1)); echo "skip - $*"; }	# skip "what (why)"
check() {	# check "description" command...
	local what=$1; shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

# A measurement that could not be made (a counter missing, a dead socket,
# no process to read) must fail the suite even when the value it should
# have produced is then compared in a way that happens to hold, and even
# when it was taken in a $(...) subshell: measure_failed records it in a
# file that finish() turns into failed checks.
measure_failed() {
	echo "$*" >>"${T_DIR:?}/measure_failures"
}
finish() {
	local line
	if [ -s "${T_DIR:-/nonexistent}/measure_failures" ]; then
		while IFS= read -r line; do
			fail "measurement failed: $line"
		done <"$T_DIR/measure_failures"
		: >"$T_DIR/measure_failures"
	fi
	echo "$T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" -eq 0 ]
}

# t_setup NAME BUILD_DIR: sets T_NS T_IF T_SOCK T_DIR T_CONF T_PORT, creates
# the namespace. T_PORT, sluiced's port type, is SLUICE_PORT (tap when
# unset; netns.sh lists the others); T_IF is the kernel side's interface
# whatever the type (198.18.0.1/24 is on it).
t_setup() {
	local name=$1
	T_BUILD=$(cd "$2" && pwd)
	T_SLUICED=$T_BUILD/control/sluiced
	T_CTL=$T_BUILD/control/sluicectl
	T_NS=sl-$name-$$
	T_IF=slt$(( $$ % 100000 ))
	T_PORT=${SLUICE_PORT:-tap}
	# A port type asked for that cannot start here fails the suite (it
	# could not test anything), with the reason; ports_e2e.sh skips instead.
	if ! T_WHY=$(sluice_port_check "$T_PORT"); then
		echo "FAIL - SLUICE_PORT=$T_PORT cannot start here: $T_WHY"
		exit 1
	fi
	T_DIR=$(mktemp -d /tmp/sluice-$name.XXXXXX)
	T_SOCK=$T_DIR/control.sock
	T_CONF=$T_DIR/sluice.conf
	T_LOG=$T_DIR/sluiced.log
	T_PID=
	sluice_ns_up "$T_NS"
	trap t_teardown EXIT
}

# t_conf [extra INI text]: writes T_CONF for this test (unique names).
# Reverse lookups are off ([smtp] reverse_lookup_wait = 0): most suites run
# no DNS server, and every session's first message would wait for one;
# dns_e2e.sh turns them on with a dnsmasq to answer. [queue] stays last:
# some suites' extra text goes on with its keys.
t_conf() {
	# A queue pair per worker lcore ([lcores] workers in the extra text).
	T_QUEUES=$(printf '%s\n' "${1:-}" | sed -n 's/^workers *= *\([0-9][0-9]*\).*/\1/p' | tail -n 1)
	T_QUEUES=${T_QUEUES:-1}
	cat >"$T_CONF" <<CONF
[eal]
vdev = $(sluice_port_vdev "$T_PORT" "$T_IF" "$T_QUEUES")
file_prefix = sl$$
[control]
socket = $T_SOCK
[smtp]
reverse_lookup_wait = 0
[queue]
dir = $T_DIR/spool
${1:-}
CONF
}

t_start() {
	# A veth (af_packet, af_xdp) outlives a stop: made once per suite.
	if [ -z "${T_PORT_READY:-}" ]; then
		sluice_port_pre "$T_NS" "$T_PORT" "$T_IF" 198.18.0.1/24 || return 1
		T_PORT_READY=1
	fi
	if ! T_WHY=$(sluice_port_check "$T_PORT" "${T_QUEUES:-1}"); then
		echo "FAIL - SLUICE_PORT=$T_PORT cannot start here: $T_WHY" >&2
		return 1
	fi
	sluice_port_queues "$T_NS" "$T_PORT" "$T_IF" "${T_QUEUES:-1}" || return 1
	ip netns exec "$T_NS" "$T_SLUICED" -c "$T_CONF" >>"$T_LOG" 2>&1 &
	T_PID=$!
	sluice_port_post "$T_NS" "$T_PORT" "$T_IF" 198.18.0.1/24 && sluice_ctl_wait "$T_SOCK" "$T_CTL" "$T_PID"
}

# t_stop: SIGTERM, wait up to 10 s; returns sluiced's exit status.
t_stop() {
	local i st
	[ -n "$T_PID" ] || return 0
	kill -TERM "$T_PID" 2>/dev/null
	for i in $(seq 1 100); do
		kill -0 "$T_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$T_PID" 2>/dev/null; then
		kill -KILL "$T_PID"
		wait "$T_PID" 2>/dev/null
		T_PID=
		return 124
	fi
	wait "$T_PID"; st=$?
	T_PID=
	return $st
}

t_teardown() {
	[ -n "${T_PID:-}" ] && kill -KILL "$T_PID" 2>/dev/null
	sluice_ns_down "$T_NS"
	if [ "${T_FAIL:-0}" -ne 0 ] && [ -f "${T_LOG:-}" ]; then
		echo "--- sluiced log ---"; tail -n 40 "$T_LOG"
	fi
	rm -rf "$T_DIR"
}

# stat NAME: one counter from sluiced (summed over lcores). When it cannot
# be read (no answer, no such counter) it prints "unreadable" (no number:
# a comparison with it fails), returns 1, and the suite fails at finish.
stat() {
	local v
	v=$("$T_CTL" -s "$T_SOCK" --json stats 2>/dev/null | /usr/bin/python3 -c \
		"import json,sys; print(json.load(sys.stdin)['stats']['$1'])" 2>/dev/null)
	if ! [[ "$v" =~ ^[0-9]+$ ]]; then
		measure_failed "counter $1 could not be read from $T_SOCK"
		echo unreadable
		return 1
	fi
	echo "$v"
}

# rss_kib PID: resident memory of a process in KiB, or "unreadable" (and a
# failed measurement) when there is no such process.
rss_kib() {
	local v
	v=$(awk '/^VmRSS:/ {print $2}' "/proc/${1:-none}/status" 2>/dev/null)
	if ! [[ "$v" =~ ^[0-9]+$ ]]; then
		measure_failed "VmRSS of pid '${1:-}' could not be read"
		echo unreadable
		return 1
	fi
	echo "$v"
}

# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds
# or SECONDS pass (1 = gave up). For "this should happen soon" checks on a
# loaded machine: wait for the condition instead of sleeping and counting.
wait_for() {
	local limit=$1 end; shift
	end=$((SECONDS + limit))
	while ! "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
	return 0
}
