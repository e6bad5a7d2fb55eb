#!/usr/bin/env bash
# bounce_e2e.sh BUILD_DIR - what becomes of mail that cannot be delivered,
# with the real daemon over net_tap and next hops in the test's namespace
# (delivery_tools.py sinks, relay_lib.sh). The senders' domain (snd.test)
# is routed to a sink that keeps every DSN whole, read back with Python's
# email package (delivery_tools.py dsns).
#
#  1. one recipient of three refused (the next hop answers 550 to RCPT for
#     it alone): exactly one DSN, to the sender, from the null sender,
#     naming exactly that recipient (Action failed, its Status, the sink's
#     reply as Diagnostic-Code); the other two delivered.
#  2. NOTIFY end to end: NEVER (no DSN); SUCCESS to a next hop without DSN
#     ("relayed") and to one with DSN (NOTIFY passed on, no DSN of ours);
#     RET=HDRS (headers attached) and RET=FULL (the message); DELAY (one
#     warning, after delay_warning_time, however many retries); the
#     operator's `sluicectl bounce ID --reason` (a DSN with the reason); a
#     message over hop_limit with loop_action = hold is kept held.
#  3. isolation, measured: normal mail's accept-to-delivered p99 (paced
#     messages to fast.test) without, then with 5,000 DSNs queued for a
#     slow destination (0.5 s per message); both printed; the second within
#     2x of the first. And normal mail to that slow destination itself goes
#     past its thousands of queued DSNs (its own class, window and FIFO).
#  4. kill -9 between a DSN's creation and the original's removal, five
#     rounds ([impair] notice_hold makes a DSN wait before it is queued,
#     and its original's results after it is durable: odd rounds kill in
#     the first window, even rounds in the second): every bounced
#     recipient's DSN arrives at least once; the duplicates (originals
#     tried again after a kill) are counted and printed.
#
# Every check waits for its condition with a generous bound. Under the
# sanitizers (SANITIZED=1) the volumes shrink.
set -u
. "$(dirname "$0")/lib.sh"
t_setup bnc "$1"
. "$(dirname "$0")/relay_lib.sh"

if [ "${SANITIZED:-0}" = 1 ]; then
	FLOOD=1000 PACED=100 PACE_RATE=10 KILL_MSGS=6
else
	FLOOD=5000 PACED=200 PACE_RATE=20 KILL_MSGS=10
fi
KILL_ROUNDS=5

DSNS=$T_DIR/dsn/msgs.log
# dsn_py 'PYTHON' ARGS...: run PYTHON with D = the DSNs kept so far (dicts
# of delivery_tools.py dsns) and A = ARGS; its exit status is the check's.
dsn_py() {
	local code=$1; shift
	$TOOLS dsns "$DSNS" >"$T_DIR/dsns.json" 2>"$T_DIR/dsns.err" || return 1
	/usr/bin/python3 - "$T_DIR/dsns.json" "$@" <<PY
import json, sys
D = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
A = sys.argv[2:]
$code
PY
}
# dsn_count ORIG: DSNs about queue ID ORIG
dsn_count() {
	dsn_py 'print(sum(1 for d in D if d["orig"] == A[0]))' "$1"
}
dsn_has() {	# dsn_has ORIG N: at least N DSNs about ORIG arrived
	local n; n=$(dsn_count "$1") && [ "$n" -ge "$2" ]
}
# at_least_in NAME N: the sink NAME kept N messages or more
at_least_in() { [ "$(sink_lines "$T_DIR/$1")" -ge "$2" ]; }
# at_least_rcpt N: rcpt.test's sink took N recipients or more
at_least_rcpt() {
	[ -f "$T_DIR/rcpt/msgs.log" ] && [ "$(/usr/bin/python3 -c '
import json, sys
print(sum(len(json.loads(l)["rcpts"]) for l in open(sys.argv[1])))' "$T_DIR/rcpt/msgs.log")" -ge "$1" ]
}
stop_sinks() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; PIDS=(); }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
now() { date +%s.%N; }
# logged ID TEXT: sluiced's log has a line for ID with TEXT
logged() { grep -q "^.*$1: .*$2" "$T_LOG"; }
mail() { ns $TOOLS mail $HOST "$@"; }

