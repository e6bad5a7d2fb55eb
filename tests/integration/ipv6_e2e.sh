#!/usr/bin/env bash
# ipv6_e2e.sh BUILD_DIR - IPv6 against the Linux kernel over net_tap (issue
# 16, acceptance 1, the network part): Neighbor Discovery both ways, ping6,
# the TCP echo's bulk and loss phases with byte-exact data (SHA-256), and
# two worker lcores steering IPv6 flows. Addresses only inside the test's
# namespace: fd00:5c::1 (kernel) and fd00:5c::2/64 (sluiced).
#
# Under the sanitizers (SANITIZED=1) the volumes shrink.
set -u
. "$(dirname "$0")/lib.sh"
t_setup ipv6 "$1"
here=$(cd "$(dirname "$0")" && pwd)
PY="/usr/bin/python3 $here/tcp_clients.py"
ns() { ip netns exec "$T_NS" "$@"; }
ME=fd00:5c::2
KERNEL=fd00:5c::1

if [ "${SANITIZED:-0}" = 1 ]; then
	CONNS=50 STREAM=$((5 * 1000 * 1000)) ISTREAM=$((2 * 1000 * 1000))
else
	CONNS=200 STREAM=$((50 * 1000 * 1000)) ISTREAM=$((20 * 1000 * 1000))
fi
POOL="[port]
mbufs = 65535"
NET6="[net]
address6 = $ME/64"

# netns.sh turns IPv6 off in the namespace (no chatter towards the v4
# suites); this suite wants it on the kernel's side of the tap.
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
# start6: start sluiced, then give the (new) tap its IPv6 address (no DAD:
# it would hold the address back for a second).
start6() {
	t_start || return 1
	ns sysctl -qw "net.ipv6.conf.$T_IF.disable_ipv6=0" || return 1
	ns ip -6 addr add $KERNEL/64 dev "$T_IF" nodad || return 1
}
ping_ok() { ns ping -6 -c 1 -W 1 $ME >/dev/null 2>&1; }

# --- 1. ND and ping6 ----------------------------------------------------------
t_conf "$POOL
$NET6
[testsvc]
echo_port = 7"
check "sluiced starts with address6 = $ME/64" start6
wait_for 30 ping_ok
out=$(ns ping -6 -c 5 -i 0.2 -W 2 $ME 2>&1 | tail -n 2 | tr '\n' ' ')
check "ping6 $ME: 5 of 5 answered ($out)" eval "echo '$out' | grep -q ' 0% packet loss'"
r=$(stat net.icmp6_tx_echo_reply)
check "the replies were ours ($r echo replies counted)" test "$r" -ge 5
na=$(stat net.nd_tx_na); rns=$(stat net.nd_rx_ns)
check "we answered the kernel's solicitation ($rns NS heard, $na NA sent)" \
	test "$rns" -ge 1 -a "$na" -ge 1
# We learned the kernel from its NS (STALE, RFC 4861 7.2.3); sending moves
# it to DELAY and 5 s later to PROBE: our unicast NS, the kernel's NA.
probed() {
	ns ping -6 -c 1 -W 1 $ME >/dev/null 2>&1
	local s r
	s=$(stat net.nd_tx_ns) && r=$(stat net.nd_rx_na) && [ "$s" -ge 1 ] && [ "$r" -ge 1 ]
}
wait_for 30 probed
nsol=$(stat net.nd_tx_ns); rna=$(stat net.nd_rx_na)
check "unreachability detection: we probed the kernel ($nsol NS sent) and it confirmed ($rna NA heard)" \
	test "$nsol" -ge 1 -a "$rna" -ge 1
neigh=$(ns ip -6 neigh show $ME dev "$T_IF")
check "the kernel knows our MAC ($neigh)" eval "echo '$neigh' | grep -q lladdr"
# our link-local address (EUI-64 of the port MAC) answers too
mac=$(echo "$neigh" | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}')
if [ -n "$mac" ]; then
	IFS=: read -r m0 m1 m2 m3 m4 m5 <<<"$mac"
	lla=$(printf 'fe80::%x%02x:%xff:fe%02x:%x%02x' $((0x$m0 ^ 2)) 0x$m1 0x$m2 0x$m3 0x$m4 0x$m5)
	out=$(ns ping -6 -c 2 -i 0.2 -W 2 "$lla%$T_IF" 2>&1 | tail -n 2 | tr '\n' ' ')
	check "ping6 our link-local $lla: answered ($out)" eval "echo '$out' | grep -q ' 0% packet loss'"
else
	fail "our MAC could not be read from the kernel's neighbour table"
fi

