#!/usr/bin/env bash
# run_suites.sh - build Sluice three times (plain; with ASan+UBSan; with clang
# and libFuzzer) and run every suite: all of them in the first two trees, the
# fuzz harnesses (FUZZ_SECONDS each) in the third, beside the first tree's
# suites at idle priority. Then print the totals over
# all of them as the last line: "N passed, N failed, N skipped". Exits
# non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build-test}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
jobs=$(nproc)

setup() {	# dir, extra meson options...
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 \
			|| { cat "$dir.setup.log"; return 1; }
	fi
	meson compile -C "$dir" -j "$jobs"
}

status=0
setup "$BUILD" -Dtests=true || status=1
setup "$ASAN_BUILD" -Dtests=true -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug || status=1
# libFuzzer harnesses: clang, their own tree, nothing else built there.
CC=clang setup "$FUZZ_BUILD" -Dtests=false -Dfuzz=true -Dbuildtype=debugoptimized || status=1
if [ $status -ne 0 ]; then
	echo "build failed"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

# A log left by an earlier run must never be counted as this run's.
rm -f "$BUILD/meson-logs/testlog.json" "$ASAN_BUILD/meson-logs/testlog.json" \
	"$FUZZ_BUILD/meson-logs/testlog.json"
# Sanitizer settings: any report is a failure, leaks included. DPDK's EAL
# keeps memory until process exit by design, so the suites that start EAL
# (the integration scripts) turn leak checking off in their own test
# environment (tests/integration/meson.build); every other suite runs under
# LeakSanitizer in the ASan tree.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
# The fuzz harnesses run their FUZZ_SECONDS each beside the plain tree's
# suites, as SCHED_IDLE tasks: they take only the CPU those suites leave idle
# (most of an integration script is waiting on a daemon, a sink or a timer),
# and any runnable task of the suites preempts them at once. Run after the
# other trees, they added three minutes to a CI run near its 30-minute budget.
fuzz_log=$FUZZ_BUILD/fuzz-run.log
FUZZ_SECONDS=$FUZZ_SECONDS chrt --idle 0 meson test -C "$FUZZ_BUILD" --suite fuzz \
	--print-errorlogs --num-processes "$jobs" >"$fuzz_log" 2>&1 &
fuzz_pid=$!
meson test -C "$BUILD" --print-errorlogs --num-processes "$jobs" || status=1
wait "$fuzz_pid" || status=1
cat "$fuzz_log"
meson test -C "$ASAN_BUILD" --print-errorlogs --num-processes "$jobs" || status=1

/usr/bin/python3 tests/summarize.py "$BUILD" "$ASAN_BUILD" "$FUZZ_BUILD" || status=1
exit $status