# --- 1. one recipient of three -------------------------------------------------------------
phase "1: one recipient of three refused"
cat >"$T_DIR/routes" <<ROUTES
rcpt.test     [$KERN]:2525
dsnhop.test   [$KERN]:2527
snd.test      [$KERN]:2526
ROUTES
t_conf "[smtp]
hostname = sluice.test
loop_action = hold
hop_limit = 5
[routes]
routes_file = $T_DIR/routes
[retry]
schedule = 2s
delay_warning_time = 3s"
check "sluiced starts" t_start
check "a next hop for rcpt.test: 550 to RCPT for bad@, 451 for busy@" \
	start_sink rcpt 2525 --rcpt-code bad=550,busy=451
check "the senders' domain snd.test: a sink keeping every DSN" start_sink dsn 2526 --keep
check "a next hop offering DSN for dsnhop.test" start_sink dsnhop 2527 --dsn

id1=$(mail s1@snd.test "good1@rcpt.test,bad@rcpt.test,good2@rcpt.test" --ret FULL --size 2000)
check "one message to good1, bad and good2 (queued as $id1)" test -n "$id1"
check "the two good recipients arrived (one transaction)" wait_for 60 at_least_rcpt 2
check "a DSN arrived at the sender's domain" wait_for 60 dsn_has "$id1" 1
check "the queue is drained" wait_for 60 drained
dsn_py '
d = [x for x in D if x["orig"] == A[0]]
assert len(d) == 1, "%d DSNs" % len(d)
d = d[0]
assert d["from"] in ("", "<>"), "envelope from %r" % d["from"]
assert d["rcpts"] == ["s1@snd.test"], d["rcpts"]
assert d["ctype"] == "multipart/report" and d["report_type"] == "delivery-status", d
r = d["recipients"]
assert [x["final"] for x in r] == ["rfc822; bad@rcpt.test"], r
assert r[0]["action"] == "failed" and r[0]["status"] == "5.1.1", r
assert r[0]["diag"] == "smtp; 550 5.1.1 <bad@rcpt.test>: no such user here", r[0]["diag"]
assert d["attached"] == "message/rfc822", d["attached"]
print("#   the DSN about %s: %s %s %s" % (A[0], r[0]["final"], r[0]["action"], r[0]["diag"]))
' "$id1"
check "exactly one DSN: to the sender, from <>, naming bad@ alone, the sink's reply as Diagnostic-Code" test $? -eq 0
rcpts=$(/usr/bin/python3 -c '
import json, sys
print(" ".join(sorted(r for l in open(sys.argv[1]) for r in json.loads(l)["rcpts"])))' \
	"$T_DIR/rcpt/msgs.log")
check "the next hop took good1 and good2, not bad ($rcpts)" \
	test "$rcpts" = "good1@rcpt.test good2@rcpt.test"

# --- 2. NOTIFY, RET, DELAY, the operator's bounce, a loop held ----------------------------
phase "2: NOTIFY, RET, delay warnings, bounce, loops"
never=$(mail s2@snd.test "bad@rcpt.test:NEVER")
rel=$(mail s3@snd.test "ok3@rcpt.test:SUCCESS")
pass=$(mail s4@snd.test "ok4@dsnhop.test:SUCCESS+FAILURE")
hdrs=$(mail s5@snd.test "bad@rcpt.test" --ret HDRS --size 20000)
full=$(mail s6@snd.test "bad@rcpt.test" --ret FULL --size 20000)
delay=$(mail s7@snd.test "busy@rcpt.test:DELAY+FAILURE")
check "six messages queued" test -n "$never" -a -n "$rel" -a -n "$pass" -a -n "$hdrs" \
	-a -n "$full" -a -n "$delay"
check "NOTIFY=SUCCESS to a hop without DSN: a DSN" wait_for 60 dsn_has "$rel" 1
wait_for 60 dsn_has "$hdrs" 1 && wait_for 60 dsn_has "$full" 1
check "RET=HDRS and RET=FULL: their DSNs arrived" test $? -eq 0
check "the NOTIFY=NEVER recipient was bounced" wait_for 60 logged "$never" "to=<bad@rcpt.test>.*status=bounced"
check "the NOTIFY=SUCCESS message reached the DSN-capable hop" wait_for 60 at_least_in dsnhop 1
nattempts() { grep -c "$delay: to=<busy@rcpt.test>.*status=deferred" "$T_LOG"; }
four() { [ "$(nattempts)" -ge 4 ]; }
check "busy@ (NOTIFY=DELAY) deferred 4 times, every 2 s" wait_for 60 four
check "its delay warning arrived" wait_for 30 dsn_has "$delay" 1
dsn_py '
def one(orig):
    d = [x for x in D if x["orig"] == orig]
    assert len(d) == 1, "%s: %d DSNs" % (orig, len(d))
    return d[0]
n, rel, pas, hdrs, full, delay = A
assert not [x for x in D if x["orig"] in (n, pas)], "NEVER / passed on: no DSN of ours"
r = one(rel)["recipients"]
assert r[0]["final"] == "rfc822; ok3@rcpt.test" and r[0]["action"] == "relayed", r
assert r[0]["status"].startswith("2."), r
assert one(hdrs)["attached"] == "text/rfc822-headers", one(hdrs)["attached"]
assert one(full)["attached"] == "message/rfc822", one(full)["attached"]
r = one(delay)["recipients"]
assert r[0]["action"] == "delayed" and r[0]["status"] == "4.2.1", r
print("#   NEVER: none; SUCCESS: %s; RET=HDRS: %s, RET=FULL: %s; DELAY: %s %s" % (
      one(rel)["recipients"][0]["action"], one(hdrs)["attached"], one(full)["attached"],
      r[0]["action"], r[0]["status"]))
' "$never" "$rel" "$pass" "$hdrs" "$full" "$delay"
check "NEVER: no DSN; SUCCESS: relayed; RET=HDRS: headers, FULL: whole; DELAY: delayed" test $? -eq 0
opts=$(/usr/bin/python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][0]
print(r["rcpt_opts"][0].get("NOTIFY", "none"), r["mail_opts"].get("RET", "-"))' \
	"$T_DIR/dsnhop/msgs.log")
check "the DSN-capable hop got NOTIFY passed on ($opts)" test "${opts%% *}" = "SUCCESS,FAILURE"
six() { [ "$(nattempts)" -ge 6 ]; }
check "busy@ deferred twice more" wait_for 60 six
check "  ... and still one delay warning (once per message)" test "$(dsn_count "$delay")" -eq 1
out=$("$T_CTL" -s "$T_SOCK" bounce "$delay" --reason "test is over" 2>&1); st=$?
check "sluicectl bounce $delay --reason: $out" test $st -eq 0
check "  ... its DSN arrived" wait_for 30 dsn_has "$delay" 2
dsn_py '
d = [x for x in D if x["orig"] == A[0] and x["recipients"][0]["action"] == "failed"]
assert len(d) == 1, d
r = d[0]["recipients"][0]
assert r["status"] == "5.0.0" and "cancelled by the operator: test is over" in r["diag"], r
' "$delay"
check "  ... failed 5.0.0, cancelled by the operator, with the reason" test $? -eq 0
out=$("$T_CTL" -s "$T_SOCK" bounce "$delay" 2>&1); st=$?
check "bounce again: refused, it is gone ($out)" test $st -ne 0
# a loop: over hop_limit (5) Received: fields, with loop_action = hold
loopmsg=$T_DIR/loop.eml
{ for i in 1 2 3 4 5 6; do printf 'Received: from h%d.example by h%d.example; Mon, 30 Nov 2026 10:00:00 +0000\r\n' $i $i; done
  printf 'Subject: looping\r\n\r\nround and round\r\n'; } >"$loopmsg"
out=$(ns swaks --server $HOST --from l@snd.test --to x@rcpt.test --data "@$loopmsg" 2>&1)
loopid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-HJKMNP-TV-Z]\{13\}\).*/\1/p' | head -1)
check "a message over hop_limit is taken (loop_action = hold): $loopid" test -n "$loopid"
check "  ... logged as held" wait_for 10 logged "$loopid" "held: over hop_limit"
check "the queue is drained but for it" wait_for 60 drained
held=$(counter smtp.held_hops)
check "  ... counted (smtp.held_hops $held)" test "$held" = 1
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
"$QD" -n 4 "$T_DIR/spool" >"$T_DIR/left.dump" 2>"$T_DIR/qd.err"
check "the held loop is still in the spool, the only message" \
	sh -c "test \$(wc -l <'$T_DIR/left.dump') -eq 1 && grep -q '^$loopid' '$T_DIR/left.dump'"
