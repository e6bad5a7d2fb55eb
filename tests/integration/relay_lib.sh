# relay_lib.sh - helpers of the relaying suites (delivery_e2e.sh,
# relay_e2e.sh), sourced after lib.sh's t_setup: next hops in the test's
# namespace (delivery_tools.py sinks), the scheduler's drain test, and a
# swaks sender that logs what it sent for the byte check.
#
# Sets HOST (sluiced), KERN (the kernel side of its tap, where the next hops
# listen), TOOLS, QD (queue-dump), SENT (the log sw and `delivery_tools.py
# send` append to), PIDS (background helpers, killed on exit with every
# other job, before t_teardown).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS="/usr/bin/python3 $here/delivery_tools.py"
QD=$T_BUILD/tests/integration/queue-dump
SENT=$T_DIR/sent.log
HOST=198.18.0.2
KERN=198.18.0.1
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; kill -KILL $(jobs -p) 2>/dev/null; t_teardown' EXIT
ns() { ip netns exec "$T_NS" "$@"; }
bg() { ip netns exec "$T_NS" "$@" & PIDS+=($!); }
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }

# counter NAME: one stats counter (lib.sh's stat, quiet on success)
counter() { stat "$1"; }
# wait_counter NAME MIN SECONDS
wait_counter() {
	local name=$1 min=$2 secs=$3
	at_least() { local v; v=$(stat "$name") && [ "$v" -ge "$min" ]; }
	wait_for "$secs" at_least
}
# drained: nothing active, queued, looked up or lent in the scheduler
drained() {
	local a q j l
	a=$(stat sched.active) && q=$(stat sched.queued) && j=$(stat sched.jobs_lent) &&
		l=$(stat sched.lookups) && [ "$a" -eq 0 ] && [ "$q" -eq 0 ] && [ "$j" -eq 0 ] &&
		[ "$l" -eq 0 ]
}
# sink_lines DIR: messages a sink kept
sink_lines() { [ -f "$1/msgs.log" ] && wc -l <"$1/msgs.log" || echo 0; }
listening() { ns ss -ltn | grep -q " $1:$2 "; }

# start_sink NAME PORT [--addr A] [args]: an aiosmtpd sink keeping into $T_DIR/NAME
start_sink() {
	local name=$1 port=$2 addr=$KERN; shift 2
	if [ "${1:-}" = --addr ]; then addr=$2; shift 2; fi
	bg $TOOLS sink "$addr" "$port" "$T_DIR/$name" "$@" >"$T_DIR/$name.out" 2>&1
	wait_for 20 listening "$addr" "$port"
}

# sw NAME [swaks options]: one swaks message to x@sink.test (or SW_TO); logs
# "ID SHA RCPT" to SENT
sw() {
	local name=$1 f id h out to=${SW_TO:-x@sink.test}; shift
	f=$T_DIR/$name.txt
	printf 'From: <%s@example.org>\nTo: <%s>\nSubject: %s %s\n\nbody of %s\n.leading dot\n..two dots\nend\n' \
		"$name" "$to" "$name" "$$.$RANDOM" "$name" >"$f"
	out=$(ns timeout 60 swaks --server $HOST --port 25 --helo swaks.test \
		--from "$name@example.org" --to "$to" --data "@$f" "$@" 2>&1)
	id=$(printf '%s\n' "$out" |
		sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-HJKMNP-TV-Z]\{13\}\)\r\{0,1\}$/\1/p')
	[ -n "$id" ] || { printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'; return 1; }
	h=$({ sed 's/$/\r/' "$f"; printf '\r\n'; } | sha256sum | cut -d' ' -f1)
	echo "$id $h $to" >>"$SENT"
}
