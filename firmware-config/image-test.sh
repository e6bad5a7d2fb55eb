#!/usr/bin/env bash
# image-test.sh [IMAGE_DIR [BUILD_DIR]] - `make image-test`: boot the appliance
# image `make image` built (IMAGE_DIR/sluice.raw, default build-image) and
# prove that it relays mail and keeps what it acknowledged through power
# cuts. As root; takes about 15 minutes (7 boots, each
# emulated: TCG, 1 to 2.5 minutes to sluiced answering on a loaded host).
#
# The machine: qemu-system-x86_64 -accel tcg -cpu max (no KVM here; DPDK
# needs SSE4.2), q35, UEFI (OVMF), 2 vCPUs, MEM (6G: the boot parameters
# reserve 4 x 1 GiB hugepages). Its data NIC is a virtio-net whose tap is in
# a network namespace made for this test (198.18.0.1/24 there, the
# appliance 198.18.0.2); the guest binds it to uio_pci_generic (Debian's
# kernel has no VFIO no-IOMMU mode) and sluiced drives it with DPDK's
# virtio PMD. In the namespace: a dnsmasq (tests/integration/dns_zone.sh:
# sink.test's MX is 198.18.0.1) and two aiosmtpd next hops
# (tests/integration/delivery_tools.py sink), :25 for sink.test and :2525
# for *.example.net (a static route in the appliance's routes file).
# Commands in the guest go over its serial console (image-console.py).
#
# The disk is a copy of the image on cachefs (tests/support/cachefs.c, from
# BUILD_DIR, default build-test): a disk with a volatile write cache. qemu
# opens it with cache=none, so every write the guest makes goes straight to
# cachefs (not into the host's page cache, which would outlive qemu), and
# the guest's flushes (ext4's journal commits, LMDB's fsyncs) reach it as
# fdatasync, which is what makes writes durable there. A power cut is qemu
# and cachefs SIGKILLed together: the guest's page cache and every write it
# had not flushed are gone.
#
# Checks:
#  1. The appliance boots: first-boot settings applied (host name, NIC
#     bound to uio_pci_generic), root mounted read-only and unwritable,
#     spool and /etc/sluice on the data partition, sluiced up on the virtio
#     port with no capability left once started.
#  2. Mail: swaks in the namespace -> the appliance -> the sink, byte for
#     byte after our Received: field; a message to a held route stays in
#     the queue, and `sluicectl` in the guest shows it.
#  3. Power cuts (ROUNDS, 5): smtp_clients.py record sends under load
#     (one recipient a message, in d0..d6.example.net), the
#     power is cut after a varying number of 250s, the box boots again and
#     the load resumes. At the end every message answered 250 before any
#     cut must have arrived at a sink, byte for byte (delivery_tools.py
#     kills: copies only across a cut).
#  4. Upgrade: image-upgrade.sh writes the system partitions of the image
#     over the test disk's; the box boots with its settings, configuration
#     and spool (the held message) as they were.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
IMAGE_DIR=${1:-build-image}
BUILD=${2:-build-test}
ROUNDS=${ROUNDS:-5}
MEM=${MEM:-6G}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
CONC=${CONC:-8}
PY=/usr/bin/python3

. "$src/tests/integration/lib.sh"	# ok fail check finish wait_for

if [ "$(id -u)" -ne 0 ]; then
	echo "image-test.sh: needs root (namespace, tap, FUSE)" >&2
	exit 1
fi
IMG=$(cd "$IMAGE_DIR" 2>/dev/null && pwd)/sluice.raw
if [ ! -f "$IMG" ]; then
	echo "image-test.sh: no $IMAGE_DIR/sluice.raw: run make image first" >&2
	exit 1
fi
"$here/deps.sh" image-test || exit 1
"$here/deps.sh" test || exit 1
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$src" -Dtests=true >/dev/null || exit 1
meson compile -C "$BUILD" tests/integration/cachefs >/dev/null || exit 1
CACHEFS=$(cd "$BUILD" && pwd)/tests/integration/cachefs

