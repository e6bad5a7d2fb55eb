#!/usr/bin/env bash
# transfer_e2e.sh BUILD_DIR - sluicectl transfer (issue 19, acceptance 4):
# a drained box moves its queue to another box, which delivers it.
#
# One namespace: box A (198.18.1.2) and box B (198.18.2.2), each on a tap
# of its own (the namespace side 198.18.N.1 its gateway; the namespace
# forwards between them), and aiosmtpd next hops (delivery_tools.py) on
# 198.18.100.1, an address of the namespace: A's next hop for xfer.test
# answers every RCPT 451 (its mail stays queued, tried once), B's is a real
# sink. Each box has the other in mynetworks (XSLUICE is offered to it).
#
#  1. A gets N messages (TRANSFER_N, 1000 by default), each tried once and
#     deferred; one of them is held by the operator.
#  2. transfer is refused while A is not drained; drained, `transfer --to
#     198.18.2.2` moves every message but the held one while B's delivery
#     of xfer.test is suspended (so B's records can be read first); A's
#     queue is left with the held one; stats and status agree.
#  3. B's records kept A's arrival, expiry, attempt count and last error,
#     and are due at A's next try, not at once (sample messages, by their
#     unique recipient, on A before and on B after).
#  4. --include-held moves the held one too: A's queue is empty.
#  5. B delivers (resume): every message arrives at the sink exactly once
#     (by recipient and Message-Id), none lost, none delivered by A.
#  6. Interrupted: A (undrained) takes M (400) more (deferred once), is
#     drained, and is killed -9 in the middle of a transfer (to B at
#     200/s now, [dest] per_domain, so that it is in the middle); restarted, it
#     is still drained and goes on with the transfer (both are files in its
#     queue dir, drain_state.h, transfer_state.h): A's queue empties, every
#     message arrives at least once, and the duplicates are at most the
#     transfers that can be between B's 250 and A's commit: the jobs out
#     to B (A's window to B: 10) and those whose removal is being
#     committed while the next ones go out (the scheduler dispatches
#     before its group commit, sched.c: sched_poll), 2 x 10; counted and
#     printed.
# Prints the transfer rate (messages/s) of the uninterrupted run.
set -u
. "$(dirname "$0")/lib.sh"
t_setup xfr "$1"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS="/usr/bin/python3 $here/delivery_tools.py"
PY=/usr/bin/python3
NEXT=198.18.100.1
N=${TRANSFER_N:-1000}
M=${TRANSFER_M:-400}
WINDOW=10
PIDS=()
BOXPID=(0 0 0)
cleanup() {
	local p
	for p in "${PIDS[@]}" "${BOXPID[@]}"; do
		[ "$p" != 0 ] && { kill -KILL "$p"; wait "$p"; } 2>/dev/null
	done
	if [ "${T_FAIL:-0}" -ne 0 ]; then
		for p in 1 2; do echo "--- box $p ---"; tail -n 20 "$T_DIR/box$p.log"; done
	fi
	t_teardown
}
trap cleanup EXIT
ns() { ip netns exec "$T_NS" "$@"; }
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }
ctl() { local i=$1; shift; "$T_CTL" -s "$T_DIR/ctl$i.sock" "$@"; }
bstat() { local T_SOCK=$T_DIR/ctl$1.sock; stat "$2"; }
ge() { local v; v=$(bstat "$1" "$2") && [ "$v" -ge "$3" ]; }
is() { local v; v=$(bstat "$1" "$2") && [ "$v" -eq "$3" ]; }
listening() { ns ss -ltn | grep -q " $1:$2 "; }
sink_lines() { [ -f "$1/msgs.log" ] && wc -l <"$1/msgs.log" || echo 0; }
at_least() { [ "$(sink_lines "$1")" -ge "$2" ]; }
# qjson I ARGS...: sluicectl --json of box I, one value by a Python
# expression on `r` (the result): qjson 1 'r["messages"]' queue stat
qjson() {
	local i=$1 expr=$2; shift 2
	ctl "$i" --json "$@" 2>/dev/null | $PY -c "import json,sys; r=json.load(sys.stdin); print($expr)" 2>/dev/null
}
queued() { qjson "$1" 'r["messages"]' queue stat; }
queue_is() { [ "$(queued "$1")" = "$2" ]; }

