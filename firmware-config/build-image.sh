#!/usr/bin/env bash
# build-image.sh [OUT] - `make image`: the bootable appliance disk, from Debian
# 12's own packages and this tree. As root. Writes into OUT (build-image):
#
#   sluice.raw     the disk: GPT, UEFI (systemd-boot), three partitions
#                    1 sluice-esp   256 MiB  FAT32: systemd-boot, kernel, initrd
#                    2 sluice-root  ROOT_MB  ext4, mounted read-only: the system
#                    3 sluice-data  DATA_MB  ext4: /etc/sluice, /var/spool/sluice
#   sluice.qcow2   the same disk, compressed (qemu-img convert -c)
#   meson/         the build of sluiced and sluicectl that went in
#
# Every partition is made as a file (mkfs.ext4 -d fills a filesystem from a
# directory, mtools writes the FAT one) and copied into the disk file at its
# offset: no loop devices, no mounts. The root comes from mmdebstrap;
# sluiced and sluicectl from `meson install` into it (prefix /usr/local);
# the appliance's own files from firmware-config/image/ (what each one is
# for is said at its top). An upgrade (image-upgrade.sh) rewrites
# partitions 1 and 2 from a newer image and never touches 3.
#
# Environment: MIRROR (http://deb.debian.org/debian), SECURITY_MIRROR
# (http://deb.debian.org/debian-security), ROOT_MB (2048), DATA_MB (1024).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
OUT=${1:-build-image}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
ROOT_MB=${ROOT_MB:-2048}
DATA_MB=${DATA_MB:-1024}
ESP_MB=256

if [ "$(id -u)" -ne 0 ]; then
	echo "build-image.sh: needs root (mmdebstrap, file ownership in the image)" >&2
	exit 1
fi
t_start=$SECONDS
step() { echo "== build-image: $* ($((SECONDS - t_start)) s)"; }

"$here/deps.sh" image
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
root=$OUT/root
data=$OUT/data
work=$OUT/work
rm -rf "$root" "$data" "$work"
mkdir -p "$work"

# ---- sluiced and sluicectl --------------------------------------------------
step "building sluiced and sluicectl"
[ -f "$OUT/meson/build.ninja" ] || meson setup "$OUT/meson" "$src" -Dtests=false --prefix=/usr/local >/dev/null
meson compile -C "$OUT/meson" control/sluiced control/sluicectl >"$work/meson-compile.log" || {
	tail -n 30 "$work/meson-compile.log" >&2
	exit 1
}

# The Debian packages of the shared libraries they load: ldd on the binaries
# we ship, each library's owning package (dpkg -S). A library no package
# owns (built here, /usr/local) would be missing on the appliance: stop.
libpkgs() {
	local bin lib real pkg
	for bin in "$@"; do
		ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
		while read -r lib; do
			real=$(readlink -f "$lib")
			pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null ||
			      dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) || {
				echo "build-image.sh: $bin needs $lib, which no Debian package provides" >&2
				echo "!missing"
				continue
			}
			echo "${pkg%%:*}"
		done
	done | sort -u
}
mapfile -t libs < <(libpkgs "$OUT/meson/control/sluiced" "$OUT/meson/control/sluicectl")
if printf '%s\n' "${libs[@]}" | grep -qx '!missing'; then exit 1; fi

# What the appliance runs besides: systemd as init, the kernel (all of
# Debian's NIC drivers, uio_pci_generic and vfio-pci), the initramfs tools,
# systemd-boot's EFI binary, Debian's dpdk (dpdk.service: hugepage mounts
# and NIC binding with dpdk-devbind.py), and the DPDK drivers EAL loads as
# plugins from its PMD directory (no binary links them): the bus and mempool
# drivers it cannot run without, and the poll-mode drivers of common server
# NICs and of VMs. Their runtime libraries come as their dependencies.
pkgs=(systemd systemd-sysv udev kmod procps iproute2 pciutils nano less ca-certificates
      linux-image-amd64 initramfs-tools zstd systemd-boot-efi
      dpdk librte-bus-pci23 librte-bus-vdev23 librte-mempool-ring23
      librte-net-virtio23 librte-net-vmxnet3-23 librte-net-e1000-23 librte-net-igc23
      librte-net-ixgbe23 librte-net-i40e23 librte-net-iavf23 librte-net-ice23
      librte-net-bnxt23 librte-net-mlx5-23 librte-net-ena23
      "${libs[@]}")