# --- 2. TCP over IPv6, clean ----------------------------------------------------
out=$(ns timeout 300 $PY many $ME 7 $CONNS 65536); st=$?
check "$CONNS concurrent IPv6 connections each echo 64 KiB intact: $out" test $st -eq 0
out=$(ns timeout 300 $PY stream $ME 7 $STREAM); st=$?
check "one IPv6 stream of $STREAM bytes each way, SHA-256 equal: $out" test $st -eq 0
seg=$(stat tcp.seg_in); v6=$(stat net.ip6_rx)
check "it was IPv6 ($v6 IPv6 datagrams in, $seg TCP segments)" test "$v6" -ge "$seg" -a "$seg" -gt 0
few_conns() { local c; c=$(stat gauge.tcp_conns) && [ "$c" -le 2 ]; }
wait_for 30 few_conns
c=$(stat gauge.tcp_conns)
check "no connection left behind ($c in use)" test "$c" -le 2
t_stop; check "clean stop" test $? -eq 0

# --- 3. TCP over IPv6, impaired --------------------------------------------------
t_conf "$POOL
$NET6
[testsvc]
echo_port = 7
[impair]
seed = 7
rx_drop = 2%
rx_dup = 1%
rx_reorder = 1%
tx_drop = 2%
tx_dup = 1%
tx_reorder = 1%"
check "sluiced starts with 2% loss, 1% dup, 1% reorder each way" start6
wait_for 30 ping_ok
out=$(ns timeout 600 $PY many $ME 7 $CONNS 65536); st=$?
check "impaired: $CONNS concurrent 64 KiB IPv6 echoes intact: $out" test $st -eq 0
out=$(ns timeout 600 $PY stream $ME 7 $ISTREAM); st=$?
check "impaired: IPv6 stream of $ISTREAM bytes each way, SHA-256 equal: $out" test $st -eq 0
d=$(stat impair_rx.dropped); r=$(stat tcp.retransmits)
check "impairment really happened (rx dropped $d, retransmits $r)" test "$d" -gt 0 -a "$r" -gt 0
t_stop; check "clean stop" test $? -eq 0

# --- 4. two lcores: IPv6 flows steered, ND on both -------------------------------
t_conf "$POOL
$NET6
[lcores]
workers = 2
[testsvc]
echo_port = 7"
check "sluiced starts with 2 workers" start6
wait_for 30 ping_ok
out=$(ns timeout 300 $PY many $ME 7 $CONNS 65536); st=$?
check "$CONNS IPv6 connections echo intact across 2 lcores: $out" test $st -eq 0
so=$(( $(stat steer0.steered_out) + $(stat steer1.steered_out) ))
check "frames were steered between the lcores ($so)" test "$so" -gt 0
m=$(stat steer.misrouted)
check "no IPv6 frame reached a stack that does not own its flow (misrouted $m)" test "$m" -eq 0
t_stop; check "clean stop" test $? -eq 0

# --- 5. SMTP over IPv6 -------------------------------------------------------------
# swaks -6 in the clear and with STARTTLS, then smtp-source's 1,000
# messages; all of them in the spool (queue-dump), traced as [IPv6:...].
QD=$T_BUILD/tests/integration/queue-dump
SRC_MSGS=1000
t_conf "$NET6
[delivery]
enabled = no
[smtp]
hostname = sluice.test
mynetworks = 198.18.0.0/24 $KERNEL/128"
check "sluiced starts serving SMTP with mynetworks holding $KERNEL/128" start6
wait_for 30 ping_ok
sw6() {
	ns timeout 60 swaks -6 --server $ME --port 25 --helo swaks6.test --from s@example.org \
		--to r@example.net --body "over IPv6 $1" "${@:2}" 2>&1
}
out=$(sw6 plain); id=$(printf '%s\n' "$out" | sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-Z]*\).*/\1/p')
check "swaks -6: 250 queued as ${id:-?}" test -n "$id"
out=$(sw6 tls --tls); idt=$(printf '%s\n' "$out" | sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-Z]*\).*/\1/p')
check "swaks -6 --tls (STARTTLS): 250 queued as ${idt:-?}" \
	eval "[ -n '$idt' ] && printf '%s\n' \"\$out\" | grep -q 'TLS started'"
ns timeout 300 smtp-source -6 -s 20 -m $SRC_MSGS -l 2048 -c -f src@example.org -t to@example.net \
	"[$ME]:25" >"$T_DIR/source.out" 2>&1; st=$?
check "smtp-source over IPv6: $SRC_MSGS messages (exit $st)" \
	test $st -eq 0
msgs=$(stat smtp.messages)
check "sluiced took all $((SRC_MSGS + 2)) messages ($msgs)" test "$msgs" -eq $((SRC_MSGS + 2))
t_stop; check "clean stop" test $? -eq 0
mkdir -p "$T_DIR/bodies"
"$QD" -n 4 -s -b "$T_DIR/bodies" "$T_DIR/spool" >"$T_DIR/spool.dump" 2>"$T_DIR/spool.err"; st=$?
n=$(wc -l <"$T_DIR/spool.dump")
check "the spool holds all $((SRC_MSGS + 2)) messages (queue-dump exit $st: $n)" \
	test $st -eq 0 -a "$n" -eq $((SRC_MSGS + 2))
traced=$(grep -l "^Received: from .* \[IPv6:$KERNEL\])" -r "$T_DIR/bodies" | wc -l)
check "every stored message is traced from [IPv6:$KERNEL] ($traced)" test "$traced" -eq "$n"

finish
