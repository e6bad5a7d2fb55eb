#!/usr/bin/env bash
# delivery_e2e.sh BUILD_DIR - sluiced relays: mail taken in over net_tap
# leaves again through the scheduler and the worker lcores' SMTP clients to
# next hops in the test's namespace, and the queue empties.
#
#  1. relaying: an aiosmtpd next hop (delivery_tools.py sink) on
#     198.18.0.1:25 keeps every message; sink.test is routed through DNS
#     (dnsmasq, dns_zone.sh: MX 10 sink.test, A 198.18.0.1), d2.test and
#     d3.test by static routes, tls.test to a second aiosmtpd offering
#     STARTTLS (tls=may). swaks (plain, pipelined, STARTTLS inbound),
#     Python smtplib (messages to three domains at once) and smtp-source
#     send; every message arrives once per recipient domain, byte for byte
#     behind our Received: field (which names its queue ID); d3.test's
#     concurrency limit of 2 holds at the sink; the spool is empty
#     afterwards (queue-dump); the figures (messages delivered per second,
#     the sched counters) are printed.
#  2. faults, with Postfix's smtp-sink as the next hop: 4xx to RCPT
#     (deferred, retried on the [retry] schedule, the reply in the log), 5xx
#     to RCPT (bounced at once, one attempt), a port that refuses, a 421
#     greeting (both: the destination dies after a window's worth of
#     connections, the rest of its mail is deferred without one: SYNs
#     counted on the tap), a next hop that never speaks (greeting_timeout),
#     tls=encrypt to a next hop without STARTTLS (4.7.4), tls=verify to one
#     whose certificate names another host (4.7.5), a message rate limit,
#     and flush bringing a dead destination back.
#
# The volume runs (10,000 messages / 100 sessions, fairness and rates at the
# sink, kill -9 rounds, ETRN) are relay_e2e.sh's; both use relay_lib.sh's
# start_sink, drained, sw and delivery_tools.py. Under the sanitizers
# (SANITIZED=1) the volumes shrink.
set -u
. "$(dirname "$0")/lib.sh"
t_setup dlv "$1"
. "$(dirname "$0")/relay_lib.sh"

if [ "${SANITIZED:-0}" = 1 ]; then
	SRC_MSGS=300 SRC_SESS=10 PY_MSGS=30 PY_CONC=5
else
	SRC_MSGS=2000 SRC_SESS=20 PY_MSGS=150 PY_CONC=10
fi

dnsmasq_up() {
	bg bash "$here/dns_zone.sh" $KERN "$T_DIR" >>"$T_DIR/dnsmasq.out" 2>&1
	wait_for 10 sh -c "ip netns exec '$T_NS' ss -lun | grep -q '$KERN:53 '"
}

# --- 1. relaying -------------------------------------------------------------------
phase "1: relaying"
cert=$T_DIR/sink.crt key=$T_DIR/sink.key
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$key" -out "$cert" -days 2 \
	-subj /CN=tls.test >/dev/null 2>&1
K3=198.18.0.3	# d3.test's next hop: an address of its own, for its own limit
cat >"$T_DIR/routes" <<ROUTES
d2.test       [$KERN]
d3.test       [$K3]:2526
tls.test      [$KERN]:2527
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes
[dns]
servers = $KERN
[dest]
per_domain = $K3: concurrency_limit=2, initial_concurrency=2"
check "sluiced starts" t_start
ns ip addr add $K3/24 dev "$T_IF"
check "dnsmasq serves sink.test's MX in the namespace" dnsmasq_up
check "sink on $KERN:25" start_sink sink 25
check "a second sink on $K3:2526 (d3.test, limited to 2 at once)" start_sink sink3 2526 --addr $K3
check "a STARTTLS sink on $KERN:2527" start_sink sinktls 2527 --tls "$cert" "$key"
: >"$SENT"

