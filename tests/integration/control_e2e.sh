#!/usr/bin/env bash
# control_e2e.sh BUILD_DIR - the control socket of a running sluiced:
# access, abuse, and a large reply to a slow reader.
#
#  1. access: [control] group and read_group (numeric gids the test makes
#     up: 61111 admins, 61112 read-only) and mode 0666. The socket file has
#     them. sluicectl run as nobody (setpriv: uid 65534, gid 65534, no other
#     groups) is refused with a clear error; as nobody in the read-only group
#     it may ping, read stats and look a route up, but route set, route
#     clear, flush, dest clear and dns bench are refused and nothing
#     changed; as nobody with the admin group as a supplementary group
#     (SO_PEERGROUPS) route set works. Then mode 0660: nobody outside the
#     group cannot even connect (the file's permissions), exit 3. On the
#     way, a UTF-8 word with an escape character goes to sluiced and comes
#     back in its error text intact (the escape shown as '?').
#  2. abuse (ctl_abuse.py): 1,000 malformed, oversized, slow-loris, silent
#     and rude clients; every one gets an error reply or is closed, a ping
#     prober gets through the whole storm (stalled clients are evicted to
#     make room), and afterwards sluiced answers, its counters saw them
#     (ctl.bad_requests, ctl.oversized, ...), its file descriptors are back
#     to what they were and its RSS grew by less than 32 MB (plus ASan's
#     quarantine under the sanitizers).
#  3. a large reply: 500 destinations in the scheduler (a message to 500
#     domains routed to 500 closed ports), `dest show` (over the kernel's
#     socket buffer, wmem_default) read 4 KB every 10 ms arrives whole and
#     lists them all, and ctl.out_waits shows it went out as the reader
#     took it (POLLOUT).
set -u
. "$(dirname "$0")/lib.sh"
t_setup ctl "$1"
here=$(cd "$(dirname "$0")" && pwd)
ABUSE="/usr/bin/python3 $here/ctl_abuse.py"
ADMIN_GID=61111
READ_GID=61112
ns() { ip netns exec "$T_NS" "$@"; }

# as GID [GROUPS] -- sluicectl ARGS: sluicectl as uid 65534 with primary
# group GID and supplementary GROUPS (or none); its stderr into $T_DIR/as.err
as() {
	local gid=$1 groups=--clear-groups
	shift
	if [ "$1" != -- ]; then groups="--groups=$1"; shift; fi
	shift
	setpriv --reuid=65534 --regid="$gid" "$groups" "$T_CTL" -s "$T_SOCK" "$@" 2>"$T_DIR/as.err"
}
said() { grep -q -- "$1" "$T_DIR/as.err"; }
route_of() {
	"$T_CTL" -s "$T_SOCK" --json route lookup "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["route"]
print(",".join("%s:%d" % (h["addr"], h["port"]) for h in r["hops"]) or r["status"])'
}

# --- 1. access ------------------------------------------------------------------------
chmod 0755 "$T_DIR"	# nobody must reach the socket to be refused by the peer check
t_conf "[control]
group = $ADMIN_GID
read_group = $READ_GID
mode = 0666
[delivery]
enabled = no"
check "sluiced starts with [control] group, read_group, mode" t_start
check "the socket file has the configured mode and group ($(command stat -c '%a %g' "$T_SOCK"))" \
	test "$(command stat -c '%a %g' "$T_SOCK")" = "666 $ADMIN_GID"

as 65534 -- ping >/dev/null; st=$?
check "nobody in no allowed group is refused (exit $st): $(cat "$T_DIR/as.err")" \
	sh -c "[ $st -eq 1 ] && grep -q 'uid 65534 gid 65534 may not use sluiced' '$T_DIR/as.err'"
as 65534 -- --json stats >/dev/null; st=$?
check "  ... for every command (stats: exit $st)" test $st -eq 1

# UTF-8 and a control character through the daemon and back: the error
# text holds the word as sent; the terminal gets '?' for the control one
"$T_CTL" -s "$T_SOCK" route lookup "bücher.test"$'\x1b' >/dev/null 2>"$T_DIR/utf8.err"
check "a UTF-8 word and an escape character round trip ($(cat "$T_DIR/utf8.err"))" \
	grep -q "route lookup bücher.test?: not a domain" "$T_DIR/utf8.err"
"$T_CTL" -s "$T_SOCK" route set ro.test '[198.18.0.1]:2500' >/dev/null
check "root (admin) sets a route" test "$(route_of ro.test)" = "198.18.0.1:2500"
pong_ro() { as $READ_GID -- ping | grep -q pong; }
check "the read-only group may ping" pong_ro
n=$(as $READ_GID -- --json stats | /usr/bin/python3 -c \
	'import json,sys; print(len(json.load(sys.stdin)["stats"]))' 2>/dev/null)
check "  ... read the stats (${n:-no} counters)" test "${n:-0}" -gt 100
out=$(as $READ_GID -- --json route lookup ro.test)
check "  ... look a route up" sh -c "echo '$out' | grep -q '\"port\":2500'"
for c in "route set ro.test [198.18.0.1]:2600" "route clear ro.test" "flush --all" \
	 "dest clear [198.18.0.1]:2500" "dns bench 10 cached bench.test"; do
	# shellcheck disable=SC2086
	as $READ_GID -- $c >/dev/null; st=$?
	check "  ... but not '$c' (exit $st: $(head -c 160 "$T_DIR/as.err"))" \
		sh -c "[ $st -eq 1 ] && grep -q 'changes the appliance and needs an admin' \
			'$T_DIR/as.err' && grep -q 'uid 65534 gid $READ_GID may run read-only' \
			'$T_DIR/as.err'"