box_conf() {
	local i=$1
	cat >"$T_DIR/box$i.conf" <<CONF
[eal]
vdev = net_tap0,iface=sx$i$(( $$ % 100000 ))
file_prefix = slx$i$$
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
routes_file = $T_DIR/routes$i
[dest]
initial_concurrency = $WINDOW
concurrency_limit = $WINDOW
[retry]
min_backoff = 600s
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
	sluice_tap_wait "$T_NS" "sx$i$(( $$ % 100000 ))" "198.18.$i.1/24" &&
		sluice_ctl_wait "$T_DIR/ctl$i.sock" "$T_CTL" "${BOXPID[$i]}"
}
# send N FIRST LOG: N messages into box A to u<FIRST+k>@xfer.test (smtplib, 8
# sessions); LOG gets "ID SHA RCPT" per message A took
send() {
	ns $PY - "$1" "$2" "$3" <<'PY'
import smtplib, sys, threading
n, first, log = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], 'a', buffering=1)
it, lock, errs = iter(range(first, first + n)), threading.Lock(), []
def work():
    try:
        s = smtplib.SMTP('198.18.1.2', 25, timeout=60)
        s.ehlo('sender.test')
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                break
            r = 'u%d@xfer.test' % i
            body = ('From: <s@example.org>\r\nTo: <%s>\r\nSubject: transfer %d\r\n'
                    'Message-Id: <xfer.%d@sender.test>\r\n\r\nbody of %d\r\n' % (r, i, i, i))
            s.sendmail('s@example.org', [r], body.encode())
            with lock:
                log.write('%s\n' % r)
        s.quit()
    except Exception as e:
        errs.append(str(e))
th = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in th]
[t.join() for t in th]
sys.exit(1 if errs else 0)
PY
}
# sample I RCPT: "arrival expiry attempts due last_error" of the message to
# RCPT in box I's queue (queue list by recipient, then queue show)
sample() {
	local id
	id=$(qjson "$1" '[m["id"] for m in r["messages"] if any(x["addr"] == "'"$2"'" for x in m["recipients"])][0]' \
		queue list --rcpt "$2") || return 1
	[ -n "$id" ] || return 1
	qjson "$1" '"%d %d %d %d %s" % (r["arrival"], r["expiry"], r["attempts"], r["due"], r["last_error"].replace(" ", "_"))' \
		queue show "$id"
}
# arrivals SINKDIR SENT: "MISSING DUPLICATES EXTRA" by recipient, and by
# Message-Id, of the messages logged in SENT at the sink
arrivals() {
	$PY - "$1/msgs.log" "$2" <<'PY'
import collections, json, re, sys
want = [l.strip() for l in open(sys.argv[2]) if l.strip()]
by_r, by_m = collections.Counter(), collections.Counter()
for l in open(sys.argv[1]):
    r = json.loads(l)
    for a in r['rcpts']:
        by_r[a] += 1
    by_m[r['mid']] += 1
w = set(want)
mids = {'<xfer.%s@sender.test>' % re.match(r'u(\d+)@', a).group(1) for a in want}
miss = sum(1 for a in w if by_r[a] == 0) + sum(1 for m in mids if by_m[m] == 0)
dup = sum(by_r[a] - 1 for a in w if by_r[a] > 1)
dupm = sum(by_m[m] - 1 for m in mids if by_m[m] > 1)
extra = sum(c for a, c in by_r.items() if a not in w)
print(miss, max(dup, dupm), extra)
PY
}

# --- setup ---------------------------------------------------------------------
phase "setup: next hops, boxes A and B"
ns ip addr add $NEXT/32 dev lo
ns sysctl -qw net.ipv4.ip_forward=1
printf 'xfer.test [%s]:2701\n' $NEXT >"$T_DIR/routes1"
printf 'xfer.test [%s]:2702\n' $NEXT >"$T_DIR/routes2"
ns $TOOLS sink 0.0.0.0 2701 "$T_DIR/tempfail" --code 451 >"$T_DIR/tempfail.out" 2>&1 &
PIDS+=($!)
ns $TOOLS sink 0.0.0.0 2702 "$T_DIR/sink" >"$T_DIR/sink.out" 2>&1 &
PIDS+=($!)
check "next hops listen" wait_for 20 eval 'listening 0.0.0.0 2701 && listening 0.0.0.0 2702'
for i in 1 2; do box_conf $i; check "box $i starts" box_start $i; done
if [ "$T_FAIL" -ne 0 ]; then finish; exit 1; fi

