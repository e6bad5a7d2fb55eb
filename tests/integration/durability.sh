#!/usr/bin/env bash
# durability.sh BUILD_DIR - a durability proof that fails when a sync is
# missing (SIGKILL alone cannot tell: the page cache survives it).
#
#  1. Sync order, in both [queue] sync modes (full, nometa): sluiced runs
#     with tests/support/sync_shim.c preloaded, which logs in order its
#     writes to each shard's data.mdb (with the message records in the
#     pages), its syncs, and every "250 ... queued as ID" it puts on the
#     tap. Real SMTP clients send messages, many to several shards.
#     durability_check.py then proves each 250 went out after the commit
#     holding that message (sealed, in every shard) was durable.
#  2. The queue.fsyncs counter equals the sync calls the shim saw.
#  3. Power cut: the spool lives on cachefs (tests/support/cachefs.c), a
#     FUSE filesystem that holds every write in memory until the file is
#     synced. Under SMTP load, sluiced and cachefs are SIGKILLed together:
#     the writes not synced are lost, as in a power cut. Every message
#     answered 250 before the cut must be in what reached the disk, intact
#     (queue-dump + smtp_clients.py verify-log); sluiced restarts on it for
#     the next round. Several rounds, both sync modes.
#
# Under the sanitizers (SANITIZED=1) the volumes shrink, and the shim is
# preloaded after the ASan runtime (which must come first).
set -u
. "$(dirname "$0")/lib.sh"
t_setup dur "$1"
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
LOAD="$PY $here/durability_clients.py"
CHK="$PY $here/durability_check.py"
SC="$PY $here/smtp_clients.py"
QD=$T_BUILD/tests/integration/queue-dump
SHIM=$T_BUILD/tests/integration/libsync_shim.so
CACHEFS=$T_BUILD/tests/integration/cachefs
REAL_SLUICED=$T_SLUICED
MNT=$T_DIR/mnt
DISK=$T_DIR/disk
CFS_PID=
ns() { ip netns exec "$T_NS" "$@"; }
t0=$SECONDS
phase() { echo "# $* (at $((SECONDS - t0)) s)"; }

T_SKIP=0
skipped() { T_SKIP=$((T_SKIP + 1)); echo "skip - $*"; }
end() {
	echo "$T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	[ "$T_FAIL" -eq 0 ]
}

cfs_down() {
	[ -n "$CFS_PID" ] && kill -KILL "$CFS_PID" 2>/dev/null && wait "$CFS_PID" 2>/dev/null
	CFS_PID=
	# a dead FUSE mount fails stat (ENOTCONN): go by /proc/mounts
	grep -qs " $MNT fuse" /proc/mounts && umount -l "$MNT"
	return 0
}
# background clients and cachefs must not outlive a failed run
trap 'kill -KILL $(jobs -p) 2>/dev/null; cfs_down; t_teardown' EXIT

# CUT_AFTER: acknowledgements a round waits for before the cut (plus a
# varying share, so the cuts land at different moments)
if [ "${SANITIZED:-0}" = 1 ]; then
	MSGS=400 CONC=8 MIN_ACKS=400 ROUNDS=2 CUT_AFTER=60
else
	MSGS=4000 CONC=32 MIN_ACKS=4000 ROUNDS=6 CUT_AFTER=200
fi

# Preload the shim; after the ASan runtime when sluiced has one.
PRELOAD=$SHIM
asan=$(ldd "$REAL_SLUICED" 2>/dev/null | awk '/libasan/ { print $3; exit }')
[ -n "$asan" ] && PRELOAD="$asan $SHIM"

# sluiced_with_shim LOG: T_SLUICED becomes a wrapper running sluiced with the shim.
sluiced_with_shim() {
	cat >"$T_DIR/sluiced-shim" <<EOF
#!/bin/sh
exec env LD_PRELOAD="$PRELOAD" SLUICE_SHIM_LOG="$1" "$REAL_SLUICED" "\$@"
EOF
	chmod +x "$T_DIR/sluiced-shim"
	T_SLUICED=$T_DIR/sluiced-shim
}

conf() {	# conf SYNC
	t_conf "sync = $1
shards = 4
[delivery]
enabled = no
[smtp]
hostname = sluice.test"
}

# wait_settled: queue.fsyncs stops moving (writers idle, NOMETA's last sync done)
wait_settled() {
	local a b i
	a=$(stat queue.fsyncs)
	for i in $(seq 1 40); do
		sleep 0.5
		b=$(stat queue.fsyncs)
		[ "$a" = "$b" ] && return 0
		a=$b
	done
	return 1
}

