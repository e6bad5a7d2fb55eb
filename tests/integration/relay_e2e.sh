#!/usr/bin/env bash
# relay_e2e.sh BUILD_DIR - sluiced as a relay under volume, measured at the
# next hops: real clients send over net_tap, aiosmtpd sinks in the test's
# namespace (delivery_tools.py sink) record every message they take with its
# digests and arrival time.
#
#  1. volume (issue 11, acceptance 1): smtp-source (10,000 messages over 100
#     sessions), smtplib (messages to three domains at once, each domain a
#     next hop of its own) and swaks; every message answered 250 arrives
#     exactly once per recipient domain, byte for byte behind our Received:
#     field (smtp-source's with Date and Message-Id aside, against one it
#     sent to a sink directly); the scheduler drains and the spool is empty
#     (queue-dump). Prints the deliveries per second.
#  2. fairness and limits (acceptance 3): a slow next hop (0.5 s per
#     message, concurrency_limit 4) with a backlog of 10,000 and a fast one
#     with 100 queued after it: the fast one's arrive within seconds while
#     the slow one is far from done; the slow one never sees more than 4
#     sessions at once; a destination limited to message_rate = 10/s takes
#     10/s within 10% in every 30 s window. A clean stop with the backlog
#     queued: every slow message either arrived once or is still in the
#     spool, never both.
#  3. kill -9 while relaying (acceptance 5): 32 sessions of
#     smtp_clients.py record (logging every 250 with the message's digest)
#     while sluiced relays to a sink; SIGKILL, restart on the same spool,
#     five rounds, then a drain: every message answered 250 arrived at least
#     once, byte for byte; the ones that arrived twice are counted per round.
#  4. ETRN (RFC 1985): mail for a destination whose next hop refused (dead,
#     retry in an hour) arrives at once after "ETRN domain" (250) from
#     mynetworks, once the next hop is up; from outside mynetworks ETRN gets
#     459 and starts nothing.
#
# Every check waits for its condition with a generous bound. Under the
# sanitizers (SANITIZED=1) the volumes and windows shrink.
set -u
. "$(dirname "$0")/lib.sh"
t_setup rly "$1"
. "$(dirname "$0")/relay_lib.sh"
PY="/usr/bin/python3 $here/smtp_clients.py"

if [ "${SANITIZED:-0}" = 1 ]; then
	SRC_MSGS=1000 SRC_SESS=20 PY_MSGS=50 PY_CONC=5
	SLOW_MSGS=1000 RATE_MSGS=130 RATE_WIN=10
	KILL_ACK=100 KILL_DLV=30
else
	SRC_MSGS=10000 SRC_SESS=100 PY_MSGS=300 PY_CONC=10
	SLOW_MSGS=10000 RATE_MSGS=240 RATE_WIN=20
	KILL_ACK=400 KILL_DLV=150
fi
FAST_MSGS=100 FAST_BOUND=15 SLOW_LIMIT=4 KILL_ROUNDS=5 KILL_SESS=32

# now: epoch seconds with fractions (the sinks' clock)
now() { date +%s.%N; }
# at_least DIR N: the sink in DIR kept N messages or more
at_least() { [ "$(sink_lines "$1")" -ge "$2" ]; }
stop_sinks() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; PIDS=(); }

# --- 1. volume ---------------------------------------------------------------------
phase "1: volume"
K3=198.18.0.3
cat >"$T_DIR/routes" <<ROUTES
a.test        [$KERN]
b.test        [$KERN]:2526
c.test        [$K3]
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes"
check "sluiced starts" t_start
ns ip addr add $K3/24 dev "$T_IF"
check "sink a.test on $KERN:25" start_sink a 25
check "sink b.test on $KERN:2526" start_sink b 2526
check "sink c.test on $K3:25" start_sink c 25 --addr $K3
# what smtp-source sends, straight to a sink of its own (no relay between)
check "sink for smtp-source's template on $KERN:2599" start_sink tmpl 2599
ns smtp-source -m 1 -l 4096 -f src@example.org -t to@a.test $KERN:2599 >/dev/null 2>&1
check "smtp-source's message captured directly" wait_for 20 at_least "$T_DIR/tmpl" 1
: >"$SENT"

ts=$(now); s0=$SECONDS
SW_TO=x@a.test
check "swaks: a message" sw plain
check "swaks --pipeline" sw piped --pipeline
check "swaks --tls (STARTTLS inbound)" sw tlsin --tls
unset SW_TO
ns $TOOLS send $HOST "$PY_MSGS" "$PY_CONC" a.test,b.test,c.test "$SENT" >"$T_DIR/py.out" 2>&1 &
py=$!
ns timeout 600 smtp-source -s $SRC_SESS -m $SRC_MSGS -l 4096 -f src@example.org \
	-t to@a.test $HOST:25 >"$T_DIR/source.out" 2>&1; st=$?