# --- 1. A holds N messages, tried once ----------------------------------------------
phase "1: $N messages into A, each deferred once"
check "A takes $N messages" send "$N" 0 "$T_DIR/sent1.log"
check "A tried each once (sched.rcpt_deferred >= $N)" wait_for 60 ge 1 sched.rcpt_deferred "$N"
check "and they wait in A's queue ($N)" wait_for 20 queue_is 1 "$N"
check "B suspends xfer.test (its delivery waits for the checks)" ctl 2 suspend xfer.test
HELD=u3@xfer.test
hid=$(qjson 1 '[m["id"] for m in r["messages"] if any(x["addr"] == "'$HELD'" for x in m["recipients"])][0]' \
	queue list --rcpt $HELD)
check "the operator holds one ($HELD: $hid)" ctl 1 hold "$hid"
SAMPLES="u1@xfer.test u$((N / 2))@xfer.test u$((N - 1))@xfer.test"
declare -A before
for r in $SAMPLES; do before[$r]=$(sample 1 "$r"); echo "    A: $r: ${before[$r]}"; done

# --- 2. the transfer -------------------------------------------------------------------
phase "2: drain A, transfer to B"
out=$(ctl 1 transfer --to 198.18.2.2 2>&1); st=$?
check "transfer refused while A is not drained (exit $st: $out)" \
	sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'not drained'"
check "sluicectl drain A" ctl 1 drain
out=$(ctl 1 transfer --to box2.test 2>&1); st=$?
check "a name is refused: boxes by their address (exit $st: $out)" \
	sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'not an IP address'"
out=$(ctl 1 transfer --to 198.18.1.2:2525 2>&1); st=$?
check "A's own address is refused (exit $st: $out)" \
	sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'this box itself'"
out=$(ctl 1 transfer --to 198.18.2.2:0 2>&1); st=$?
check "port 0 is refused (exit $st: $out)" \
	sh -c "[ $st -ne 0 ] && printf '%s' '$out' | grep -q 'not a port'"
ts=$(date +%s.%N)
out=$(ctl 1 transfer --to 198.18.2.2:25 2>&1); st=$?
check "transfer --to 198.18.2.2:25 (exit $st: $out)" test $st -eq 0
check "a second one is refused while it is on" sh -c "! '$T_CTL' -s '$T_DIR/ctl1.sock' transfer --to 198.18.2.2 >/dev/null 2>&1"
check "A moves all but the held one (sched.xfer_moved = $((N - 1)))" \
	wait_for 90 ge 1 sched.xfer_moved $((N - 1))
te=$(date +%s.%N)
rate=$(awk "BEGIN {printf \"%.0f\", ($N - 1) / ($te - $ts)}")
echo "    transferred $((N - 1)) messages in $(awk "BEGIN {printf \"%.1f\", $te - $ts}") s: $rate messages/s"
check "A's queue: the held one is left" wait_for 20 queue_is 1 1
check "B's queue: $((N - 1))" wait_for 20 queue_is 2 $((N - 1))
status=$(qjson 1 '"%s %d %d %d" % (r["transfer"]["to"], r["transfer"]["moved"], r["transfer"]["left"], r["transfer"]["failed"])' transfer status)
check "transfer status: to, moved, left ($status)" test "${status% *}" = "[198.18.2.2]:25 $((N - 1)) 1"
check "B took them with XSLUICE (smtp.xsluice >= $((N - 1)))" ge 2 smtp.xsluice $((N - 1))
check "nothing counted delivered on A (sched.rcpt_sent = 0)" is 1 sched.rcpt_sent 0
check "A logged status=transferred to=[198.18.2.2]:25" \
	grep -q "status=transferred to=\[198.18.2.2\]:25 (" "$T_DIR/box1.log"
check "and no DSN: A made none (sched.dsn_reports = 0)" is 1 sched.dsn_reports 0

# --- 3. B kept the history ---------------------------------------------------------------
phase "3: B's records"
now=$(date +%s)
for r in $SAMPLES; do
	b=$(sample 2 "$r")
	echo "    B: $r: $b"
	read -r aa ae at ad ax <<<"${before[$r]}"
	read -r ba be bt bd bx <<<"$b"
	check "$r: B kept A's arrival ($aa) and expiry ($ae)" \
		test "$ba $be" = "$aa $ae"
	check "$r: and its attempts ($at, >= 1) and last error" \
		sh -c "[ '$bt' = '$at' ] && [ '$at' -ge 1 ] && [ '$bx' = '$ax' ] && printf '%s' '$bx' | grep -q 451"
	check "$r: due at A's next try ($ad, in the future: $now), not at once" \
		sh -c "[ '$bd' = '$ad' ] && [ '$bd' -gt '$now' ]"
done

