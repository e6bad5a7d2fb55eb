#!/usr/bin/env bash
# smtp_e2e.sh BUILD_DIR - sluiced serving SMTP over net_tap to real clients
# (swaks, Python smtplib and raw sockets, Postfix's smtp-source), every
# accepted message checked byte for byte in the LMDB spool afterwards.
#
#  1. clients: swaks plain / --pipeline / --tls; BDAT, SMTPUTF8, STARTTLS,
#     100 recipients, 20 MB, RFC 3461 ORCPTs of 500 characters (Python,
#     their recipients checked in the spool too); bad input (random bytes, NULs, long
#     lines, bare CR/LF, too many hops) while a one-byte-per-second client
#     holds a session and others complete promptly; smtp-source (100
#     sessions, 10,000 messages) next to a Python client that logs every
#     "queued as ID" with the SHA-256 of what it sent; SIGTERM gives an idle
#     session 421 4.3.2. Then queue-dump: as many messages as smtp.messages
#     said, every one accounted for and byte-exact after our Received: field.
#  2. limits and relaying: message size, body memory, recipients, sessions
#     per client and in all, the error limit, command and data timeouts;
#     open-relay probes from an address outside mynetworks, which may still
#     write to Postmaster (stored for [smtp] postmaster, checked in the
#     spool).
#  3. durability: SIGKILL under load; every acknowledged message is in the
#     spool intact; sluiced restarts on it and takes more mail.
#  4. memory: [smtp] max_sessions = 100000 on two worker lcores costs no
#     more resident memory than 1000 (slots per lcore follow [tcp]
#     max_conns and are touched only when used), and still serves mail.
#
# The spool is checked after each phase: delivery is off ([delivery]
# enabled = no), so every message stays queued (delivery_e2e.sh relays).
# swaks (20201014.0 here) has no CHUNKING/BDAT support: smtp_clients.py
# drives BDAT. Under the sanitizers (SANITIZED=1 from meson) the volumes
# shrink: that run looks for memory errors, the plain one for volume.
set -u
. "$(dirname "$0")/lib.sh"
t_setup smtp "$1"
# background clients must not outlive a failed run
trap 'kill -KILL $(jobs -p) 2>/dev/null; t_teardown' EXIT
here=$(cd "$(dirname "$0")" && pwd)
PY="/usr/bin/python3 $here/smtp_clients.py"
QD=$T_BUILD/tests/integration/queue-dump
ns() { ip netns exec "$T_NS" "$@"; }
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }

if [ "${SANITIZED:-0}" = 1 ]; then
	SRC_MSGS=2000 SRC_SESS=50 REC=500 REC_CONC=10 KILL_REC=2000
else
	SRC_MSGS=10000 SRC_SESS=100 REC=2000 REC_CONC=20 KILL_REC=4000
fi
BIG=$((20 * 1024 * 1024))
HOST=198.18.0.2

# run_py DESCRIPTION ARGS...: one smtp_clients.py run as one check.
run_py() {
	local what=$1 out st; shift
	out=$(ns $PY "$@" 2>&1); st=$?
	check "$what: $out" test $st -eq 0
}

# sw LOG NAME PROTO [swaks options...]: one swaks message whose DATA we
# wrote (swaks sends it with CRLF line ends plus one empty line), logged
# for the byte check like smtp_clients.py's. Sets SW_OUT and SW_ID.
sw() {
	local log=$1 name=$2 proto=$3 f h; shift 3
	f=$T_DIR/$name.txt
	printf 'From: <%s@example.org>\nTo: <r@example.net>\nSubject: %s %s\n\nbody of %s\n.leading dot\n..two dots\nend\n' \
		"$name" "$name" "$$.$RANDOM.$SECONDS" "$name" >"$f"
	SW_OUT=$(ns timeout 60 swaks --server $HOST --port 25 --helo swaks.test \
		--from "$name@example.org" --to r@example.net --data "@$f" "$@" 2>&1)
	SW_ID=$(printf '%s\n' "$SW_OUT" |
		sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-HJKMNP-TV-Z]\{13\}\)\r\{0,1\}$/\1/p')
	[ -n "$SW_ID" ] || { printf '%s\n' "$SW_OUT" | tail -n 8 | sed 's/^/    /'; return 1; }
	h=$({ sed 's/$/\r/' "$f"; printf '\r\n'; } | sha256sum | cut -d' ' -f1)
	echo "$SW_ID $h 1 $name@example.org $proto" >>"$log"
}

# dump NAME: queue-dump of the (stopped) spool into $T_DIR/NAME.dump, bodies
# into $T_DIR/NAME.bodies/, recipients into $T_DIR/NAME.rcpts.
dump() {
	rm -rf "$T_DIR/$1.bodies"; mkdir -p "$T_DIR/$1.bodies"
	"$QD" -n 4 -s -b "$T_DIR/$1.bodies" -r "$T_DIR/$1.rcpts" "$T_DIR/spool" \
		>"$T_DIR/$1.dump" 2>"$T_DIR/$1.err"
}

