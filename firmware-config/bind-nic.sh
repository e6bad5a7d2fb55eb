#!/usr/bin/env bash
# bind-nic.sh PCI_ADDRESS - hand a NIC to DPDK: load vfio-pci and bind the
# port to it (the kernel loses the interface). Needs Debian's dpdk package
# for dpdk-devbind.py. Undo with: dpdk-devbind.py -b <kernel driver> ADDR
set -euo pipefail
addr=${1:?usage: bind-nic.sh PCI_ADDRESS (e.g. 0000:03:00.0)}
command -v dpdk-devbind.py >/dev/null || apt-get install -y dpdk
modprobe vfio-pci
dpdk-devbind.py --status-dev net
dpdk-devbind.py -b vfio-pci "$addr"
dpdk-devbind.py --status-dev net | grep -F "$addr"