stop_sinks
rm -rf "$T_DIR/spool"

# --- 3. isolation ----------------------------------------------------------------------------
phase "3: isolation: normal mail with and without $FLOOD DSNs queued for a slow destination"
KS=198.18.0.3 KF=198.18.0.4
cat >"$T_DIR/routes" <<ROUTES
rcpt.test     [$KERN]:2525
slow.test     [$KS]
fast.test     [$KF]
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes"
check "sluiced starts" t_start
for a in $KS $KF; do ns ip addr add $a/24 dev "$T_IF"; done
check "rcpt.test's next hop refuses bad@" start_sink rcpt 2525 --rcpt-code bad=550
check "slow.test's next hop: 0.5 s per message" start_sink slow 25 --addr $KS --delay 0.5
check "fast.test's next hop" start_sink fast 25 --addr $KF
run_paced() {	# run_paced NAME: PACED messages to fast.test, their latencies
	: >"$T_DIR/$1.sent"
	ns $TOOLS paced $HOST $PACED $PACE_RATE fast.test "$T_DIR/$1.sent" >"$T_DIR/$1.out" 2>&1 ||
		return 1
	wait_for 60 at_least_in fast $(( $(lines "$T_DIR/base.sent") +
					 $(lines "$T_DIR/flood.sent") )) || return 1
	$TOOLS latencies "$T_DIR/$1.sent" "$T_DIR/fast/msgs.log"
}
base=$(run_paced base); st=$?
check "without the DSNs: $PACED messages at $PACE_RATE/s to fast.test: $base" test $st -eq 0
r0=$(counter sched.dsn_reports)
ns timeout 600 smtp-source -s 20 -m $FLOOD -l 512 -f flood@slow.test -t bad@rcpt.test \
	$HOST:25 >"$T_DIR/flood.src" 2>&1; st=$?
