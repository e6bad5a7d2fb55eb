#!/usr/bin/env bash
# ports_e2e.sh BUILD_DIR - a short SMTP exchange over each DPDK port type
# sluiced supports on a machine without a NIC (firmware-config/netns.sh):
# tap (net_tap), af_packet and af_xdp (on a veth), virtio_user (vhost-net
# backend, a tap in the kernel).
#
# For each type: a namespace of its own, sluiced started on that port (its
# log must name the PMD that came up, so a test cannot pass on another port),
# ARP and ping, one swaks message ("queued as ID"), then smtp-source (20
# sessions, one connection per message) whose every message must be counted
# by smtpd.queue_ok, and on a veth port the kernel's own IP stack must have
# seen none of the port's frames; then again on two workers (a queue pair each, nothing
# misrouted). A type this machine cannot run (no PMD, no
# /dev/vhost-net, a kernel without XDP sockets) is reported as skipped with
# the reason, never passed; a type that should run here and does not fails.
set -u
. "$(dirname "$0")/lib.sh"
t_setup ports "$1"
SRC=/usr/sbin/smtp-source
ns() { ip netns exec "$T_NS" "$@"; }
pings() { ns ping -q -c 2 -W 5 198.18.0.2 >/dev/null 2>&1; }
if [ "${SANITIZED:-0}" = 1 ]; then MSGS=100; else MSGS=400; fi

# The kernel's IP counter of frames it had no route for: each frame a veth
# port's own end hands to the kernel's stack lands there (netns.sh
# sluice_port_owned keeps them out). Empty when unreadable.
addr_errors() { ns nstat -asz IpInAddrErrors 2>/dev/null | awk '$1 == "IpInAddrErrors" { print $2 }'; }

pmd_of() {	# the driver name sluiced's log must show for a port type
	case $1 in
	tap) echo net_tap ;; af_packet) echo net_af_packet ;;
	af_xdp) echo net_af_xdp ;; virtio_user) echo net_virtio_user ;;
	esac
}

one_port() {
	local port=$1 why out before after pmd
	if ! why=$(sluice_port_check "$port"); then
		skip "port $port: SMTP exchange ($why)"
		return
	fi
	# A fresh namespace per type: the interfaces of one would be in the
	# way of the next (same names).
	sluice_ns_down "$T_NS"; sluice_ns_up "$T_NS"
	T_PORT=$port T_PORT_READY=
	: >"$T_LOG"
	rm -rf "$T_DIR/spool"
	t_conf
	if ! t_start; then
		fail "port $port: sluiced came up ($(tail -n 5 "$T_LOG" | tr '\n' ' '))"
		t_stop; return
	fi
	pmd=$(pmd_of "$port")
	check "port $port: sluiced's port is $pmd" grep -q "port 0 up ($pmd)" "$T_LOG"
	check "port $port: ping 198.18.0.2" pings
	out=$(ns timeout 60 swaks --server 198.18.0.2 --from a@example.org --to b@example.com \
		--body "over $port" 2>&1)
	check "port $port: swaks gets 250 queued as" grep -q "<-  250 2.0.0 .*queued as" <<<"$out"
	if [ -x "$SRC" ]; then
		before=$(stat smtpd.queue_ok)
		out=$(ns timeout 120 "$SRC" -s 20 -m "$MSGS" -l 10240 -f a@example.org \
			-t b@example.com 198.18.0.2:25 2>&1)
		check "port $port: smtp-source, $MSGS messages of 10 KiB, exits 0${out:+ ($out)}" \
			test $? -eq 0
		after=$(stat smtpd.queue_ok)
		check "port $port: smtpd.queue_ok grew by $MSGS ($before -> $after)" \
			test "$after" -eq $((before + MSGS))
	else
		skip "port $port: smtp-source burst (no $SRC: apt-get install postfix)"
	fi
	case $port in
	af_packet|af_xdp)
		out=$(addr_errors)
		check "port $port: the kernel's IP stack saw none of the port's frames (IpInAddrErrors '$out')" \
			test -n "$out" -a "$out" = 0 ;;
	esac
	check "port $port: sluiced stops cleanly" t_stop
	# Two workers: a queue pair each.
	if ! why=$(sluice_port_check "$port" 2); then
		skip "port $port: 2 workers ($why)"
		return
	fi
	rm -rf "$T_DIR/spool"
	t_conf "[lcores]
workers = 2"
	if ! t_start; then
		fail "port $port: sluiced came up on 2 workers ($(tail -n 5 "$T_LOG" | tr '\n' ' '))"
		t_stop; return
	fi
	check "port $port, 2 workers: 2 queue pairs" grep -q "port 0 up ($pmd): 2 rx / 2 tx queues" "$T_LOG"
	if [ -x "$SRC" ]; then
		before=$(stat smtpd.queue_ok)
		out=$(ns timeout 120 "$SRC" -s 20 -m "$MSGS" -l 10240 -f a@example.org \
			-t b@example.com 198.18.0.2:25 2>&1)
		check "port $port, 2 workers: smtp-source, $MSGS messages, exits 0${out:+ ($out)}" \
			test $? -eq 0
		after=$(stat smtpd.queue_ok)
		check "port $port, 2 workers: smtpd.queue_ok grew by $MSGS ($before -> $after)" \
			test "$after" -eq $((before + MSGS))
		check "port $port, 2 workers: no frame reached a stack that does not own its flow" \
			test "$(stat steer.misrouted)" -eq 0
	fi
	check "port $port, 2 workers: sluiced stops cleanly" t_stop
}

for p in tap af_packet af_xdp virtio_user; do
	one_port "$p"
done
finish