# dump SPOOL NAME: queue-dump into $T_DIR/NAME.dump and NAME.bodies/
dump() {
	rm -rf "$T_DIR/$2.bodies"; mkdir -p "$T_DIR/$2.bodies"
	"$QD" -n 4 -s -b "$T_DIR/$2.bodies" "$1" >"$T_DIR/$2.dump" 2>"$T_DIR/$2.err"
}

# --- 1 and 2: the order of syncs and 250s, the counter --------------------
for mode in full nometa; do
	phase "sync order, sync = $mode"
	log=$T_DIR/shim-$mode.log
	sent=$T_DIR/sent-$mode.log
	: >"$sent"
	rm -rf "$T_DIR/spool" "$log"
	conf $mode
	sluiced_with_shim "$log"
	check "sluiced starts with the shim preloaded (sync = $mode)" t_start
	out=$(ns $LOAD --log "$sent" load $MSGS $CONC 2>&1); st=$?
	check "load: $out" test $st -eq 0
	check "writers settle (queue.fsyncs stops moving)" wait_settled
	counted=$(stat queue.fsyncs)
	seen=$($CHK syncs "$log" 2>&1)
	check "queue.fsyncs $counted = $seen sync calls on the data files seen by the shim" \
		test "$counted" -gt 0 -a "$counted" = "$seen"
	t_stop; st=$?
	check "clean stop (exit $st)" test $st -eq 0
	out=$($CHK acks "$log" "$sent" $MIN_ACKS 2>&1); st=$?
	check "sync = $mode: $out" test $st -eq 0
	dump "$T_DIR/spool" $mode; st=$?
	check "queue-dump reads the spool (exit $st) $(head -c 300 "$T_DIR/$mode.err")" test $st -eq 0
	out=$($SC verify-log "$T_DIR/$mode.dump" "$T_DIR/$mode.bodies" "$sent" 2>&1); st=$?
	check "spool: $out" test $st -eq 0
	rm -rf "$T_DIR/$mode.bodies"
done
T_SLUICED=$REAL_SLUICED

# --- 3: power cuts ----------------------------------------------------------
phase "power cuts"
rm -rf "$T_DIR/spool"
mkdir -p "$MNT" "$DISK/spool"
ln -s "$MNT/spool" "$T_DIR/spool"	# t_conf's spool, on cachefs
sent=$T_DIR/sent-cut.log
: >"$sent"
cfs_up() {
	"$CACHEFS" "$DISK" "$MNT" >>"$T_DIR/cachefs.log" 2>&1 &
	CFS_PID=$!
	local i
	for i in $(seq 1 100); do
		mountpoint -q "$MNT" && [ -d "$MNT/spool" ] && return 0
		sleep 0.1
	done
	return 1
}
for r in $(seq 1 $ROUNDS); do
	mode=full; [ $((r % 2)) -eq 0 ] && mode=nometa
	phase "power cut $r/$ROUNDS (sync = $mode)"
	check "round $r: cachefs mounted" cfs_up
	conf $mode
	check "round $r: sluiced starts on what the disk held" t_start
	before=$(wc -l <"$sent")
	ip netns exec "$T_NS" $LOAD --log "$sent" --op-timeout 5 load 1000000 $CONC \
		>"$T_DIR/load-$r.out" 2>&1 &
	ld=$!
	want=$((before + CUT_AFTER + (r * 389) % 700)) i=0
	while [ "$(wc -l <"$sent")" -lt $want ] && [ $i -lt 600 ] && kill -0 $ld 2>/dev/null; do
		sleep 0.1; i=$((i + 1))
	done
	# the cut: sluiced and the disk's cache die together
	kill -KILL "$T_PID" "$CFS_PID"
	wait "$T_PID" 2>/dev/null; T_PID=
	wait "$CFS_PID" 2>/dev/null; CFS_PID=
	kill -KILL $ld 2>/dev/null; wait $ld 2>/dev/null
	cfs_down
	n=$(wc -l <"$sent")
	check "round $r: cut under load, $((n - before)) acknowledged this round" \
		test $((n - before)) -ge $CUT_AFTER
	dump "$DISK/spool" cut$r; st=$?
	check "round $r: queue-dump reads the disk after the cut (exit $st) $(head -c 300 "$T_DIR/cut$r.err")" \
		test $st -eq 0
	out=$($SC verify-log "$T_DIR/cut$r.dump" "$T_DIR/cut$r.bodies" "$sent" 2>&1); st=$?
	check "round $r: every acknowledged message since round 1 on the disk: $out" test $st -eq 0
	rm -rf "$T_DIR/cut$r.bodies"
done

phase "done"
end