check "$FLOOD messages from flood@slow.test to bad@rcpt.test (exit $st)" test $st -eq 0
made() { local n; n=$(counter sched.dsn_reports) && [ "$n" -ge $((r0 + FLOOD)) ]; }
check "their $FLOOD DSNs made and queued for slow.test" wait_for 300 made
originals_gone() { local b; b=$(counter sched.rcpt_bounced) && [ "$b" -ge "$FLOOD" ]; }
check "  ... and the originals gone" wait_for 60 originals_gone
queued_before=$(( FLOOD - $(sink_lines "$T_DIR/slow") ))
flood=$(run_paced flood); st=$?
queued_after=$(( FLOOD - $(sink_lines "$T_DIR/slow") ))
check "with them: $PACED messages at $PACE_RATE/s to fast.test: $flood" test $st -eq 0
echo "#   DSNs waiting for slow.test: $queued_before before the run, $queued_after after it"
p99() { printf '%s\n' "$1" | sed -n 's/.*p99=\([0-9.]*\).*/\1/p'; }
b99=$(p99 "$base"); f99=$(p99 "$flood")
echo "#   accept-to-delivered p99: ${b99:-?} s without, ${f99:-?} s with $FLOOD DSNs queued"
check "  ... the DSNs were still queued all along ($queued_after left)" test "$queued_after" -gt 0
check "  ... p99 with the flood within 2x of without (${f99:-?} <= 2 x ${b99:-?})" \
	awk -v b="$b99" -v f="$f99" 'BEGIN { exit !(b != "" && f != "" && f + 0 <= 2 * b) }'
