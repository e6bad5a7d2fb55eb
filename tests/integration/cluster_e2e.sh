#!/usr/bin/env bash
# cluster_e2e.sh BUILD_DIR - three sluiced as one relay on one redis-server
# (issue 19, control/cluster.h), measured at one sink.
#
# One namespace: three sluiced, each on a tap of its own (198.18.N.2, the
# kernel side 198.18.N.1, N = 1..3, each its own gateway), a redis-server on
# the namespace's loopback, and aiosmtpd sinks (delivery_tools.py) on
# 198.18.100.1, an address of the namespace's own that every box reaches
# through its gateway: the same next hop, so the same destination key, for
# all three. [dest] concurrency_limit = 10 and message_rate = 100/s apply to
# every destination; without the cluster each box would open 10 and send
# 100/s on its own.
#
#  1. connections: slow.test (the sink waits 0.3 s per message) has mail
#     queued on all three (held back by a cluster suspension while it is
#     queued, so none of it goes early): at most 10 sessions at once at the
#     sink, every box delivering some.
#  2. suspension: a cluster suspension of slow.test while it is delivering:
#     no message reaches the sink that started more than a second after it.
#  3. a dead box: box 3 is killed (-9) holding leases; the two others reach
#     more sessions at once than their share of three (4 each) within the
#     lease time (3 s) and a margin.
#  4. rate: fast.test (no delay) with 200 messages queued per box, released
#     at once: 100/s within 10% in every 3 s window at the sink. Redis
#     operations per delivered message from INFO commandstats.
#  5. redis killed: deliveries go on (local limits / known boxes), the
#     outage is counted; redis back: the boxes reconnect by themselves.
#     It comes back empty (no persistence): a cluster suspension and a
#     cluster route set before stay on both boxes, and are back in redis
#     (a box put its copy back: cluster.shared_restored, logged).
#  6. queue summary --cluster: the per-domain sums of the boxes' own
#     summaries (mail held by a cluster suspension, so the numbers stand).
#  7. --cluster route set: a shared route reaches both live boxes within a
#     second (their logs), outlives a reload; mail deferred through it (no
#     sink yet) goes at once on both boxes after --cluster flush DOMAIN
#     (within a second, from the logs); --cluster route clear likewise.
#  8. per-client rate: one client (one address, through both boxes' gateways)
#     sends MAIL after MAIL to boxes 1 and 2 at once for 3 s under [limits]
#     message_rate = 20 per 5 s: the two boxes accept 20 + 4/s in all
#     (within 10%), not that on each; then a box stops cleanly.
set -u
. "$(dirname "$0")/lib.sh"
t_setup clu "$1"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS="/usr/bin/python3 $here/delivery_tools.py"
SINK=198.18.100.1
CLIENT=198.18.200.1	# phase 8's client: the same address toward every box
REDIS_PORT=6390
PIDS=()
BOXPID=(0 0 0 0)
cleanup() {
	local p
	[ -n "${CLUSTER_KEEP:-}" ] && cp -r "$T_DIR" "$CLUSTER_KEEP"
	for p in "${PIDS[@]}" "${BOXPID[@]}" ${REDIS_PID:-}; do
		[ "$p" != 0 ] && { kill -KILL "$p"; wait "$p"; } 2>/dev/null
	done
	t_teardown
}
trap cleanup EXIT
ns() { ip netns exec "$T_NS" "$@"; }
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }
ctl() { local i=$1; shift; "$T_CTL" -s "$T_DIR/ctl$i.sock" "$@"; }
# bstat I NAME: a counter of box I (fails the suite when unreadable)
bstat() { local T_SOCK=$T_DIR/ctl$1.sock; stat "$2"; }
now() { date +%s.%N; }
sink_lines() { [ -f "$1/msgs.log" ] && wc -l <"$1/msgs.log" || echo 0; }
at_least() { [ "$(sink_lines "$1")" -ge "$2" ]; }
listening() { ns ss -ltn | grep -q " $1:$2 "; }

