# netns.sh - shared helpers (sourced) to run sluiced with its port (a tap,
# a veth, a virtio-user tap) inside a network namespace of our own, as
# `make run`, the integration tests and the benches do. The daemon process
# runs inside the namespace, so the kernel side of its port lives there too,
# isolated from the host's networking.
#
#   sluice_ns_up NS                 create NS (loopback up, IPv6 off)
#   sluice_tap_wait NS IFACE ADDR   wait for the tap, give the kernel side ADDR/24
#   sluice_veth_up NS APP KERN ADDR a veth pair in NS for net_af_packet: sluiced
#                                   binds APP, the kernel side KERN gets ADDR/24
#   sluice_port_owned NS IFACE      the kernel's own stack ignores what arrives
#                                   on IFACE (a DPDK port's packet sockets own it)
#   sluice_ns_down NS               delete NS
#   sluice_port_check PORT [Q]      can PORT start here with Q queue pairs (1)?
#                                   prints why not (returns 1)
#   sluice_port_vdev PORT IFACE [Q] the [eal] vdev for PORT whose kernel side is
#                                   IFACE, with Q queue pairs (one per worker; 1)
#   sluice_port_pre NS PORT IFACE ADDR   before sluiced starts (veth for af_*)
#   sluice_port_queues NS PORT IFACE Q   the veth's queue count to Q (af_*)
#   sluice_port_post NS PORT IFACE ADDR  after it starts (wait for its tap)
#
# Port types (PORT): tap (net_tap), af_packet (net_af_packet on a veth),
# af_xdp (net_af_xdp on a veth), virtio_user (virtio-user with the
# vhost-net backend: a tap in the kernel, frames moved by vhost-net).
# Whatever the type, IFACE is the kernel side's interface, which gets ADDR:
# the tap itself, or the veth end facing sluiced's IFACEa.
#   sluice_ctl_wait SOCK            wait until sluiced answers on its control socket
#   sluice_port_mtu PORT            the MTU PORT runs with under SLUICE_MTU
#
# SLUICE_MTU (environment; empty: every interface keeps its default, 1500):
# a larger MTU for the port and its kernel side, e.g. 9000 for the benches'
# jumbo runs, where the port type takes it (sluice_port_mtu): af_packet,
# whose veth gets it on both ends and whose ring frames are made to hold it
# (framesz, dataplane/port_mtu.h); sluiced's own side follows [net] mtu,
# which must say the same. The others stay at 1500: DPDK 22.11's net_tap
# takes no frame beyond 1522 octets, af_xdp none beyond its 4 KiB umem
# frames (nor does XDP on a veth beyond a page), and virtio_user is not
# measured here (no vhost-net on the machine that made this).

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
	ip -n "$ns" link add "$app" numtxqueues 8 numrxqueues 8 type veth \
		peer name "$kern" numtxqueues 8 numrxqueues 8 || return 1
	# One queue a side until sluice_port_queues says more.
	ip netns exec "$ns" ethtool -L "$app" rx 1 tx 1 >/dev/null 2>&1
	ip netns exec "$ns" ethtool -L "$kern" rx 1 tx 1 >/dev/null 2>&1
	for i in "$app" "$kern"; do
		if ! err=$(ip netns exec "$ns" ethtool -K "$i" tso off gso off gro off tx off rx off 2>&1); then
			echo "sluice_veth_up: ethtool -K $i (offloads off) failed: $err" >&2
			return 1
		fi
		if [ -n "${SLUICE_MTU:-}" ] && ! ip -n "$ns" link set "$i" mtu "$SLUICE_MTU"; then
			echo "sluice_veth_up: mtu $SLUICE_MTU on $i failed" >&2
			return 1
		fi
		ip -n "$ns" link set "$i" up || return 1
	done
	ip -n "$ns" addr add "$addr" dev "$kern"
	sluice_port_owned "$ns" "$app"
}

