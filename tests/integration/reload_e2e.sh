#!/usr/bin/env bash
# reload_e2e.sh BUILD_DIR - configuration reloads of a running sluiced
# (control/reload.h): `sluicectl reload`, SIGHUP, `sluicectl config check`.
#
#  1. `config check` of the running file is ok; of a file with three errors
#     it fails (exit 1) naming each with its line.
#  2. sluicectl reload with a session open: message_size_limit 20000 ->
#     10000 (and [log] level, and a key that needs a restart). The session
#     opened before the reload stays up and keeps its settings (a 15000-byte
#     message is taken, 250); a new one is offered SIZE 10000 and the same
#     message is refused 552. The reply lists what changed and what needs
#     a restart. The routes file it names is read: its static route is in
#     force (route lookup).
#  3. SIGHUP does the same: 10000 -> 5000 with a session open across it;
#     the file names no routes file: no static route left.
#  4. A limit above its start-up value (message_size_limit 40000 > 20000)
#     needs a restart: reported, the start-up value in force.
#  5. A bad file is refused whole (sluicectl reload: exit 1, each error
#     named; SIGHUP: "reload refused" in the log): a key changed alongside
#     (recipient limit, relay policy) is not applied, the old settings are
#     still in force.
#  6. The reloads are counted: sluice_config_reloads_total{result="ok"} and
#     {result="refused"} in the metrics; every snapshot a reload replaced
#     is freed once its sessions are gone (smtp_live.freed = .published).
set -u
. "$(dirname "$0")/lib.sh"
t_setup rld "$1"
PORT=9925
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ns() { ip netns exec "$T_NS" "$@"; }
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }

# conf NAME EXTRA: a variant of the test's config in $T_DIR/conf.NAME
conf() {
	t_conf "[metrics]
listen = 127.0.0.1:$PORT
[delivery]
enabled = no
[smtp]
$2"
	cp "$T_CONF" "$T_DIR/conf.$1"
}
conf d "message_size_limit = 40000"
conf bad "message_size_limit = lots
nosuch_key = 1
recipient_limit = 5
mynetworks = 198.18.1.0/24"
conf bad2 "message_size_limit = 2000
mynetworks = 300.0.0.0/8"
conf c "message_size_limit = 5000"
conf b "message_size_limit = 10000
body_memory = 128m
[log]
level = debug
[routes]
routes_file = $T_DIR/routes"
printf 'reload.example [192.0.2.9]:2526\n' >"$T_DIR/routes"
conf a "message_size_limit = 20000"	# the one sluiced starts with: last, in T_CONF

# field FILE NAME: a "name value" line's value from reload_sessions.py's output
field() { sed -n "s/^$2 //p" "$1"; }
# sessions MODE NEWCONF GEN BIG OUT: one reload with sessions around it
sessions() {
	ns $PY "$HERE/reload_sessions.py" "$1" 198.18.0.2 "$T_CTL" "$T_SOCK" "$T_CONF" \
		"$T_DIR/conf.$2" "$T_PID" "$T_LOG" "$3" "$4" >"$5" 2>&1
}
# size_now: the SIZE a new session is offered
size_now() {
	ns $PY -c 'import smtplib; s = smtplib.SMTP("198.18.0.2", 25, timeout=30); s.ehlo("c.test"); print(s.esmtp_features.get("size", "none").strip()); s.quit()' 2>&1
}
scrape() { ns curl -sS --max-time 10 "http://127.0.0.1:$PORT/metrics"; }

check "sluiced starts with message_size_limit = 20000" t_start
check "a new session is offered SIZE 20000 ($(size_now))" test "$(size_now)" = 20000

# --- 1. config check ----------------------------------------------------------------------
out=$(ctl config check 2>&1); st=$?
check "config check of the running file: ok (exit $st: $out)" \
	sh -c "[ $st -eq 0 ] && [ '$out' = '$T_CONF: ok' ]"
