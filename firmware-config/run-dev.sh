#!/usr/bin/env bash
# run-dev.sh BUILD_DIR - what `make run` does: start sluiced on its built-in
# default configuration, in a network namespace made for it.
#
# Creates namespace "sluice" and sluiced's port in it; the kernel side, "sl0",
# gets 198.18.0.1/24, the appliance answers on 198.18.0.2. Ctrl-C stops
# sluiced cleanly and removes the namespace.
#
# The port: SLUICE_PORT (tap, af_packet, af_xdp, virtio_user; see
# netns.sh), by default DEFAULT_PORT below, the fastest that bench/smtp-bench
# measured here (README, "Ports"). Any type but tap runs on the built-in
# configuration with its [eal] vdev replaced (/run/sluice/sluice.conf); when
# it cannot start, sluiced starts again on net_tap, the built-in default,
# and one line says so.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
. "$here/netns.sh"

NS=sluice
SOCK=/run/sluice/control.sock
DEFAULT_PORT=af_packet
PORT=${SLUICE_PORT:-$DEFAULT_PORT}

if [ "$(id -u)" -ne 0 ]; then
	echo "run-dev.sh: needs root (network namespace, tap device)" >&2
	exit 1
fi
sluice_ns_up "$NS"
mkdir -p /run/sluice

pid=
sink=
cleanup() {
	# Ctrl-C reaches every process of the terminal's group, sluiced included,
	# and may come twice: finish cleaning up whatever arrives meanwhile.
	trap '' INT TERM
	trap - EXIT
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	[ -f /run/sluice/dns/dnsmasq-198.18.0.1.pid ] &&
		kill "$(cat /run/sluice/dns/dnsmasq-198.18.0.1.pid)" 2>/dev/null || true
	[ -n "$sink" ] && kill "$sink" 2>/dev/null || true
	sluice_ns_down "$NS"
	echo "sluice: stopped, namespace $NS removed"
}
trap cleanup INT TERM EXIT

# start_on PORT: sluiced on a port of that type; 0 once it answers on its
# control socket (pid set), 1 when it did not come up (stopped again).
start_on() {
	local port=$1 conf=() i
	if [ "$port" != tap ]; then
		sed "s|^vdev = .*|vdev = $(sluice_port_vdev "$port" sl0)|" "$here/sluice.conf" \
			>/run/sluice/sluice.conf
		conf=(-c /run/sluice/sluice.conf)
		sluice_port_pre "$NS" "$port" sl0 198.18.0.1/24 || return 1
	fi
	ip netns exec "$NS" "$build/control/sluiced" "${conf[@]}" &
	pid=$!
	if sluice_port_post "$NS" "$port" sl0 198.18.0.1/24 2>/dev/null &&
	   sluice_ctl_wait "$SOCK" "$build/control/sluicectl" "$pid" 2>/dev/null; then
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
	return 1
}

if [ "$PORT" = tap ]; then
	start_on tap || { echo "sluice: sluiced did not start on net_tap" >&2; exit 1; }
	echo "sluice: port net_tap (tap sl0)"
elif ! why=$(sluice_port_check "$PORT"); then
	echo "sluice: port $PORT cannot start here ($why): falling back to net_tap"
	start_on tap || { echo "sluice: sluiced did not start on net_tap either" >&2; exit 1; }
elif start_on "$PORT"; then
	echo "sluice: port $PORT ($(sluice_port_vdev "$PORT" sl0)), kernel side sl0"
else
	echo "sluice: port $PORT did not start (sluiced's messages above): falling back to net_tap"
	sluice_ns_up "$NS"	# without the veth of the failed try
	start_on tap || { echo "sluice: sluiced did not start on net_tap either" >&2; exit 1; }
fi
# The appliance's DNS server ([dns] servers = 198.18.0.1): a dnsmasq with the
# .test zones of the integration tests, nothing forwarded anywhere. It dies
# with the namespace.
mkdir -p /run/sluice/dns
ip netns exec "$NS" bash "$here/../tests/integration/dns_zone.sh" 198.18.0.1 /run/sluice/dns \
	>/run/sluice/dns/dnsmasq.out 2>&1 &
# A local next hop: mail for sink.test (MX 10 sink.test -> 198.18.0.1 in
# those zones) is relayed to an aiosmtpd on 198.18.0.1:25 that keeps every
# message it takes in the Maildir /run/sluice/sink.
mkdir -p /run/sluice/sink/tmp /run/sluice/sink/new /run/sluice/sink/cur
ip netns exec "$NS" /usr/bin/python3 -m aiosmtpd -n -l 198.18.0.1:25 \
	-c aiosmtpd.handlers.Mailbox /run/sluice/sink >/run/sluice/sink.out 2>&1 &
sink=$!

cat <<MSG

  Sluice is running (pid $pid) in network namespace "$NS".
    appliance:   198.18.0.2   (kernel side: 198.18.0.1/24 on sl0)
    smtp:        198.18.0.2:25 (mynetworks 198.18.0.0/24 may relay anywhere;
                 STARTTLS with a self-signed certificate; spool /var/spool/sluice)
    try:         ip netns exec $NS swaks --server 198.18.0.2 --to you@sink.test
                 (relayed to the local next hop: ls /run/sluice/sink/new)
                 ip netns exec $NS swaks --server 198.18.0.2 --to you@sink.test --tls
                 ip netns exec $NS ping -c 3 198.18.0.2
    next hop:    aiosmtpd on 198.18.0.1:25 keeping mail in /run/sluice/sink (Maildir)
    dns:         dnsmasq on 198.18.0.1 (zones: tests/integration/dns_zone.sh)
                 $build/control/sluicectl -s $SOCK --json route lookup pref.test
    counters:    $build/control/sluicectl -s $SOCK stats
    stop:        Ctrl-C

MSG
wait "$pid"