# ---- the root ---------------------------------------------------------------
step "mmdebstrap: ${#pkgs[@]} packages and their dependencies"
mmdebstrap --variant=essential --mode=root \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--include="$(IFS=,; echo "${pkgs[*]}")" \
	"$SUITE" "$root" \
	"deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
	"deb $SECURITY_MIRROR $SUITE-security main" >"$work/mmdebstrap.log" 2>&1 || {
	tail -n 30 "$work/mmdebstrap.log" >&2
	exit 1
}

step "installing sluiced, sluicectl (meson install) and the appliance's files"
meson install -C "$OUT/meson" --no-rebuild --destdir "$root" --strip >"$work/meson-install.log"
img=$here/image
install -D -m 0755 "$img/sluice-settings" "$root/usr/local/lib/sluice/sluice-settings"
install -D -m 0644 "$img/sluice-settings.service" \
	"$root/usr/local/lib/systemd/system/sluice-settings.service"
install -D -m 0644 "$img/sluiced-appliance.conf" \
	"$root/etc/systemd/system/sluiced.service.d/appliance.conf"
install -D -m 0644 "$img/serial-autologin.conf" \
	"$root/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf"
install -D -m 0644 "$img/journald.conf" "$root/etc/systemd/journald.conf.d/sluice.conf"
install -D -m 0644 "$img/sysusers.conf" "$root/usr/lib/sysusers.d/sluice.conf"
systemd-sysusers --root="$root" >/dev/null
install -m 0644 "$img/fstab" "$root/etc/fstab"
install -m 0644 "$img/dpdk.conf" "$root/etc/dpdk/dpdk.conf"
# Written at every boot by sluice-settings (the root is read-only).
ln -sfn /run/sluice-settings/dpdk-interfaces "$root/etc/dpdk/interfaces"
echo sluice >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tsluice\n' >"$root/etc/hosts"
# An empty machine-id on a read-only root: systemd makes a new one in /run
# at every boot (the appliance keeps no state outside the data partition).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Mount points of the data partition and its two bind mounts.
mkdir -p "$root/srv/sluice" "$root/etc/sluice"
# Units: ours enabled; the first-boot wizard masked (it would wait for
# answers on the console at every boot: an empty machine-id looks like a
# first boot); the initramfs tools' and dpkg's timers have nothing to do.
systemctl --root="$root" enable sluiced.service sluice-settings.service dpdk.service >/dev/null 2>&1
systemctl --root="$root" mask systemd-firstboot.service >/dev/null 2>&1
for u in dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service; do
	[ -e "$root/lib/systemd/system/$u" ] && systemctl --root="$root" disable "$u" >/dev/null 2>&1 || true
done
chroot "$root" ldd /usr/local/bin/sluiced >"$work/ldd.txt"
if grep -q "not found" "$work/ldd.txt"; then
	echo "build-image.sh: sluiced cannot run in the image:" >&2
	grep "not found" "$work/ldd.txt" >&2
	exit 1
fi

kver=$(cd "$root/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || {
	echo "build-image.sh: no kernel or initramfs in $root/boot" >&2
	exit 1
}

# ---- the data partition's first contents -------------------------------------
step "data partition: /etc/sluice and the spool"
mkdir -p "$data/etc" "$data/spool"
chmod 0700 "$data/spool"
install -m 0644 "$img/sluice.conf" "$data/etc/sluice.conf"
install -m 0644 "$img/appliance.conf" "$data/etc/appliance.conf"

