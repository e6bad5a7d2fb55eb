#!/usr/bin/env python3
"""limits_clients.py - the clients of limits_e2e.sh, each from a source
address of its own (bound before connecting), printing one line of
"key=value" results.

  mail HOST SRC N           one session sends N messages as fast as the
                            replies come: accepted (250 queued), refused
                            (452 to MAIL), the index of the first refusal
  conns HOST SRC N          N connections one after the other: greeted
                            (220) or refused (421 4.7.0)
  accept HOST NET0 COUNT CONC
                            COUNT connections from COUNT distinct addresses
                            (NET0 + 1 ...), CONC at a time: greeting, QUIT;
                            connections per second
  brute HOST SRC TRIES USER THREADS
                            AUTH PLAIN with wrong passwords on 587 after
                            STARTTLS, TRIES of them, THREADS sessions at a
                            time, a new session when one is closed: 535s,
                            421s, elapsed seconds
  latency HOST SRC SECONDS USER PASS
                            one session on 587: NOOP every 20 ms for
                            SECONDS, their reply times (p50, p99, max, in
                            ms), then AUTH with the right password and 8
                            MAILs as that user: accepted, refused (452)
"""
import asyncio
import base64
import ipaddress
import socket
import ssl
import sys
import threading
import time

PORT25, PORT587 = 25, 587


def connect(host, src, port, timeout=30):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((host, port))
    return s


class Conn:
    def __init__(self, sock):
        self.s = sock
        self.f = sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.f.readline().decode("latin-1")
            if not line:
                return lines or ["(closed)"]
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return lines

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if not self.cmd("STARTTLS")[-1].startswith("220"):
            raise SystemExit("STARTTLS refused")
        self.s = ctx.wrap_socket(self.s)
        self.f = self.s.makefile("rb")


def mail(host, src, n):
    c = Conn(connect(host, src, PORT25))
    c.reply()
    c.cmd("EHLO rate.test")
    acc = ref = other = 0
    first = -1
    for i in range(n):
        r = c.cmd("MAIL FROM:<s%d@rate.test>" % i)[-1]
        if r.startswith("452 4.7.1"):
            ref += 1
            if first < 0:
                first = i
            continue
        if not r.startswith("250"):
            other += 1
            print("unexpected MAIL reply:", r, file=sys.stderr)
            continue
        r = c.cmd("RCPT TO:<r%d@sink.test>" % i)[-1]
        if not r.startswith("250"):
            other += 1
            print("unexpected RCPT reply:", r, file=sys.stderr)
            c.cmd("RSET")
            continue
        c.cmd("DATA")
        r = c.cmd("Subject: rate %d\r\n\r\nbody %d\r\n." % (i, i))[-1]
        if r.startswith("250"):
            acc += 1
        else:
            other += 1
            print("unexpected end-of-data reply:", r, file=sys.stderr)
    c.cmd("QUIT")
    print("accepted=%d refused=%d other=%d first_refusal=%d" % (acc, ref, other, first))


def conns(host, src, n):
    greeted = refused = other = 0
    for _ in range(n):
        c = Conn(connect(host, src, PORT25))
        r = c.reply()[-1]
        if r.startswith("220"):
            greeted += 1
            c.cmd("QUIT")
        elif r.startswith("421 4.7.0") and "too many connections from " + src in r:
            refused += 1
        else:
            other += 1
            print("unexpected greeting:", r, file=sys.stderr)
        c.s.close()
    print("greeted=%d refused=%d other=%d" % (greeted, refused, other))


async def one_accept(host, src, sem, res):
    async with sem:
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((src, 0))
            await asyncio.get_running_loop().sock_connect(s, (host, PORT25))
            r, w = await asyncio.open_connection(sock=s)
            g = await asyncio.wait_for(r.readline(), 30)
            if not g.startswith(b"220"):
                res["bad"] += 1
                w.close()
                return
            w.write(b"QUIT\r\n")
            q = await asyncio.wait_for(r.readline(), 30)
            res["ok" if q.startswith(b"221") else "bad"] += 1
            w.close()
        except (OSError, asyncio.TimeoutError) as e:
            res["bad"] += 1
            res["err"] = repr(e)


