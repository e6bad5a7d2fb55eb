#!/usr/bin/env bash
# gen_relay.sh - sluice-gen client -> sluiced -> sluice-gen sink over
# net_memif (issue 14, acceptance 1): every message sluiced answered 250
# arrived at the sink exactly once and byte-identical, by SHA-256 (the
# client logs the digest of each message answered 250, the sink of each
# body from the generator's marker line on, so sluiced's Received header
# does not count and any other change does).
set -u
. "$(dirname "$0")/lib.sh"
t_setup gen-relay "$1"
. "$(dirname "$0")/gen_lib.sh"
N=${GEN_RELAY_COUNT:-1000}

gen_conf
check "sluiced starts on a memif port" gen_start_sluiced
SLUICE_GEN_STATS=$T_DIR/gen.stats gen_run relay client,sink --count "$N" --concurrency 16 --size 1k-24k \
	--client-digests "$T_DIR/client.dig" --sink-digests "$T_DIR/sink.dig"
REL=$GEN_PID

# the client's part is over when every message has its answer
answered() {
	local a
	a=$(tail -n 1 "$T_DIR/relay.json" 2>/dev/null | /usr/bin/python3 -c \
		'import json,sys; d=json.load(sys.stdin); print(d["msg_ok"]+d["msg_temp"]+d["msg_perm"]+d["msg_lost"])' \
		2>/dev/null) && [ "$a" -ge "$N" ]
}
check "the client got an answer for each of $N messages" wait_for 120 answered
ok_n=$(gen_field relay msg_ok)
check "sluiced answered 250 to all $N (got $ok_n)" [ "$ok_n" = "$N" ]
# sluiced delivers: wait until the sink has as many as were accepted
delivered() { local s; s=$(gen_field relay sink_msgs 2>/dev/null) && [ "$s" -ge "$ok_n" ]; }
check "the sink received $ok_n messages" wait_for 120 delivered
kill -TERM "$REL" 2>/dev/null
gen_wait "$REL" 60; st=$?
check "sluice-gen exits cleanly (status $st)" [ "$st" -eq 0 ]

c=$(wc -l <"$T_DIR/client.dig" 2>/dev/null || echo 0)
s=$(wc -l <"$T_DIR/sink.dig" 2>/dev/null || echo 0)
check "client digests logged: $c of $ok_n" [ "$c" -eq "$ok_n" -a "$c" -gt 0 ]
sort "$T_DIR/client.dig" >"$T_DIR/c.sorted"
sort "$T_DIR/sink.dig" >"$T_DIR/s.sorted"
check "no two messages alike at the client" [ -z "$(uniq -d "$T_DIR/c.sorted")" ]
check "nothing arrived twice at the sink" [ -z "$(uniq -d "$T_DIR/s.sorted")" ]
missing=$(comm -23 "$T_DIR/c.sorted" "$T_DIR/s.sorted" | wc -l)
check "every message answered 250 arrived byte-identical ($missing missing or changed)" \
	[ "$missing" -eq 0 ]
extra=$(comm -13 "$T_DIR/c.sorted" "$T_DIR/s.sorted" | wc -l)
check "the sink got nothing else ($extra unknown)" [ "$extra" -eq 0 ]
check "every body carried the marker" [ "$(gen_field relay sink_unmarked)" = 0 ]
lat=$(tail -n 1 "$T_DIR/relay.json" | /usr/bin/python3 -c \
	'import json,sys; print(json.load(sys.stdin)["data"]["n"])' 2>/dev/null)
check "end-of-DATA latencies recorded for each 250 ($lat)" [ "${lat:-0}" = "$ok_n" ]
# the generator's own stack: no SYN waited for ARP past its pending queue
# (each such SYN went out again only at the 1 s retransmission)
ovf=$(awk '$1 == "net.arp_pending_overflow" {print $2}' "$T_DIR/gen.stats" 2>/dev/null)
[[ "$ovf" =~ ^[0-9]+$ ]] || measure_failed "sluice-gen's net.arp_pending_overflow"
check "no connection's SYN was dropped waiting for ARP (${ovf:-unreadable})" [ "${ovf:-x}" = 0 ]
# connections reused past the connect timeout (--per-conn 0, a run three
# times as long): a timer armed for an earlier wait must not fail the
# session, and the stop lets the messages in flight finish, so a clean
# run ends with none lost and status 0 (run-all's reused-connection steps)
gen_run reuse client --duration 3 --connect-timeout 1 --per-conn 0 --concurrency 8 --size 1k
gen_wait "$GEN_PID" 60; st=$?
lost=$(gen_field reuse msg_lost); rok=$(gen_field reuse msg_ok); rconn=$(gen_field reuse conn_ok)
check "a duration run on reused connections loses nothing (status $st, $rok ok, $lost lost)" \
	[ "$st" -eq 0 -a "$lost" = 0 -a "${rok:-0}" -gt 0 ]