# ---- the EFI system partition -----------------------------------------------
step "EFI system partition: systemd-boot, kernel $kver"
params=$(grep -v '^[[:space:]]*#' "$here/boot-params.txt" | grep -v '^[[:space:]]*$' | tail -n 1)
[ -n "$params" ] || { echo "build-image.sh: no parameters in boot-params.txt" >&2; exit 1; }
cmdline="root=PARTLABEL=sluice-root ro console=tty0 console=ttyS0,115200n8 panic=10 $params"
cat >"$work/loader.conf" <<EOF
default sluice.conf
timeout 1
console-mode keep
editor yes
EOF
cat >"$work/sluice.conf" <<EOF
title   Sluice $(cat "$src/meson.build" | sed -n "s/^  version : '\(.*\)',/\1/p") (Debian 12, $kver)
linux   /sluice/vmlinuz
initrd  /sluice/initrd.img
options $cmdline
EOF
esp=$work/esp.img
rm -f "$esp"
mkfs.vfat -F 32 -n SLUICE-ESP -C "$esp" $((ESP_MB * 1024)) >/dev/null
boot=$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/sluice
mcopy -i "$esp" "$boot" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$boot" ::/EFI/systemd/systemd-bootx64.efi
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/sluice.conf" ::/loader/entries/sluice.conf
mcopy -i "$esp" "$root/boot/vmlinuz-$kver" ::/sluice/vmlinuz
mcopy -i "$esp" "$root/boot/initrd.img-$kver" ::/sluice/initrd.img

# ---- filesystems and the disk -------------------------------------------------
used_mb=$(du -s -B1M -x "$root" | cut -f1)
step "root filesystem: $used_mb MiB in a $ROOT_MB MiB partition"
if [ $((used_mb * 100 / ROOT_MB)) -gt 85 ]; then
	echo "build-image.sh: the root needs $used_mb MiB: raise ROOT_MB ($ROOT_MB)" >&2
	exit 1
fi
# No journal, no reserved blocks: it is never written after this.
mkfs.ext4 -q -F -L sluice-root -O ^has_journal -m 0 -E root_owner=0:0 -d "$root" \
	"$work/root.img" "${ROOT_MB}M" >/dev/null
mkfs.ext4 -q -F -L sluice-data -m 1 -E root_owner=0:0 -d "$data" \
	"$work/data.img" "${DATA_MB}M" >/dev/null

step "disk: GPT, 3 partitions"
disk=$OUT/sluice.raw
rm -f "$disk" "$OUT/sluice.qcow2"
s_esp=2048 n_esp=$((ESP_MB * 2048))
s_root=$((s_esp + n_esp)) n_root=$((ROOT_MB * 2048))
s_data=$((s_root + n_root)) n_data=$((DATA_MB * 2048))
truncate -s $(( (s_data + n_data + 2048) * 512 )) "$disk"
sfdisk -q "$disk" <<EOF
label: gpt
unit: sectors
start=$s_esp, size=$n_esp, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="sluice-esp"
start=$s_root, size=$n_root, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="sluice-root"
start=$s_data, size=$n_data, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="sluice-data"
EOF
dd if="$esp" of="$disk" bs=512 seek=$s_esp conv=notrunc,sparse status=none
dd if="$work/root.img" of="$disk" bs=1M seek=$((s_root / 2048)) conv=notrunc,sparse status=none
dd if="$work/data.img" of="$disk" bs=1M seek=$((s_data / 2048)) conv=notrunc,sparse status=none

step "qcow2 (compressed)"
qemu-img convert -c -O qcow2 "$disk" "$OUT/sluice.qcow2"
rm -f "$work/root.img" "$work/data.img" "$esp"

echo "== build-image: done in $((SECONDS - t_start)) s"
printf '   %-14s %6s MiB apparent, %6s MiB allocated\n' \
	sluice.raw "$(( $(stat -c %s "$disk") >> 20 ))" "$(du -m "$disk" | cut -f1)"
printf '   %-14s %6s MiB\n' sluice.qcow2 "$(( $(stat -c %s "$OUT/sluice.qcow2") >> 20 ))"
echo "   root: $used_mb MiB used of $ROOT_MB MiB; kernel $kver; command line:"
echo "   $cmdline"