redis_ping() { ns redis-cli -p $REDIS_PORT ping 2>/dev/null | grep -q PONG; }
redis_start() {
	ip netns exec "$T_NS" redis-server --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no \
		--dir "$T_DIR" --logfile "$T_DIR/redis.log" &
	REDIS_PID=$!
	wait_for 20 redis_ping
}
# ops: Redis commands run so far (INFO commandstats, every command summed)
ops() {
	ns redis-cli -p $REDIS_PORT info commandstats |
		sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\),.*/\1/p' | awk '{s += $1} END {print s + 0}'
}

box_conf() {
	local i=$1
	cat >"$T_DIR/box$i.conf" <<CONF
[eal]
vdev = net_tap0,iface=sc$i$(( $$ % 100000 ))
file_prefix = slc$i$$
[port]
mbufs = 4095
[net]
address = 198.18.$i.2/24
gateway = 198.18.$i.1
[control]
socket = $T_DIR/ctl$i.sock
[smtp]
hostname = box$i.test
mynetworks = 198.18.0.0/16
reverse_lookup_wait = 0
[routes]
routes_file = $T_DIR/routes
[dest]
initial_concurrency = 10
concurrency_limit = 10
message_rate = 100/s
[delivery]
body_memory = 16m
[retry]
min_backoff = 60s
[cluster]
redis = 127.0.0.1:$REDIS_PORT
name = box$i
lease_ttl = 3s
[limits]
window = 5s
message_rate = 20
exempt = 198.18.1.1 198.18.2.1 198.18.3.1
[metrics]
listen =
[queue]
dir = $T_DIR/spool$i
CONF
}
box_start() {
	local i=$1
	ip netns exec "$T_NS" "$T_SLUICED" -c "$T_DIR/box$i.conf" >>"$T_DIR/box$i.log" 2>&1 &
	BOXPID[$i]=$!
	sluice_tap_wait "$T_NS" "sc$i$(( $$ % 100000 ))" "198.18.$i.1/24" &&
		sluice_ctl_wait "$T_DIR/ctl$i.sock" "$T_CTL"
}
# send I N DOMAIN: N messages into box I (smtplib, 4 sessions)
send() { ns $TOOLS send "198.18.$1.2" "$2" 4 "$3" "$T_DIR/sent$1.log" >/dev/null; }
# send_boxes N DOMAIN I...: N messages into each box I at once; fails if one failed
send_boxes() {
	local n=$1 dom=$2 i p rc=0 sp=(); shift 2
	for i in "$@"; do send "$i" "$n" "$dom" & sp+=($!); done
	for p in "${sp[@]}"; do wait "$p" || rc=1; done
	return $rc
}
# within_1s CMD...: CMD comes true within a second (measured, not SECONDS-rounded)
within_1s() {
	local a b
	a=$(now)
	wait_for 5 "$@" || return 1
	b=$(now)
	echo "    took $(awk "BEGIN {printf \"%.2f\", $b - $a}") s"
	awk "BEGIN {exit !($b - $a < 1.0)}"
}
# maxconc DIR [FROM_NS [PEER_RE]]: most sessions the sink in DIR had at
# once (since FROM_NS; only those from addresses PEER_RE matches)
maxconc() {
	/usr/bin/python3 - "$1/conns.log" "${2:-0}" "${3:-}" <<'PY'
import re, sys
ev = []
for line in open(sys.argv[1]):
    k, t, peer = line.split()
    if not re.match(sys.argv[3], peer):
        continue
    ev.append((int(t), 1 if k == '+' else -1))
cur = mx = 0
since = int(sys.argv[2])
crossed = False
for t, d in sorted(ev):
    if t >= since and not crossed:	# what was open when the span began counts
        mx, crossed = cur, True
    cur += d
    if t >= since:
        mx = max(mx, cur)
if not crossed:		# nothing opened or closed since: what is open now
    mx = cur
print(mx)
PY
}
mono() { /usr/bin/python3 -c 'import time; print(time.monotonic_ns())'; }
# from_box DIR N: messages in DIR's log relayed by box N (its Received: field)
from_box() { grep -c "by box$2.test" "$1/msgs.log" || true; }
# late DIR T: messages that arrived after epoch time T
late() { /usr/bin/python3 -c "
import json, sys
print(sum(1 for l in open('$1/msgs.log') if json.loads(l)['t'] > $2))"; }
# qstat I NAME: a counter of box I for polling (no measurement failure while
# it is not there yet: the check that polls fails if it never is)
qstat() {
	ctl "$1" --json stats 2>/dev/null | /usr/bin/python3 -c \
		"import json,sys; print(json.load(sys.stdin)['stats']['$2'])" 2>/dev/null
}
connected() { [ "$(qstat "$1" cluster.connected)" = 1 ]; }
boxes_seen() { [ "$(qstat "$1" cluster.boxes)" = "$2" ]; }
suspended_on() {	# suspended_on I DOMAIN: box I has DOMAIN suspended
	ctl "$1" --json suspend 2>/dev/null | grep -q "\"$2\""
}
all_suspended() { suspended_on 1 "$1" && suspended_on 2 "$1" && suspended_on 3 "$1"; }
# applied_within_1s CMDBOX DOMAIN BOX...: from the logs (one clock, ms): every
# BOX applied the last cluster suspension of DOMAIN (its scheduler's line)
# less than a second after CMDBOX carried the command to Redis
applied_within_1s() {
	local cmd=$1 dom=$2; shift 2
	/usr/bin/python3 - "$T_DIR" "$cmd" "$dom" "$@" <<'PY'
import datetime, sys
d, cmd, dom, boxes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def times(box, text):
    out = []
    for l in open('%s/box%s.log' % (d, box), errors='replace'):
        if text in l:
            out.append(datetime.datetime.strptime(l[:23], '%Y-%m-%dT%H:%M:%S.%f').timestamp())
    return out
t0 = times(cmd, 'cluster: the operator suspends %s on every box' % dom)[-1]
worst = 0
for b in boxes:
    t = [x for x in times(b, 'sched: the operator suspends delivery to %s ' % dom) if x >= t0]
    if not t:
        sys.exit(1)
    worst = max(worst, t[0] - t0)
print('    the last box applied it %.3f s after the command reached Redis' % worst)
sys.exit(0 if worst < 1.0 else 2)
PY
}

# --- setup ---------------------------------------------------------------------
phase "setup: redis, sinks, three boxes"
ns ip addr add $SINK/32 dev lo
ns ip addr add $CLIENT/32 dev lo
cat >"$T_DIR/routes" <<ROUTES
slow.test   [$SINK]:2601
fast.test   [$SINK]:2602
hold.test   [$SINK]:2603
ROUTES
check "redis-server answers in the namespace" redis_start
ip netns exec "$T_NS" $TOOLS sink 0.0.0.0 2601 "$T_DIR/slow" --delay 0.3 >"$T_DIR/slow.out" 2>&1 &
PIDS+=($!)
ip netns exec "$T_NS" $TOOLS sink 0.0.0.0 2602 "$T_DIR/fast" >"$T_DIR/fast.out" 2>&1 &
PIDS+=($!)
check "sinks listen" wait_for 20 listening 0.0.0.0 2602
for i in 1 2 3; do box_conf $i; check "box $i starts" box_start $i; done
for i in 1 2 3; do check "box $i is connected to redis" wait_for 20 connected $i; done
check "every box sees three boxes" wait_for 20 boxes_seen 1 3
if [ "$T_FAIL" -ne 0 ]; then	# nothing below could measure anything
	for i in 1 2 3; do echo "--- box $i ---"; tail -n 15 "$T_DIR/box$i.log"; done
	finish; exit 1
fi
[ -n "${CLUSTER_SETUP_ONLY:-}" ] && { finish; exit; }

# --- 1. connections --------------------------------------------------------------
phase "1: ten connections across three boxes"
check "cluster suspend slow.test" ctl 1 --cluster suspend slow.test
check "the suspension is on every box" wait_for 5 all_suspended slow.test
check "within 1 s of the command" applied_within_1s 1 slow.test 1 2 3
check "60 messages into each box" send_boxes 60 slow.test 1 2 3
check "nothing reached the slow sink while suspended" test "$(sink_lines "$T_DIR/slow")" -eq 0
check "cluster resume slow.test" ctl 1 --cluster resume slow.test
check "deliveries start" wait_for 20 at_least "$T_DIR/slow" 20
check "90 messages arrive" wait_for 60 at_least "$T_DIR/slow" 90
mx=$(maxconc "$T_DIR/slow")
echo "    most sessions at once at the sink: $mx (limit 10, three boxes)"
check "at most 10 sessions at once in all ($mx)" test "$mx" -le 10
check "and the limit is used ($mx >= 8)" test "$mx" -ge 8
for i in 1 2 3; do
	n=$(from_box "$T_DIR/slow" $i)
	check "box $i delivered some ($n)" test "$n" -gt 0
done

# --- 2. suspension while delivering -------------------------------------------------
phase "2: cluster suspend while delivering"
ts=$(now)
check "cluster suspend slow.test" ctl 2 --cluster suspend slow.test
check "on every box" wait_for 5 all_suspended slow.test
check "within 1 s of the command" applied_within_1s 2 slow.test 1 2 3
sleep 3
n=$(late "$T_DIR/slow" "$ts + 1.4")
check "no message arrived later than 1 s (+ one 0.3 s transfer) after it: $n" test "$n" -eq 0

# --- 3. a dead box --------------------------------------------------------------------
phase "3: kill box 3 holding leases"
check "cluster resume slow.test" ctl 2 --cluster resume slow.test
check "60 more into each box" send_boxes 60 slow.test 1 2 3
b3=$(from_box "$T_DIR/slow" 3)
check_b3() { [ "$(from_box "$T_DIR/slow" 3)" -gt "$b3" ]; }
check "box 3 delivers again" wait_for 20 check_b3
kill -KILL "${BOXPID[3]}"; wait "${BOXPID[3]}" 2>/dev/null; BOXPID[3]=0
tk=$(mono)
check "100 more into boxes 1 and 2 (work for the whole window)" send_boxes 100 slow.test 1 2
sleep $(( 9 - $(( ($(mono) - tk) / 1000000000 )) )) 2>/dev/null
# from the lease time (3 s) and a round on, for 5 s
m1=$(maxconc "$T_DIR/slow" "$(( tk + 4000000000 ))" '198\.18\.1\.')
m2=$(maxconc "$T_DIR/slow" "$(( tk + 4000000000 ))" '198\.18\.2\.')
mx=$(maxconc "$T_DIR/slow" "$(( tk + 4000000000 ))" '198\.18\.[12]\.')
echo "    after box 3 died: box 1 $m1, box 2 $m2, both $mx sessions at once (share of three: 4 each)"
check "the two others use box 3's share ($mx > 8)" test "$mx" -gt 8
check "and no more than the limit ($mx <= 10; box 3's dead sessions aside)" test "$mx" -le 10
check "box 1 above its share of three ($m1 > 4)" test "$m1" -gt 4
check "box 2 above its share of three ($m2 > 4)" test "$m2" -gt 4

# --- 4. rate --------------------------------------------------------------------------------
phase "4: 100/s across the boxes"
check "cluster suspend fast.test" ctl 1 --cluster suspend fast.test
check "on the two live boxes" wait_for 2 eval 'suspended_on 1 fast.test && suspended_on 2 fast.test'
check "300 messages into boxes 1 and 2" send_boxes 300 fast.test 1 2
check "none went while suspended" test "$(sink_lines "$T_DIR/fast")" -eq 0
o0=$(ops); c0=$(( $(bstat 1 cluster.commands) + $(bstat 2 cluster.commands) ))
r0=$(( $(bstat 1 cluster.rounds) + $(bstat 2 cluster.rounds) ))
check "cluster resume fast.test" ctl 1 --cluster resume fast.test
check "600 messages arrive" wait_for 60 at_least "$T_DIR/fast" 600
o1=$(ops); c1=$(( $(bstat 1 cluster.commands) + $(bstat 2 cluster.commands) ))
r1=$(( $(bstat 1 cluster.rounds) + $(bstat 2 cluster.rounds) ))
/usr/bin/python3 -c "
import json, collections
ts = sorted(json.loads(l)['t'] for l in open('$T_DIR/fast/msgs.log'))
c = collections.Counter(int(t - ts[0]) for t in ts)
print('    arrivals per second:', ' '.join(str(c[i]) for i in range(max(c) + 1)))"
# the limit holds: at most 110/s in any 3 s window (a batch of 20 cells is the
# GCRA's burst), and it is used: at least 90/s over the whole run
rate_ok() {
	/usr/bin/python3 - "$T_DIR/fast/msgs.log" <<'PY'
import json, sys
ts = sorted(json.loads(l)['t'] for l in open(sys.argv[1]))
hi, j = 0, 0
for i, t in enumerate(ts):
    while j < len(ts) and ts[j] < t + 3:
        j += 1
    hi = max(hi, j - i)
overall = (len(ts) - 1) / (ts[-1] - ts[0])
print('    %d arrivals in %.1f s: %.1f/s overall; at most %d in a 3 s window (%.1f/s)' %
      (len(ts), ts[-1] - ts[0], overall, hi, hi / 3))
sys.exit(0 if hi <= 330 and overall >= 80 else 1)
PY
}
check "100/s holds in total: <= 110/s in any 3 s window (and >= 80/s overall)" rate_ok
echo "    redis: $((r1 - r0)) round trips and $((c1 - c0)) commands from the boxes (scripts counted once), $((o1 - o0)) in INFO commandstats (each call inside a script counted): $(awk "BEGIN {printf \"%.3f and %.3f\", ($c1 - $c0) / 600, ($o1 - $o0) / 600}") per message"
check "round trips far below one per message ($((r1 - r0)) for 600)" test $((r1 - r0)) -lt 300

# --- 5. redis killed and back ------------------------------------------------------------
phase "5: kill redis"
n0=$(sink_lines "$T_DIR/slow")
keep_route() { ctl "$1" --json route show keep.test 2>/dev/null | grep -qF "2699"; }
check "cluster suspend keep.test, cluster route keep.test (kept across the restart)" eval \
	"ctl 1 --cluster suspend keep.test >/dev/null && ctl 1 --cluster route set keep.test '[$SINK]:2699' >/dev/null"
check "both on boxes 1 and 2" wait_for 5 eval \
	"suspended_on 1 keep.test && suspended_on 2 keep.test && keep_route 1 && keep_route 2"
check "40 more into boxes 1 and 2" send_boxes 40 slow.test 1 2
kill -KILL "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=
down() { [ "$(qstat 1 cluster.connected)" = 0 ]; }
check "box 1 notices" wait_for 10 down
check "deliveries go on without redis" wait_for 30 at_least "$T_DIR/slow" $((n0 + 60))
v=$(bstat 1 cluster.fallback_entered)
check "the outage is counted ($v)" test "$v" -ge 1
check "redis back" redis_start
for i in 1 2; do check "box $i reconnects by itself" wait_for 20 connected $i; done
in_redis() { [ -n "$(ns redis-cli -p $REDIS_PORT hget sluice:$1 keep.test)" ]; }
check "redis came back empty; the suspension and the route are back in it" \
	wait_for 10 eval "in_redis suspend && in_redis route"
sleep 1	# two gen polls: a box that applied the empty hashes would show it now
check "keep.test is still suspended on both boxes, its route still set" eval \
	"suspended_on 1 keep.test && suspended_on 2 keep.test && keep_route 1 && keep_route 2"
r=$(( $(bstat 1 cluster.shared_restored) + $(bstat 2 cluster.shared_restored) ))
check "counted (cluster.shared_restored: $r) and logged" eval "[ $r -ge 1 ] &&
	grep -q 'cluster: redis had lost the shared suspensions and routes' $T_DIR/box1.log $T_DIR/box2.log"
check "cluster resume keep.test, route clear keep.test" eval \
	"ctl 1 --cluster resume keep.test >/dev/null && ctl 1 --cluster route clear keep.test >/dev/null"
check "all 80 arrive" wait_for 60 at_least "$T_DIR/slow" $((n0 + 80))

# --- 6. merged summary -----------------------------------------------------------------------
phase "6: queue summary --cluster"
check "cluster suspend hold.test" ctl 1 --cluster suspend hold.test
check "on both" wait_for 2 eval 'suspended_on 1 hold.test && suspended_on 2 hold.test'
check "12 messages for hold.test" eval 'send 1 7 hold.test && send 2 5 hold.test'
# the sum of each box's row for hold.test (every class), and the cluster's
local_sum() {
	local i s=0 v
	for i in 1 2; do
		v=$(ctl $i --json queue summary | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(r["incoming"] + r["active"] + r["deferred"] + r["held"]
          for r in d["domains"] if r["domain"] == "hold.test"))') || return 1
		s=$((s + v))
	done
	echo $s
}
cluster_sum() {	# as the issue writes it: queue summary --cluster
	ctl 1 --json queue summary --cluster | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(r["incoming"] + r["active"] + r["deferred"] + r["held"]
          for r in d["domains"] if r["domain"] == "hold.test"))'
}
sums_agree() { local a b; a=$(local_sum) && b=$(cluster_sum) && [ "$a" -eq 12 ] && [ "$b" -eq 12 ]; }
check "the cluster's summary sums the boxes' (12 parts of hold.test)" wait_for 10 sums_agree
echo "    boxes' own: $(local_sum), cluster: $(cluster_sum)"

