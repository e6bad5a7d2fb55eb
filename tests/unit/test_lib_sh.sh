#!/usr/bin/env bash
# test_lib_sh.sh - tests/integration/lib.sh fails a suite whose measurement
# could not be made: a counter read from a daemon that is not there (dead
# socket), a counter that does not exist, the resident memory of a process
# that is gone. Each is run in a child shell that sources lib.sh and calls
# finish; the child must exit non-zero (and, where finish was reached, say
# "measurement failed"; arithmetic on an unreadable value stops a set -u
# suite before it, which fails it too).
# No root needed: nothing is started.
set -u
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../integration/lib.sh
build=${1:?usage: test_lib_sh.sh BUILD_DIR}
pass=0 failn=0
expect() {	# expect "what" want_status(0|1) script
	local what=$1 want=$2 out st
	out=$(bash -c "$3" 2>&1); st=$?
	if { [ "$want" = 0 ] && [ $st -eq 0 ]; } || { [ "$want" = 1 ] && [ $st -ne 0 ] &&
	   { printf '%s' "$out" | grep -q 'FAIL - measurement failed' ||
	     printf '%s' "$out" | grep -q 'unreadable: unbound variable'; }; }; then
		pass=$((pass + 1)); echo "ok   - $what"
	else
		failn=$((failn + 1)); echo "FAIL - $what (exit $st): $(printf '%s' "$out" | tail -n 3)"
	fi
}
prelude="set -u; . '$lib'; T_DIR=\$(mktemp -d); T_CTL='$build/control/sluicectl'; T_SOCK=\$T_DIR/nobody.sock"
expect "a counter from a dead socket fails the suite, even compared with '-ge 0'" 1 \
	"$prelude; v=\$(stat tcp.seg_in); check \"compared anyway\" test \"\$v\" -ge 0 2>/dev/null; finish; r=\$?; rm -rf \"\$T_DIR\"; exit \$r"
expect "a counter read in a subshell and used in arithmetic still fails the suite" 1 \
	"$prelude; n=\$(( \$(stat a.b) + 1 )); finish; r=\$?; rm -rf \"\$T_DIR\"; exit \$r"
expect "the memory of a process that is gone fails the suite" 1 \
	"$prelude; r=\$(rss_kib 999999999); finish; r=\$?; rm -rf \"\$T_DIR\"; exit \$r"
expect "a suite that measured what it needed passes" 0 \
	"$prelude; r=\$(rss_kib \$\$); check \"rss \$r\" test \"\$r\" -gt 0; finish; r=\$?; rm -rf \"\$T_DIR\"; exit \$r"
expect "skips are counted and reported, and do not fail" 0 \
	"$prelude; skip 'not here'; out=\$(finish); echo \"\$out\"; rm -rf \"\$T_DIR\"; echo \"\$out\" | grep -q '^0 passed, 0 failed, 1 skipped\$'"
# sluice_ctl_wait waits up to 60 s for a slow start, but a sluiced that
# exited (its PID given) fails it at once, with the reason
t0=$SECONDS
out=$(bash -c "$prelude; sleep 0 & p=\$!; wait \$p; sluice_ctl_wait \"\$T_SOCK\" \"\$T_CTL\" \$p; r=\$?; rm -rf \"\$T_DIR\"; exit \$r" 2>&1); st=$?
if [ $st -ne 0 ] && [ $((SECONDS - t0)) -lt 10 ] && printf '%s' "$out" | grep -q 'exited before it answered'; then
	pass=$((pass + 1)); echo "ok   - sluice_ctl_wait gives up at once on a sluiced that exited"
else
	failn=$((failn + 1)); echo "FAIL - sluice_ctl_wait on a sluiced that exited (exit $st, $((SECONDS - t0)) s): $out"
fi
echo "$pass passed, $failn failed, 0 skipped"
[ $failn -eq 0 ]
