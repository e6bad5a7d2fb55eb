#!/usr/bin/env bash
# tail_loss_e2e.sh BUILD_DIR - issue 16 acceptance 2 as a regression test:
# bench/tail-loss with 40 sequential SMTP transactions, every 10th reply
# dropped by sluiced's own impairment ([impair] tx_push_drop_every = 10).
#  - tail_loss_probe = no: the median transaction waits out the 200 ms RTO
#    floor (proves the drops hit the transactions' tails);
#  - tail_loss_probe = yes: the median falls well below it (< 150 ms; it
#    measured ~46 ms here), a probe went for every drop, and the RTO fired
#    for none of them (3 allowed: a loaded machine may stall an ACK).
set -u
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
T_DIR=$(mktemp -d /tmp/sluice-tle.XXXXXX)
trap 'rm -rf "$T_DIR"' EXIT
out=$("$here/../../bench/tail-loss" "$1" 40 2>&1); st=$?
echo "$out" | grep '^tail_loss_probe=' | sed 's/^/# /'
check "bench/tail-loss ran (exit $st)" test $st -eq 0
# v RUN KEY: KEY's value in the line of run RUN (yes/no); "x" when absent
v() { grep "^tail_loss_probe=$1 " <<<"$out" | tr ' ' '\n' | sed -n "s/^$2[= ]//p;/^$2\$/{n;p}" | head -1; }
num() { local x; x=$(v "$1" "$2"); [[ "$x" =~ ^[0-9.]+$ ]] && echo "$x" || echo x; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "x" && b != "x" && a + 0 < b + 0) }'; }
no_med=$(num no median_ms); yes_med=$(num yes median_ms)
check "without TLP the median transaction waits the RTO floor ($no_med ms >= 200)" lt 199.9 "$no_med"
check "with TLP the median falls well below it ($yes_med ms < 150)" lt "$yes_med" 150
drops=$(num yes impair_dropped); probes=$(num yes tlp_probes); rto=$(num yes rto_fires)
check "with TLP: $drops replies dropped, $probes probes, $rto RTOs" \
	sh -c "[ '$drops' != x ] && [ '$drops' -gt 0 ] && [ '$probes' -ge '$drops' ] && [ '$rto' != x ] && [ '$rto' -le 3 ]"
finish
