#!/usr/bin/env bash
# foundation.sh BUILD_DIR - the appliance answers ARP and ping over net_tap,
# counts and survives garbage, honours impairment, and stops cleanly.
set -u
. "$(dirname "$0")/lib.sh"
t_setup foundation "$1"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

# --check-config: the shipped file passes; a broken one fails with file:line.
check "--check-config accepts the shipped config" \
	"$T_SLUICED" --check-config "$src/firmware-config/sluice.conf"
printf '[net]\naddress = 1.2.3.4/24\nfoo = 1\n' >"$T_DIR/bad.conf"
out=$("$T_SLUICED" --check-config "$T_DIR/bad.conf" 2>&1); st=$?
check "--check-config rejects an unknown key with file:line" \
	test "$st" -eq 1 -a "$out" = "$T_DIR/bad.conf:3: unknown key 'foo' in [net]"

t_conf
check "sluiced starts and answers on its control socket" t_start

ns() { ip netns exec "$T_NS" "$@"; }
n=$(ns ping -c 100 -i 0.01 -W 1 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "ping -c 100 -i 0.01 gets 100 replies (got ${n:-0})" test "${n:-0}" -eq 100
n=$(ns ping -c 5 -i 0.05 -s 1400 -W 1 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "1400-byte ping works (got ${n:-0}/5)" test "${n:-0}" -eq 5
n=$(ns ping -c 3 -i 0.05 -s 1472 -M do -W 1 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "full-MTU ping (1472 bytes, DF) works (got ${n:-0}/3)" test "${n:-0}" -eq 3
n=$(ns arping -c 3 -w 5 -I "$T_IF" 198.18.0.2 | sed -n 's/Received \([0-9]*\) response.*/\1/p')
check "arping gets answers (got ${n:-0}/3)" test "${n:-0}" -eq 3
n=$(ns arping -c 2 -w 3 -I "$T_IF" 198.18.0.77 | sed -n 's/Received \([0-9]*\) response.*/\1/p')
check "no ARP answer for an address that is not ours" test "${n:-0}" -eq 0

mac=$(ns ip neigh show 198.18.0.2 | awk '{print $5}')
declare -A before
counters="eth_drop_ethertype eth_drop_vlan ip_drop_short ip_drop_cksum
	ip_drop_len ip_drop_hdrlen ip_drop_version ip_drop_frag ip_drop_ttl ip_drop_src
	ip_drop_options ip_drop_proto icmp_drop_cksum icmp_drop_short arp_drop_short
	arp_drop_format"
for c in $counters; do before[$c]=$(stat net.$c); done
sent=$(GARBAGE_EACH=50 ns /usr/bin/python3 "$here/garbage.py" "$T_IF" "$mac" 198.18.0.1 198.18.0.2)
check "garbage frames sent ($sent)" test -n "$sent"
sleep 0.5
for c in $counters; do
	after=$(stat net.$c)
	check "garbage counted in net.$c (+$((after - ${before[$c]})))" \
		test $((after - ${before[$c]})) -ge 50
done
n=$(ns ping -c 20 -i 0.01 -W 1 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "still answering ping after the garbage (got ${n:-0}/20)" test "${n:-0}" -eq 20
check "sluicectl stats renders a table" sh -c "'$T_CTL' -s '$T_SOCK' stats | grep -q 'net.icmp_tx_echo_reply'"
out=$("$T_CTL" -s "$T_SOCK" frobnicate 2>&1); st=$?
check "sluicectl reports an unknown command (exit 1)" \
	test "$st" -eq 1 -a -n "$(echo "$out" | grep "unknown command 'frobnicate'")"

t_stop; st=$?
check "SIGTERM stops sluiced cleanly (exit $st)" test "$st" -eq 0
check "the tap is gone after stop" sh -c "! ip -n '$T_NS' link show '$T_IF' >/dev/null 2>&1"
check "log says it stopped" grep -q "sluiced stopped" "$T_LOG"

# Impairment: 50% RX drop loses about half the pings, and says so.
t_conf "[impair]
seed = 7
rx_drop = 50%"
check "sluiced starts with impairment on" t_start
n=$(ns ping -c 200 -i 0.005 -W 1 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "50% RX drop: 60..140 of 200 pings answered (got ${n:-0})" test "${n:-0}" -ge 60 -a "${n:-0}" -le 140
d=$(stat impair_rx.dropped)
check "impair_rx.dropped counted ($d)" test "$d" -ge 60
t_stop; st=$?
check "stops cleanly with impairment on (exit $st)" test "$st" -eq 0

finish