ts=$SECONDS
check "swaks: a message to sink.test (MX through DNS)" sw plain
check "swaks --pipeline" sw piped --pipeline
check "swaks --tls (STARTTLS inbound)" sw tlsin --tls
out=$(ns $TOOLS send $HOST "$PY_MSGS" "$PY_CONC" sink.test,d2.test,d3.test "$SENT" 2>&1); st=$?
check "smtplib: $out" test $st -eq 0
out=$(ns $TOOLS send $HOST 5 1 tls.test "$SENT" 2>&1); st=$?
check "smtplib to tls.test: $out" test $st -eq 0
ns timeout 300 smtp-source -s $SRC_SESS -m $SRC_MSGS -l 4096 -c -f src@example.org \
	-t to@d2.test $HOST:25 >"$T_DIR/source.out" 2>&1; st=$?
check "smtp-source: $SRC_MSGS messages over $SRC_SESS sessions to d2.test (exit $st)" test $st -eq 0
accepted=$(counter smtp.messages)
# every domain arrives separately: a 3-domain message is 3 arrivals (2 sinks)
want=$(( 3 + PY_MSGS * 3 + 5 + SRC_MSGS ))
all_in() { [ $(( $(sink_lines "$T_DIR/sink") + $(sink_lines "$T_DIR/sink3") +
		 $(sink_lines "$T_DIR/sinktls") )) -ge "$want" ]; }
check "all $want deliveries arrived at the sinks" wait_for 180 all_in
dt=$((SECONDS - ts))
check "the scheduler is drained (nothing active, queued or lent)" wait_for 30 drained
logged=$(wc -l <"$SENT")
check "sluiced took $accepted messages: the $logged logged and smtp-source's $SRC_MSGS" \
	test "$accepted" -eq $((logged + SRC_MSGS))
cat "$T_DIR/sink/msgs.log" "$T_DIR/sink3/msgs.log" "$T_DIR/sinktls/msgs.log" >"$T_DIR/all.log"
out=$($TOOLS check "$SENT" "$T_DIR/all.log" src@example.org 2>&1); st=$?
check "byte for byte, once per domain: $out" test $st -eq 0
nsrc=$(grep -c '"from": "src@example.org"' "$T_DIR/sink/msgs.log")
uniq=$(grep '"from": "src@example.org"' "$T_DIR/sink/msgs.log" | sed 's/.*"qid": "\([^"]*\)".*/\1/' |
	sort -u | wc -l)
check "smtp-source's $SRC_MSGS messages arrived once each ($nsrc records, $uniq queue IDs)" \
	test "$nsrc" -eq "$SRC_MSGS" -a "$uniq" -eq "$SRC_MSGS"
tls=$(grep -c '"tls": true' "$T_DIR/sinktls/msgs.log")
check "tls.test: STARTTLS under may, 5 of 5 over TLS" test "$tls" -eq 5
conc=$($TOOLS concurrency "$T_DIR/sink3/conns.log")
check "d3.test's next hop never saw more than 2 sessions at once ($conc)" \
	test "$conc" -ge 1 -a "$conc" -le 2
# figures
rate=$(sed 's/.*"t": \([0-9.]*\).*/\1/' "$T_DIR/all.log" | sort -n |
	awk '{ t[NR] = $1 } END { if (NR > 1 && t[NR] > t[1]) printf "%.0f", (NR - 1) / (t[NR] - t[1]); else print "?" }')
echo "#   $want deliveries of $accepted messages in ${dt} s from the first send; at the sinks ${rate}/s"
"$T_CTL" -s "$T_SOCK" --json stats | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["stats"]
print("#   " + " ".join("%s=%s" % (k[6:], v) for k, v in s.items() if k.startswith("sched.")))
print("#   " + " ".join("%s=%s" % (k[9:], v) for k, v in s.items()
      if k.startswith("delivery.") and v))'
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the spool is empty ($n messages, exit $st)" test "$st" -eq 0 -a "$n" = 0
grep -q ': removed$' "$T_LOG" && grep -q 'status=sent (250 2.0.0 Ok: kept)' "$T_LOG"
check "the log has Postfix's lines (status=sent ..., removed)" test $? -eq 0
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
PIDS=()
rm -rf "$T_DIR/spool"