done
check "  ... and the route did not change" test "$(route_of ro.test)" = "198.18.0.1:2500"
check "the log names the refused peer" grep -q "refused uid 65534 gid 65534" "$T_LOG"
as 65534 $ADMIN_GID -- route set ro.test '[198.18.0.1]:2700' >/dev/null; st=$?
check "nobody with the admin group as a supplementary group may change (exit $st)" \
	test $st -eq 0 -a "$(route_of ro.test)" = "198.18.0.1:2700"
check "  ... and is logged as such" grep -q "control: uid 65534 pid [0-9]*: route set ro.test" "$T_LOG"
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0

t_conf "[control]
group = $ADMIN_GID
mode = 0660
[delivery]
enabled = no"
check "sluiced starts with mode 0660" t_start
as 65534 -- ping >/dev/null; st=$?
check "mode 0660: nobody outside the group cannot connect (exit $st)" \
	sh -c "[ $st -eq 3 ] && grep -q 'Permission denied' '$T_DIR/as.err'"
as 65534 $ADMIN_GID -- ping >/dev/null; st=$?
check "  ... a member of the group can (exit $st)" test $st -eq 0

# --- 2. abuse -------------------------------------------------------------------------
fds() { ls "/proc/$T_PID/fd" | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$T_PID/status"; }
# only the stats request itself connected: every abusive client is gone
settled() { [ "$(stat ctl.clients)" -le 1 ]; }
fd0=$(fds) rss0=$(rss) bad0=$(stat ctl.bad_requests)
echo "# before: $fd0 fds, RSS $rss0 kB"
out=$($ABUSE abuse "$T_SOCK" 2>"$T_DIR/abuse.err"); st=$?
echo "# $out"
check "1,000 abusive clients: each got an error reply or was closed, the prober always got through" \
	test $st -eq 0
[ $st -eq 0 ] || sed 's/^/#   /' "$T_DIR/abuse.err" | head -n 20
check "sluiced still runs" kill -0 "$T_PID"
check "  ... and answers" sh -c "'$T_CTL' -s '$T_SOCK' ping | grep -q pong"
check "  ... and let every abusive client go" wait_for 90 settled
bad=$(stat ctl.bad_requests) over=$(stat ctl.oversized)
check "ctl.bad_requests counted the 500 malformed lines ($bad0 -> $bad)" test $((bad - bad0)) -ge 500
check "ctl.oversized counted the oversized ones ($over)" test "$over" -ge 100
for c in request_timeouts evicted refused_busy; do
	echo "#   ctl.$c = $(stat ctl.$c)"
done
fd1=$(fds) rss1=$(rss)
echo "# after: $fd1 fds, RSS $rss1 kB"
check "no file descriptor leaked ($fd0 -> $fd1)" test "$fd1" -eq "$fd0"
# ASan keeps freed memory in quarantine (256 MB by default) before reuse
limit=32
[ "${SANITIZED:-0}" = 1 ] && limit=$((256 + 32))
check "RSS grew by less than $limit MB ($rss0 -> $rss1 kB)" test $((rss1 - rss0)) -lt $((limit * 1024))
t_stop; st=$?
check "clean stop after the storm (exit $st)" test $st -eq 0

# --- 3. a large reply, read slowly ----------------------------------------------------
N=500
: >"$T_DIR/routes"
rcpts=
for i in $(seq 1 $N); do
	echo "d$i.test [198.18.0.1]:$((20000 + i))" >>"$T_DIR/routes"
	rcpts="$rcpts r@d$i.test"
done
# one connection an hour per destination: each is tried once and then
# kept by the scheduler (its rate is not idle), so the $N stay listed
# while they are read; without it a destination whose try failed is
# forgotten a second later, and the slow read found fewer
t_conf "[routes]
routes_file = $T_DIR/routes
[dest]
connection_rate = 1/h"
check "sluiced starts with $N static routes" t_start
ns /usr/bin/python3 - $rcpts <<'EOF' >"$T_DIR/send.out" 2>&1
import smtplib, sys
s = smtplib.SMTP("198.18.0.2", 25, timeout=60)
s.sendmail("s@example.org", sys.argv[1:], "Subject: many\r\n\r\nto many domains\r\n")
s.quit()
EOF
check "a message to $N domains is taken ($(tail -n 1 "$T_DIR/send.out"))" test $? -eq 0
dests() { "$T_CTL" -s "$T_SOCK" --json dest show 2>/dev/null | /usr/bin/python3 -c \
	'import json,sys; print(len(json.load(sys.stdin)["dests"]))' 2>/dev/null; }
enough() { [ "$(dests)" -ge $N ] 2>/dev/null; }
check "the scheduler has $N destinations" wait_for 120 enough
waits0=$(stat ctl.out_waits)
out=$($ABUSE slowread "$T_SOCK" 4096 0.01 dest show 2>"$T_DIR/slow.err"); st=$?
bytes=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])' \
	2>/dev/null)
got=$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["dests"])' \
	2>/dev/null)
wmem=$(cat /proc/sys/net/core/wmem_default)
echo "# dest show: ${bytes:-?} bytes, ${got:-?} destinations, read slowly in $(echo "$out" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' 2>/dev/null) s"
check "the reply is larger than the socket's buffer (${bytes:-?} > $wmem bytes)" \
	test "${bytes:-0}" -gt "$wmem"
check "read 4 KB every 10 ms, it arrived whole: all ${got:-?} destinations ($(head -c 200 \
	"$T_DIR/slow.err"))" test $st -eq 0 -a "${got:-0}" -ge $N
waits=$(stat ctl.out_waits)
check "  ... written as the reader took it (ctl.out_waits $waits0 -> $waits)" \
	test "$waits" -gt "$waits0"
check "sluiced answers after it" sh -c "'$T_CTL' -s '$T_SOCK' ping | grep -q pong"
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0

finish
