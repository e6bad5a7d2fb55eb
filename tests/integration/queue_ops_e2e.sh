#!/usr/bin/env bash
# queue_ops_e2e.sh BUILD_DIR - the operator's queue commands against a
# running sluiced with real mail and real next hops (delivery_tools.py
# sinks in the test's namespace), the queue checked after each command,
# and the mail log read by Debian's pflogsumm.
#
#  1. mail sent, bounced (550) and deferred (451): queue list --deferred
#     lists the deferred one alone; queue show gives its recipient's state
#     and the attempt with the next hop's reply; queue stat and queue
#     summary count it.
#  2. suspend a.test: a message to a.test stays (logged deferred,
#     "suspended by the operator"), one to b.test on the same next hop is
#     delivered. hold it: queue list --held shows it with '!', stat and
#     summary count it held. resume, flush it: still held, not delivered
#     (a later message to a.test is, and it is not). release, flush:
#     delivered.
#  3. delete: refused without --yes and no terminal (still queued); with
#     --yes gone from the queue, logged "removed", and never delivered
#     after a resume (a later message to a.test is).
#  4. bounce --domain a.test --reason: both messages queued for it given up,
#     a DSN for each at the senders' domain.
#  5. route set c.test to another next hop: the next message to c.test
#     goes there, not to the old one; route show lists it; route clear.
#  6. flush --domain b.test retries the deferred message at once (a second
#     attempt logged); bounce ID gives it up; hold --all, release --domain,
#     delete --domain --yes, queue list --domain paging (--limit 1).
#  7. a MAIL FROM over the size limit: 552, and the mail log has Postfix's
#     "NOQUEUE: reject:" line for it (the lcore hands it to the control
#     side). Then pflogsumm --syslog-name=sluice over the mail log ([log]
#     mail = a file): received, delivered, deferred (messages and
#     deferrals), bounced and rejected exactly as the test made them;
#     delivered counted by the sinks (every recipient they took), the rest
#     by construction.
set -u
. "$(dirname "$0")/lib.sh"
t_setup qops "$1"
. "$(dirname "$0")/relay_lib.sh"

MLOG=$T_DIR/mail.log
ctl() { "$T_CTL" -s "$T_SOCK" "$@"; }
# cj 'PYTHON' ARGS... -- CMD...: R = the --json result of sluicectl CMD; the
# python's exit status is the check's (assert)
cj() {
	local code=$1 args=(); shift
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	ctl --json "$@" >"$T_DIR/cj.json" 2>"$T_DIR/cj.err" || { cat "$T_DIR/cj.err"; return 1; }
	/usr/bin/python3 - "$T_DIR/cj.json" "${args[@]}" <<PY
import json, sys
R = json.load(open(sys.argv[1]))
A = sys.argv[2:]
$code
PY
}
mail() { ns $TOOLS mail $HOST "$@"; }
# took NAME RCPT: the sink NAME took a message for RCPT
took() {
	[ -f "$T_DIR/$1/msgs.log" ] && /usr/bin/python3 -c '
import json, sys
sys.exit(0 if any(sys.argv[2] in json.loads(l)["rcpts"] for l in open(sys.argv[1])) else 1)' \
		"$T_DIR/$1/msgs.log" "$2"
}
# mlogged ID TEXT: the mail log has a line for ID matching TEXT
mlogged() { grep -q "sluice/[a-z]*\[[0-9]*\]: $1: .*$2" "$MLOG"; }
# dsn_about ORIG: a DSN about queue ID ORIG reached the senders' sink
dsn_about() {
	$TOOLS dsns "$T_DIR/dsn/msgs.log" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
sys.exit(0 if any(json.loads(l)["orig"] == sys.argv[1] for l in sys.stdin if l.strip()) else 1)' "$1"
}
in_queue() { ctl --json queue show "$1" >/dev/null 2>&1; }
# what the test makes, for pflogsumm (7)
RECEIVED=0 BOUNCED=0 DEFERRALS=0
declare -A DEFERRED_MSGS
sent() { RECEIVED=$((RECEIVED + 1)); }
deferred() { DEFERRALS=$((DEFERRALS + 1)); DEFERRED_MSGS[$1]=1; }

