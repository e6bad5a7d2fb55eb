#!/usr/bin/env bash
# pmtu_e2e.sh BUILD_DIR - path MTU from ICMP "fragmentation needed"
# (dataplane/net/tcp_input.c tcp_frag_needed_l4) with a real router.
#
#   sluiced --tap-- namespace T (198.18.0.1, forwarding) --veth-- namespace C
#   198.18.0.2                  route to 198.18.1.0/24: MTU 1280    198.18.1.2
#
# Both ends have MTU 1500 links, so the client's SYN announces MSS 1460 and
# sluiced's full segments (1500-byte datagrams, DF) cannot cross T's
# 1280-byte route: T's kernel answers each with ICMP type 3 code 4, MTU 1280.
#  1. A client in C streams 1 MB to sluiced's echo service and reads it back
#     (SHA-256 equal) within 60 s: sluiced took the ICMP (icmp_rx_frag_needed,
#     tcp.pmtu_lowered) and sent the rest in 1228-byte pieces.
#     A 1 MB SMTP message sent to sluiced is relayed across the same route
#     to an aiosmtpd next hop in C within 60 s.
#  2. The same path as a black hole (T forwards at 1500, C's own link is
#     1280 but C still announces MSS 1460, so the datagrams die without an
#     ICMP): the stream does not complete within 20 s and no MSS was
#     lowered - what every transfer through the 1280 route did before
#     sluiced acted on the ICMP (issue 16's report shows that run, made
#     with the handler unhooked).
set -u
. "$(dirname "$0")/lib.sh"
t_setup pmtu "$1"
here=$(cd "$(dirname "$0")" && pwd)
PY="/usr/bin/python3 $here/tcp_clients.py"
C_NS=sl-pmtuc-$$
VT=vpt$(( $$ % 100000 ))
VC=vpc$(( $$ % 100000 ))
SINK=
cleanup_c() { [ -n "$SINK" ] && kill "$SINK" 2>/dev/null; ip netns del "$C_NS" 2>/dev/null; t_teardown; }
trap cleanup_c EXIT

sluice_ns_up "$C_NS"
ip link add "$VT" netns "$T_NS" type veth peer name "$VC" netns "$C_NS" &&
ip -n "$T_NS" addr add 198.18.1.1/24 dev "$VT" && ip -n "$T_NS" link set "$VT" up &&
ip -n "$C_NS" addr add 198.18.1.2/24 dev "$VC" && ip -n "$C_NS" link set "$VC" up &&
ip -n "$C_NS" route add default via 198.18.1.1 &&
ip netns exec "$T_NS" sysctl -qw net.ipv4.ip_forward=1 &&
ip -n "$T_NS" route replace 198.18.1.0/24 dev "$VT" mtu lock 1280
check "router namespace with a 1280-byte route to the client" test $? -eq 0

ip netns exec "$C_NS" /usr/bin/python3 "$here/delivery_tools.py" sink 198.18.1.2 25 \
	"$T_DIR/sink" >"$T_DIR/sink.out" 2>&1 &
SINK=$!
sink_up() { ip netns exec "$C_NS" ss -ltn | grep -q " 198.18.1.2:25 "; }
check "an aiosmtpd next hop in C on 198.18.1.2:25" wait_for 20 sink_up
t_conf "[testsvc]
echo_port = 7
[routes]
relayhost = [198.18.1.2]:25"
check "sluiced starts with the echo service, relaying to C" t_start

# --- 1. with ICMP --------------------------------------------------------------------------
out=$(ip netns exec "$C_NS" timeout 60 $PY stream 198.18.0.2 7 1000000); st=$?
check "1 MB each way across the 1280 route, SHA-256 equal: $out" test $st -eq 0
fn=$(stat net.icmp_rx_frag_needed); low=$(stat tcp.pmtu_lowered)
check "sluiced took the router's ICMP ($fn received) and lowered the MSS ($low)" \
	test "$fn" -ge 1 -a "$low" -ge 1

# a 1 MB message relayed to the next hop in C (sluiced sends it: full segments)
out=$(ip netns exec "$T_NS" /usr/bin/python3 - <<'PY' 2>&1
import smtplib
body = "Subject: pmtu\r\n\r\n" + ("y" * 998 + "\r\n") * 1000
s = smtplib.SMTP("198.18.0.2", 25, timeout=60)
s.sendmail("a@client.test", ["x@sink.test"], body)
s.quit()
print(len(body))
PY
); st=$?
check "a 1 MB message taken by sluiced ($out bytes)" test $st -eq 0
arrived() { [ -s "$T_DIR/sink/msgs.log" ]; }
check "... and delivered across the 1280 route within 60 s" wait_for 60 arrived
low2=$(stat tcp.pmtu_lowered)
check "the delivery connection's MSS was lowered too ($low -> $low2)" test "$low2" -gt "$low"
kill "$SINK" 2>/dev/null; SINK=

# --- 2. without: a black hole (no ICMP comes) ----------------------------------------------
# T's route back to 1500, C's link down to 1280 but C still announcing MSS
# 1460 (advmss): T forwards sluiced's 1500-byte datagrams, C's link drops
# them, and nobody sends an ICMP.
t_stop
ip -n "$T_NS" route replace 198.18.1.0/24 dev "$VT" &&
ip -n "$C_NS" link set "$VC" mtu 1280 &&
ip -n "$C_NS" route replace default via 198.18.1.1 advmss 1460
check "black hole: T forwards at 1500, C's link takes 1280, C announces MSS 1460" test $? -eq 0
check "sluiced starts again" t_start
out=$(ip netns exec "$C_NS" timeout 20 $PY stream 198.18.0.2 7 1000000 2>&1); st=$?
fn=$(stat net.icmp_rx_frag_needed); low=$(stat tcp.pmtu_lowered)
check "without an ICMP the stream stalls (exit $st; $fn ICMP, MSS lowered $low times)" \
	test "$st" -ne 0 -a "$fn" -eq 0 -a "$low" -eq 0
check "clean stop" t_stop
finish