# --- 1. clients, bulk, byte-exact ------------------------------------------
phase "1: clients"
LOG1=$T_DIR/sent1.log
: >"$LOG1"
t_conf "[delivery]
enabled = no
[smtp]
hostname = sluice.test
message_size_limit = 25m"
check "sluiced starts serving SMTP" t_start

sw "$LOG1" swaks-plain ESMTP
check "swaks: 250 queued as ${SW_ID:-?}" test -n "$SW_ID"
sw "$LOG1" swaks-pipe ESMTP --pipeline; st=$?
piped=$(printf '%s\n' "$SW_OUT" | grep -A1 '^ -> MAIL FROM' | grep -c '^ -> RCPT TO')
check "swaks --pipeline: MAIL/RCPT/DATA sent as a group, 250 queued as ${SW_ID:-?}" \
	test $st -eq 0 -a "$piped" -eq 1
sw "$LOG1" swaks-tls ESMTPS --tls; st=$?
tls=$(printf '%s\n' "$SW_OUT" | grep -c '^<~ ')
check "swaks --tls (STARTTLS): 250 queued as ${SW_ID:-?} inside TLS" test $st -eq 0 -a "$tls" -gt 0

run_py "BDAT" --log "$LOG1" bdat
run_py "SMTPUTF8" --log "$LOG1" utf8
run_py "smtplib STARTTLS" --log "$LOG1" starttls
run_py "100 recipients" --log "$LOG1" rcpts 100
run_py "20 MB message" --log "$LOG1" big $BIG
run_py "RFC 3461: RCPT lines over 512 octets" --log "$LOG1" orcpt "$T_DIR/orcpt.expect"

phase "1: bad input"
# A client sending one byte per second (20 s in all) holds its session
# through the bad input and the bulk run below. Were it to hold up the
# lcore, the quick sessions would wait for it (about 19 s): half of that is
# the bound, far above a loaded machine's latency, far below a stall.
sessions_at_least() { local n; n=$(stat smtp_gauge.sessions) && [ "$n" -ge "$1" ]; }
ip netns exec "$T_NS" $PY slow >"$T_DIR/slow.out" 2>&1 &
slow=$!
check "the slow client's session is open" wait_for 20 sessions_at_least 1
out=$(ns $PY --log "$LOG1" quick 10 2>&1); st=$?
worst=$(printf '%s' "$out" | sed -n 's/.*slowest \([0-9.]*\) s.*/\1/p')
check "others are served meanwhile, none held up by it: $out" \
	sh -c "[ $st -eq 0 ] && awk 'BEGIN { exit !(${worst:-99} < 10) }'"
run_py "random bytes" garbage 1 65536
run_py "random bytes, another seed" garbage 2 1048576
run_py "NUL bytes" --log "$LOG1" nul
run_py "long lines" --log "$LOG1" longline
run_py "bare CR/LF" --log "$LOG1" bare
run_py "hop limit 50" --log "$LOG1" hops 50
run_py "RFC 5321 4.5.3.1.6: the stuffing dot does not count" --log "$LOG1" dotline
sw "$LOG1" swaks-after-bad ESMTP
check "still serving after the bad input: swaks gets 250 queued as ${SW_ID:-?}" test -n "$SW_ID"
check "the slow client is still in its session meanwhile" kill -0 $slow

phase "1: bulk"
# smtp-source's message (it varies only Date and Message-Id), captured once.
ip netns exec "$T_NS" $PY capture 2525 "$T_DIR/source.eml" >"$T_DIR/capture.out" 2>&1 &
cap=$!
wait_for 20 sh -c "ip netns exec '$T_NS' ss -ltn | grep -q ':2525 '"
ns smtp-source -m 1 -l 10240 -f from@example.org -t to@example.net 127.0.0.1:2525 >/dev/null 2>&1
wait $cap
check "smtp-source's message captured: $(cat "$T_DIR/capture.out")" test -s "$T_DIR/source.eml"

m0=$(stat smtp.messages)
ts=$SECONDS
ip netns exec "$T_NS" $PY --log "$LOG1" record $REC $REC_CONC >"$T_DIR/record.out" 2>&1 &
rec=$!
ns timeout 600 smtp-source -s $SRC_SESS -m $SRC_MSGS -l 10240 -c -f from@example.org \
	-t to@example.net $HOST:25 >"$T_DIR/source.out" 2>&1; st=$?
wait $rec; rst=$?
dt=$((SECONDS - ts))
check "smtp-source: $SRC_MSGS messages over $SRC_SESS sessions, no error (exit $st, ${dt} s)" \
	test $st -eq 0