phase "0: sluiced and three next hops"
cat >"$T_DIR/routes" <<ROUTES
a.test     [$KERN]:2525
b.test     [$KERN]:2525
c.test     [$KERN]:2525
snd.test   [$KERN]:2526
ROUTES
t_conf "[log]
mail = $MLOG
[smtp]
hostname = sluice.test
[routes]
routes_file = $T_DIR/routes
[retry]
schedule = 1h
min_backoff = 1h"
check "sluiced starts" t_start
check "next hop A for a.test, b.test, c.test: 550 to bad@, 451 to busy@" \
	start_sink hopa 2525 --rcpt-code bad=550,busy=451
check "the senders' domain snd.test: a sink keeping the DSNs" start_sink dsn 2526 --keep
check "next hop B (for route set)" start_sink hopb 2527

# --- 1. sent, bounced, deferred ------------------------------------------------------------
phase "1: sent, bounced, deferred; list, show, stat, summary"
ok1=$(mail s@snd.test ok1@a.test) && sent
bad=$(mail s@snd.test bad@a.test) && sent
busy=$(mail s@snd.test busy@b.test) && sent
check "three messages queued ($ok1 $bad $busy)" test -n "$ok1" -a -n "$bad" -a -n "$busy"
check "ok1@a.test delivered" wait_for 60 took hopa ok1@a.test
check "bad@a.test bounced (550), its DSN arrived" wait_for 60 dsn_about "$bad"
BOUNCED=$((BOUNCED + 1))
check "busy@b.test deferred (451), in the mail log" \
	wait_for 60 mlogged "$busy" "to=<busy@b.test>, relay=.*status=deferred (.* said: 451"
deferred "$busy"
check "the queue settles" wait_for 60 drained
cj '
ids = [m["id"] for m in R["messages"]]
assert ids == [A[0]], ids
m = R["messages"][0]
assert m["recipients"][0]["addr"] == "busy@b.test" and m["recipients"][0]["state"] == "deferred", m
assert m["status"] == " " and m["sender"] == "s@snd.test", m
' "$busy" -- queue list --deferred
check "queue list --deferred: $busy alone, its recipient deferred" test $? -eq 0
cj '
r = R["recipients"]
assert len(r) == 1 and r[0]["state"] == "deferred" and r[0]["attempts"] == 1, r
assert " said: 451 4.2.1" in r[0]["reply"], r[0]["reply"]
h = R["history"]
assert len(h) == 1 and h[0]["state"] == "deferred" and h[0]["rcpt"] == "busy@b.test", h
assert " said: 451 4.2.1" in h[0]["reply"], h
assert "Subject: test" in R["headers"] and "body" not in R, R["headers"]
' -- queue show "$busy"
check "queue show $busy: its recipient, the attempt with the 451 reply, the headers" test $? -eq 0
cj 'assert "a line of the message body" in R["body"] or R["body"].endswith("\r\n\r\n"), R["body"][-80:]' \
	-- queue show "$busy" --body
check "queue show --body: the message" test $? -eq 0
cj 'assert R["messages"] == 1 and R["held"] == 0 and R["untried"] == 0 and R["domains"] == 1, R' \
	-- queue stat
check "queue stat: one message, tried" test $? -eq 0
cj '
d = {x["domain"]: x for x in R["domains"]}
b = d["b.test"]
assert b["deferred"] == 1 and b["total"] == 1 and b["held"] == 0, b
assert sum(b["age"]) == 1 and b["age"][0] == 1, b["age"]
assert R["buckets"] == [5, 10, 20, 40, 80, 160, 320, 640, 1280], R["buckets"]
assert R["total"]["total"] == 1, R["total"]
' -- queue summary
check "queue summary: b.test 1 deferred, in the under-5-minutes bucket" test $? -eq 0
out=$(ctl queue summary); check "queue summary renders ($(echo "$out" | sed -n 3p | tr -s ' '))" \
	grep -q "b.test" <<<"$out"
out=$(ctl queue list); check "queue list renders like postqueue -p" grep -q "^$busy .*s@snd.test" <<<"$out"

