#!/usr/bin/env python3
"""ctl_abuse.py - clients that misuse sluiced's control socket, for
control_e2e.sh. Each mode prints one JSON line of what it saw and exits 0
when every client got what the protocol promises (an error reply, or the
connection closed; never silence), 1 otherwise (the reasons on stderr).

  ctl_abuse.py abuse SOCK      1,000 bad clients (below), with a prober that
                               pings through the storm (retrying "busy")
  ctl_abuse.py slowread SOCK CHUNK DELAY WORD...
                               one request, its reply read CHUNK bytes every
                               DELAY seconds

The 1,000 of `abuse`:
  500 malformed lines, 10 pipelined per connection: garbage, broken JSON,
      wrong shapes, non-string words, NUL, bad UTF-8, deep nesting, unknown
      commands; each must get {"ok":false,...} in order, and the connection
      must still answer a good request after them;
  200 oversized: 100 lines of 70,000 bytes, 100 blobs of 200,000 bytes
      without a newline; each gets the "over 65536 bytes" error or is closed;
  200 slow or silent: 100 connections trickling a request a byte every
      0.2 s (slow-loris), 100 that connect and say nothing, all at once
      (more than the server's 16 slots): each is answered (busy, made room,
      not complete in time) or closed, or (silent ones only) still open
      after 15 s: the idle timeout is 60 s;
  100 rude: ask for `stats` and close at once, or read one byte and close.
"""
import json
import os
import socket
import sys
import threading
import time

failures = []
lock = threading.Lock()


def fail(msg):
    with lock:
        failures.append(msg)


