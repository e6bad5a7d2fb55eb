#!/usr/bin/env bash
# foundation.sh BUILD_DIR - the appliance answers ARP and ping over net_tap,
# counts and survives garbage, honours impairment, answers UDP to a closed
# port with port unreachable (rate-limited), and stops cleanly.
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

# One validation path: what start-up refuses, --check-config refuses too,
# with the same words (it used to pass mynetworks, relay_domains, hostname
# and the retry schedule, which only start-up checked).
printf '[smtp]\nmynetworks = 198.18.0.1/24\n[retry]\nschedule = 5m,soon\n[lcores]\ncores = 200\n' \
	>"$T_DIR/semantic.conf"
"$T_SLUICED" --check-config "$T_DIR/semantic.conf" >"$T_DIR/check.out" 2>&1; st=$?
semantic_errors() {	# the three errors, each with its line, in file $1
	grep -q "semantic.conf:2: smtp.mynetworks: " "$1" &&
		grep -q "semantic.conf:4: retry.schedule: " "$1" &&
		grep -q "semantic.conf:6: lcores.cores: CPU 200 is not on this machine" "$1"
}
check "--check-config rejects what start-up would (exit $st): $(tr '\n' ' ' <"$T_DIR/check.out")" \
	eval "[ $st -eq 1 ] && semantic_errors '$T_DIR/check.out'"
ip netns exec "$T_NS" "$T_SLUICED" -c "$T_DIR/semantic.conf" >"$T_DIR/start.out" 2>&1; st=$?
check "start-up refuses the same file with the same errors (exit $st)" \
	eval "[ $st -ne 0 ] && semantic_errors '$T_DIR/start.out'"

ncpu=$(nproc)
t_conf "[lcores]
cores = $((ncpu - 1))"
check "sluiced starts and answers on its control socket" t_start

ns() { ip netns exec "$T_NS" "$@"; }