check "smtp-source: $SRC_MSGS messages over $SRC_SESS sessions (exit $st, $((SECONDS - s0)) s)" \
	test $st -eq 0
wait $py; st=$?
check "smtplib alongside, to three domains: $(cat "$T_DIR/py.out")" test $st -eq 0
in_s=$((SECONDS - s0))
accepted=$(counter smtp.messages)
want=$(( 3 + PY_MSGS * 3 + SRC_MSGS ))
all_in() { [ $(( $(sink_lines "$T_DIR/a") + $(sink_lines "$T_DIR/b") +
		 $(sink_lines "$T_DIR/c") )) -ge "$want" ]; }
check "all $want deliveries arrived at the three sinks" wait_for 300 all_in
check "the scheduler is drained (nothing active, queued or lent)" wait_for 60 drained
logged=$(wc -l <"$SENT")
check "sluiced answered 250 to $accepted messages: the $logged logged and smtp-source's $SRC_MSGS" \
	test "$accepted" -eq $((logged + SRC_MSGS))
cat "$T_DIR/a/msgs.log" "$T_DIR/b/msgs.log" "$T_DIR/c/msgs.log" >"$T_DIR/all.log"
out=$($TOOLS check "$SENT" "$T_DIR/all.log" src@example.org 2>&1); st=$?
check "swaks and smtplib: exactly once per domain, byte for byte: $out" test $st -eq 0
out=$($TOOLS source-check "$T_DIR/a/msgs.log" src@example.org "$T_DIR/tmpl/msgs.log" \
	$SRC_MSGS 2>&1); st=$?
check "smtp-source: $out" test $st -eq 0
got=$(cat "$T_DIR/all.log" | wc -l)
check "no arrival beyond the $want expected ($got)" test "$got" -eq "$want"
/usr/bin/python3 - "$T_DIR/all.log" "$ts" "$in_s" <<'PY'
import json, sys
t = sorted(json.loads(l)['t'] for l in open(sys.argv[1]))
t0 = float(sys.argv[2])
print('#   %d deliveries: the last %.1f s after the first send (intake took %s s); '
      '%.0f/s from the first send, %.0f/s between the first and last arrival'
      % (len(t), t[-1] - t0, sys.argv[3], len(t) / (t[-1] - t0), (len(t) - 1) / (t[-1] - t[0])))
PY
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the spool is empty ($n messages, exit $st)" test "$st" -eq 0 -a "$n" = 0
stop_sinks
rm -rf "$T_DIR/spool"

# --- 2. fairness and limits ----------------------------------------------------------
phase "2: fairness and limits"
KS=198.18.0.3 KF=198.18.0.4 KR=198.18.0.5
cat >"$T_DIR/routes" <<ROUTES
slow.test     [$KS]
fast.test     [$KF]
rate.test     [$KR]
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes
[dest]
per_domain = $KS: initial_concurrency=2, concurrency_limit=$SLOW_LIMIT; $KR: message_rate=10/s burst 1"
check "sluiced starts" t_start
for a in $KS $KF $KR; do ns ip addr add $a/24 dev "$T_IF"; done
check "a slow next hop (0.5 s per message) on $KS" start_sink slow 25 --addr $KS --delay 0.5
check "a fast next hop on $KF" start_sink fast 25 --addr $KF
check "a next hop for the rate-limited destination on $KR" start_sink rate 25 --addr $KR
s0=$SECONDS
ns timeout 600 smtp-source -s 50 -m $SLOW_MSGS -l 1024 -f s@example.org -t s@slow.test \
	$HOST:25 >"$T_DIR/slow.src" 2>&1; st=$?
check "a backlog of $SLOW_MSGS for slow.test queued (exit $st, $((SECONDS - s0)) s)" test $st -eq 0
FSENT=$T_DIR/fast.sent
: >"$FSENT"
tf=$(now)
out=$(ns $TOOLS send $HOST $FAST_MSGS 10 fast.test "$FSENT" 2>&1); st=$?
tq=$(now)
check "then $FAST_MSGS for fast.test: $out" test $st -eq 0
check "fast.test's $FAST_MSGS arrived" wait_for 120 at_least "$T_DIR/fast" $FAST_MSGS
slow_then=$(sink_lines "$T_DIR/slow")
lat=$($TOOLS latency "$T_DIR/fast/msgs.log" "$tf" $FAST_MSGS)
lat_q=$($TOOLS latency "$T_DIR/fast/msgs.log" "$tq" $FAST_MSGS)
echo "#   fast.test: the ${FAST_MSGS}th arrived $lat s after the first was sent ($lat_q s after the last 250); slow.test had $slow_then of $SLOW_MSGS"
check "  ... within $FAST_BOUND s of the first send ($lat s)" \
	awk -v l="$lat" -v b=$FAST_BOUND 'BEGIN { exit !(l != "" && l + 0 <= b) }'
