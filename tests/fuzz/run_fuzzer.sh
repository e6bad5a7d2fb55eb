#!/usr/bin/env bash
# run_fuzzer.sh FUZZER SEED_CORPUS_DIR [LIBFUZZER_OPTIONS...] - run one libFuzzer harness for
# FUZZ_SECONDS (default 60) from a scratch copy of its seed corpus (so the
# tree's corpus is never rewritten), and report as one test: any crash, leak
# or sanitizer report fails it. The crashing input is kept in the build tree
# (BUILD/tests/fuzz/artifacts/FUZZER/, with the fuzzer's log) for the
# developer to replay: ./FUZZER ARTIFACT.
set -u
fuzzer=$1 seeds=$2
shift 2
secs=${FUZZ_SECONDS:-60}
keep=$(cd "$(dirname "$fuzzer")" && pwd)/artifacts/$(basename "$fuzzer")
work=$(mktemp -d /tmp/sluice-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$keep"
rm -f "$keep"/crash-* "$keep"/leak-* "$keep"/timeout-* "$keep"/oom-* "$keep"/slow-unit-* "$keep"/log
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$keep/" "$@" "$work/corpus" >"$work/log" 2>&1
st=$?
tail -n 25 "$work/log"
if [ $st -ne 0 ] || ls "$keep"/* >/dev/null 2>&1; then
	cp "$work/log" "$keep/log"
	for a in "$keep"/*; do
		[ -f "$a" ] && [ "$(basename "$a")" != log ] &&
			{ echo "reproducer kept: $a"; od -A x -t x1z "$a" | head -20; }
	done
	echo "0 passed, 1 failed"
	exit 1
fi
echo "1 passed, 0 failed"
