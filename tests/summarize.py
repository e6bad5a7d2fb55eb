#!/usr/bin/python3
"""summarize.py - totals over every suite of every build directory given.

Reads meson's testlog.json in each build directory. A Criterion executable
counts its test cases (its "Synthesis:" line); an integration script counts
the checks it reports on its last "N passed, N failed" line; anything else
counts as one test. Prints each suite's tally, then the grand total as the
very last line, "N passed, N failed". Exits 1 when anything failed.
"""
import json
import os
import re
import sys

SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
PLAIN = re.compile(r"^(\d+) passed, (\d+) failed", re.M)


def tally(entry):
    out = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    m = SYNTH.findall(out)
    if m:
        tested, passing, failing, crashing = map(int, m[-1])
        failed = failing + crashing
        if not ok and failed == 0:
            failed = 1          # the runner itself failed (timeout, sanitizer exit)
        return passing, failed
    m = PLAIN.findall(out)
    if m:
        passed, failed = map(int, m[-1])
        if not ok and failed == 0:
            failed = 1
        return passed, failed
    return (1, 0) if ok else (0, 1)


def main(dirs):
    total_p = total_f = 0
    for d in dirs:
        path = os.path.join(d, "meson-logs", "testlog.json")
        if not os.path.exists(path):
            print(f"{d}: no test log")
            total_f += 1
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                e = json.loads(line)
                p, fl = tally(e)
                total_p += p
                total_f += fl
                print(f"{d}: {e.get('name')}: {e.get('result')} ({p} passed, {fl} failed)")
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