check "  ... while slow.test is far from done ($slow_then of $SLOW_MSGS)" \
	test "$slow_then" -lt $((SLOW_MSGS / 2))
out=$($TOOLS check "$FSENT" "$T_DIR/fast/msgs.log" 2>&1); st=$?
check "fast.test: once each, byte for byte: $out" test $st -eq 0
# the rate limit, measured while the slow destination goes on
ns smtp-source -s 5 -m $RATE_MSGS -l 1024 -f r@example.org -t r@rate.test $HOST:25 \
	>"$T_DIR/rate.src" 2>&1; st=$?
check "$RATE_MSGS messages queued for rate.test (10/s)" test $st -eq 0
check "rate.test: all $RATE_MSGS arrived" wait_for $((RATE_MSGS / 10 + 60)) at_least "$T_DIR/rate" $RATE_MSGS
out=$($TOOLS rate "$T_DIR/rate/msgs.log" 10 $RATE_WIN 0.1 2>&1); st=$?
check "message_rate 10/s at the sink: $out" test $st -eq 0
conc=$($TOOLS concurrency "$T_DIR/slow/conns.log")
check "slow.test's next hop never saw more than $SLOW_LIMIT sessions at once (at most $conc)" \
	test "$conc" -ge 1 -a "$conc" -le $SLOW_LIMIT
check "  ... and the window grew from 2 to the limit ($conc)" test "$conc" -eq $SLOW_LIMIT
"$T_CTL" -s "$T_SOCK" --json dest show 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for d in json.load(sys.stdin)["dests"]:
    c = d["classes"]["normal"]
    print("#   dest %s: queued %d, in flight %d, window %d of %d, %d started, rate %s" % (
          d["name"], d["queued"], d["in_flight"], c["window"], c["limit"], c["started"],
          c["message_rate"]))' || echo "#   (dest show failed)"
t_stop; st=$?
check "clean stop with the backlog queued (exit $st)" test $st -eq 0
"$QD" -n 4 "$T_DIR/spool" >"$T_DIR/left.dump" 2>"$T_DIR/qd.err"; st=$?
check "queue-dump reads the spool (exit $st)" test $st -eq 0 -a -s "$T_DIR/left.dump"
cut -d' ' -f1 "$T_DIR/left.dump" | sort >"$T_DIR/left.ids"
grep -o '"qid": "[^"]*"' "$T_DIR/slow/msgs.log" | cut -d'"' -f4 | sort >"$T_DIR/slow.ids"
left=$(wc -l <"$T_DIR/left.ids"); arrived=$(wc -l <"$T_DIR/slow.ids")
uarr=$(sort -u "$T_DIR/slow.ids" | wc -l); both=$(comm -12 "$T_DIR/left.ids" "$T_DIR/slow.ids" | wc -l)
check "slow.test: $arrived arrived ($uarr distinct) + $left still queued = $SLOW_MSGS, none both ($both)" \
	test "$arrived" -eq "$uarr" -a $((arrived + left)) -eq $SLOW_MSGS -a "$both" -eq 0
stop_sinks
rm -rf "$T_DIR/spool"

# --- 3. kill -9 while relaying -----------------------------------------------------
phase "3: kill -9 while relaying"
cat >"$T_DIR/routes" <<ROUTES
.example.net  [$KERN]:2530
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes"
KLOG=$T_DIR/kill.sent
: >"$KLOG"
# restarts: when sluiced was up again after each kill (two copies of a
# message must have one between them). The client gives up 3 s after a
# kill (--op-timeout), before the restart: what the dead daemon sent and
# the sink took late is recorded before the next one is up.
restarts=()
rc=0
for r in $(seq 1 $KILL_ROUNDS); do
	if ! t_start; then fail "round $r: sluiced starts on the spool"; rc=1; break; fi
	[ "$r" -gt 1 ] && restarts+=("$(now)")
	if [ "$r" -eq 1 ]; then	# (it listens across restarts: its address comes back with each tap)
		check "a sink for .example.net on $KERN:2530" start_sink ks 2530
	fi
	a0=$(wc -l <"$KLOG"); d0=$(sink_lines "$T_DIR/ks")
	ns $PY --log "$KLOG" --op-timeout 3 record 1000000 $KILL_SESS >"$T_DIR/rec$r.out" 2>&1 &
	rec=$!
	loaded() { [ $(($(wc -l <"$KLOG") - a0)) -ge $KILL_ACK ] &&
		   [ $(($(sink_lines "$T_DIR/ks") - d0)) -ge $KILL_DLV ]; }
	if ! wait_for 120 loaded; then
		fail "round $r: $KILL_ACK answered 250 and $KILL_DLV relayed under load"
		rc=1
	fi
	kill -KILL "$T_PID"; wait "$T_PID" 2>/dev/null; T_PID=
	wait $rec; st=$?
	echo "#   round $r: SIGKILL after $(($(wc -l <"$KLOG") - a0)) 250s and $(($(sink_lines "$T_DIR/ks") - d0)) arrivals; client: $(cat "$T_DIR/rec$r.out")"
	[ $st -eq 1 ] && { fail "round $r: the recording client saw an unexpected reply"; rc=1; }