def conn(path, timeout=20.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def req(*words):
    return (json.dumps({"argv": list(words)}) + "\n").encode()


class Reader:
    """Reply lines from a socket; None at EOF or reset."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def line(self):
        while b"\n" not in self.buf:
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not d:
                return None
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return json.loads(ln)


MALFORMED = [
    b"garbage",
    b"ping",
    b"",
    b"{",
    b"{\"argv\":[\"ping\"]",
    b"{\"argv\":[\"ping\"]} trailing",
    b"[\"ping\"]",
    b"{\"argv\":\"ping\"}",
    b"{\"argv\":[]}",
    b"{\"argv\":[1,2]}",
    b"{\"argv\":[null]}",
    b"{\"argv\":[\"ping\"],\"extra\":true}",
    b"{\"argv\":[\"ping\"],\"argv\":[\"stats\"]}",
    b"{\"argv\":[\"a\\u0000b\"]}",
    b"{\"argv\":[\"\xff\xfe\xfd\"]}",
    b"{\"argv\":[\"\\ud800\"]}",
    b"[" * 3000,
    b"{\"argv\":[\"no-such-command\"]}",
    b"{\"argv\":[\"route\"]}",
    b"{\"argv\":[\"route\",\"frob\"]}",
    b"{\"argv\":[\"ping\",\"extra\"]}",
    b"{\"argv\":[\"" + b"x" * 5000 + b"\"]}",
    b"{\"argv\":[" + b",".join([b"\"w\""] * 300) + b"]}",
    b"1e999999",
]


def malformed(path, k):
    """10 malformed lines on one connection, then a good one."""
    try:
        s = conn(path)
        lines = [MALFORMED[(k * 10 + i) % len(MALFORMED)] for i in range(10)]
        s.sendall(b"".join(ln + b"\n" for ln in lines) + req("ping"))
        r = Reader(s)
        for i, ln in enumerate(lines):
            rep = r.line()
            if rep is None or rep.get("ok") is not False or not rep.get("error"):
                fail("malformed %r got %r" % (ln[:40], rep))
                return
        rep = r.line()
        if rep != {"ok": True, "result": {"pong": True}}:
            fail("after 10 malformed lines, ping got %r" % (rep,))
        s.close()
    except OSError as e:
        fail("malformed connection %d: %s" % (k, e))


def oversized(path, k, stats):
    """A line over the bound: an error reply saying so, or closed."""
    n = 70000 if k % 2 == 0 else 200000
    body = b"{\"argv\":[\"" + b"x" * n + (b"\"]}\n" if k % 2 == 0 else b"")
    try:
        s = conn(path)
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass    # the server stopped reading: its reply says why
        rep = Reader(s).line()
        if rep is None:
            with lock:
                stats["oversized_closed"] += 1
        elif rep.get("ok") is False and "over 65536 bytes" in rep.get("error", ""):
            with lock:
                stats["oversized_error"] += 1
        elif rep.get("ok") is False and "busy" in rep.get("error", ""):
            with lock:
                stats["busy"] += 1
        else:
            fail("oversized %d got %r" % (k, rep))
        s.close()
    except OSError as e:
        fail("oversized %d: %s" % (k, e))


def slow(path, k, stats, stop):
    """Trickle a request (k even) or say nothing (k odd)."""
    try:
        s = conn(path, timeout=10)
        s.settimeout(0.2)
    except OSError as e:
        fail("slow %d: connect: %s" % (k, e))
        return
    r = Reader(s)
    data, i, t0, outcome = req("stats"), 0, time.time(), None
    while time.time() - t0 < 15 and not stop.is_set():
        try:
            if k % 2 == 0 and i < len(data) - 1:  # never the newline
                try:
                    s.send(data[i:i + 1])
                    i += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass    # refused or closed: read what it said
            rep = r.line()
            if rep is None:
                outcome = "closed"
            elif rep.get("ok") is False:
                err = rep["error"]
                outcome = ("busy" if err.startswith("busy") else
                           "evicted" if "make room" in err else
                           "timeout" if "not complete within" in err else err)
            else:
                outcome = "answered?"
            break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            outcome = "closed"
            break
    s.close()
    if outcome is None:
        outcome = "held"
    if outcome not in ("busy", "evicted", "timeout", "closed") and \
            not (outcome == "held" and k % 2 == 1):
        fail("slow %d (%s): %s" % (k, "trickle" if k % 2 == 0 else "silent", outcome))
    with lock:
        stats["slow_" + outcome] = stats.get("slow_" + outcome, 0) + 1


def rude(path, k):
    """Ask for stats and go; a refusal (busy) before the request is fine."""
    try:
        s = conn(path)
        try:
            s.sendall(req("stats"))
        except (BrokenPipeError, ConnectionResetError):
            rep = Reader(s).line()
            if rep is not None and not (rep.get("ok") is False and
                                        rep["error"].startswith("busy")):
                fail("rude %d: closed with %r" % (k, rep))
            s.close()
            return
        if k % 2:
            s.recv(1)
        s.close()
    except OSError as e:
        fail("rude %d: %s" % (k, e))


def prober(path, stop, stats):
    """ping every 0.5 s through the storm; "busy" is retried 3 times."""
    while not stop.is_set():
        t0, rep = time.time(), None
        for attempt in range(4):
            try:
                s = conn(path, timeout=5)
                s.sendall(req("ping"))
                rep = Reader(s).line()
                s.close()
            except OSError as e:
                rep = {"error": str(e)}
            if rep == {"ok": True, "result": {"pong": True}}:
                break
            time.sleep(0.5)
        dt = time.time() - t0
        with lock:
            stats["probes"] += 1
            stats["probe_max_s"] = max(stats["probe_max_s"], round(dt, 3))
            if rep != {"ok": True, "result": {"pong": True}}:
                stats["probe_failures"] += 1
                failures.append("ping during the storm: %r" % (rep,))
        time.sleep(0.5)


def run_threads(targets, width):
    """Run callables, at most width at once."""
    pending = list(targets)
    running = []
    while pending or running:
        running = [t for t in running if t.is_alive()]
        while pending and len(running) < width:
            t = threading.Thread(target=pending.pop(0))
            t.start()
            running.append(t)
        time.sleep(0.01)


def abuse(path):
    stats = {"malformed": 500, "oversized": 200, "slow": 200, "rude": 100,
             "oversized_error": 0, "oversized_closed": 0, "busy": 0,
             "probes": 0, "probe_failures": 0, "probe_max_s": 0.0}
    stop, slow_stop = threading.Event(), threading.Event()
    pt = threading.Thread(target=prober, args=(path, stop, stats))
    pt.start()
    t0 = time.time()
    run_threads([lambda k=k: malformed(path, k) for k in range(50)], 8)
    run_threads([lambda k=k: oversized(path, k, stats) for k in range(200)], 8)
    # the slow ones all at once, the prober (and the rude) meanwhile
    slows = [threading.Thread(target=slow, args=(path, k, stats, slow_stop))
             for k in range(200)]
    for t in slows:
        t.start()
    run_threads([lambda k=k: rude(path, k) for k in range(100)], 4)
    for t in slows:
        t.join()
    stop.set()
    pt.join()
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def slowread(path, chunk, delay, words):
    s = conn(path, timeout=30)
    s.sendall(req(*words))
    buf, t0 = b"", time.time()
    while not buf.endswith(b"\n"):
        d = s.recv(chunk)
        if not d:
            fail("closed after %d bytes" % len(buf))
            break
        buf += d
        time.sleep(delay)
    s.close()
    out = {"bytes": len(buf), "seconds": round(time.time() - t0, 2)}
    try:
        rep = json.loads(buf)
        out["ok"] = rep["ok"]
        res = rep.get("result")
        if isinstance(res, dict) and "dests" in res:
            out["dests"] = len(res["dests"])
            out["names"] = sorted(d["name"] for d in res["dests"])
    except ValueError as e:
        fail("the reply is not whole JSON: %s" % e)
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "abuse":
        out = abuse(path)
    elif mode == "slowread":
        out = slowread(path, int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit("usage: ctl_abuse.py abuse|slowread SOCK ...")
    print(json.dumps(out))
    for f in failures[:20]:
        print(f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
