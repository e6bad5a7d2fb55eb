#!/usr/bin/env bash
# drain_e2e.sh BUILD_DIR - maintenance drain (sluicectl drain / undrain,
# control/drain_hook.h, the lcores' refuse-new flag):
#
#  1. A session opened before the drain stays up through it: after
#     `sluicectl drain` it still sends its message (250) and that message
#     is delivered to the sink (delivery goes on while drained).
#  2. While drained, a new connection's first line is "421 4.3.2 HOST
#     Service not available, closing transmission channel" and the
#     connection closes; counted (smtpd.refused_draining), drain.active = 1
#     (and sluice_drain_active 1 in the metrics).
#  3. The hook ([control] drain_hook) ran with "drain", exit 0 counted.
#  4. A reload keeps the drain (still 421, drain.active = 1).
#  5. undrain: new sessions get 220 again, the hook ran with "undrain".
#  6. A hook that fails (exit 3) is logged with its status and counted
#     failed; one that outlives drain_hook_timeout is killed, logged and
#     counted; while it runs, another drain/undrain is refused.
#  7. A restart keeps the drain ([queue] dir/drained): restarted drained,
#     a new session gets 421, `status` says drained since when, the log
#     says so, the hook is not run again; undrained, a restart accepts.
set -u
. "$(dirname "$0")/lib.sh"
t_setup drn "$1"
. "$(dirname "$0")/relay_lib.sh"
PY=/usr/bin/python3
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }

HOOK=$T_DIR/hook.sh
cat >"$HOOK" <<HOOK
#!/bin/sh
echo "\$1" >>"$T_DIR/hook.log"
[ -f "$T_DIR/hook.sleep" ] && sleep 20
exit \$(cat "$T_DIR/hook.rc" 2>/dev/null || echo 0)
HOOK
chmod +x "$HOOK"
printf 'sink.test [%s]:2525\n' $KERN >"$T_DIR/routes"
t_conf "[metrics]
listen = 127.0.0.1:9925
[control]
drain_hook = $HOOK
drain_hook_timeout = 1s
[smtp]
hostname = drain.test
[routes]
routes_file = $T_DIR/routes"
check "sluiced starts" t_start
check "sink on $KERN:2525" start_sink sink 2525

# greeting: the first line a new connection gets, then whether it closed
greeting() {
	ns $PY - $HOST <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=20)
f = s.makefile("rb")
line = f.readline().decode().rstrip("\r\n")
if line.startswith("421"):
    closed = f.readline() == b""
    print(line + (" |closed" if closed else " |open"))
else:
    print(line)
    s.sendall(b"QUIT\r\n")
PY
}
hook_has() { grep -qx "$1" "$T_DIR/hook.log" 2>/dev/null && [ "$(grep -cx "$1" "$T_DIR/hook.log")" -ge "$2" ]; }
counter_is() { local v; v=$(stat "$1") && [ "$v" -eq "$2" ]; }
counter_ge() { local v; v=$(stat "$1") && [ "$v" -ge "$2" ]; }

# --- 1. a session open across the drain ---------------------------------------------
# The client: EHLO and MAIL, then waits for "go" before RCPT/DATA/QUIT.
cat >"$T_DIR/open.py" <<'PY'
import os, smtplib, sys, time
host, go, out = sys.argv[1:4]
s = smtplib.SMTP(host, 25, timeout=60)
s.ehlo("open.test")
s.mail("open@example.org")
open(out, "w").write("mail\n")
for _ in range(600):
    if os.path.exists(go):
        break
    time.sleep(0.1)
s.rcpt("x@sink.test")
code, msg = s.data(b"Subject: open across drain\r\n\r\nbody\r\n")
open(out, "a").write("%d %s\n" % (code, msg.decode()))
s.quit()
PY
bg $PY "$T_DIR/open.py" $HOST "$T_DIR/go" "$T_DIR/open.out"
check "a session is open (MAIL given) before the drain" \
	wait_for 30 grep -qs mail "$T_DIR/open.out"
g=$(greeting)
check "before the drain a new session is greeted 220 ($g)" test "${g:0:3}" = 220
check "drain.active is 0" counter_is drain.active 0

out=$(ctl drain 2>&1); st=$?
check "sluicectl drain: exit 0 ($out)" test $st -eq 0
check "the hook is done" wait_for 20 counter_is drain_hook.running 0
out=$(ctl --json drain 2>&1); st=$?
check "a second drain is fine and says it already was ($out)" \
	sh -c "[ $st -eq 0 ] && printf '%s' '$out' | grep -q '\"was\": *true'"
check "drain.active is 1" counter_is drain.active 1
# scrape_has LINE: the metrics exposition has LINE
scrape_has() { ns curl -sS --max-time 10 "http://127.0.0.1:9925/metrics" | grep -qx "$1"; }
check "the metrics say sluice_drain_active 1" scrape_has 'sluice_drain_active 1'

# --- 2. new sessions refused -----------------------------------------------------------
acc=$(stat smtpd.accepted)
g=$(greeting)
check "while drained a new connection gets 421 4.3.2 and is closed ($g)" \
	test "$g" = "421 4.3.2 drain.test Service not available, closing transmission channel |closed"
check "counted: smtpd.refused_draining >= 1" counter_ge smtpd.refused_draining 1
check "the refused connection took no session slot (smtpd.accepted stays $acc)" \
	counter_is smtpd.accepted "$acc"