out=$(ctl config check "$T_DIR/conf.bad" 2>&1); st=$?
printf '%s\n' "$out" >"$T_DIR/check.bad"
check "config check of a bad file fails (exit $st)" test $st -eq 1
n=$(grep -c "^conf\.bad\|$T_DIR/conf.bad:[0-9]" "$T_DIR/check.bad")
check "... and names every error with its line ($n: $(tr '\n' '|' <"$T_DIR/check.bad"))" \
	sh -c "grep -q 'conf.bad:[0-9]*: smtp.message_size_limit: .lots. is not a size' '$T_DIR/check.bad' &&
	       grep -q 'conf.bad:[0-9]*: unknown key .nosuch_key. in \[smtp\]' '$T_DIR/check.bad' &&
	       grep -q 'conf.bad:[0-9]*: smtp.recipient_limit: 5 is out of range' '$T_DIR/check.bad'"
check "config check applied nothing (SIZE $(size_now))" test "$(size_now)" = 20000
out=$(ctl config check /nonexistent/sluice.conf 2>&1); st=$?
check "config check of a missing file fails with a reason (exit $st: $out)" \
	sh -c "[ $st -eq 1 ] && printf '%s' '$out' | grep -q 'nonexistent'"

# --- 2. sluicectl reload with a session open -----------------------------------------------
sessions ctl b 1 15000 "$T_DIR/s.b"
R=$T_DIR/s.b
check "the session opened before was offered SIZE 20000 ($(field $R s1_size))" \
	test "$(field $R s1_size)" = 20000
check "sluicectl reload: exit 0 ($(field $R reload_rc): $(field $R reload_out))" \
	test "$(field $R reload_rc)" = 0
field $R reload_out | sed 's/\\n/\n/g' >"$T_DIR/reload.b.json"
$PY - "$T_DIR/reload.b.json" >"$T_DIR/reload.b.check" 2>&1 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["reload"]
assert r["generation"] == 1, r
assert "smtp.message_size_limit" in r["applied"], r
assert "log.level" in r["applied"], r
assert "smtp.body_memory" in r["needs_restart"], r
assert "smtp.body_memory" not in r["applied"], r
assert "smtp.message_size_limit" not in r["needs_restart"], r
PY
check "its reply: message_size_limit and log.level applied, body_memory needs a restart ($(cat "$T_DIR/reload.b.check"))" \
	test ! -s "$T_DIR/reload.b.check"
check "a new session is offered SIZE 10000 ($(field $R s2_size))" test "$(field $R s2_size)" = 10000
check "... MAIL SIZE=15000 on it is refused 552 ($(field $R s2_mail_big))" \
	test "$(field $R s2_mail_big)" = 552
check "... and so is the 15000-byte message ($(field $R s2_data_big))" \
	test "$(field $R s2_data_big)" = 552
check "the session opened before stays up (NOOP $(field $R s1_noop))" \
	test "$(field $R s1_noop)" = 250
check "... and keeps its settings: its 15000-byte message is taken ($(field $R s1_data_big))" \
	test "$(field $R s1_data_big)" = 250
check "the log says what the reload did" \
	grep -q "reload 1 of $T_CONF: applied; changed .*smtp.message_size_limit.*needs a restart.*smtp.body_memory" "$T_LOG"
check "[log] level debug is in force (a debug line after the reload)" \
	wait_for 20 grep -q ": debug: " "$T_LOG"
route_is() { ctl --json route lookup reload.example 2>/dev/null | grep -q "$1"; }
check "the routes file was read: reload.example goes to 192.0.2.9:2526" \
	wait_for 20 route_is '"addr":"192.0.2.9","port":2526'
check "route.routes is 1 ($(stat route.routes))" wait_for 20 test "$(stat route.routes)" = 1

# --- 3. SIGHUP ------------------------------------------------------------------------------
sessions hup c 2 7000 "$T_DIR/s.c"
R=$T_DIR/s.c
check "SIGHUP reloads ($(field $R reload_rc): $(field $R reload_out))" \
	test "$(field $R reload_rc)" = 0
check "the session opened before SIGHUP was offered SIZE 10000 ($(field $R s1_size))" \
	test "$(field $R s1_size)" = 10000
check "a new session is offered SIZE 5000 ($(field $R s2_size))" test "$(field $R s2_size)" = 5000
check "... and a 7000-byte message is refused 552 ($(field $R s2_data_big))" \
	test "$(field $R s2_data_big)" = 552
check "the session opened before stays up (NOOP $(field $R s1_noop))" \
	test "$(field $R s1_noop)" = 250