# and at the slow destination itself: normal mail there has its own window,
# it does not wait behind the DSNs (one FIFO per class per destination)
SSENT=$T_DIR/slow.sent
: >"$SSENT"
ts=$(now)
out=$(ns $TOOLS send $HOST 10 2 slow.test "$SSENT" 2>&1); st=$?
check "10 normal messages to slow.test behind its $queued_after DSNs: $out" test $st -eq 0
normal_in() {
	[ "$(/usr/bin/python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["from"] == "s@example.org"))' \
		"$T_DIR/slow/msgs.log")" -ge 10 ]
}
check "  ... they arrived within 30 s (0.5 s each at the sink)" wait_for 30 normal_in
left=$(( FLOOD - $(/usr/bin/python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["from"] in ("", "<>")))' "$T_DIR/slow/msgs.log") ))
echo "#   slow.test: the 10 normal messages in $(/usr/bin/python3 -c "import time; print('%.1f' % (time.time() - $ts))") s, with $left DSNs still waiting there"
check "  ... while the DSNs were still waiting ($left)" test "$left" -gt 100
"$T_CTL" -s "$T_SOCK" --json dest show "[$KS]:25" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["dests"][0]
n, t = d["classes"]["normal"], d["classes"]["notify"]
print("#   slow.test: notify class %d queued, %d in flight (window %d of %d); normal %d queued" %
      (t["queued"], t["busy"], t["window"], t["limit"], n["queued"]))' || echo "#   (dest show failed)"
t_stop; st=$?
check "clean stop with the DSNs queued (exit $st)" test $st -eq 0
stop_sinks
rm -rf "$T_DIR/spool"

# --- 4. kill -9 between a DSN and the original's removal ----------------------------------
phase "4: kill -9 between DSN creation and the original's removal"
cat >"$T_DIR/routes" <<ROUTES
rcpt.test     [$KERN]:2525
snd.test      [$KERN]:2526
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes
[impair]
notice_hold = 3s"
rm -f "$DSNS"
KLOG=$T_DIR/kill.ids
: >"$KLOG"
rc=0 before=0 after=0
for r in $(seq 1 $KILL_ROUNDS); do
	if ! t_start; then fail "round $r: sluiced starts on the spool"; rc=1; break; fi
	if [ "$r" -eq 1 ]; then
		check "rcpt.test refuses bad@" start_sink rcpt 2525 --rcpt-code bad=550
		check "snd.test keeps the DSNs" start_sink dsn 2526 --keep
	fi
	l0=$(wc -l <"$T_LOG")
	ids=()
	for i in $(seq 1 $KILL_MSGS); do
		id=$(mail "k$r.$i@snd.test" "bad@rcpt.test") && ids+=("$id") && echo "$id" >>"$KLOG"
	done
	[ ${#ids[@]} -eq $KILL_MSGS ] || { fail "round $r: $KILL_MSGS messages queued"; rc=1; }
	# odd rounds: kill once every one of them has bounced (its DSN waits the
	# hold before it is queued); even rounds: once every DSN is durable
	# (the original's results wait the hold)
	if [ $((r % 2)) -eq 1 ]; then what="status=bounced"; else what="sender non-delivery notification"; fi
	all_logged() {
		local id
		for id in "${ids[@]}"; do
			tail -n +"$l0" "$T_LOG" | grep -q "$id: .*$what" || return 1
		done
	}
	if ! wait_for 60 all_logged; then fail "round $r: every one logged '$what'"; rc=1; fi
	kill -KILL "$T_PID"; wait "$T_PID" 2>/dev/null; T_PID=
	# in the window: bounced (odd) or its DSN durable (even), not removed, in this run
	n=0 made=0
	for id in "${ids[@]}"; do
		tail -n +"$l0" "$T_LOG" | grep -q "$id: sender non-delivery notification" && made=$((made + 1))
		tail -n +"$l0" "$T_LOG" | grep -q "$id: removed" || n=$((n + 1))
	done
	if [ $((r % 2)) -eq 1 ]; then
		before=$((before + n - made))
		echo "#   round $r: SIGKILL with $((n - made)) of ${#ids[@]} bounced, their DSN not yet queued ($made made)"
	else
		after=$((after + n))
		echo "#   round $r: SIGKILL with $n of ${#ids[@]} originals between their DSN (durable) and their removal"
	fi
done
check "$KILL_ROUNDS rounds of SIGKILL" test $rc -eq 0
check "kills landed before the DSN was queued ($before originals) and after, before the original's removal ($after)" \
	test "$before" -gt 0 -a "$after" -gt 0
check "sluiced starts once more, to drain the spool" t_start
all_dsns() {
	dsn_py '
ids = [l.split()[0] for l in open(A[0]) if l.strip()]
got = {}
for d in D:
    got[d["orig"]] = got.get(d["orig"], 0) + 1
sys.exit(0 if all(got.get(i, 0) >= 1 for i in ids) else 1)' "$KLOG"
}
check "every bounced recipient's DSN arrived at least once" wait_for 180 all_dsns
check "the scheduler is drained" wait_for 60 drained
dsn_py '
ids = [l.split()[0] for l in open(A[0]) if l.strip()]
got = {}
for d in D:
    got[d["orig"]] = got.get(d["orig"], 0) + 1
    r = d["recipients"]
    assert len(r) == 1 and r[0]["final"] == "rfc822; bad@rcpt.test" and r[0]["action"] == "failed", d
missing = [i for i in ids if got.get(i, 0) == 0]
dups = sum(1 for i in ids if got.get(i, 0) > 1)
print("#   %d originals bounced over %s kill rounds: %d DSNs arrived, %d missing, %d originals with "
      "more than one (at most %d)" % (len(ids), A[1], sum(got.get(i, 0) for i in ids), len(missing),
                                       dups, max(got.values())))
sys.exit(1 if missing else 0)' "$KLOG" $KILL_ROUNDS
check "no DSN lost" test $? -eq 0
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the spool is empty ($n messages, exit $st)" test "$st" -eq 0 -a "$n" = 0

phase "done"
finish