# --- 2. suspend; hold then flush: held; release then flush: delivered ------------------------
phase "2: suspend, hold, flush, release"
out=$(ctl suspend a.test 2>&1); check "suspend a.test ($out)" test $? -eq 0
h=$(mail s@snd.test h@a.test) && sent
other=$(mail s@snd.test other@b.test) && sent
check "a message to a.test ($h) and one to b.test ($other)" test -n "$h" -a -n "$other"
check "b.test, on the same next hop, is delivered" wait_for 60 took hopa other@b.test
check "a.test's is not tried: logged deferred, suspended by the operator" \
	wait_for 60 mlogged "$h" "to=<h@a.test>.*dsn=4.3.2, status=deferred (delivery to a.test suspended by the operator)"
deferred "$h"
check "  ... and it is still queued" in_queue "$h"
check "  ... not at the next hop" bash -c "! grep -q h@a.test '$T_DIR/hopa/msgs.log'"
cj 'assert R["suspended"][0]["domain"] == "a.test" and R["suspended"][0]["until"] == 0, R' -- suspend
check "suspend (no argument) lists a.test" test $? -eq 0
out=$(ctl hold "$h" 2>&1); check "hold $h ($out)" test $? -eq 0
cj 'assert [(m["id"], m["status"], m["held"]) for m in R["messages"]] == [(A[0], "!", True)], R' \
	"$h" -- queue list --held
check "queue list --held: $h, marked !" test $? -eq 0
cj 'assert R["held"] == 1 and R["messages"] == 2, R' -- queue stat
check "queue stat: 2 messages, 1 held" test $? -eq 0
cj 'd = {x["domain"]: x for x in R["domains"]}; assert d["a.test"]["held"] == 1, d' -- queue summary
check "queue summary: a.test 1 held" test $? -eq 0
out=$(ctl resume a.test 2>&1); check "resume a.test ($out)" test $? -eq 0
cj 'f = R["flush"]["ids"][0]; assert f["due"] is False and "held" in f["why"], R' -- flush "$h"
check "flush $h: not made due, it is held" test $? -eq 0
mk=$(mail s@snd.test mk@a.test) && sent
check "a later message to a.test is delivered" wait_for 60 took hopa mk@a.test
check "  ... the held one is not" bash -c "! grep -q h@a.test '$T_DIR/hopa/msgs.log'"
cj 'assert R["held"] is True, R' -- queue show "$h"
check "  ... and still held" test $? -eq 0
out=$(ctl release "$h" 2>&1); check "release $h ($out)" test $? -eq 0
out=$(ctl flush "$h" 2>&1); check "flush $h ($out)" test $? -eq 0
check "  ... delivered" wait_for 60 took hopa h@a.test
check "  ... and gone from the queue" wait_for 30 bash -c "! '$T_CTL' -s '$T_SOCK' queue show $h >/dev/null 2>&1"

# --- 3. delete ----------------------------------------------------------------------------
phase "3: delete"
ctl suspend a.test >/dev/null
d=$(mail s@snd.test del@a.test) && sent
check "a message to suspended a.test ($d)" wait_for 60 mlogged "$d" "status=deferred (delivery to a.test suspended"
deferred "$d"
out=$(setsid "$T_CTL" -s "$T_SOCK" delete "$d" </dev/null 2>&1); st=$?
check "delete without --yes and no terminal: refused, exit 2 ($out)" test $st -eq 2
check "  ... still queued" in_queue "$d"
cj 'assert R["delete"]["messages"] == 1 and R["delete"]["not_found"] == [], R' -- delete --yes "$d"
check "delete --yes $d" test $? -eq 0
check "  ... gone from the queue" bash -c "! '$T_CTL' -s '$T_SOCK' queue show $d >/dev/null 2>&1"
check "  ... logged removed (postsuper)" mlogged "$d" "removed"
ctl resume a.test >/dev/null
mk2=$(mail s@snd.test mk2@a.test) && sent
check "a later message to a.test is delivered" wait_for 60 took hopa mk2@a.test
check "  ... the deleted one never was" bash -c "! grep -q del@a.test '$T_DIR/hopa/msgs.log'"
cj 'assert R["delete"]["messages"] == 0 and R["delete"]["not_found"] == [A[0]], R' "$d" \
	-- delete --yes "$d"
check "delete it again: not found" test $? -eq 0

