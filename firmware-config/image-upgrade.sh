#!/usr/bin/env bash
# image-upgrade.sh NEW_IMAGE TARGET - upgrade an appliance's disk to a newer
# image: its system partitions (sluice-esp: boot loader, kernel, initrd;
# sluice-root: the system) are overwritten with the new image's, and its
# data partition (sluice-data: /etc/sluice and the spool) is not touched.
#
#   NEW_IMAGE  a sluice.raw that `make image` built
#   TARGET     the appliance's disk (/dev/sdX, /dev/nvme0n1) with the
#              appliance shut down (boot it from other media, or attach the
#              disk to another machine), or a disk image file
#
# Partitions are found by name in both GPT tables; each new one must fit in
# the target's partition of the same name. Nothing is written unless both
# tables are as expected and no partition of TARGET is mounted. A device is
# written in full (old blocks must not show through); a file has the two
# ranges punched out first and gets only the new image's data.
set -euo pipefail
new=${1:?usage: image-upgrade.sh NEW_IMAGE TARGET}
target=${2:?usage: image-upgrade.sh NEW_IMAGE TARGET}

die() { echo "image-upgrade.sh: $*" >&2; exit 1; }
[ -f "$new" ] || die "$new: no such image"
[ -e "$target" ] || die "$target: no such disk or file"
command -v sfdisk >/dev/null || die "sfdisk is missing (apt-get install fdisk)"

# part FILE NAME: "START SIZE" (sectors) of the partition named NAME
part() {
	sfdisk -J "$1" 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
if t.get("label") != "gpt" or t.get("sectorsize", 512) != 512:
    sys.exit(1)
p = [p for p in t["partitions"] if p.get("name") == sys.argv[1]]
if len(p) != 1:
    sys.exit(1)
print(p[0]["start"], p[0]["size"])' "$2"
}

for name in sluice-esp sluice-root sluice-data; do
	part "$target" "$name" >/dev/null ||
		die "$target has no GPT partition named $name: not a Sluice appliance disk"
done
if [ -b "$target" ]; then
	if lsblk -nro MOUNTPOINT "$target" | grep -q .; then
		die "$target has mounted partitions: upgrade with the appliance shut down"
	fi
fi

for name in sluice-esp sluice-root; do
	read -r ns nn < <(part "$new" "$name") || die "$new has no partition named $name"
	read -r ts tn < <(part "$target" "$name")
	[ "$nn" -le "$tn" ] || die "$name of $new ($nn sectors) does not fit in $target's ($tn sectors)"
	# MiB blocks when everything is MiB-aligned (build-image.sh makes it so)
	bs=512 k=1
	[ $((ns % 2048 + ts % 2048 + nn % 2048)) -eq 0 ] && bs=1M k=2048
	if [ -b "$target" ]; then
		dd if="$new" of="$target" bs=$bs skip=$((ns / k)) seek=$((ts / k)) count=$((nn / k)) \
			conv=notrunc,fsync status=none
	else
		fallocate --punch-hole --offset $((ts * 512)) --length $((tn * 512)) "$target"
		dd if="$new" of="$target" bs=$bs skip=$((ns / k)) seek=$((ts / k)) count=$((nn / k)) \
			conv=notrunc,sparse status=none
	fi
	echo "image-upgrade.sh: $name: $((nn / 2048)) MiB written"
done
sync
echo "image-upgrade.sh: $target now boots $(basename "$new"); sluice-data kept as it was"
