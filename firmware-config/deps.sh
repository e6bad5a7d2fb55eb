#!/usr/bin/env bash
# deps.sh - install the Debian packages Sluice needs, only those missing.
#
#   deps.sh run    what building and running sluiced needs
#   deps.sh test   that, plus what the test suites and the benches under bench/
#                  drive (clients, sinks, tools); the benches call it too
#   deps.sh image  that of `run`, plus what `make image` builds the disk with
#   deps.sh image-test  that of `image`, plus what `make image-test` boots it in
#
# Runs `apt-get update` first only when something is missing. Needs root.
set -euo pipefail

build_pkgs=(build-essential meson ninja-build pkg-config
            libdpdk-dev liblmdb-dev libssl-dev libinih-dev libc-ares-dev
            libjansson-dev	# the control socket's JSON, sluiced and sluicectl
            libmicrohttpd-dev	# the metrics exporter's HTTP server ([metrics] listen)
            libhiredis-dev	# [cluster]: leases, rates and suspensions in Redis
            iproute2 openssl
            swaks libnet-ssleay-perl libio-socket-ssl-perl	# to try SMTP (+TLS) by hand
            dnsmasq-base	# make run's DNS server (the binary only: no system service)
            python3-aiosmtpd)	# make run's local next hop
test_pkgs=(libcriterion-dev lmdb-utils iputils-ping iputils-arping
           clang libclang-rt-14-dev python3 util-linux
           postfix
           curl	# metrics_e2e, reload_e2e: the Prometheus endpoint over HTTP
           dpdk	# Debian's dpdk.service, which the appliance's units are verified against (tests/image)
           pflogsumm	# queue_ops_e2e.sh: the mail log read by Postfix's summarizer
           ethtool	# veth offloads off for net_af_packet (netns.sh)
           nftables	# netns.sh: the kernel leaves a DPDK port's veth end alone
           libfuse3-dev fuse3	# tests/support/cachefs.c: the power-cut test's disk
           prometheus	# promtool check metrics (metrics_e2e); its service is not started
           dpdk-dev	# dpdk-telemetry.py (metrics_e2e reads /sluice/ commands)
           redis-server	# cluster unit tests and cluster_e2e: the real Redis
           testssl.sh	# tls_e2e: the STARTTLS policy checked by a third party
           libio-socket-inet6-perl)	# ipv6_e2e: swaks -6 needs IO::Socket::INET6
# make image (firmware-config/build-image.sh): the root from Debian's packages,
# the partitions made as files (no loop devices, no mounts), the qcow2.
image_pkgs=(mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-utils zstd)
# make image-test (firmware-config/image-test.sh): UEFI boot under TCG.
image_test_pkgs=(qemu-system-x86 ovmf)

want=("${build_pkgs[@]}")
case "${1:-run}" in
run) ;;
test) want+=("${test_pkgs[@]}") ;;
image) want+=("${image_pkgs[@]}") ;;
image-test) want+=("${image_pkgs[@]}" "${image_test_pkgs[@]}") ;;
*) echo "usage: $0 run|test|image|image-test" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
		|| missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages (${missing[*]}) and not root to install them" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# postfix is installed for its test tools (smtp-source, smtp-sink) and for the
# benchmark's private instance: no system mail configuration, no daemon.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# prometheus is installed for promtool only: its server must not run here.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && command -v systemctl >/dev/null &&
   [ -d /run/systemd/system ]; then
	systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