check "Python alongside: $(cat "$T_DIR/record.out")" test $rst -eq 0
m1=$(stat smtp.messages)
echo "#   smtp.messages went from $m0 to $m1 in ${dt} s"
wait $slow; st=$?
check "slow client: $(cat "$T_DIR/slow.out")" test $st -eq 0

# SIGTERM: an idle session hears 421 4.3.2; sluiced exits 0.
ip netns exec "$T_NS" $PY shutdown 20 >"$T_DIR/shutdown.out" 2>&1 &
sd=$!
check "the idle session is open before SIGTERM" wait_for 20 sessions_at_least 1
msgs=$(stat smtp.messages)
t_stop; st=$?
check "SIGTERM stops sluiced cleanly (exit $st)" test $st -eq 0
wait $sd; st=$?
check "on SIGTERM: $(cat "$T_DIR/shutdown.out")" test $st -eq 0

phase "1: spool check"
dump one; st=$?
check "queue-dump reads the spool (exit $st) $(head -c 300 "$T_DIR/one.err")" test $st -eq 0
n=$(wc -l <"$T_DIR/one.dump")
logged=$(wc -l <"$LOG1")
check "spool holds $n messages, sluiced counted $msgs (smtp.messages)" test "$n" -eq "$msgs"
check "every stored message is accounted for: $logged logged + $SRC_MSGS from smtp-source = $n" \
	test $((logged + SRC_MSGS)) -eq "$n"
run_py "every logged message" verify-log "$T_DIR/one.dump" "$T_DIR/one.bodies" "$LOG1"
run_py "500-character ORCPTs in the spool (queue-dump -r)" \
	verify-rcpts "$T_DIR/one.rcpts" "$T_DIR/orcpt.expect"
run_py "smtp-source's messages" verify-source "$T_DIR/one.dump" "$T_DIR/one.bodies" \
	from@example.org "$T_DIR/source.eml" $SRC_MSGS
rm -rf "$T_DIR/one.bodies" "$T_DIR/spool"

# --- 2. limits and relaying ------------------------------------------------
phase "2: limits"
LOG2=$T_DIR/sent2.log
: >"$LOG2"
OUT=198.18.0.200
t_conf "[delivery]
enabled = no
[smtp]
hostname = sluice.test
mynetworks = 198.18.0.1/32
relay_domains = local.test
message_size_limit = 200000
body_memory = 1m
recipient_limit = 100
max_sessions = 8
max_sessions_per_client = 3
error_limit = 20
command_timeout = 2s
data_timeout = 2s
postmaster = hostmaster@local.test"
check "sluiced starts with small limits" t_start
ns ip addr add $OUT/24 dev "$T_IF"
run_py "message_size_limit 200000" --log "$LOG2" size 200000
run_py "body_memory 1m" --log "$LOG2" bodymem 7 190000
run_py "recipient_limit 100" --log "$LOG2" rcptlimit 100
no_sessions() { local n; n=$(stat smtp_gauge.sessions) && [ "$n" -eq 0 ]; }
run_py "max_sessions_per_client 3 (from $OUT)" --src $OUT perclient 3
check "its sessions are gone before the next probe" wait_for 20 no_sessions
run_py "max_sessions 8 (6 from mynetworks, exempt from the per-client limit)" \
	--src 198.18.0.1 sessions 8 $OUT 2
check "its sessions are gone before the next probe" wait_for 20 no_sessions
run_py "error_limit 20" errors 20
run_py "command_timeout/data_timeout 2s" timeout 2 2
run_py "open relay probes" --src $OUT --log "$LOG2" relay local.test
run_py "RFC 5321 4.5.1: Postmaster from outside mynetworks" --src $OUT --log "$LOG2" \
	postmaster sluice.test hostmaster@local.test "$T_DIR/postmaster.expect"
run_py "mynetworks 198.18.0.1/32" --src 198.18.0.1 --log "$LOG2" trusted
c=$(stat smtp.refused); e=$(stat smtp.err_disconnect); to=$(stat smtp.timeouts)
nm=$(stat smtpd.body_nomem)
check "counted: smtp.refused $c, smtp.err_disconnect $e, smtp.timeouts $to, smtpd.body_nomem $nm" \
	test "$c" -ge 2 -a "$e" -ge 1 -a "$to" -ge 2 -a "$nm" -ge 1
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
dump two; st=$?
check "queue-dump reads the spool (exit $st)" test $st -eq 0
run_py "messages accepted under the limits" verify-log "$T_DIR/two.dump" "$T_DIR/two.bodies" "$LOG2"
run_py "mail to Postmaster stored for [smtp] postmaster, the address used as ORCPT" \
	verify-rcpts "$T_DIR/two.rcpts" "$T_DIR/postmaster.expect"