# --- 4. bounce --domain ---------------------------------------------------------------------
phase "4: bounce --domain"
ctl suspend a.test >/dev/null
b1=$(mail s1@snd.test b1@a.test) && sent
b2=$(mail s2@snd.test b2@a.test) && sent
wait_for 60 mlogged "$b1" "suspended by the operator" && wait_for 60 mlogged "$b2" "suspended by the operator"
check "two messages held back for a.test ($b1 $b2)" test $? -eq 0
deferred "$b1"; deferred "$b2"
cj 'b = R["bounce"]; assert b["messages"] == 2 and b["recipients"] == 2, b' \
	-- bounce --domain a.test --reason "spam run"
check "bounce --domain a.test --reason: 2 messages, 2 recipients" test $? -eq 0
BOUNCED=$((BOUNCED + 2))
check "  ... a DSN about $b1" wait_for 60 dsn_about "$b1"
check "  ... and about $b2" wait_for 60 dsn_about "$b2"
check "  ... logged bounced, cancelled by the operator" \
	mlogged "$b1" "status=bounced (cancelled by the operator: spam run)"
check "  ... and gone" wait_for 30 bash -c "! '$T_CTL' -s '$T_SOCK' queue show $b2 >/dev/null 2>&1"
ctl resume a.test >/dev/null

# --- 5. route set -------------------------------------------------------------------------
phase "5: route set, show, clear"
out=$(ctl route set c.test "[$KERN]:2527" 2>&1); check "route set c.test [$KERN]:2527 ($out)" test $? -eq 0
cj 'assert R["routes"] == [{"domain": "c.test", "route": "[%s]:2527" % A[0]}], R' "$KERN" \
	-- route show c.test
check "route show c.test: the new next hop" test $? -eq 0
cj 'assert len(R["routes"]) == 4, R' -- route show
check "route show: the four static routes" test $? -eq 0
r=$(mail s@snd.test r@c.test) && sent
check "the next message to c.test ($r) goes to the new next hop" wait_for 60 took hopb r@c.test
check "  ... not to the old one" bash -c "! grep -q r@c.test '$T_DIR/hopa/msgs.log'"
out=$(ctl route clear c.test 2>&1); check "route clear c.test ($out)" test $? -eq 0
# A runtime route lies over the routes file's; clearing it brings the file's back.
cj 'assert R["routes"] == [{"domain": "c.test", "route": "[%s]:2525" % A[0]}], R' "$KERN" \
	-- route show c.test
check "route show c.test: the routes file's next hop again" test $? -eq 0

# --- 6. flush --domain, bounce ID, hold --all, release --domain, delete --domain -------------
phase "6: flush --domain, bounce ID, hold --all, release/delete --domain, paging"
cj 'assert R["flush"]["messages"] == 1, R' -- flush --domain b.test
check "flush --domain b.test: $busy made due" test $? -eq 0
two() { [ "$(grep -c "$busy: to=<busy@b.test>.*status=deferred (.* said: 451" "$MLOG")" -ge 2 ]; }
check "  ... tried again at once (a second 451)" wait_for 60 two
deferred "$busy"
check "  ... settled" wait_for 60 drained
out=$(ctl bounce "$busy" --reason "gave up" 2>&1); check "bounce $busy ($out)" test $? -eq 0
BOUNCED=$((BOUNCED + 1))
check "  ... its DSN" wait_for 60 dsn_about "$busy"
ctl suspend a.test >/dev/null; ctl suspend b.test >/dev/null
x1=$(mail s@snd.test x1@a.test) && sent
x2=$(mail s@snd.test x2@a.test) && sent
x3=$(mail s@snd.test x3@b.test) && sent
for x in "$x1" "$x2" "$x3"; do wait_for 60 mlogged "$x" "suspended by the operator" || break; deferred "$x"; done
check "three messages held back ($x1 $x2 $x3)" mlogged "$x3" "suspended by the operator"
check "the queue settles" wait_for 60 drained
cj '
p1 = R["messages"]
assert len(p1) == 1 and p1[0]["id"] == A[0] and R["next"] == A[0], R
' "$x1" -- queue list --domain a.test --limit 1
check "queue list --domain a.test --limit 1: $x1, more after it" test $? -eq 0
cj 'assert [m["id"] for m in R["messages"]] == [A[0]] and R["next"] is None, R' "$x2" \
	-- queue list --domain a.test --limit 1 --after "$x1"
check "  ... --after $x1: $x2, the end" test $? -eq 0
n=$(ctl queue list --domain a.test | grep -c "^[0-9A-Z]\{13\}")
check "sluicectl follows the pages: 2 messages listed ($n)" test "$n" = 2
cj 'assert R["hold"]["messages"] == 3, R' -- hold --all
check "hold --all: 3 messages" test $? -eq 0
cj 'assert R["held"] == 3 and R["messages"] == 3, R' -- queue stat
check "  ... queue stat: 3 held" test $? -eq 0
cj 'assert R["resume"]["messages"] == 0, R' -- resume b.test
check "resume b.test: nothing made due (held)" test $? -eq 0
cj 'assert R["delete"]["messages"] == 2, R' -- delete --domain a.test --yes
check "delete --domain a.test --yes: 2 messages" test $? -eq 0
cj 'assert [(m["id"], m["status"]) for m in R["messages"]] == [(A[0], "!")], R' "$x3" -- queue list
check "  ... left: $x3, held" test $? -eq 0
cj 'assert R["release"]["messages"] == 1, R' -- release --domain b.test
check "release --domain b.test: 1 message" test $? -eq 0
check "  ... $x3 delivered" wait_for 60 took hopa x3@b.test
ctl resume a.test >/dev/null
ns /usr/bin/python3 -c '
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], 25, timeout=60)
s.ehlo("big.client.test")
code, msg = s.mail("big@snd.test", ["SIZE=2000000000"])
s.quit()
sys.exit(0 if code == 552 else 1)' $HOST
check "MAIL FROM with SIZE= over the limit: 552" test $? -eq 0
REJECTED=1
check "  ... in the mail log as Postfix's reject, written by the control side" wait_for 30 \
	grep -q "sluice/smtpd\[[0-9]*\]: NOQUEUE: reject: MAIL from [^ ]*\[$KERN\]: 552 5.3.4 .*; from=<big@snd.test> proto=ESMTP helo=<big.client.test>" "$MLOG"