async def accept_run(host, net0, count, conc):
    base = int(ipaddress.IPv4Address(net0))
    sem = asyncio.Semaphore(conc)
    res = {"ok": 0, "bad": 0, "err": ""}
    t0 = time.monotonic()
    await asyncio.gather(*(one_accept(host, str(ipaddress.IPv4Address(base + 1 + i)), sem, res)
                           for i in range(count)))
    dt = time.monotonic() - t0
    print("ok=%d bad=%d seconds=%.3f rate=%.1f %s" % (res["ok"], res["bad"], dt,
                                                      res["ok"] / dt, res["err"]))


def brute(host, src, tries, user, threads):
    lock = threading.Lock()
    st = {"sent": 0, "535": 0, "421rate": 0, "421other": 0, "other": 0, "sessions": 0}
    bad = base64.b64encode(b"\0" + user.encode() + b"\0wrong-guess").decode()

    def take():
        with lock:
            if st["sent"] >= tries:
                return False
            st["sent"] += 1
            return True

    def worker():
        while True:
            with lock:
                if st["sent"] >= tries:
                    return
                st["sessions"] += 1
            c = Conn(connect(host, src, PORT587))
            c.reply()
            c.cmd("EHLO brute.test")
            c.starttls()
            c.cmd("EHLO brute.test")
            fails = 0
            while take():
                r = c.cmd("AUTH PLAIN " + bad)
                last = r[-1]
                if r[0].startswith("535"):
                    fails += 1
                    if fails == 3:	# the session's own limit: 421 follows
                        last = c.reply()[-1]
                        with lock:
                            st["535"] += 1
                        break
                with lock:
                    if r[0].startswith("535 5.7.8"):
                        st["535"] += 1
                    elif last.startswith("421 4.7.0") and "authentication failures from" in last:
                        st["421rate"] += 1
                    elif last.startswith("421"):
                        st["421other"] += 1
                    else:
                        st["other"] += 1
                if last.startswith("421"):
                    break
            try:
                c.s.close()
            except OSError:
                pass

    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    st["seconds"] = round(time.monotonic() - t0, 3)
    print(" ".join("%s=%s" % kv for kv in st.items()))


def latency(host, src, seconds, user, pw):
    c = Conn(connect(host, src, PORT587))
    c.reply()
    c.cmd("EHLO calm.test")
    c.starttls()
    c.cmd("EHLO calm.test")
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        r = c.cmd("NOOP")[-1]
        lat.append((time.monotonic() - t0) * 1000)
        if not r.startswith("250"):
            raise SystemExit("NOOP: " + r)
        time.sleep(0.02)
    lat.sort()
    good = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
    t0 = time.monotonic()
    r = c.cmd("AUTH PLAIN " + good)[-1]
    auth_ms = (time.monotonic() - t0) * 1000
    umail = urefused = 0	# then MAIL as the user, past its user_message_rate
    for i in range(8):
        m = c.cmd("MAIL FROM:<%s@isp.example>" % user)[-1]
        if m.startswith("250"):
            umail += 1
            c.cmd("RSET")
        elif m.startswith("452 4.7.1 Error: too much mail from this user"):
            urefused += 1
    c.cmd("QUIT")
    print("n=%d p50=%.1f p99=%.1f max=%.1f auth=%s auth_ms=%.1f user_mail=%d user_refused=%d" % (
        len(lat), lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat[-1],
        r.split()[0], auth_ms, umail, urefused))


def main():
    a = sys.argv[1:]
    if a[0] == "mail":
        mail(a[1], a[2], int(a[3]))
    elif a[0] == "conns":
        conns(a[1], a[2], int(a[3]))
    elif a[0] == "accept":
        asyncio.run(accept_run(a[1], a[2], int(a[3]), int(a[4])))
    elif a[0] == "brute":
        brute(a[1], a[2], int(a[3]), a[4], int(a[5]))
    elif a[0] == "latency":
        latency(a[1], a[2], float(a[3]), a[4], a[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