# Frames arriving on an interface a DPDK port owns (net_af_packet's packet
# sockets, net_af_xdp's XDP program) are the port's alone, as a NIC bound to
# DPDK never shows its frames to the kernel. Without this the kernel also
# passes each one to its IP stack, which has no route for it there: a route
# lookup, a dst allocated and freed, an ICMP unreachable attempted per frame,
# all charged to whichever thread sent the frame into the veth (sluiced's
# worker for the frames to its peer, a benchmark's generator for those to
# sluiced). An nftables netdev ingress chain drops them after the packet
# sockets took their copy (taps run before ingress hooks). Best effort:
# without nft the port works the same, only slower; a note says so.
sluice_port_owned() {
	local ns=$1 ifc=$2 err
	if ! command -v nft >/dev/null 2>&1; then
		echo "sluice_port_owned: nft is not installed (firmware-config/deps.sh test):" \
		     "the kernel also processes $ifc's frames" >&2
		return 0
	fi
	if ! err=$(ip netns exec "$ns" nft -f - 2>&1 <<NFT
table netdev sluice_port_$ifc {
	chain ingress {
		type filter hook ingress device "$ifc" priority 0; policy drop;
	}
}
NFT
	); then
		echo "sluice_port_owned: nft could not hide $ifc from the kernel: $err" >&2
	fi
	return 0
}

# The DPDK PMD directory of this machine's librte_ethdev.
sluice_pmd_dir() {
	local d
	for d in /usr/lib/*/dpdk/pmds-* /usr/local/lib/*/dpdk/pmds-*; do
		[ -d "$d" ] && { echo "$d"; return 0; }
	done
	return 1
}

sluice_port_check() {
	local port=$1 q=${2:-1} d
	d=$(sluice_pmd_dir) || { echo "no DPDK PMD directory"; return 1; }
	case $port in
	tap) [ -e "$d/librte_net_tap.so" ] || { echo "net_tap PMD not installed"; return 1; }
	     [ -c /dev/net/tun ] || { echo "no /dev/net/tun"; return 1; } ;;
	af_packet) [ -e "$d/librte_net_af_packet.so" ] || { echo "net_af_packet PMD not installed"; return 1; }
	     command -v ethtool >/dev/null || { echo "ethtool not installed"; return 1; } ;;
	af_xdp) [ -e "$d/librte_net_af_xdp.so" ] || { echo "net_af_xdp PMD not installed"; return 1; }
	     command -v ethtool >/dev/null || { echo "ethtool not installed"; return 1; }
	     if [ -r /proc/config.gz ] && ! zcat /proc/config.gz | grep -q '^CONFIG_XDP_SOCKETS=y'; then
		echo "kernel built without CONFIG_XDP_SOCKETS"; return 1
	     fi
	     # DPDK 22.11's PMD counts queues by ethtool's combined channels,
	     # which a veth does not have (only rx and tx): one queue at most.
	     if [ "$q" -gt 1 ]; then
		echo "net_af_xdp (DPDK 22.11) takes one queue of a veth (no combined channels), $q workers need $q"
		return 1
	     fi ;;
	virtio_user) [ -e "$d/librte_net_virtio.so" ] || { echo "net_virtio PMD not installed"; return 1; }
	     [ -c /dev/vhost-net ] || { echo "no /dev/vhost-net (kernel without CONFIG_VHOST_NET or module vhost_net not loaded)"; return 1; }
	     [ -c /dev/net/tun ] || { echo "no /dev/net/tun"; return 1; } ;;
	*) echo "unknown port type '$port' (tap, af_packet, af_xdp, virtio_user)"; return 1 ;;
	esac
	return 0
}