check "its 8 connections lasted the whole run ($rconn opened)" [ "$rconn" = 8 ]
# a run that measured nothing must not exit 0: nothing listens on port 2626,
# so every connection is refused and every message lost
gen_run refused client --count 4 --concurrency 2 --server 198.18.0.2:2626
gen_wait "$GEN_PID" 60; st=$?
lost=$(gen_field refused msg_lost)
check "sluice-gen exits 3 when no message was answered (status $st, $lost lost)" \
	[ "$st" -eq 3 -a "$lost" = 4 ]
check "sluiced is still running" kill -0 "$T_PID"

# The sink's idle timeout counts from the session's last event, not from
# its start: a sink whose command timeout is 1 s, 4 client sessions kept
# busy for 3 s on reused connections: none is timed out (before the fix,
# the first timer, armed at accept + 1 s, ended every session older than
# that: 421s, and the client reconnected); and a session that really sits
# idle (open loop, a message every 2.5 s) still is.
SMEMIF=$T_DIR/sink.sock
# sink_run NAME ARGS...: a sluice-gen sink on its own memif server end
sink_run() {
	local name=$1; shift
	G_N=$((G_N + 1))
	rm -f "$SMEMIF"
	"$GEN" sink --vdev "net_memif0,role=server,socket=$SMEMIF,socket-abstract=no,id=0" \
		--file-prefix "sg$$-$G_N" --ip 198.18.0.2/24 --sink-timeout 1 --duration 30 \
		--report "$T_DIR/$name.json" --quiet "$@" >"$T_DIR/$name.out" 2>&1 &
	SINK_PID=$!
	wait_for 30 test -S "$SMEMIF"
}
# sink_client NAME ARGS...: a sluice-gen client on that link, run to its end
sink_client() {
	local name=$1; shift
	G_N=$((G_N + 1))
	"$GEN" client --vdev "net_memif0,role=client,socket=$SMEMIF,socket-abstract=no,id=0" \
		--file-prefix "sg$$-$G_N" --report "$T_DIR/$name.json" --quiet "$@" \
		>"$T_DIR/$name.out" 2>&1
}
sink_stop() {
	kill -TERM "$SINK_PID" 2>/dev/null
	gen_wait "$SINK_PID" 30
}
check "a sink with a 1 s command timeout starts" sink_run busysink
sink_client busy --duration 3 --per-conn 0 --concurrency 4 --size 1k; st=$?
sink_stop
bok=$(gen_field busy msg_ok); bconn=$(gen_field busy conn_ok); blost=$(gen_field busy msg_lost)
btemp=$(gen_field busy msg_temp); bto=$(gen_field busysink sink_timeouts)
check "busy sessions older than the sink's timeout are not timed out ($bto timed out)" \
	[ "$bto" = 0 ]
check "the client's 4 connections lasted the run ($bconn opened, $bok ok, $btemp 4xx, $blost lost, status $st)" \
	[ "$bconn" = 4 -a "$blost" = 0 -a "$btemp" = 0 -a "${bok:-0}" -gt 0 -a "$st" -eq 0 ]
check "a sink with a 1 s command timeout starts again" sink_run idlesink
sink_client idle --duration 6 --per-conn 0 --concurrency 1 --rate 0.4 --size 1k
sink_stop
ito=$(gen_field idlesink sink_timeouts)
check "an idle session is still timed out ($ito timed out)" [ "${ito:-0}" -ge 1 ]
# Messages still in flight when the drain at stop runs out are counted,
# not dropped from the figures: a sink that reads 200 bytes/s holds two
# 10 KiB bodies past the client's 15 s drain
check "a slow-reading sink starts" sink_run slowsink --read-rate 200
sink_client slow --duration 1 --per-conn 0 --concurrency 2 --size 10k; st=$?
sink_stop
unf=$(gen_field slow msg_unfinished)
check "both messages in flight when the drain ran out are counted ($unf), status 3 ($st)" \
	[ "$unf" = 2 -a "$st" -eq 3 ]
grep -E '^  (connect|data|messages)' "$T_DIR/relay.out" | sed 's/^/# /'
finish