# --- 1 (cont.) the open session finishes and its message is delivered ------------------
touch "$T_DIR/go"
check "the session opened before the drain still sends its message (250)" \
	wait_for 30 grep -q '^250 ' "$T_DIR/open.out"
check "and it is delivered to the sink while drained" \
	wait_for 60 sh -c "[ \$(cat '$T_DIR/sink/msgs.log' 2>/dev/null | wc -l) -ge 1 ]"

# --- 3. the hook ran -------------------------------------------------------------------
check "the hook ran with 'drain' (twice: two drain commands)" wait_for 20 hook_has drain 2
check "drain_hook.ok = 2" wait_for 20 counter_is drain_hook.ok 2
check "its exit status is logged" grep -q "drain hook $HOOK drain: exit status 0" "$T_LOG"

# --- 4. a reload keeps the drain -------------------------------------------------------
out=$(ctl reload 2>&1); st=$?
check "sluicectl reload: exit 0 ($out)" test $st -eq 0
g=$(greeting)
check "after the reload still 421 4.3.2 ($g)" test "${g:0:9}" = "421 4.3.2"
check "drain.active is still 1" counter_is drain.active 1

# --- 5. undrain ------------------------------------------------------------------------
out=$(ctl undrain 2>&1); st=$?
check "sluicectl undrain: exit 0 ($out)" test $st -eq 0
g=$(greeting)
check "after undrain a new session is greeted 220 again ($g)" test "${g:0:3}" = 220
check "drain.active is 0" counter_is drain.active 0
check "the metrics say sluice_drain_active 0" scrape_has 'sluice_drain_active 0'
check "the hook ran with 'undrain'" wait_for 20 hook_has undrain 1

# --- 6. failing and hanging hooks ------------------------------------------------------
check "hooks idle" wait_for 20 counter_is drain_hook.running 0
echo 3 >"$T_DIR/hook.rc"
ctl drain >/dev/null 2>&1
check "a hook exiting 3 is logged with its status" \
	wait_for 20 grep -q "drain hook $HOOK drain: exit status 3" "$T_LOG"
check "... and counted failed" wait_for 20 counter_is drain_hook.failed 1
g=$(greeting)
check "the drain holds even though its hook failed ($g)" test "${g:0:9}" = "421 4.3.2"
rm -f "$T_DIR/hook.rc"
touch "$T_DIR/hook.sleep"
check "hooks idle" wait_for 20 counter_is drain_hook.running 0
out=$(ctl undrain 2>&1); st=$?
check "undrain with a slow hook: exit 0 ($out)" test $st -eq 0
out=$(ctl drain 2>&1); st=$?
check "another drain while the hook runs is refused (exit $st: $out)" \
	sh -c "[ $st -eq 1 ] && printf '%s' '$out' | grep -q 'still runs'"
check "a hook past drain_hook_timeout (1s) is killed and logged" \
	wait_for 20 grep -q "drain hook $HOOK undrain: still running after 1000 ms: killed" "$T_LOG"
check "... counted: drain_hook.timeouts = 1" wait_for 20 counter_is drain_hook.timeouts 1
g=$(greeting)
check "the refused drain left the box accepting ($g)" test "${g:0:3}" = 220
rm -f "$T_DIR/hook.sleep"

# --- 7. a restart keeps the drain ------------------------------------------------------
check "hooks idle" wait_for 20 counter_is drain_hook.running 0
out=$(ctl drain 2>&1); st=$?
check "drain before a restart: exit 0 ($out)" test $st -eq 0
check "hooks idle" wait_for 20 counter_is drain_hook.running 0
runs=$(stat drain_hook.runs)
t_stop; st=$?
check "sluiced stops drained (exit $st)" test $st -eq 0
check "sluiced starts again" t_start
g=$(greeting)
check "restarted drained: a new session gets 421 4.3.2 ($g)" test "${g:0:9}" = "421 4.3.2"
check "drain.active is 1 after the restart" counter_is drain.active 1
st_json=$(ctl --json status 2>&1)
check "status says drained, with its time ($st_json)" $PY -c "
import json, sys
s = json.loads(sys.argv[1])['status']
sys.exit(0 if s['draining'] is True and s['drained_since'] > 1700000000 else 1)" "$st_json"
check "the log says it came up drained" \
	grep -q "drain: this box was drained when it stopped" "$T_LOG"
check "the hook is not run again at start-up" counter_is drain_hook.runs 0
check "(it ran $runs time(s) before the restart)" test "$runs" -ge 1
out=$(ctl undrain 2>&1); st=$?
check "undrain: exit 0 ($out)" test $st -eq 0
check "hooks idle" wait_for 20 counter_is drain_hook.running 0
t_stop; st=$?
check "sluiced stops undrained (exit $st)" test $st -eq 0
check "sluiced starts again" t_start
g=$(greeting)
check "restarted after undrain: greeted 220 ($g)" test "${g:0:3}" = 220
st_json=$(ctl --json status 2>&1)
check "status says accepting ($st_json)" $PY -c "
import json, sys
s = json.loads(sys.argv[1])['status']
sys.exit(0 if s['draining'] is False and s['drained_since'] is None else 1)" "$st_json"

t_stop; st=$?
check "sluiced stops cleanly (exit $st)" test $st -eq 0
finish