# --- 7. shared routes and flush ------------------------------------------------------------
phase "7: --cluster route and --cluster flush"
# logged_within_1s CMDBOX CMDTEXT BOXTEXT BOX...: from the logs (one clock):
# every BOX logged BOXTEXT less than a second after CMDBOX logged CMDTEXT
logged_within_1s() {
	local cmd=$1 ctext=$2 btext=$3; shift 3
	/usr/bin/python3 - "$T_DIR" "$cmd" "$ctext" "$btext" "$@" <<'PY'
import datetime, sys
d, cmd, ctext, btext, boxes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def times(box, text):
    return [datetime.datetime.strptime(l[:23], '%Y-%m-%dT%H:%M:%S.%f').timestamp()
            for l in open('%s/box%s.log' % (d, box), errors='replace') if text in l]
t0 = times(cmd, ctext)
if not t0:
    sys.exit(1)
t0, worst = t0[-1], 0
for b in boxes:
    t = [x for x in times(b, btext) if x >= t0]
    if not t:
        sys.exit(1)
    worst = max(worst, t[0] - t0)
print('    the last box took %.3f s after the command reached Redis' % worst)
sys.exit(0 if worst < 1.0 else 2)
PY
}
route_on() {	# route_on I DOMAIN TEXT: box I's route show of DOMAIN has TEXT
	ctl "$1" --json route show "$2" 2>/dev/null | grep -qF "$3"
}
no_route_on() { ! ctl "$1" --json route show "$2" 2>/dev/null | grep -q '"route"'; }
deferred_on() {	# deferred_on I DOMAIN N: box I has N parts of DOMAIN deferred
	[ "$(ctl "$1" --json queue summary 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print(sum(r["deferred"] for r in json.load(sys.stdin)["domains"] if r["domain"] == sys.argv[1]))
' "$2")" = "$3" ]
}
# a shared route to a port where nothing listens yet: the mail is deferred
check "--cluster route set flush.test" ctl 1 --cluster route set flush.test "[$SINK]:2604"
check "on both boxes" wait_for 5 eval "route_on 1 flush.test 2604 && route_on 2 flush.test 2604"
check "within 1 s of the command" logged_within_1s 1 \
	"cluster: the operator sets the route of flush.test" \
	"cluster: route of flush.test set here" 1 2
check "the route outlives a reload of box 2" eval "ctl 2 reload >/dev/null && route_on 2 flush.test 2604"
check "5 messages for flush.test into each box" send_boxes 5 flush.test 1 2
check "deferred on both (nothing listens; backoff 60 s)" \
	wait_for 20 eval "deferred_on 1 flush.test 5 && deferred_on 2 flush.test 5"
ip netns exec "$T_NS" $TOOLS sink 0.0.0.0 2604 "$T_DIR/flush" >"$T_DIR/flush.out" 2>&1 &
PIDS+=($!)
check "the flush.test sink listens" wait_for 20 listening 0.0.0.0 2604
sleep 0.3
check "nothing arrives before the flush" test "$(sink_lines "$T_DIR/flush")" -eq 0
check "--cluster flush flush.test" ctl 2 --cluster flush flush.test
check "both boxes flush within 1 s of the command" wait_for 5 logged_within_1s 2 \
	"cluster: the operator flushes flush.test" "cluster: flush of flush.test here" 1 2
check "all 10 arrive" wait_for 10 at_least "$T_DIR/flush" 10
for i in 1 2; do
	n=$(from_box "$T_DIR/flush" $i)
	check "box $i's 5 among them ($n)" test "$n" -eq 5
done
check "--cluster route clear flush.test" ctl 1 --cluster route clear flush.test
check "gone from both" wait_for 5 eval "no_route_on 1 flush.test && no_route_on 2 flush.test"
check "within 1 s of the command" logged_within_1s 1 \
	"cluster: the operator clears the route of flush.test" \
	"cluster: route of flush.test cleared here" 1 2

# --- 8. a client's message rate across the boxes ------------------------------------------
phase "8: one client on two boxes at once, [limits] message_rate = 20 per 5 s"
# both_boxes SECS: one client ($CLIENT) sends MAIL after MAIL to boxes 1 and
# 2 at once for SECS; prints "accepted refused elapsed"
both_boxes() {
	ns /usr/bin/python3 - "$CLIENT" "$1" <<'PY'
import smtplib, sys, threading, time
src, secs = sys.argv[1], float(sys.argv[2])
acc = [0, 0]
ref = [0, 0]
t = {}
def run(i, host):
    s = smtplib.SMTP(host, 25, timeout=20, source_address=(src, 0))
    s.ehlo('client.test')
    end = time.time() + secs
    while time.time() < end:
        t.setdefault('first', time.time())
        code, _ = s.mail('rate@client.test')
        t['last'] = time.time()
        if code == 250:
            s.rcpt('u@hold.test')
            s.data(b'Subject: rate\r\n\r\nx\r\n')
            acc[i] += 1
        else:
            ref[i] += 1
            s.rset()
            time.sleep(0.02)
    s.quit()
th = [threading.Thread(target=run, args=(i, h)) for i, h in enumerate(('198.18.1.2', '198.18.2.2'))]
for x in th: x.start()
for x in th: x.join()
print(acc[0] + acc[1], ref[0] + ref[1], '%.2f' % (t['last'] - t['first']), acc[0], acc[1])
PY
}
c0=$(( $(bstat 1 cluster.client_calls) + $(bstat 2 cluster.client_calls) ))
r0=$(( $(bstat 1 cluster.rounds) + $(bstat 2 cluster.rounds) ))
read -r acc refd el a1 a2 < <(both_boxes 3) || acc=
c1=$(( $(bstat 1 cluster.client_calls) + $(bstat 2 cluster.client_calls) ))
r1=$(( $(bstat 1 cluster.rounds) + $(bstat 2 cluster.rounds) ))
check "the client ran (${acc:-nothing})" test -n "${acc:-}"
if [ -n "${acc:-}" ]; then
	want=$(awk "BEGIN {print 20 + 4 * $el}")	# the burst, then 4/s
	echo "    accepted $acc (box 1 $a1, box 2 $a2), refused $refd in $el s: the limit allows $want in all (each box alone: twice that)"
	check "held to its rate in total: $acc within 10% of $want" \
		awk "BEGIN {exit !($acc >= 0.9 * $want && $acc <= 1.1 * $want)}"
	check "both boxes took some ($a1, $a2)" test "$a1" -gt 0 -a "$a2" -gt 0
	echo "    redis: $((c1 - c0)) client-key commands in $((r1 - r0)) round trips for $((acc + refd)) MAILs"
	check "round trips far below one per MAIL" test $((r1 - r0)) -lt $((acc + refd))
fi

# stop_box I: SIGTERM, its exit status within 20 s (the cluster thread stops too)
stop_box() {
	local p=${BOXPID[$1]} i st
	kill -TERM "$p"
	for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && return 124
	wait "$p"; st=$?
	BOXPID[$1]=0
	return $st
}
for i in 1 2; do
	w=$(bstat $i sched.cluster_waits); l=$(bstat $i cluster.lease_calls)
	rc_=$(bstat $i cluster.rate_calls); e=$(bstat $i cluster.redis_errors)
	echo "    box $i: cluster_waits=$w lease_calls=$l rate_calls=$rc_ redis_errors=$e"
done
check "box 2 stops cleanly (exit 0)" stop_box 2
finish
