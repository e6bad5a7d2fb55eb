#!/usr/bin/env bash
# tcp_interop.sh BUILD_DIR - our TCP stack against the Linux kernel's over
# net_tap (issue 3, acceptance 2-4): many concurrent echoes, a long stream
# checked by SHA-256, both again under seeded loss/duplication/reordering, a
# SYN flood during which a real client still gets through, and two worker
# lcores with software steering where connections opened from both complete.
#
# Sizes follow the issue in a plain build. Under the sanitizers (SANITIZED=1
# from meson) the volumes shrink: that run looks for memory errors, the plain
# one for volume.
set -u
. "$(dirname "$0")/lib.sh"
t_setup tcp "$1"
here=$(cd "$(dirname "$0")" && pwd)
PY="/usr/bin/python3 $here/tcp_clients.py"
ns() { ip netns exec "$T_NS" "$@"; }

if [ "${SANITIZED:-0}" = 1 ]; then
	CONNS=200 STREAM=$((20 * 1000 * 1000)) ISTREAM=$((5 * 1000 * 1000)) SYNS=20000
else
	CONNS=1000 STREAM=$((200 * 1000 * 1000)) ISTREAM=${TCP_IMPAIRED_STREAM:-$((200 * 1000 * 1000))} SYNS=200000
fi
POOL="[port]
mbufs = 65535"

# --- 1. clean path ----------------------------------------------------------
t_conf "$POOL
[testsvc]
echo_port = 7"
check "sluiced starts with the echo service" t_start
out=$(ns timeout 300 $PY many 198.18.0.2 7 $CONNS 65536); st=$?
check "$CONNS concurrent connections each echo 64 KiB intact: $out" test $st -eq 0
out=$(ns timeout 300 $PY stream 198.18.0.2 7 $STREAM); st=$?
check "one stream of $STREAM bytes each way, SHA-256 equal: $out" test $st -eq 0
few_conns() { local c; c=$(stat gauge.tcp_conns) && [ "$c" -le 2 ]; }
wait_for 30 few_conns
c=$(stat gauge.tcp_conns)
check "no connection left behind ($c in use)" test "$c" -le 2
t_stop; check "clean stop" test $? -eq 0

# --- 2. impaired path -------------------------------------------------------
t_conf "$POOL
[testsvc]
echo_port = 7
[impair]
seed = 3
rx_drop = 2%
rx_dup = 1%
rx_reorder = 1%
tx_drop = 2%
tx_dup = 1%
tx_reorder = 1%"
check "sluiced starts with 2% loss, 1% dup, 1% reorder each way" t_start
out=$(ns timeout 600 $PY many 198.18.0.2 7 $CONNS 65536); st=$?
check "impaired: $CONNS concurrent 64 KiB echoes intact: $out" test $st -eq 0
out=$(ns timeout 900 $PY stream 198.18.0.2 7 $ISTREAM); st=$?
check "impaired: stream of $ISTREAM bytes each way, SHA-256 equal: $out" test $st -eq 0
d=$(stat impair_rx.dropped); r=$(stat tcp.retransmits)
check "impairment really happened (rx dropped $d, retransmits $r)" test "$d" -gt 0 -a "$r" -gt 0
t_stop; check "clean stop" test $? -eq 0

# --- 2b. a small pool: TCP's mbuf budget keeps the lcore breathing ---------
# 8191 mbufs (a TCP budget of 4095) cannot hold the echoes of 1000 busy
# connections (about 34 mbufs each); without the budget such a pool ran dry
# under loss and then not even ARP replies or ACKs went out. (Received data
# an application holds is outside TCP's budget: the echo service holds up
# to a window per connection, so far smaller pools can still run dry.)
t_conf "[port]
mbufs = 8191
[testsvc]
echo_port = 7
[impair]
seed = 5
rx_drop = 2%
rx_dup = 1%
rx_reorder = 1%
tx_drop = 2%
tx_dup = 1%
tx_reorder = 1%"
check "sluiced starts with an 8191-mbuf pool and 2%/1%/1% impairment each way" t_start
out=$(ns timeout 600 $PY many 198.18.0.2 7 $CONNS 65536); st=$?
check "small pool: $CONNS concurrent 64 KiB echoes intact: $out" test $st -eq 0
w=$(stat tcp.sndbuf_budget_waits); nb=$(stat tcp.tx_nombuf); rn=$(stat port.rx_nombuf)
# Whether this load reaches the budget depends on how fast this machine
# runs the echoes (0 waits on a fast run): when it did not, the run did not
# exercise it and says so; tests/tcp/test_tcp_budget.c proves the budget
# itself deterministically. (A tighter budget or slower readers do not make
# it certain here: the echo service then holds received data in mbufs,
# which are outside TCP's budget, and a pool this small runs dry.)
if [ "$w" = 0 ]; then
	skip "the budget held senders back (this run never reached it: 0 waits)"