n=$(wc -l <"$T_DIR/two.dump"); logged=$(wc -l <"$LOG2")
check "nothing else was stored ($n in the spool, $logged acknowledged)" test "$n" -eq "$logged"
rm -rf "$T_DIR/two.bodies" "$T_DIR/spool"

# --- 3. durability: SIGKILL under load --------------------------------------
phase "3: durability"
LOG3=$T_DIR/sent3.log
: >"$LOG3"
t_conf "[delivery]
enabled = no
[smtp]
hostname = sluice.test"
check "sluiced starts on a fresh spool" t_start
ip netns exec "$T_NS" $PY --log "$LOG3" --op-timeout 5 record $KILL_REC 20 >"$T_DIR/record3.out" 2>&1 &
rec=$!
ip netns exec "$T_NS" smtp-source -s 50 -m 1000000 -l 4096 -f bulk@example.org -t to@example.net $HOST:25 \
	>/dev/null 2>&1 &
src=$!
# Kill once the load is well under way: some messages acknowledged.
acked_some() { [ "$(wc -l <"$LOG3")" -ge 100 ]; }
wait_for 60 acked_some
kill -KILL "$T_PID"; wait "$T_PID" 2>/dev/null; T_PID=
kill -KILL $src 2>/dev/null; wait $src 2>/dev/null	# it would go on once we restart
wait $rec; rst=$?
acked=$(wc -l <"$LOG3")
check "SIGKILL under load: $acked acknowledged before ($(cat "$T_DIR/record3.out"))" \
	test "$acked" -gt 0 -a $rst -ne 1
dump three; st=$?
check "queue-dump reads the spool after the crash (exit $st) $(head -c 300 "$T_DIR/three.err")" \
	test $st -eq 0
run_py "after SIGKILL" verify-log "$T_DIR/three.dump" "$T_DIR/three.bodies" "$LOG3"
n3=$(wc -l <"$T_DIR/three.dump")
check "sluiced restarts on the crashed spool" t_start
sw "$LOG3" swaks-after ESMTP
check "and takes mail again: 250 queued as ${SW_ID:-?}" test -n "$SW_ID"
check "the new queue ID is not one of the $n3 before" \
	sh -c "! grep -q '^${SW_ID:-none} ' '$T_DIR/three.dump'"
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
dump four; st=$?
n4=$(wc -l <"$T_DIR/four.dump")
check "spool after restart: $n3 + 1 = $n4 messages" test $st -eq 0 -a "$n4" -eq $((n3 + 1))
run_py "after restart" verify-log "$T_DIR/four.dump" "$T_DIR/four.bodies" "$LOG3"

# --- 4. memory: max_sessions does not size every lcore ---------------------
phase "4: memory"
# vmrss: sluiced's resident set in kB, or nothing when it cannot be read
vmrss() {
	[ -n "$T_PID" ] && [ "$(cat /proc/$T_PID/comm 2>/dev/null)" = sluiced ] &&
		awk '/^VmRSS:/ { print $2 }' /proc/$T_PID/status
}
# a generous bound: before, 100000 sessions made ~2 GB more resident
RSS_SLACK_KB=$((128 * 1024))
t_conf "[delivery]
enabled = no
[lcores]
workers = 2
[tcp]
max_conns = 4096
[smtp]
hostname = sluice.test
max_sessions = 1000"
check "sluiced starts with max_sessions = 1000 on 2 workers" t_start
rss_small=$(vmrss)
t_stop
rm -rf "$T_DIR/spool"
t_conf "[delivery]
enabled = no
[lcores]
workers = 2
[tcp]
max_conns = 4096
[smtp]
hostname = sluice.test
max_sessions = 100000"
check "sluiced starts with max_sessions = 100000 on 2 workers" t_start
rss_big=$(vmrss)
slots=$(sed -n 's/.*smtp: lcore \([0-9]*\): \([0-9]*\) session slots.*/\2/p' "$T_LOG" | tail -n 2 | tr '\n' ' ')
echo "#   VmRSS: ${rss_small:-?} kB at max_sessions 1000, ${rss_big:-?} kB at 100000; slots per lcore: $slots"
check "resident memory at max_sessions 100000 (${rss_big:-unreadable} kB) is within $RSS_SLACK_KB kB of 1000's (${rss_small:-unreadable} kB)" \
	sh -c "[ -n '$rss_small' ] && [ -n '$rss_big' ] && [ $((${rss_big:-0} - ${rss_small:-0})) -lt $RSS_SLACK_KB ]"
check "slots per lcore follow [tcp] max_conns 4096, not max_sessions: $slots" \
	test "$slots" = "4160 4160 "
run_py "and it serves mail" --log "$T_DIR/sent4.log" quick 10
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0

phase "done"
finish
