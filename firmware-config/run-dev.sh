#!/usr/bin/env bash
# run-dev.sh BUILD_DIR - what `make run` does: start sluiced on its built-in
# default configuration, in a network namespace made for it.
#
# Creates namespace "sluice"; sluiced's net_tap port "sl0" appears inside it;
# the kernel side gets 198.18.0.1/24, the appliance answers on 198.18.0.2.
# Ctrl-C stops sluiced cleanly and removes the namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
. "$here/netns.sh"

NS=sluice
SOCK=/run/sluice/control.sock

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

ip netns exec "$NS" "$build/control/sluiced" &
pid=$!
sluice_tap_wait "$NS" sl0 198.18.0.1/24
sluice_ctl_wait "$SOCK" "$build/control/sluicectl"
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
    appliance:   198.18.0.2   (kernel side of the tap: 198.18.0.1/24 on sl0)
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