else
	check "the budget held senders back ($w waits)" test "$w" -gt 0
fi
check "the pool never ran dry (tcp.tx_nombuf $nb, port.rx_nombuf $rn)" test "$nb" -eq 0 -a "$rn" -eq 0
held0() { local h; h=$(stat gauge.tcp_mbufs_held) && [ "$h" -eq 0 ]; }
wait_for 30 held0
h=$(stat gauge.tcp_mbufs_held)
check "all TCP mbufs returned once connections closed ($h held)" test "$h" -eq 0
t_stop; check "clean stop" test $? -eq 0

# --- 3. SYN flood -----------------------------------------------------------
t_conf "[testsvc]
echo_port = 7
[tcp]
backlog = 64"
check "sluiced starts (backlog 64, SYN cookies on)" t_start
rss0=$(rss_kib "$T_PID")
mac=$(ns sh -c "ping -c1 -W1 198.18.0.2 >/dev/null; ip neigh show 198.18.0.2" | awk '{print $5}')
# Half the SYNs come from the kernel's address (it answers our SYN-ACKs with
# RST, as a real host would), half from a spoofed address that never answers
# (not even ARP), so half-open slots stay taken and the backlog overflows.
ns sh -c "$PY synflood '$T_IF' '$mac' 198.18.0.1 198.18.0.2 7 $((SYNS / 2)) &&
	$PY synflood '$T_IF' '$mac' 198.18.0.77 198.18.0.2 7 $((SYNS / 2))" >"$T_DIR/flood.out" 2>&1 &
flood=$!
sleep 1
out=$(ns timeout 120 $PY many 198.18.0.2 7 5 65536); st=$?
check "during the flood a real client connects and echoes: $out" test $st -eq 0
wait $flood; st=$?
check "flood of $SYNS SYNs sent: $(tr '\n' ' ' <"$T_DIR/flood.out")" test $st -eq 0
cookies() { local c; c=$(stat tcp.syncookies_sent) && [ "$c" -gt 0 ]; }
wait_for 10 cookies
c=$(stat tcp.syncookies_sent)
check "SYN cookies answered the overflow ($c sent)" test "$c" -gt 0
conns=$(stat gauge.tcp_conns)
check "connection table stayed bounded ($conns slots in use)" test "$conns" -le 200
rss1=$(rss_kib "$T_PID")
check "memory stayed bounded (RSS $rss0 -> $rss1 KiB)" \
	eval '[ "$rss0" -gt 0 ] && [ $((rss1 - rss0)) -lt $((64 * 1024)) ]'
out=$(ns timeout 120 $PY many 198.18.0.2 7 20 65536); st=$?
check "after the flood, 20 clients echo fine: $out" test $st -eq 0
t_stop; check "clean stop" test $? -eq 0

# --- 4. two lcores: software steering ---------------------------------------
# Not through ns(): a function runs in a subshell whose PID is not the
# server's, and killing it would leave the server running. ip netns exec
# execs the command, so $! is the server itself.
ip netns exec "$T_NS" $PY echo-server 0.0.0.0 7777 >"$T_DIR/echo-server.out" 2>&1 &
echo_srv=$!
t_conf "$POOL
[lcores]
workers = 2
[testsvc]
echo_port = 7
echo_connect_ip = 198.18.0.1
echo_connect_port = 7777
echo_connections = 50
echo_bytes = 100000"
check "sluiced starts with 2 workers (tap queues spread by the kernel's hash)" t_start
out=$(ns timeout 300 $PY many 198.18.0.2 7 200 65536); st=$?
check "200 passive connections echo intact across 2 lcores: $out" test $st -eq 0
clients_done() {
	local a b c d
	a=$(stat echo0.client_ok) && b=$(stat echo0.client_failed) &&
		c=$(stat echo1.client_ok) && d=$(stat echo1.client_failed) &&
		[ $((a + b + c + d)) -ge 100 ]
}
wait_for 60 clients_done
for w in 0 1; do
	okc=$(stat echo$w.client_ok)
	check "lcore $w: 50 active opens completed and verified ($okc ok, $(stat echo$w.client_failed) failed)" \
		test "$okc" -eq 50
done
so=$(( $(stat steer0.steered_out) + $(stat steer1.steered_out) ))
si=$(( $(stat steer0.steered_in) + $(stat steer1.steered_in) ))
check "frames were steered in software between the lcores ($so out, $si in)" \
	test "$so" -gt 0 -a "$si" -gt 0
m=$(stat steer.misrouted)
check "no frame reached a stack that does not own its flow (misrouted $m)" test "$m" -eq 0
t_stop; check "clean stop" test $? -eq 0
kill $echo_srv 2>/dev/null; wait $echo_srv 2>/dev/null

finish