# --- 4. --include-held -----------------------------------------------------------------
phase "4: the held one, with --include-held"
check "transfer --cancel" ctl 1 transfer --cancel
check "transfer --to 198.18.2.2 --include-held" ctl 1 transfer --to 198.18.2.2 --include-held
check "A's queue is empty" wait_for 30 queue_is 1 0
check "B's queue: $N" wait_for 20 queue_is 2 "$N"

# --- 5. B delivers -------------------------------------------------------------------------
phase "5: B delivers"
check "B resumes xfer.test" ctl 2 resume xfer.test
check "$N arrive at the sink" wait_for 90 at_least "$T_DIR/sink" "$N"
check "B's queue empties" wait_for 30 queue_is 2 0
a=$(arrivals "$T_DIR/sink" "$T_DIR/sent1.log")
echo "    missing, duplicates, others: $a"
check "every message exactly once, by recipient and Message-Id ($a)" test "$a" = "0 0 0"

# --- 6. interrupted --------------------------------------------------------------------------
phase "6: kill -9 A in the middle of a transfer"
check "transfer --cancel, undrain A" sh -c "'$T_CTL' -s '$T_DIR/ctl1.sock' transfer --cancel >/dev/null && '$T_CTL' -s '$T_DIR/ctl1.sock' undrain >/dev/null"
check "the cancel removed the transfer's state file" test ! -e "$T_DIR/spool1/transfer"
check "B suspends xfer.test again" ctl 2 suspend xfer.test
# A's transfers to B at 200/s from now on (and after the restart: the
# file), so the kill lands in the middle of one on any machine
sed -i "s|^concurrency_limit = .*|&\nper_domain = 198.18.2.2: message_rate=200/s|" "$T_DIR/box1.conf"
check "A reloads with a rate to B" ctl 1 reload
d0=$(bstat 1 sched.rcpt_deferred)
check "A takes $M more" send "$M" "$N" "$T_DIR/sent2.log"
check "each deferred once" wait_for 60 ge 1 sched.rcpt_deferred $((d0 + M))
check "drain A" ctl 1 drain
m0=$(bstat 1 sched.xfer_moved)
check "transfer to B" ctl 1 transfer --to 198.18.2.2
check "... recorded in the queue dir: $(cat "$T_DIR/spool1/transfer" 2>&1)" \
	grep -qx "198.18.2.2 25 unheld" "$T_DIR/spool1/transfer"
check "some moved" wait_for 60 ge 1 sched.xfer_moved $((m0 + 20))
kill -KILL "${BOXPID[1]}"; wait "${BOXPID[1]}" 2>/dev/null; BOXPID[1]=0
onb=$(queued 2)
echo "    killed A: B holds $onb of $M"
check "A restarts" box_start 1
left=$(queued 1)
echo "    A's queue after the restart: $left"
check "B had part, not all ($onb < $M)" test "$onb" -lt "$M"
# The drain and the transfer survive the restart (files in the queue dir).
st_json=$(ctl 1 --json status 2>&1)
check "the restarted box is still drained ($st_json)" \
	/usr/bin/python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["status"]["draining"] is True else 1)' "$st_json"
xf_json=$(ctl 1 --json transfer 2>&1)
check "the transfer goes on after the restart, without a new command ($xf_json)" \
	/usr/bin/python3 -c 'import json, sys; t = json.loads(sys.argv[1])["transfer"]; sys.exit(0 if t["active"] is True and t["to"] == "[198.18.2.2]:25" else 1)' "$xf_json"
check "... and says so in the log" grep -q "transfer: the one to 198.18.2.2 port 25 was on when this box stopped" "$T_DIR/box1.log"
check "A's queue empties" wait_for 60 queue_is 1 0
onb=$(queued 2)
dups=$((onb - M))
echo "    B holds $onb: $dups duplicate(s) (250 from B, A killed before its commit)"
check "nothing lost on the way to B ($onb >= $M)" test "$onb" -ge "$M"
check "duplicates within the at-least-once window ($dups <= 2 x $WINDOW)" \
	test "$dups" -le $((2 * WINDOW))
check "B resumes" ctl 2 resume xfer.test
check "all arrive" wait_for 90 at_least "$T_DIR/sink" $((N + M))
check "B's queue empties" wait_for 30 queue_is 2 0
a=$(arrivals "$T_DIR/sink" "$T_DIR/sent2.log")
echo "    missing, duplicates, others (the second batch and the first's): $a"
read -r miss dup other <<<"$a"
check "none lost ($miss missing)" test "$miss" -eq 0
check "the duplicates at the sink are B's extra ones ($dup = $dups)" test "$dup" -eq "$dups"
finish
