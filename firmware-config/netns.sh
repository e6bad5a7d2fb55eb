# netns.sh - shared helpers (sourced) to run sluiced with its net_tap port
# inside a network namespace of our own, as `make run` and the integration
# tests do. The daemon process runs inside the namespace, so the kernel side
# of its tap lives there too, isolated from the host's networking.
#
#   sluice_ns_up NS                 create NS (loopback up, IPv6 off)
#   sluice_tap_wait NS IFACE ADDR   wait for the tap, give the kernel side ADDR/24
#   sluice_veth_up NS APP KERN ADDR a veth pair in NS for net_af_packet: sluiced
#                                   binds APP, the kernel side KERN gets ADDR/24
#   sluice_ns_down NS               delete NS
#   sluice_ctl_wait SOCK            wait until sluiced answers on its control socket

sluice_ns_up() {
	local ns=$1
	ip netns del "$ns" 2>/dev/null || true
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	# No IPv6 chatter (router solicitations) towards the appliance.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 || true
}

sluice_tap_wait() {
	local ns=$1 ifc=$2 addr=$3 i
	for i in $(seq 1 100); do
		if ip -n "$ns" link show "$ifc" >/dev/null 2>&1; then
			ip -n "$ns" addr add "$addr" dev "$ifc" 2>/dev/null || true
			ip -n "$ns" link set "$ifc" up
			return 0
		fi
		sleep 0.1
	done
	echo "tap $ifc did not appear in namespace $ns" >&2
	return 1
}

# A veth pair for a net_af_packet port (--vdev net_af_packet0,iface=APP).
# Offloads are off on both ends: the kernel must hand over MTU-sized frames
# with their checksums computed, as a wire would. With TX checksum offload
# left on, the kernel's segments reach net_af_packet with only the
# pseudo-header sum in the TCP checksum (CHECKSUM_PARTIAL), which DPDK
# 22.11's af_packet PMD does not report in the mbuf: our stack would drop
# them all as bad checksums. So a failure here is fatal, and says why.
sluice_veth_up() {
	local ns=$1 app=$2 kern=$3 addr=$4 i err
	if ! command -v ethtool >/dev/null 2>&1; then
		echo "sluice_veth_up: ethtool is not installed (firmware-config/deps.sh test installs it)" >&2
		return 1
	fi
	ip -n "$ns" link add "$app" type veth peer name "$kern" || return 1
	for i in "$app" "$kern"; do
		if ! err=$(ip netns exec "$ns" ethtool -K "$i" tso off gso off gro off tx off rx off 2>&1); then
			echo "sluice_veth_up: ethtool -K $i (offloads off) failed: $err" >&2
			return 1
		fi
		ip -n "$ns" link set "$i" up || return 1
	done
	ip -n "$ns" addr add "$addr" dev "$kern"
}

sluice_ns_down() {
	ip netns del "$1" 2>/dev/null || true
}

# $1 socket, $2 sluicectl binary
sluice_ctl_wait() {
	local sock=$1 ctl=$2 i
	for i in $(seq 1 100); do
		"$ctl" -s "$sock" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "sluiced did not answer on $sock" >&2
	return 1
}
