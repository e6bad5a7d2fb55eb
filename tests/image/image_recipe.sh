#!/usr/bin/env bash
# image_recipe.sh BUILD_DIR - the appliance image's inputs, checked in
# seconds without building the image (`make image-test` boots the image
# itself). Run by `make test` (suite "image"), as root.
#
#  1. Configurations: the built-in default (firmware-config/sluice.conf) and
#     the appliance's (firmware-config/image/sluice.conf) pass
#     `sluiced --check-config`.
#  2. The first-boot file parser (firmware-config/image/sluice-settings):
#     a sample is read as written (normalized), every kind of mistake is
#     refused with its line, the shipped appliance.conf (empty address,
#     gateway, nic) is refused, and `apply` makes a sluice.conf that sluiced
#     accepts with the sample's values in force, and the NIC line for
#     dpdk.service.
#  3. Units: `systemd-analyze verify` accepts sluiced.service (with the
#     image's drop-in) and sluice-settings.service, in a root laid out as
#     the image has them (meson install + the image's files + the host's
#     systemd units + Debian's dpdk.service): exit 0, nothing printed.
#  4. The recipe agrees with itself: boot-params.txt has one parameter
#     line; fstab mounts the partitions build-image.sh names and binds the
#     paths the configs use; every shared library of sluiced and sluicectl
#     comes from a Debian package (what build-image.sh installs).
#  5. Least privilege: sluiced --user NAME, once started on a net_tap port,
#     runs as NAME with no capability, and still takes mail (the queue
#     writes after the drop), and gave its spool to NAME.
set -u
. "$(dirname "$0")/../integration/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
FC=$src/firmware-config
SETTINGS=$FC/image/sluice-settings
t_setup img "$1"
export SLUICED=$T_SLUICED SETHOSTNAME=true	# never the host's own name

# ---- 1 ----------------------------------------------------------------------
for f in "$FC/sluice.conf" "$FC/image/sluice.conf"; do
	out=$("$T_SLUICED" --check-config "$f" 2>&1)
	check "sluiced --check-config ${f#$src/}: $out" test $? -eq 0
done

# ---- 2 ----------------------------------------------------------------------
S=$T_DIR/settings
mkdir -p "$S"
cat >"$S/good.conf" <<'EOF'
# a comment, then blank lines and spaces around '='

address   =  192.0.2.10/24
gateway=192.0.2.1
	nic = 03:00.0
nic_driver = uio_pci_generic
hostname = mx1.example.net
dns = 192.0.2.53, 192.0.2.54:5353
EOF
want='address=192.0.2.10/24
gateway=192.0.2.1
nic=0000:03:00.0
nic_driver=uio_pci_generic
hostname=mx1.example.net
dns=192.0.2.53,192.0.2.54:5353'
out=$("$SETTINGS" check "$S/good.conf" 2>&1)
check "sluice-settings reads a sample as written" test "$out" = "$want"
printf 'address = 192.0.2.10/24\ngateway = 192.0.2.1\nnic = 0000:03:00.0\n' >"$S/min.conf"
out=$("$SETTINGS" check "$S/min.conf" 2>&1)
check "sluice-settings: nic_driver defaults to vfio-pci" grep -qx 'nic_driver=vfio-pci' <<<"$out"

# bad LINE-TEXT EXPECTED-MESSAGE: the minimal sample with one line changed
# or added must be refused, naming the mistake.
bad() {
	local line=$1 msg=$2 out st
	{ grep -v "^${line%% *} " "$S/min.conf"; printf '%s\n' "$line"; } >"$S/bad.conf"
	out=$("$SETTINGS" check "$S/bad.conf" 2>&1); st=$?
	if [ $st -eq 1 ] && grep -qF -- "$msg" <<<"$out"; then
		ok "sluice-settings refuses '$line': $msg"
	else
		fail "sluice-settings refuses '$line' (exit $st, want '$msg'): $out"
	fi
}
bad 'address = 192.0.2.300/24' "is not an IPv4 address with its prefix"
bad 'address = 192.0.2.10' "is not an IPv4 address with its prefix"
bad 'address = 192.0.2.10/33' "is not an IPv4 address with its prefix"
bad 'address = 192.0.02.10/24' "is not an IPv4 address with its prefix"
bad 'gateway = 198.51.100.1' "gateway 198.51.100.1 is outside 192.0.2.10/24"
bad 'gateway = 192.0.2.10' "is the appliance's own address"
bad 'nic = 3:00.0' "is not a PCI address"
bad 'nic_driver = igb_uio' "is not vfio-pci or uio_pci_generic"
bad 'hostname = -mx.example.net' "is not a host name"
bad 'hostname = mx_1.example.net' "is not a host name"
bad 'dns = 192.0.2.53:0' "is not ip or ip:port"
bad 'dns = 192.0.2.1,192.0.2.2,192.0.2.3,192.0.2.4' "at most 3 dns servers"
bad 'dns = $(reboot)' "is not ip or ip:port"
bad 'mtu = 9000' "unknown key 'mtu'"
bad 'address' "expected 'key = value'"
printf 'address = 192.0.2.10/24\naddress = 192.0.2.11/24\ngateway = 192.0.2.1\nnic = 03:00.0\n' >"$S/dup.conf"
out=$("$SETTINGS" check "$S/dup.conf" 2>&1)
check "sluice-settings refuses a key set twice" grep -qF "dup.conf:2: 'address' set again (first on line 1)" <<<"$out"
out=$("$SETTINGS" check "$FC/image/appliance.conf" 2>&1); st=$?
check "the shipped appliance.conf is refused until address, gateway and nic are set" \
	eval '[ $st -eq 1 ] && grep -q "address. is not set" <<<"$out" &&
	      grep -q "gateway. is not set" <<<"$out" && grep -q "nic. is not set" <<<"$out"'
