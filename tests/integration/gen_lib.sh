# gen_lib.sh - shared by the sluice-gen suites (sourced after lib.sh's
# t_setup): sluiced on a net_memif port (role=server, a socket file of the
# test's own), sluice-gen processes as its memif clients, and reading
# sluice-gen's JSON reports.
#
# Topology: sluiced has one port; over it come the clients' connections
# and go its deliveries. So one sluice-gen process per memif link plays
# both ends (client,sink): 198.18.0.1 connects to sluiced at 198.18.0.2:25
# and listens on its own port 25, where the route of sink.test points.

GEN=$T_BUILD/bench/sluice-gen
MEMIF=$T_DIR/memif.sock
G_N=0

# gen_conf [extra INI]: sluiced on the memif server end
gen_conf() {
	echo "sink.test [198.18.0.1]:25" >"$T_DIR/routes"
	cat >"$T_CONF" <<CONF
[eal]
vdev = net_memif0,role=server,socket=$MEMIF,socket-abstract=no,id=0
file_prefix = sl$$
[lcores]
workers = 1
idle = adaptive
[net]
address = 198.18.0.2/24
gateway =
[control]
socket = $T_SOCK
[smtp]
reverse_lookup_wait = 0
[routes]
routes_file = $T_DIR/routes
[queue]
dir = $T_DIR/spool
${1:-}
CONF
}

memif_ready() { [ -S "$MEMIF" ]; }

# gen_start_sluiced: a stale socket file goes first (memif would refuse it)
gen_start_sluiced() {
	rm -f "$MEMIF"
	"$T_SLUICED" -c "$T_CONF" >>"$T_LOG" 2>&1 &
	T_PID=$!
	sluice_ctl_wait "$T_SOCK" "$T_CTL" "$T_PID" && wait_for 20 memif_ready
}

# gen_run NAME ARGS...: sluice-gen in the background as memif client;
# its report is $T_DIR/NAME.json, its output $T_DIR/NAME.out; pid in GEN_PID
gen_run() {
	local name=$1; shift
	G_N=$((G_N + 1))
	"$GEN" --vdev "net_memif0,role=client,socket=$MEMIF,socket-abstract=no,id=0" \
		--file-prefix "sg$$-$G_N" --report "$T_DIR/$name.json" --quiet "$@" \
		>"$T_DIR/$name.out" 2>&1 &
	GEN_PID=$!
}

# gen_field NAME FIELD: a field of the report's last line (final or
# per-second); "unreadable" and a failed measurement when there is none
gen_field() {
	local v
	v=$(tail -n 1 "$T_DIR/$1.json" 2>/dev/null | /usr/bin/python3 -c \
		"import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null)
	if ! [[ "$v" =~ ^[0-9]+$ ]]; then
		measure_failed "sluice-gen report $1: no field $2"
		echo unreadable
		return 1
	fi
	echo "$v"
}

# gen_wait PID SECONDS: wait for a sluice-gen to exit; its status (124: it
# did not, and was killed)
gen_wait() {
	local pid=$1 end=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $end ]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		sleep 0.1
	done
	wait "$pid"
}