check "the queue is empty" wait_for 60 bash -c "'$T_CTL' -s '$T_SOCK' --json queue stat | grep -q '\"messages\": *0'"
check "the queue settles" wait_for 60 drained

# --- 7. pflogsumm ----------------------------------------------------------------------------
phase "7: pflogsumm over the mail log"
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
# delivered: every recipient the three sinks took (DSNs included)
DELIVERED=$(cat "$T_DIR"/hopa/msgs.log "$T_DIR"/hopb/msgs.log "$T_DIR"/dsn/msgs.log |
	/usr/bin/python3 -c 'import json, sys; print(sum(len(json.loads(l)["rcpts"]) for l in sys.stdin if l.strip()))')
pflogsumm --syslog-name=sluice "$MLOG" >"$T_DIR/pflogsumm.out" 2>"$T_DIR/pflogsumm.err"
check "pflogsumm ran" test $? -eq 0
total() {	# total NAME: the Grand Totals number before NAME
	sed -n '/^Grand Totals/,/^Per-/p' "$T_DIR/pflogsumm.out" |
		awk -v w="$1" '$2 == w {print $1; exit}'
}
deferrals=$(sed -n 's/^ *[0-9]* *deferred *(\([0-9]*\) *deferrals).*/\1/p' "$T_DIR/pflogsumm.out")
sed -n '/^Grand Totals/,/^Per-/p' "$T_DIR/pflogsumm.out" | sed -n '4,12p' | sed 's/^/#   /'
check "pflogsumm: received $(total received), made $RECEIVED" test "$(total received)" = "$RECEIVED"
check "pflogsumm: delivered $(total delivered), the sinks took $DELIVERED" \
	test "$(total delivered)" = "$DELIVERED"
check "pflogsumm: deferred $(total deferred) messages, made ${#DEFERRED_MSGS[@]}" \
	test "$(total deferred)" = "${#DEFERRED_MSGS[@]}"
check "pflogsumm: $deferrals deferrals, made $DEFERRALS" test "$deferrals" = "$DEFERRALS"
check "pflogsumm: bounced $(total bounced), made $BOUNCED" test "$(total bounced)" = "$BOUNCED"
check "pflogsumm: rejected $(total rejected), made $REJECTED" test "$(total rejected)" = "$REJECTED"
if [ "$T_FAIL" -ne 0 ]; then
	echo "--- mail log ---"; cat "$MLOG"
fi
finish