sed -e 's/^address =$/address = 192.0.2.10\/24/' -e 's/^gateway =$/gateway = 192.0.2.1/' \
	-e 's/^nic =$/nic = 0000:03:00.0/' "$FC/image/appliance.conf" >"$S/filled.conf"
out=$("$SETTINGS" check "$S/filled.conf" 2>&1)
check "the shipped appliance.conf with those three filled in is accepted" test $? -eq 0

out=$("$SETTINGS" apply "$S/good.conf" "$FC/image/sluice.conf" "$S/run" 2>&1)
check "sluice-settings apply: $(tail -n 1 <<<"$out")" test $? -eq 0
out=$("$T_SLUICED" --print-config -c "$S/run/sluice.conf" 2>&1)
for kv in "address = 192.0.2.10/24" "gateway = 192.0.2.1" "pci = 0000:03:00.0" \
	"hostname = mx1.example.net" "servers = 192.0.2.53,192.0.2.54:5353" \
	"args = --in-memory --socket-mem 1024 --socket-limit 1024 --log-level=lib.eal:warning"; do
	check "the applied configuration has '$kv'" grep -qxF "$kv" <<<"$out"
done
check "dpdk.service is told to bind the NIC" \
	test "$(cat "$S/run/dpdk-interfaces" 2>/dev/null)" = "$(printf 'pci\t0000:03:00.0\tuio_pci_generic')"
out=$("$SETTINGS" apply "$S/bad.conf" "$FC/image/sluice.conf" "$S/run" 2>&1)
check "a bad settings file leaves no configuration and no NIC to bind" \
	eval '[ ! -e "$S/run/sluice.conf" ] && [ ! -e "$S/run/dpdk-interfaces" ]'
printf '[smtp]\nport = 99999\n' >"$S/base-bad.conf"
out=$("$SETTINGS" apply "$S/good.conf" "$S/base-bad.conf" "$S/run" 2>&1)
check "a sluice.conf that sluiced refuses is reported with its own line" \
	eval '[ ! -e "$S/run/sluice.conf" ] && grep -q "base-bad.conf:2" <<<"$out"'

# ---- 3 ----------------------------------------------------------------------
R=$T_DIR/root
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify (systemd-analyze is not installed)"
else
	DESTDIR=$R meson install -C "$T_BUILD" --no-rebuild >"$T_DIR/install.log" 2>&1
	check "meson install puts sluiced, sluicectl and the unit in place" \
		test -x "$R/usr/local/bin/sluiced" -a -x "$R/usr/local/bin/sluicectl" \
		-a -f "$R/usr/local/lib/systemd/system/sluiced.service"
	install -D -m 0755 "$SETTINGS" "$R/usr/local/lib/sluice/sluice-settings"
	install -D -m 0644 "$FC/image/sluice-settings.service" \
		"$R/usr/local/lib/systemd/system/sluice-settings.service"
	install -D -m 0644 "$FC/image/sluiced-appliance.conf" \
		"$R/etc/systemd/system/sluiced.service.d/appliance.conf"
	mkdir -p "$R/usr/lib/systemd"
	cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
	if [ -f /lib/systemd/system/dpdk.service ]; then
		cp /lib/systemd/system/dpdk.service "$R/usr/lib/systemd/system/"
	else
		fail "Debian's dpdk.service is installed (firmware-config/deps.sh test installs dpdk)"
	fi
	for u in sluiced.service sluice-settings.service; do
		out=$(systemd-analyze verify --root="$R" "$u" 2>&1); st=$?
		check "systemd-analyze verify $u: exit $st, says nothing${out:+: $out}" \
			test $st -eq 0 -a -z "$out"
	done
	# The check can fail: a unit with a mistake must be reported.
	cp "$R/usr/local/lib/systemd/system/sluice-settings.service" "$T_DIR/keep.service"
	sed -i 's/^Type=oneshot/Type=oneshot\nDefaultDependences=no/' \
		"$R/usr/local/lib/systemd/system/sluice-settings.service"
	out=$(systemd-analyze verify --root="$R" sluice-settings.service 2>&1)
	check "systemd-analyze verify reports a misspelt key" grep -q "DefaultDependences" <<<"$out"
	cp "$T_DIR/keep.service" "$R/usr/local/lib/systemd/system/sluice-settings.service"