# --- 2. faults ------------------------------------------------------------------------
phase "2: faults"
cat >"$T_DIR/routes" <<ROUTES
temp.test     [$KERN]:2601
perm.test     [$KERN]:2602
refused.test  [$KERN]:2603
greet.test    [$KERN]:2604
stall.test    [$KERN]:2605
enc.test      [$KERN]:2606 tls=encrypt
rate.test     [$KERN]:2606
ver.test      [$KERN]:2607 tls=verify
ROUTES
t_conf "[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes
[retry]
schedule = 4s
min_backoff = 30s
[delivery]
greeting_timeout = 3s
tls_ca_file = $cert
[dest]
per_domain = $KERN: message_rate=10/s"
check "sluiced starts" t_start	# (its tap is the next hops' network)
bg $TOOLS syncount "$T_IF" 2603 "$T_DIR/syn2603"
bg $TOOLS syncount "$T_IF" 2604 "$T_DIR/syn2604"
sinkopts="-u nobody -h next.test"	# (as root it wants a user)
bg smtp-sink $sinkopts -r RCPT $KERN:2601 128 >"$T_DIR/sink2601.out" 2>&1
bg smtp-sink $sinkopts -f RCPT $KERN:2602 128 >"$T_DIR/sink2602.out" 2>&1
bg smtp-sink $sinkopts -Q CONNECT $KERN:2604 128 >"$T_DIR/sink2604.out" 2>&1
bg $TOOLS stall $KERN 2605 "$T_DIR/stall.count"
four_listen() { [ "$(ns ss -ltn | grep -c " $KERN:260[1245] ")" -eq 4 ]; }
check "smtp-sinks (4xx RCPT, 5xx RCPT, 421 greeting) and a silent next hop listen" \
	wait_for 20 four_listen
check "an aiosmtpd without STARTTLS on 2606" start_sink plain 2606
check "an aiosmtpd with STARTTLS (certificate for tls.test) on 2607" \
	start_sink tls2 2607 --tls "$cert" "$key"
check "the SYN counters run" wait_for 10 test -s "$T_DIR/syn2604"

# swaks to one recipient; echoes the queue ID
send1() {
	ns timeout 60 swaks --server $HOST --from f@example.org --to "$1" 2>&1 |
		sed -n 's/^<-  *250 2\.0\.0 Ok: queued as \([0-9A-HJKMNP-TV-Z]\{13\}\)\r\{0,1\}$/\1/p'
}
tq=$(send1 t@temp.test); pq=$(send1 p@perm.test); sq=$(send1 s@stall.test); eq=$(send1 e@enc.test)
vq=$(send1 v@ver.test)
check "five messages queued ($tq $pq $sq $eq $vq)" \
	test -n "$tq" -a -n "$pq" -a -n "$sq" -a -n "$eq" -a -n "$vq"
# 20 each for the refusing and the 421 next hops, in one go (smtp-source)
ns smtp-source -s 5 -m 20 -f f@example.org -t r@refused.test $HOST:25 >/dev/null 2>&1
ns smtp-source -s 5 -m 20 -f f@example.org -t g@greet.test $HOST:25 >/dev/null 2>&1
lines() { grep -c "$1" "$T_LOG"; }
has() { grep -q "$1" "$T_LOG"; }

check "5xx to RCPT: bounced at once ($pq)" \
	wait_for 20 has "$pq: to=<p@perm.test>.*status=bounced (host .* said: 500 5.3.0"
check "and removed after one attempt" wait_for 10 has "$pq: removed"
check "4xx to RCPT: deferred with the reply ($tq)" \
	wait_for 20 has "$tq: to=<t@temp.test>.*dsn=4.3.0, status=deferred (host .* said: 450 4.3.0 .*(in reply to RCPT TO command))"
check "a third attempt on the 4 s schedule" wait_for 30 sh -c "[ \$(grep -c '$tq: to=<t@temp.test>.*status=deferred' '$T_LOG') -ge 3 ]"
times=$(grep "$tq: to=<t@temp.test>.*status=deferred" "$T_LOG" | head -n 3 |
	sed 's/^[0-9-]*T\([0-9:.]*\)Z.*/\1/' | awk -F: '{ print $1 * 3600 + $2 * 60 + $3 }')