# CPU placement: the worker lcore runs on the CPU that cores names (its
# real ID), the main lcore on another one.
wcpu=$(for t in /proc/$T_PID/task/*; do
	case "$(cat "$t/comm" 2>/dev/null)" in lcore-worker-*|rte-worker-*)
		awk '/^Cpus_allowed_list/ {print $2}' "$t/status";; esac; done | head -1)
mcpu=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/$T_PID/task/$T_PID/status 2>/dev/null)
check "the worker lcore is pinned to CPU $((ncpu - 1)) (got '${wcpu:-none}'), main on '${mcpu:-none}'" \
	sh -c "[ '$wcpu' = '$((ncpu - 1))' ] && [ -n '$mcpu' ] && [ '$mcpu' != '$wcpu' ]"

# A second sluiced on the same control socket refuses to start and leaves
# the first one's socket alone.
sed -e "s/iface=$T_IF/iface=${T_IF}b/" -e "s/file_prefix = sl$$/file_prefix = sl$$b/" \
	-e "s|dir = $T_DIR/spool|dir = $T_DIR/spool2|" "$T_CONF" >"$T_DIR/second.conf"
out=$(timeout 60 ip netns exec "$T_NS" "$T_SLUICED" -c "$T_DIR/second.conf" 2>&1); st=$?
check "a second sluiced on the same socket refuses to start (exit $st)" \
	sh -c "[ $st -ne 0 ] && [ $st -ne 124 ] && echo '$out' | grep -q 'another sluiced is running'"
check "the first still answers on its socket" "$T_CTL" -s "$T_SOCK" ping

# The worker lcore logs through its ring; the main lcore writes the lines.
check "the worker's log lines reach the log through its ring" \
	wait_for 10 grep -q "lcore [0-9]*: worker 0 polling port" "$T_LOG"
n=$(stat log.lines)
check "log.lines counts them ($n)" test "$n" -ge 1
n=$(stat log.dropped)
check "none dropped ($n)" test "$n" -eq 0

# SIGHUP (an operator's reload) must not stop the MTA: it reloads the
# configuration (reload_e2e.sh tests what a reload changes).
kill -HUP "$T_PID"
check "SIGHUP reloads the configuration" wait_for 10 grep -q "reload 1 of $T_CONF: applied" "$T_LOG"
check "sluiced still answers after SIGHUP" "$T_CTL" -s "$T_SOCK" ping
check "the process is still there after SIGHUP" kill -0 "$T_PID"

# The appliance answers pings sent every 10 ms. On a loaded 2-core machine
# the kernel's tap queue may drop one now and then, so: ping until 100
# replies came (-w 60: a deadline, not a count of sends) and allow at most a
# few more requests than replies; a stack that loses pings cannot pass.
out=$(ns ping -c 100 -i 0.01 -w 60 198.18.0.2)
n=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
tx=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p')
check "ping every 10 ms: 100 replies, for ${tx:-?} requests" \
	eval '[ "${n:-0}" -eq 100 ] && [ "${tx:-999}" -le 103 ]'
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
grew() { local a; a=$(stat "net.$1") && [ $((a - $2)) -ge 50 ]; }
for c in $counters; do
	wait_for 10 grew "$c" "${before[$c]}"
	after=$(stat net.$c)
	check "garbage counted in net.$c ($after, was ${before[$c]})" grew "$c" "${before[$c]}"
done
n=$(ns ping -c 20 -i 0.01 -w 30 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "still answering ping after the garbage (got ${n:-0}/20)" test "${n:-0}" -eq 20
check "sluicectl stats renders a table" sh -c "'$T_CTL' -s '$T_SOCK' stats | grep -q 'net.icmp_tx_echo_reply'"
out=$("$T_CTL" -s "$T_SOCK" frobnicate 2>&1); st=$?
check "sluicectl reports an unknown command (exit 1)" \
	test "$st" -eq 1 -a -n "$(echo "$out" | grep "unknown command 'frobnicate'")"

t_stop; st=$?
check "SIGTERM stops sluiced cleanly (exit $st)" test "$st" -eq 0
check "the tap is gone after stop" sh -c "! ip -n '$T_NS' link show '$T_IF' >/dev/null 2>&1"
check "log says it stopped" grep -q "sluiced stopped" "$T_LOG"

# A crash leaves the control socket file behind: nobody answers on it, so
# the next start takes it over.
t_conf
check "sluiced starts again" t_start
kill -KILL "$T_PID"; wait "$T_PID" 2>/dev/null; T_PID=
check "the killed daemon left its socket file" test -S "$T_SOCK"
check "a new sluiced takes over the stale socket" t_start
check "and says so" grep -q "removed a stale socket" "$T_LOG"
t_stop; st=$?
check "stops cleanly (exit $st)" test "$st" -eq 0

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

# UDP: a datagram to a closed port gets ICMP port unreachable, which the
# kernel turns into ECONNREFUSED on a connected socket; it is counted; and
# a burst meets the per-lcore rate limit, every datagram accounted for.
t_conf
check "sluiced starts for the UDP checks" t_start
u0=$(stat udp.unreach_sent); i0=$(stat net.icmp_tx_unreach)
out=$(ns /usr/bin/python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect(("198.18.0.2", 9))
s.send(b"anyone there?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
PY
)
check "a datagram to a closed UDP port gets port unreachable (got: ${out:-nothing})" \
	test "$out" = refused
n=$(stat udp.unreach_sent)
check "udp.unreach_sent counts it ($n, was $u0)" test "$n" -ge $((u0 + 1))
n=$(stat net.icmp_tx_unreach)
check "net.icmp_tx_unreach counts it ($n, was $i0)" test "$n" -ge $((i0 + 1))
d0=$(stat udp.drop_no_port); s0=$(stat udp.unreach_sent); l0=$(stat udp.unreach_limited)
ns /usr/bin/python3 - <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for burst in range(4):
    for i in range(50):
        s.sendto(b"x", ("198.18.0.2", 20000 + i))
    time.sleep(0.01)
PY
arrived() { local d; d=$(stat udp.drop_no_port) && [ "$d" -ge $((d0 + 200)) ]; }
check "200 datagrams to closed ports arrive" wait_for 20 arrived
d=$(stat udp.drop_no_port); s=$(stat udp.unreach_sent); l=$(stat udp.unreach_limited)
check "the burst meets the limit: $((s - s0)) answered, $((l - l0)) held back" \
	test $((l - l0)) -ge 100 -a $((s - s0)) -ge 1
check "every datagram answered or held back ($((s - s0)) + $((l - l0)) = $((d - d0)))" \
	test $((s - s0 + l - l0)) -eq $((d - d0))
n=$(ns ping -c 3 -i 0.05 -W 5 198.18.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "still answering ping (got ${n:-0}/3)" test "${n:-0}" -eq 3
t_stop; st=$?
check "stops cleanly after the UDP checks (exit $st)" test "$st" -eq 0

finish
