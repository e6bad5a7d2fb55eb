#!/usr/bin/env python3
"""sink_count.py - run Postfix's smtp-sink and log, with a timestamp, how
many messages it has received, for bench/relay-bench.

    sink_count.py LOG -- /usr/sbin/smtp-sink -c [options] ADDR:PORT BACKLOG

smtp-sink -c writes its running counters to stdout after every session end,
QUIT and end of DATA ("sess=N quit=N mesg=N\\r", one write each, unbuffered).
This reads them from a pipe and appends "NS MESG" to LOG (NS: CLOCK_REALTIME
nanoseconds when the chunk was read, the clock of `date +%s%N`) whenever
the message count changed, flushed at once, so that a shell can poll the
count (last line) and, afterwards, find when it first reached a target
(the first line at or above it).

It reads, then sleeps READ_PAUSE (2 ms) before the next read, so that its
own CPU cost stays small (at most 500 reads/s, however fast mail arrives)
and timestamps are late by at most that much. The pipe holds thousands of
updates, far more than arrive in 2 ms, so smtp-sink never blocks on it.

SIGTERM/SIGINT: the sink is terminated (then killed after 5 s) and this
exits. The sink's own exit ends this too, with its status; a sink that
never printed a counter (it failed to start) leaves LOG empty.
"""
import os
import re
import signal
import subprocess
import sys
import time

READ_PAUSE = 0.002
MESG = re.compile(rb"mesg=(\d+)")


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: sink_count.py LOG -- SMTP-SINK ARGS...", file=sys.stderr)
        return 2
    log = open(sys.argv[1], "a", buffering=1)
    child = subprocess.Popen(sys.argv[3:], stdout=subprocess.PIPE)

    def stop(_sig, _frm):
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    fd = child.stdout.fileno()
    last = None
    tail = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        now = time.time_ns()
        data = tail + chunk
        cut = data.rfind(b"\r")
        if cut < 0:	# no complete update yet
            tail = data[-256:]
            continue
        tail = data[cut + 1:][-256:]
        counts = MESG.findall(data[:cut])
        if counts:
            n = int(counts[-1])
            if n != last:
                log.write("%d %d\n" % (now, n))
                last = n
        time.sleep(READ_PAUSE)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
