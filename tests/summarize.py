#!/usr/bin/python3
"""summarize.py - totals over every suite of every build directory given.

Reads meson's testlog.json in each build directory (run_suites.sh deletes
it before each run, so a stale log is never counted). A Criterion
executable counts its test cases (its "Synthesis:" line); an integration
script counts the checks on its last "N passed, N failed[, N skipped]"
line; anything else counts as one test. A test meson reports as SKIP (exit
77) counts as skipped, never as passed. Prints each suite's tally, then the
grand total as the very last line, "N passed, N failed, N skipped". Exits 1
when anything failed or a build directory has no log.
"""
import json
import os
import re
import sys

SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
PLAIN = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$", re.M)


def tally(entry):
    """(passed, failed, skipped) of one meson test entry."""
    out = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    result = entry.get("result")
    if result == "SKIP":
        return 0, 0, 1
    ok = result in ("OK", "EXPECTEDFAIL")
    m = SYNTH.findall(out)
    if m:
        tested, passing, failing, crashing = map(int, m[-1])
        failed = failing + crashing
        if not ok and failed == 0:
            failed = 1          # the runner itself failed (timeout, sanitizer exit)
        return passing, failed, 0
    m = PLAIN.findall(out)
    if m:
        passed, failed, skipped = m[-1]
        passed, failed, skipped = int(passed), int(failed), int(skipped or 0)
        if not ok and failed == 0:
            failed = 1
        return passed, failed, skipped
    return (1, 0, 0) if ok else (0, 1, 0)


def main(dirs):
    total = [0, 0, 0]
    for d in dirs:
        path = os.path.join(d, "meson-logs", "testlog.json")
        if not os.path.exists(path):
            print(f"{d}: no test log")
            total[1] += 1
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                e = json.loads(line)
                t = tally(e)
                for i in range(3):
                    total[i] += t[i]
                print(f"{d}: {e.get('name')}: {e.get('result')} "
                      f"({t[0]} passed, {t[1]} failed, {t[2]} skipped)")
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
