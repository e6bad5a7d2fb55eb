#!/usr/bin/env bash
# campaign.sh - the long fuzz campaign: every libFuzzer harness for
# CAMPAIGN_SECONDS (default 3600) at once, niced so it runs in the background
# beside other work, each from a corpus kept across runs
# (CAMPAIGN_DIR/NAME/corpus, seeded from the tree's corpus on first use).
# Writes CAMPAIGN_DIR/report.txt: per harness the executions, the coverage
# (libFuzzer's cov: edges and ft: features) at start and at the end, the
# corpus size, and every crash, leak or timeout kept as a reproducer.
# Exit status 1 when any harness found something or could not run.
#
#   tests/fuzz/campaign.sh [BUILD_DIR]     (default build-fuzz; built if absent)
set -u
cd "$(dirname "$0")/../.."
build=${1:-build-fuzz}
secs=${CAMPAIGN_SECONDS:-3600}
dir=${CAMPAIGN_DIR:-$PWD/fuzz-campaign}
fz=tests/fuzz

if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dtests=false -Dfuzz=true \
		-Dbuildtype=debugoptimized >/dev/null || exit 1
fi
meson compile -C "$build" >/dev/null || { echo "campaign: build failed"; exit 1; }

# name, seed corpus, extra libFuzzer options (as tests/fuzz/meson.build runs them)
harnesses=(
	"fuzz_net_input corpus -max_len=4096"
	"fuzz_smtp_session corpus_smtp"
	"fuzz_smtp_client corpus_smtp_client"
	"fuzz_dns_reply corpus_dns -max_len=4096"
	"fuzz_ctl_request corpus_ctl -max_len=8192"
	"fuzz_users corpus_users -max_len=4096"
)
[ -x "$build/$fz/fuzz_net6_input" ] && harnesses+=("fuzz_net6_input corpus_net6 -max_len=4096")

mkdir -p "$dir"
pids=()
for h in "${harnesses[@]}"; do
	set -- $h
	name=$1 seeds=$fz/$2
	shift 2
	w=$dir/$name
	mkdir -p "$w/corpus" "$w/artifacts"
	[ -n "$(ls -A "$w/corpus")" ] || cp -r "$seeds"/. "$w/corpus/"
	nice -n 19 "$build/$fz/$name" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$w/artifacts/" \
		"$@" "$w/corpus" >"$w/log" 2>&1 &
	pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done

report=$dir/report.txt
{
	echo "fuzz campaign $(date -u +%FT%TZ), ${secs} s per harness, all at once (nice 19) on $(nproc) cores"
	printf '%-20s %12s %10s %10s %10s %10s %8s %s\n' harness executions exec/s \
		cov_start cov_end ft_end corpus findings
	for h in "${harnesses[@]}"; do
		set -- $h
		w=$dir/$1
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log")
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$w/log")
		cov0=$(grep -m1 -E 'INITED' "$w/log" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
		last=$(grep -E '#[0-9]+.*cov: ' "$w/log" | tail -n 1)
		cov1=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
		ft1=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
		files=$(find "$w/corpus" -type f | wc -l)
		found=$(find "$w/artifacts" -type f | wc -l)
		[ -n "$runs" ] || { runs=none; status=1; }
		[ "$found" -eq 0 ] || status=1
		printf '%-20s %12s %10s %10s %10s %10s %8s %s\n' "$1" "$runs" "${rate:-?}" \
			"${cov0:-?}" "${cov1:-?}" "${ft1:-?}" "$files" "$found"
		find "$w/artifacts" -type f -printf '    reproducer: %p\n'
	done
} >"$report"
cat "$report"
exit $status
