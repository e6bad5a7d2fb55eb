#!/usr/bin/python3
"""test_summarize.py - tests/summarize.py counts honestly: a skipped test is
a skip (never a pass), an integration script's "N passed, N failed, N
skipped" line is read whole, a runner that failed without saying so is a
failure, and a build directory without a log fails the run."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARIZE = os.path.join(HERE, "..", "summarize.py")
passed = failed = 0


def check(what, cond):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {what}")
    else:
        failed += 1
        print(f"FAIL - {what}")


def run(entries_by_dir):
    with tempfile.TemporaryDirectory() as top:
        dirs = []
        for name, entries in entries_by_dir.items():
            d = os.path.join(top, name)
            dirs.append(d)
            if entries is None:
                continue
            os.makedirs(os.path.join(d, "meson-logs"))
            with open(os.path.join(d, "meson-logs", "testlog.json"), "w") as f:
                for e in entries:
                    f.write(json.dumps(e) + "\n")
        p = subprocess.run([sys.executable, SUMMARIZE] + dirs, capture_output=True, text=True)
        return p.returncode, p.stdout.strip().splitlines()[-1]


crit = "[====] Synthesis: Tested: 5 | Passing: 4 | Failing: 1 | Crashing: 0 \n"
rc, last = run({"a": [
    {"name": "unit", "result": "FAIL", "stdout": crit},
    {"name": "skipped-by-meson", "result": "SKIP", "stdout": ""},
    {"name": "script", "result": "OK", "stdout": "ok - x\n7 passed, 0 failed, 2 skipped\n"},
    {"name": "old-script", "result": "OK", "stdout": "3 passed, 0 failed\n"},
    {"name": "plain", "result": "OK", "stdout": "whatever\n"},
    {"name": "died", "result": "TIMEOUT", "stdout": "1 passed, 0 failed\n"},
]})
check(f"totals over every kind of entry ({last})", last == "16 passed, 2 failed, 3 skipped")
check("a failure makes the exit status 1", rc == 1)

rc, last = run({"a": [{"name": "s", "result": "SKIP", "stdout": "1 passed, 0 failed\n"}]})
check(f"a SKIP is never a pass ({last})", last == "0 passed, 0 failed, 1 skipped" and rc == 0)

rc, last = run({"a": [{"name": "t", "result": "OK", "stdout": "1 passed, 0 failed\n"}], "b": None})
check(f"a build directory without a log fails ({last})", last == "1 passed, 1 failed, 0 skipped"
      and rc == 1)

print(f"{passed} passed, {failed} failed, 0 skipped")
sys.exit(1 if failed else 0)