T_DIR=$(mktemp -d /tmp/sluice-image.XXXXXX)
NS=sl-img-$$
TAP=sli$(( $$ % 100000 ))
MNT=$T_DIR/mnt
BACK=$T_DIR/disk
DISK=$MNT/disk.raw
SENT=$T_DIR/sent.log		# swaks messages: "ID SHA RCPT"
ACKED=$T_DIR/acked.log		# the load's 250s: "ID SHA NRCPT SENDER PROTO"
TOOLS="$PY $src/tests/integration/delivery_tools.py"
LOAD="$PY $src/tests/integration/smtp_clients.py"
CON="$PY $here/image-console.py $T_DIR/con.sock"
HOST=198.18.0.2
KERN=198.18.0.1
QPID= CFS_PID=
PIDS=()
BOOTS=0
RESTARTS=()
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }
ns() { ip netns exec "$NS" "$@"; }
# bg CMD...: CMD in the namespace, in the background; $! is CMD itself (ip
# netns exec execs it), not a subshell that a kill would leave it behind.
bg() { ip netns exec "$NS" "$@" & }
g() { $CON run "${GT:-120}" "$*"; }	# a command in the guest

cfs_down() {
	[ -n "$CFS_PID" ] && kill -KILL "$CFS_PID" 2>/dev/null && wait "$CFS_PID" 2>/dev/null
	CFS_PID=
	grep -qs " $MNT fuse" /proc/mounts && umount -l "$MNT"
	return 0
}
cfs_up() {
	"$CACHEFS" "$BACK" "$MNT" >>"$T_DIR/cachefs.log" 2>&1 &
	CFS_PID=$!
	wait_for 10 test -f "$DISK"
}
cleanup() {
	trap '' INT TERM
	[ -n "$QPID" ] && kill -KILL "$QPID" 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	kill -KILL $(jobs -p) 2>/dev/null
	# whatever this test started in its namespace and is still there
	for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	cfs_down
	sluice_ns_down "$NS"
	if [ "$T_FAIL" -ne 0 ] || [ -n "${KEEP:-}" ]; then
		echo "kept for a look: $T_DIR (console-N.log per boot)"
	else
		rm -rf "$T_DIR"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the disk: a copy of the image with this test's settings ----------------
phase "disk: a copy of $IMG on cachefs"
mkdir -p "$MNT" "$BACK" "$T_DIR/cfg"
cp --sparse=always "$IMG" "$BACK/disk.raw"
cp "$OVMF_VARS" "$T_DIR/vars.fd"
data_off=$(sfdisk -J "$BACK/disk.raw" | $PY -c '
import json, sys
p = [p for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p.get("name") == "sluice-data"]
print(p[0]["start"] * 512 if p else "")')
[ -n "$data_off" ] || { fail "the image has a partition named sluice-data"; finish; exit 1; }
dpart="$BACK/disk.raw?offset=$data_off"
# The first-boot file, as an operator writes it (README, Deploying the appliance).
cat >"$T_DIR/cfg/appliance.conf" <<EOF
# image-test.sh: the appliance in the test's namespace
address = $HOST/24
gateway = $KERN
nic = 0000:00:04.0
nic_driver = uio_pci_generic
hostname = sluice-test.example
dns = $KERN
EOF
# The image's own sluice.conf with what this test changes after it:
# adaptive idling (2 host CPUs for two vCPUs and the rest of the test),
# the namespace may relay, routes for the load's domains and a held one.
debugfs "$dpart" -R "cat /etc/sluice.conf" >"$T_DIR/cfg/sluice.conf" 2>/dev/null
check "the data partition holds the image's sluice.conf" grep -q '^\[eal\]' "$T_DIR/cfg/sluice.conf"
cat >>"$T_DIR/cfg/sluice.conf" <<EOF

# image-test.sh
[lcores]
idle = adaptive
[smtp]
mynetworks = 198.18.0.0/24
postmaster = postmaster@sink.test
[routes]
routes_file = /etc/sluice/routes
EOF
printf '.example.net [%s]:2525\nheld.test hold\n' "$KERN" >"$T_DIR/cfg/routes"
for f in appliance.conf sluice.conf routes; do
	debugfs -w "$dpart" -R "rm /etc/$f" >/dev/null 2>&1
	debugfs -w "$dpart" -R "write $T_DIR/cfg/$f /etc/$f" >/dev/null 2>&1
done
check "the test's settings are on the data partition" \
	cmp -s <(debugfs "$dpart" -R "cat /etc/appliance.conf" 2>/dev/null) "$T_DIR/cfg/appliance.conf"

# ---- the namespace: tap, DNS, next hops ---------------------------------------
phase "namespace $NS: tap $TAP, dnsmasq, sinks"
sluice_ns_up "$NS"
ip -n "$NS" tuntap add dev "$TAP" mode tap
ip -n "$NS" addr add "$KERN/24" dev "$TAP"
ip -n "$NS" link set "$TAP" up
bg bash "$src/tests/integration/dns_zone.sh" "$KERN" "$T_DIR" >"$T_DIR/dnsmasq.out" 2>&1
PIDS+=($!)
bg $TOOLS sink "$KERN" 25 "$T_DIR/sink" >"$T_DIR/sink.out" 2>&1
PIDS+=($!)
bg $TOOLS sink "$KERN" 2525 "$T_DIR/sink2" >"$T_DIR/sink2.out" 2>&1
PIDS+=($!)
listening() { ns ss -ltn | grep -q " $KERN:$1 "; }
check "next hops listening on :25 and :2525" wait_for 30 eval 'listening 25 && listening 2525'

# vm_up: boot from the disk on cachefs; wait for the console's shell and
# for sluiced to answer (BOOT_TIMEOUT). Sets QPID; prints the boot time.
vm_up() {
	local t=$SECONDS
	cfs_up || { echo "cachefs did not mount" >&2; return 1; }
	BOOTS=$((BOOTS + 1))
	rm -f "$T_DIR/con.sock"
	bg qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m "$MEM" \
		-nodefaults -display none -no-reboot \
		-drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" \
		-drive if=pflash,format=raw,file="$T_DIR/vars.fd" \
		-drive file="$DISK",format=raw,if=virtio,cache=none,file.locking=off \
		-netdev tap,id=data,ifname="$TAP",script=no,downscript=no \
		-device virtio-net-pci,netdev=data,addr=0x4 \
		-chardev socket,id=con,path="$T_DIR/con.sock",server=on,wait=off,logfile="$T_DIR/console-$BOOTS.log" \
		-serial chardev:con >"$T_DIR/qemu-$BOOTS.out" 2>&1
	QPID=$!
	$CON login "$BOOT_TIMEOUT" || return 1
	GT=$BOOT_TIMEOUT g "for i in \$(seq 1 $BOOT_TIMEOUT); do sluicectl ping >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1" \
		>/dev/null || { echo "sluiced did not answer in the guest" >&2; return 1; }
	echo "boot $BOOTS: sluiced answering $((SECONDS - t)) s after power-on"
}
# vm_cut: the power goes: qemu and the disk's cache die together.
vm_cut() {
	kill -KILL "$QPID" "$CFS_PID" 2>/dev/null
	wait "$QPID" 2>/dev/null; QPID=
	wait "$CFS_PID" 2>/dev/null; CFS_PID=
	cfs_down
}
# vm_off: a clean shutdown (systemctl poweroff), then the disk unmounted.
vm_off() {
	$CON run 10 'systemctl poweroff' >/dev/null 2>&1
	wait_for 300 eval '! kill -0 $QPID 2>/dev/null'
	local st=$?
	[ $st -eq 0 ] || kill -KILL "$QPID" 2>/dev/null
	wait "$QPID" 2>/dev/null; QPID=
	umount "$MNT" 2>/dev/null
	wait "$CFS_PID" 2>/dev/null; CFS_PID=
	cfs_down
	return $st
}
# gjson KEY: one counter of `sluicectl --json stats` in the guest
gjson() {
	g "sluicectl --json stats" | $PY -c "import json,sys; print(json.loads(sys.stdin.read())['stats']['$1'])" 2>/dev/null
}
sink_count() { [ -f "$1/msgs.log" ] && wc -l <"$1/msgs.log" || echo 0; }

# ---- 1. boot ------------------------------------------------------------------
phase "1. boot"
if ! vm_up; then
	fail "the image boots to a shell on the serial console and sluiced answers"
	tail -n 40 "$T_DIR/console-$BOOTS.log" | tr -d '\r'
	finish; exit 1
fi
ok "the image boots to a shell on the serial console and sluiced answers"
check "host name from the first-boot file" test "$(g hostname)" = sluice-test.example
check "root filesystem mounted read-only" test "$(g findmnt -n -o OPTIONS / | cut -d, -f1)" = ro
check "root filesystem refuses writes" g '! touch /usr/.w 2>/dev/null'
check "the spool is on the data partition" test "$(g findmnt -n -o SOURCE /var/spool/sluice)" = "/dev/vda3[/spool]"
check "/etc/sluice is on the data partition" test "$(g findmnt -n -o SOURCE /etc/sluice)" = "/dev/vda3[/etc]"
check "/var is memory" test "$(g findmnt -n -o FSTYPE /var)" = tmpfs
out=$(g 'dpdk-devbind.py --status-dev net' | tr -d '\r')
check "the virtio NIC is bound to uio_pci_generic" grep -q "0000:00:04.0 .*drv=uio_pci_generic" <<<"$out"
out=$(g 'journalctl -b -u sluiced --no-pager | grep -E "port 0 up|ready:"')
echo "$out" | sed 's/^/    /'
check "sluiced runs DPDK on the virtio port" grep -q "port 0 up" <<<"$out"
caps=$(g 'grep CapEff /proc/$(pidof sluiced)/status' | awk '{print $2}')
check "sluiced holds no capability once started (CapEff $caps)" test "$caps" = 0000000000000000
check "the NIC answers ping through DPDK" ns ping -c 3 -W 5 "$HOST"

# ---- 2. mail --------------------------------------------------------------------
phase "2. mail through the appliance"
# sw NAME TO: one swaks message; "ID SHA RCPT" to SENT (tests/integration/relay_lib.sh)
sw() {
	local name=$1 to=$2 f id h out
	f=$T_DIR/$name.txt
	printf 'From: <%s@example.org>\nTo: <%s>\nSubject: %s %s\n\nbody of %s\n.leading dot\n..two dots\nend\n' \
		"$name" "$to" "$name" "$$.$RANDOM" "$name" >"$f"
	out=$(ns timeout 180 swaks --server $HOST --port 25 --helo swaks.test \
		--from "$name@example.org" --to "$to" --data "@$f" 2>&1)
	id=$(printf '%s\n' "$out" |
		sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-HJKMNP-TV-Z]\{13\}\)\r\{0,1\}$/\1/p')
	[ -n "$id" ] || { printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'; return 1; }
	h=$({ sed 's/$/\r/' "$f"; printf '\r\n'; } | sha256sum | cut -d' ' -f1)
	[ "$to" = x@held.test ] || echo "$id $h $to" >>"$SENT"
	echo "$id"
}
id1=$(sw first x@sink.test); check "swaks from the namespace: 250 queued as ${id1:-nothing}" test -n "$id1"
id2=$(sw held x@held.test); check "a message to a held route: 250 queued as ${id2:-nothing}" test -n "$id2"
check "the message arrives at the sink (via sink.test's MX)" wait_for 300 eval '[ "$(sink_count "$T_DIR/sink")" -ge 1 ]'
out=$($TOOLS check "$SENT" "$T_DIR/sink/msgs.log" 2>&1)
check "byte for byte after our Received: field: $out" test $? -eq 0
phase "sluicectl in the guest"
g 'sluicectl stats | grep -E "^ *(queue\.(messages|commits|fsyncs)|sched\.(route_hold|active|completed|held)|smtp\.(sessions|messages)) "' |
	sed 's/^/    /'
wait_for 120 eval '[ "$(gjson sched.route_hold)" -ge 1 ] 2>/dev/null'
hold=$(gjson sched.route_hold)
check "sluicectl in the guest shows the held message (sched.route_hold = ${hold:-unreadable})" \
	test "${hold:-0}" -ge 1 2>/dev/null

# ---- 3. power cuts ----------------------------------------------------------------
: >"$ACKED"
for r in $(seq 1 "$ROUNDS"); do
	phase "3. power cut $r/$ROUNDS"
	before=$(wc -l <"$ACKED")
	bg $LOAD --host $HOST --log "$ACKED" --op-timeout 60 record 1000000 "$CONC" \
		>"$T_DIR/load-$r.out" 2>&1
	ld=$!
	want=$((before + 20 + (r * 37) % 60))
	wait_for 600 eval '[ "$(wc -l <"$ACKED")" -ge $want ] || ! kill -0 $ld 2>/dev/null'
	vm_cut
	# The cut divides the runs for `kills`: a copy after it comes from the
	# next boot (which delivers before its console answers).
	RESTARTS+=("$(date +%s.%N)")
	kill -KILL $ld 2>/dev/null; wait $ld 2>/dev/null
	n=$(wc -l <"$ACKED")
	check "round $r: the power cut under load, $((n - before)) acknowledged this round" \
		test $((n - before)) -ge 20
	if ! vm_up; then
		fail "round $r: the appliance boots again after the cut"
		tail -n 40 "$T_DIR/console-$BOOTS.log" | tr -d '\r'
		break
	fi
	out=$(g 'journalctl -b -u sluiced --no-pager | grep -o "shard [0-9]*: recovered, [0-9]* messages"')
	rec=$(awk '{s += $4} END {print s + 0}' <<<"$out")
	ok "round $r: booted again; $rec messages recovered from the spool ($(echo $out))"
	echo "figures: round $r: $((n - before)) acked before the cut, $rec recovered at boot $BOOTS"
done
phase "3. every acknowledged message delivered"
acked=$(wc -l <"$ACKED")
wait_for 900 eval '[ "$(sink_count "$T_DIR/sink2")" -ge '"$acked"' ]'
g 'sluicectl stats | grep -E "sched\.(active|queued|completed)"' | sed 's/^/    /'
# The load's messages to *.example.net only (sink2); copies across a cut
# are allowed (at least once), a copy without a cut between is not.
out=$($TOOLS kills "$ACKED" "$T_DIR/sink2/msgs.log" "${RESTARTS[@]}" 2>&1)
check "power cuts: $out" test $? -eq 0

# ---- 4. upgrade ---------------------------------------------------------------------
phase "4. upgrade: new system partitions, same data partition"
before=$(g 'journalctl -b -u sluiced --no-pager | grep -o "shard [0-9]*: recovered, [0-9]* messages"' | tr -d '\r')
check "clean shutdown" vm_off
# A mark on the old system partition (and one on the data partition): the
# upgrade must take the first away with the old system and keep the second.
root_off=$(sfdisk -J "$BACK/disk.raw" | $PY -c '
import json, sys
p = [p for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p.get("name") == "sluice-root"]
print(p[0]["start"] * 512 if p else "")')
rpart="$BACK/disk.raw?offset=$root_off"
echo old >"$T_DIR/mark"
debugfs -w "$rpart" -R "write $T_DIR/mark /old-system" >/dev/null 2>&1
debugfs -w "$dpart" -R "write $T_DIR/mark /etc/kept-mark" >/dev/null 2>&1
check "marks written on the old system and the data partition" \
	eval 'debugfs "$rpart" -R "cat /old-system" 2>/dev/null | grep -qx old &&
	      debugfs "$dpart" -R "cat /etc/kept-mark" 2>/dev/null | grep -qx old'
out=$("$here/image-upgrade.sh" "$IMG" "$BACK/disk.raw" 2>&1)
check "image-upgrade.sh rewrites partitions 1 and 2: $(tail -n 1 <<<"$out")" test $? -eq 0
check "the old system partition is gone (its mark with it)" \
	eval '! debugfs "$rpart" -R "cat /old-system" 2>/dev/null | grep -qx old'
check "the data partition still holds the test's settings" \
	cmp -s <(debugfs "$dpart" -R "cat /etc/appliance.conf" 2>/dev/null) "$T_DIR/cfg/appliance.conf"
if vm_up; then
	ok "the upgraded appliance boots"
	check "its settings are applied (host name)" test "$(g hostname)" = sluice-test.example
	check "the data partition's files are there (/etc/sluice/kept-mark)" \
		test "$(g cat /etc/sluice/kept-mark)" = old
	after=$(g 'journalctl -b -u sluiced --no-pager | grep -o "shard [0-9]*: recovered, [0-9]* messages"' | tr -d '\r')
	held=$(awk '{s += $4} END {print s + 0}' <<<"$after")
	check "its spool is kept: the held message is still queued ($held recovered)" test "$held" -ge 1
	id3=$(sw upgraded x@sink.test)
	check "it relays after the upgrade" wait_for 300 eval '[ "$(sink_count "$T_DIR/sink")" -ge 2 ]'
	out=$($TOOLS check "$SENT" "$T_DIR/sink/msgs.log" 2>&1)
	check "both swaks messages byte for byte: $out" test $? -eq 0
	check "clean shutdown after the upgrade" vm_off
else
	fail "the upgraded appliance boots"
	tail -n 40 "$T_DIR/console-$BOOTS.log" | tr -d '\r'
fi
phase "done: $BOOTS boots, $(wc -l <"$ACKED") messages acknowledged under load"
finish