# net_af_xdp: one queue (queue_count=1 from start_queue=0: a veth has one
# RX queue per end unless made with more); the PMD loads its default XDP
# program (redirect to the XSK map) on the interface itself (libxdp says it
# falls back to a single program without bpffs: expected in a namespace).
# busy_budget stays at the PMD's default (64): preferred busy polling
# (SO_PREFER_BUSY_POLL), which measured 30x the connections per second of
# busy_budget=0 here (tcp-bench: 57,000/s against 1,900/s).
# virtio_user: vhost-net backend, one queue pair; the kernel sees a tap
# named IFACE.
# A port needs a TX queue per worker lcore, and every RX queue it has must
# be polled: Q is the number of workers. net_af_xdp binds one socket per
# queue of the veth, whose queue count must then be Q too
# (sluice_port_queues); on a veth it can have only one (sluice_port_check).
# With a SLUICE_MTU above what the PMD's default 2048-octet ring frames
# hold (1968: port_mtu.h), net_af_packet gets frames of MTU + 80 octets
# rounded up to 1 KiB, in blocks of whole pages AND whole frames (the PMD
# finds frame i at i * framesz, the kernel packs whole frames into each
# block: only the same when a block holds no slack), and about 512 of them
# (a multiple of the frames per block, as the kernel requires).
sluice_port_vdev() {
	local port=$1 ifc=$2 q=${3:-1} m k fpb
	case $port in
	tap) echo "net_tap0,iface=$ifc" ;;
	af_packet)
		m=$(sluice_port_mtu af_packet)
		if [ "$m" -gt 1968 ]; then
			k=$(( (m + 80 + 1023) / 1024 ))	# framesz in KiB
			fpb=4	# frames per block: lcm(k, 4) / k
			[ $((k % 2)) -eq 0 ] && fpb=2
			[ $((k % 4)) -eq 0 ] && fpb=1
			echo "net_af_packet0,iface=${ifc}a,qpairs=$q,framesz=$((k * 1024)),blocksz=$((k * 1024 * fpb)),framecnt=$(( 512 / fpb * fpb ))"
		else
			echo "net_af_packet0,iface=${ifc}a,qpairs=$q"
		fi ;;
	af_xdp) echo "net_af_xdp0,iface=${ifc}a,start_queue=0,queue_count=$q" ;;
	virtio_user) echo "virtio_user0,path=/dev/vhost-net,queues=$q,queue_size=1024,iface=$ifc" ;;
	*) return 1 ;;
	esac
}

# The veth of af_packet/af_xdp is made with room for 8 queues a side and
# runs with Q of them (ethtool -L): frames arriving on a queue no XDP
# socket is bound to would go to the kernel instead of sluiced.
sluice_port_queues() {
	local ns=$1 port=$2 ifc=$3 q=$4 i err
	case $port in
	af_packet|af_xdp)
		for i in "${ifc}a" "$ifc"; do
			if ! err=$(ip netns exec "$ns" ethtool -L "$i" rx "$q" tx "$q" 2>&1); then
				# "unmodified" is not an error
				case $err in *nmodified*) ;; *)
					echo "sluice_port_queues: ethtool -L $i rx $q tx $q: $err" >&2
					return 1 ;;
				esac
			fi
		done ;;
	esac
	return 0
}

sluice_port_pre() {
	local ns=$1 port=$2 ifc=$3 addr=$4
	case $port in
	af_packet) sluice_veth_up "$ns" "${ifc}a" "$ifc" "$addr" ;;
	af_xdp) SLUICE_MTU= sluice_veth_up "$ns" "${ifc}a" "$ifc" "$addr" ;;	# sluice_port_mtu
	*) return 0 ;;
	esac
}

sluice_port_post() {
	local ns=$1 port=$2 ifc=$3 addr=$4
	case $port in
	tap|virtio_user) sluice_tap_wait "$ns" "$ifc" "$addr" ;;
	*) return 0 ;;
	esac
}

sluice_port_mtu() {
	local m=${SLUICE_MTU:-1500}
	case $1 in
	af_packet) ;;
	*) [ "$m" -gt 1500 ] && m=1500 ;;
	esac
	echo "$m"
}

sluice_ns_down() {
	ip netns del "$1" 2>/dev/null || true
}

# $1 socket, $2 sluicectl binary
sluice_ctl_wait() {	# sluice_ctl_wait SOCK CTL [PID]: until sluiced answers a ping
	local sock=$1 ctl=$2 pid=${3:-} end=$((SECONDS + 60))
	# generous: EAL start-up (512 MB of --no-huge memory) took over 10 s on
	# this 2-core machine under load, and a slow start is not a failure;
	# a sluiced that exited (PID given) is, at once
	until "$ctl" -s "$sock" ping >/dev/null 2>&1; do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			echo "sluiced (pid $pid) exited before it answered on $sock" >&2
			return 1
		fi
		if [ $SECONDS -ge $end ]; then
			echo "sluiced did not answer on $sock" >&2
			return 1
		fi
		sleep 0.1
	done
}