gaps=$(echo "$times" | awk 'NR > 1 { printf "%.1f ", $1 - prev } { prev = $1 }')
check "retries 4 s apart (the list schedule): gaps $gaps" \
	sh -c "echo '$gaps' | awk '{ for (i = 1; i <= NF; i++) if (\$i < 2.9 || \$i > 6.5) exit 1; exit NF != 2 }'"

# a dead destination: a window of 5 connection attempts, the rest deferred without one
check "refused: the destination died" wait_for 20 has "status=deferred (delivery temporarily suspended: .*refused"
check "421 greeting: the destination died" wait_for 20 has "status=deferred (delivery temporarily suspended: .*421"
syn3=$(cat "$T_DIR/syn2603"); syn4=$(cat "$T_DIR/syn2604")
dd=$(counter sched.dead_deferred)
check "refused: $syn3 connection attempts for 20 messages (a window of 5)" test "$syn3" -ge 1 -a "$syn3" -le 5
check "421 greeting: $syn4 connection attempts for 20 messages" test "$syn4" -ge 1 -a "$syn4" -le 5
check "the others were deferred without a connection (sched.dead_deferred $dd >= 30)" test "$dd" -ge 30
# dest_dead KEY: the destination, as `dest show` has it, is dead and says why
dest_dead() {
	"$T_CTL" -s "$T_SOCK" --json dest show "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)["dests"][0]
sys.exit(0 if d["dead"] and d["dead_for"] > 0 and "refused" in d["dead_reason"] and
         d["classes"]["normal"]["site_failures"] >= 1 else 1)'
}
check "dest show: [$KERN]:2603 is dead, with its reason" dest_dead "[$KERN]:2603"
# the backoff (min_backoff 30 s) holds: no new attempt meanwhile
sleep 3
syn3b=$(cat "$T_DIR/syn2603")
check "no connection attempt during the backoff ($syn3 -> $syn3b)" test "$syn3b" -eq "$syn3"
out=$("$T_CTL" -s "$T_SOCK" --json flush --domain refused.test 2>&1)
check "flush --domain refused.test: $out" sh -c "echo '$out' | grep -q '\"messages\":20'"
check "flush ended the backoff: a probe connection at once" \
	wait_for 10 sh -c "[ \$(cat '$T_DIR/syn2603') -gt $syn3b ]"

check "a next hop that never speaks: timed out after greeting_timeout ($sq)" \
	wait_for 20 has "$sq: to=<s@stall.test>.*status=deferred"
grep "$sq: to=<s@stall.test>" "$T_LOG" | head -n 1 | grep -qi "timed out\|timeout"
check "  ... and the reason says so" test $? -eq 0
check "tls=encrypt to a next hop without STARTTLS: deferred 4.7.4 ($eq)" \
	wait_for 20 has "$eq: to=<e@enc.test>.*dsn=4.7.4, status=deferred"

check "tls=verify to a next hop whose certificate names another host: deferred 4.7.5 ($vq)" \
	wait_for 20 has "$vq: to=<v@ver.test>.*dsn=4.7.5, status=deferred"
grep "$vq: to=<v@ver.test>" "$T_LOG" | head -n 1 | sed 's/.*status=deferred/   /'

# a rate limit: 10/s for the next hop's address
ts=$(date +%s%N)
ns smtp-source -s 5 -m 40 -f f@example.org -t r@rate.test $HOST:25 >/dev/null 2>&1
got40() { [ "$(sink_lines "$T_DIR/plain")" -ge 40 ]; }
check "40 messages to a 10/s destination arrive" wait_for 60 got40
ms=$(( ($(date +%s%N) - ts) / 1000000 ))
check "no faster than 10/s: 40 took $ms ms (>= 3900)" test "$ms" -ge 3900

"$T_CTL" -s "$T_SOCK" --json stats | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["stats"]
print("#   " + " ".join("%s=%s" % (k[6:], v) for k, v in s.items() if k.startswith("sched.") and v))'
t_stop; st=$?
check "clean stop with deferred mail in the queue (exit $st)" test $st -eq 0
n=$("$QD" -n 4 -c "$T_DIR/spool" 2>"$T_DIR/qd.err"); st=$?
check "queue-dump: the deferred mail is still queued ($n messages)" test "$st" -eq 0 -a "${n:-0}" -ge 40

phase "done"
finish