check "... and its 7000-byte message is taken ($(field $R s1_data_big))" \
	test "$(field $R s1_data_big)" = 250
routes_now() { [ "$(stat route.routes)" = "$1" ]; }
check "no routes file any more: no static route ($(stat route.routes))" wait_for 20 routes_now 0

# --- 4. above the start-up value: needs a restart -------------------------------------------
cp "$T_DIR/conf.d" "$T_CONF"
out=$(ctl --json reload 2>&1); st=$?
check "reload with message_size_limit 40000 > 20000: exit 0, it needs a restart ($out)" \
	sh -c "[ $st -eq 0 ] && printf '%s' '$out' | $PY -c 'import json,sys; r=json.load(sys.stdin)[\"reload\"]; assert \"smtp.message_size_limit\" in r[\"needs_restart\"], r'"
check "the start-up value is in force (SIZE $(size_now))" test "$(size_now)" = 20000

# --- 5. a bad file is refused whole ----------------------------------------------------------
cp "$T_DIR/conf.c" "$T_CONF"
out=$(ctl reload 2>&1); st=$?
check "sluicectl reload for people: one line saying what changed (exit $st: $out)" \
	sh -c "[ $st -eq 0 ] && [ '$out' = 'reload 4 of $T_CONF applied; changed: smtp.message_size_limit' ]"
check "back to 5000 (SIZE $(size_now))" test "$(size_now)" = 5000
cp "$T_DIR/conf.bad" "$T_CONF"
out=$(ctl reload 2>&1); st=$?
printf '%s\n' "$out" >"$T_DIR/reload.bad"
check "sluicectl reload of a bad file: exit 1 ($st)" test $st -eq 1
check "... every error named with its line ($(tr '\n' '|' <"$T_DIR/reload.bad"))" \
	sh -c "grep -q 'nothing applied' '$T_DIR/reload.bad' &&
	       grep -q 'sluice.conf:[0-9]*: smtp.message_size_limit: .lots. is not a size' '$T_DIR/reload.bad' &&
	       grep -q 'sluice.conf:[0-9]*: unknown key .nosuch_key. in \[smtp\]' '$T_DIR/reload.bad' &&
	       grep -q 'sluice.conf:[0-9]*: smtp.recipient_limit: 5 is out of range' '$T_DIR/reload.bad'"
check "the old settings are in force (SIZE $(size_now))" test "$(size_now)" = 5000
# the file's good keys were not applied either: mynetworks 198.18.1.0/24
# would stop us (198.18.0.1) relaying
code=$(ns $PY -c 'import smtplib; s = smtplib.SMTP("198.18.0.2", 25, timeout=30); s.ehlo("c.test"); s.mail("s@example.org"); print(s.rcpt("r@example.net")[0]); s.quit()' 2>&1)
check "... relay policy unchanged too: RCPT to another domain still 250 ($code)" test "$code" = 250

cp "$T_DIR/conf.bad2" "$T_CONF"
kill -HUP "$T_PID"
check "SIGHUP with a bad file: refused in the log, the error named" \
	wait_for 30 grep -q "reload refused: .*smtp.mynetworks: '300.0.0.0/8' is not a network" "$T_LOG"
check "the old settings are in force (SIZE $(size_now))" test "$(size_now)" = 5000
check "sluiced still answers" ctl ping

# --- 6. counted ------------------------------------------------------------------------------
scrape >"$T_DIR/m" 2>&1
ok_n=$(sed -n 's/^sluice_config_reloads_total{result="ok"} //p' "$T_DIR/m")
bad_n=$(sed -n 's/^sluice_config_reloads_total{result="refused"} //p' "$T_DIR/m")
check "reloads counted: 4 ok (${ok_n:-missing}), 2 refused (${bad_n:-missing})" \
	sh -c "[ '${ok_n:-x}' = 4 ] && [ '${bad_n:-x}' = 2 ]"

freed_all() { [ "$(stat smtp_live.published)" = 4 ] && [ "$(stat smtp_live.freed)" = 4 ]; }
check "every replaced snapshot freed (published $(stat smtp_live.published), freed $(stat smtp_live.freed))" \
	wait_for 20 freed_all

check "sluiced stops cleanly (exit 0)" t_stop
finish