fi

# ---- 4 ----------------------------------------------------------------------
params=$(grep -v '^[[:space:]]*#' "$FC/boot-params.txt" | grep -v '^[[:space:]]*$')
check "boot-params.txt has one line of parameters" test "$(wc -l <<<"$params")" -eq 1
check "boot-params.txt leaves root= and console= to the recipe" \
	eval '! grep -qE "(^| )(root|console)=" <<<"$params"'
for p in sluice-root sluice-data; do
	check "fstab mounts PARTLABEL=$p, a partition build-image.sh makes" \
		eval 'grep -q "^PARTLABEL=$p " "$FC/image/fstab" && grep -q "name=\"$p\"" "$FC/build-image.sh"'
done
check "fstab binds the data partition to /etc/sluice and /var/spool/sluice" \
	eval 'grep -qE "^/srv/sluice/etc +/etc/sluice +none +bind" "$FC/image/fstab" &&
	      grep -qE "^/srv/sluice/spool +/var/spool/sluice +none +bind" "$FC/image/fstab"'
check "the appliance's spool is [queue] dir" grep -qx "dir = /var/spool/sluice" "$FC/image/sluice.conf"
check "sluice-settings.service reads the data partition's files" \
	grep -q "apply /etc/sluice/appliance.conf /etc/sluice/sluice.conf /run/sluice-settings" \
	"$FC/image/sluice-settings.service"
check "sluiced on the appliance reads what sluice-settings writes" \
	grep -q -- "-c /run/sluice-settings/sluice.conf --user sluice" "$FC/image/sluiced-appliance.conf"
for b in "$T_SLUICED" "$T_CTL"; do
	nopkg=
	while read -r lib; do
		real=$(readlink -f "$lib")
		dpkg -S "$lib" >/dev/null 2>&1 || dpkg -S "$real" >/dev/null 2>&1 ||
			dpkg -S "/usr$lib" >/dev/null 2>&1 || dpkg -S "${real#/usr}" >/dev/null 2>&1 ||
			nopkg+=" $lib"
	done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
	check "every library of ${b##*/} comes from a Debian package${nopkg:+ (not:$nopkg)}" test -z "$nopkg"
done

# ---- 5 ----------------------------------------------------------------------
t_conf
ip netns exec "$T_NS" "$T_SLUICED" -c "$T_CONF" --user nobody >>"$T_LOG" 2>&1 &
T_PID=$!
if sluice_tap_wait "$T_NS" "$T_IF" 198.18.0.1/24 && sluice_ctl_wait "$T_SOCK" "$T_CTL" &&
	wait_for 30 grep -q "running as nobody" "$T_LOG"; then
	ok "sluiced --user nobody starts and says it dropped its privileges"
	st=$(cat "/proc/$T_PID/status" 2>/dev/null)
	uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' <<<"$st")
	nobody=$(id -u nobody)
	check "it runs as nobody (Uid: $uid)" test "$uid" = "$nobody$nobody$nobody$nobody"
	for c in CapEff CapPrm CapAmb; do
		v=$(awk -v c="$c:" '$1 == c {print $2}' <<<"$st")
		check "$c of sluiced is empty ($v)" test "$v" = 0000000000000000
	done
	check "no_new_privs is set" grep -qx "NoNewPrivs:	1" <<<"$st"
	out=$(ip netns exec "$T_NS" timeout 60 swaks --server 198.18.0.2 --to x@sink.test \
		--from a@example.org --helo t.test 2>&1)
	check "it still takes mail after the drop (250 queued)" grep -q "250 2.0.0 Ok: queued as" <<<"$out"
	check "the spool belongs to nobody" test "$(command stat -c %u "$T_DIR/spool")" = "$nobody" \
		-a "$(command stat -c %u "$T_DIR/spool/shard-0")" = "$nobody"
	check "sluiced stops cleanly" t_stop
else
	fail "sluiced --user nobody starts and says it dropped its privileges"
fi
finish
