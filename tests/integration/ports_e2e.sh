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
# misrouted). Last, af_packet at MTU 9000 with a bulk TCP echo. A type this machine cannot run (no PMD, no
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

# smtp_burst LABEL: smtp-source sends $MSGS messages of 10 KiB in 20
# sessions; it must exit 0 and sluiced must queue exactly that many more.
smtp_burst() {
	local label=$1 before after out st
	if [ ! -x "$SRC" ]; then
		skip "$label: smtp-source burst (no $SRC: apt-get install postfix)"
		return
	fi
	before=$(stat smtpd.queue_ok)
	out=$(ns timeout 120 "$SRC" -s 20 -m "$MSGS" -l 10240 -f a@example.org \
		-t b@example.com 198.18.0.2:25 2>&1); st=$?
	check "$label: smtp-source, $MSGS messages of 10 KiB, exits 0${out:+ ($out)}" \
		test "$st" -eq 0
	after=$(stat smtpd.queue_ok)
	check "$label: smtpd.queue_ok grew by $MSGS ($before -> $after)" \
		test "$after" -eq $((before + MSGS))
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
	smtp_burst "port $port"
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
	smtp_burst "port $port, 2 workers"
	# without the burst's traffic there is nothing to misroute
	[ -x "$SRC" ] && check "port $port, 2 workers: no frame reached a stack that does not own its flow" \
		test "$(stat steer.misrouted)" -eq 0
	check "port $port, 2 workers: sluiced stops cleanly" t_stop
}

# af_packet at MTU 9000 (SLUICE_MTU: both veth ends, ring frames that hold
# it; [net] mtu): the port must take it (its log says so), TCP must move
# segments of it both ways - the client's, sized by the MSS we announce,
# and ours - in a bulk echo that tcp_load verifies byte for byte, and the
# smtp-source's messages must all be queued over that link too, and the
# PMD must have dropped no frame as too large for its ring (port.oerrors).
jumbo_af_packet() {
	local why out f0 b0 rf0 rb0 f1 b1 rf1 rb1 e0 load=$T_BUILD/bench/tcp_load
	if ! why=$(sluice_port_check af_packet); then
		skip "port af_packet, MTU 9000 ($why)"
		return
	fi
	[ -x "$load" ] || { fail "port af_packet, MTU 9000: $load is built"; return; }
	sluice_ns_down "$T_NS"; sluice_ns_up "$T_NS"
	T_PORT=af_packet T_PORT_READY=
	: >"$T_LOG"
	rm -rf "$T_DIR/spool"
	export SLUICE_MTU=9000
	t_conf "[net]
mtu = 9000
[port]
mbufs = 16383
[testsvc]
echo_port = 7"
	if ! t_start; then
		fail "port af_packet, MTU 9000: sluiced came up ($(tail -n 5 "$T_LOG" | tr '\n' ' '))"
		t_stop; unset SLUICE_MTU; return
	fi
	check "port af_packet, MTU 9000: the port takes it" \
		grep -q "port 0 up (net_af_packet): .*mtu 9000 (mbuf room" "$T_LOG"
	f0=$(stat net.tx_frames) b0=$(stat net.tx_bytes) e0=$(stat port.oerrors)
	rf0=$(stat net.rx_frames) rb0=$(stat net.rx_bytes)
	out=$(ns timeout 120 "$load" bulk 198.18.0.2 7 20000000 2>&1)
	check "port af_packet, MTU 9000: 20 MB echoed and verified ($out)" test $? -eq 0
	f1=$(stat net.tx_frames) b1=$(stat net.tx_bytes)
	rf1=$(stat net.rx_frames) rb1=$(stat net.rx_bytes)
	# well above any 1514-octet frame: most are full 9014-octet ones
	check "port af_packet, MTU 9000: our frames average over 4000 octets ($(( (b1 - b0) / (f1 - f0 + 1) )))" \
		test $(( (b1 - b0) / (f1 - f0 + 1) )) -gt 4000
	check "port af_packet, MTU 9000: the client's too ($(( (rb1 - rb0) / (rf1 - rf0 + 1) )))" \
		test $(( (rb1 - rb0) / (rf1 - rf0 + 1) )) -gt 4000
	# SMTP over the same link: 10 KiB messages in jumbo segments
	smtp_burst "port af_packet, MTU 9000"
	check "port af_packet, MTU 9000: no frame dropped by the PMD (port.oerrors $e0 -> $(stat port.oerrors))" \
		test "$(stat port.oerrors)" -eq "$e0"
	check "port af_packet, MTU 9000: sluiced stops cleanly" t_stop
	unset SLUICE_MTU
}

for p in tap af_packet af_xdp virtio_user; do
	one_port "$p"
done
jumbo_af_packet
finish