done
check "$KILL_ROUNDS rounds of SIGKILL under $KILL_SESS-session load" test $rc -eq 0
check "sluiced starts on the spool once more, to drain it" t_start
restarts+=("$(now)")
acked=$(wc -l <"$KLOG")
kills_ok() { $TOOLS kills "$KLOG" "$T_DIR/ks/msgs.log" "${restarts[@]}" >/dev/null 2>&1; }
check "every one of the $acked messages answered 250 reached the sink" wait_for 180 kills_ok
check "the scheduler is drained" wait_for 60 drained
out=$($TOOLS kills "$KLOG" "$T_DIR/ks/msgs.log" "${restarts[@]}" 2>&1); st=$?
check "at least once, byte for byte: $out" test $st -eq 0
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the spool is empty ($n messages, exit $st)" test "$st" -eq 0 -a "$n" = 0
stop_sinks
rm -rf "$T_DIR/spool"

# --- 4. ETRN -------------------------------------------------------------------------
phase "4: ETRN"
OUT=198.18.0.200
cat >"$T_DIR/routes" <<ROUTES
etrn.test     [$KERN]:2540
ROUTES
t_conf "[smtp]
hostname = sluice.test
mynetworks = $KERN/32
[routes]
routes_file = $T_DIR/routes
[retry]
schedule = 1h
min_backoff = 3600s
max_backoff = 3600s"
check "sluiced starts (retry and backoff: an hour)" t_start
ns ip addr add $OUT/24 dev "$T_IF"
ESENT=$T_DIR/etrn.sent
: >"$ESENT"
out=$(ns $TOOLS send $HOST 5 1 etrn.test "$ESENT" 2>&1); st=$?
check "5 messages queued for etrn.test, whose next hop refuses: $out" test $st -eq 0
deferred5() { [ "$(grep -c 'to=<u[0-9]*@etrn.test>.*status=deferred' "$T_LOG")" -ge 5 ]; }
check "all 5 deferred" wait_for 60 deferred5
dead() {
	"$T_CTL" -s "$T_SOCK" --json dest show "[$KERN]:2540" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["dests"][0]
sys.exit(0 if d["dead"] and d["dead_for"] > 0 else 1)'
}
check "the destination is dead (backed off for the hour)" dead
check "the next hop comes up on $KERN:2540" start_sink etrn 2540
out=$(ns $TOOLS etrn $HOST etrn.test $OUT 2>&1)
check "ETRN etrn.test from $OUT (outside mynetworks): $out" sh -c "echo '$out' | grep -q '^459 '"
rej=$(counter smtp.rej_etrn)
check "  ... counted (smtp.rej_etrn $rej)" test "$rej" -ge 1
sleep 2	# (a refusal must start nothing: give a wrong flush time to show)
n=$(sink_lines "$T_DIR/etrn")
check "  ... and started nothing: $n arrived" test "$n" -eq 0
te=$(now)
out=$(ns $TOOLS etrn $HOST etrn.test 2>&1)
check "ETRN etrn.test from $KERN (mynetworks): $out" sh -c "echo '$out' | grep -q '^250 '"
check "the 5 arrived" wait_for 60 at_least "$T_DIR/etrn" 5
lat=$($TOOLS latency "$T_DIR/etrn/msgs.log" "$te" 5)
echo "#   ETRN: the 5th arrived $lat s after ETRN (the retry was due in an hour)"
check "  ... within 10 s of ETRN ($lat s)" awk -v l="$lat" 'BEGIN { exit !(l != "" && l + 0 <= 10) }'
check "the scheduler is drained" wait_for 30 drained
out=$($TOOLS check "$ESENT" "$T_DIR/etrn/msgs.log" 2>&1); st=$?
check "once each, byte for byte: $out" test $st -eq 0
grep -q "ETRN etrn.test: [1-9][0-9]* message(s) made due" "$T_LOG"
check "the log says what ETRN made due" test $? -eq 0
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the spool is empty ($n messages, exit $st)" test "$st" -eq 0 -a "$n" = 0

phase "done"
finish
