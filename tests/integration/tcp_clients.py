#!/usr/bin/python3
"""tcp_clients.py - kernel-side TCP clients and servers for the interop tests.

  tcp_clients.py many HOST PORT N BYTES      N concurrent connections, each
                                             echoes BYTES random bytes; checks all
  tcp_clients.py stream HOST PORT BYTES      one connection, BYTES each way,
                                             SHA-256 of sent vs received
  tcp_clients.py echo-server HOST PORT       a kernel echo server (for our
                                             stack's active opens); runs until killed
  tcp_clients.py synflood IFACE DST_MAC SRC DST PORT N
                                             N SYNs from random source ports (raw)

Each client mode prints one JSON line with its result and exits 0 only when
every byte came back intact.
"""
import asyncio
import hashlib
import json
import os
import random
import resource
import socket
import struct
import sys
import threading
import time

from pktutil import csum


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def one_echo(host, port, nbytes, seed, timeout):
    data = random.Random(seed).randbytes(nbytes)
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    async def send():
        w.write(data)
        await w.drain()
        w.write_eof()
    sender = asyncio.ensure_future(send())
    got = await asyncio.wait_for(r.readexactly(nbytes), timeout)
    await sender
    tail = await asyncio.wait_for(r.read(), timeout)  # server closes after echo
    w.close()
    return got == data and tail == b""


async def many(host, port, n, nbytes, timeout=120):
    raise_nofile(n + 64)
    t = time.time()
    res = await asyncio.gather(*(one_echo(host, port, nbytes, i, timeout)
                                 for i in range(n)),
                               return_exceptions=True)
    ok = sum(1 for x in res if x is True)
    errs = [repr(x) for x in res if x is not True][:3]
    print(json.dumps({"mode": "many", "connections": n, "ok": ok, "bytes_each": nbytes,
                      "seconds": round(time.time() - t, 2), "errors": errs}))
    return ok == n


def stream(host, port, nbytes):
    s = socket.create_connection((host, port), timeout=60)
    s.settimeout(120)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    got = [0]
    def reader():
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            hr.update(b)
            got[0] += len(b)
    th = threading.Thread(target=reader)
    th.start()
    t = time.time()
    rng = random.Random(99)
    block = rng.randbytes(1 << 20)
    sent = 0
    while sent < nbytes:
        chunk = block[: min(len(block), nbytes - sent)]
        # vary content per block so a misplaced block changes the hash
        chunk = struct.pack("!Q", sent) + chunk[8:]
        s.sendall(chunk)
        hs.update(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    th.join()
    s.close()
    secs = time.time() - t
    ok = got[0] == nbytes and hs.hexdigest() == hr.hexdigest()
    print(json.dumps({"mode": "stream", "bytes": nbytes, "received": got[0], "ok": ok,
                      "sha256_sent": hs.hexdigest()[:16], "sha256_received": hr.hexdigest()[:16],
                      "seconds": round(secs, 2), "MBps_each_way": round(nbytes / secs / 1e6, 1)}))
    return ok


async def echo_server(host, port):
    async def handle(r, w):
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
        w.close()
    raise_nofile(4096)
    srv = await asyncio.start_server(handle, host, port, backlog=1024)
    async with srv:
        await srv.serve_forever()


def synflood(iface, dst_mac, src, dst, port, n):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    smac = s.getsockname()[4][:6]
    dmac = bytes.fromhex(dst_mac.replace(":", ""))
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    rng = random.Random(5)
    t = time.time()
    for i in range(n):
        sport = rng.randint(1024, 65535)
        seq = rng.getrandbits(32)
        opts = b"\x02\x04\x05\xb4"  # MSS 1460
        tcp = struct.pack("!HHIIBBHHH", sport, port, seq, 0, (5 + 1) << 4, 0x02, 64240, 0, 0) + opts
        ph = sa + da + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, sa, da)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        while True:
            try:
                s.send(dmac + smac + b"\x08\x00" + ip + tcp)
                break
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError as e:  # ENOBUFS when the tap queue is full
                if e.errno != 105:
                    raise
                time.sleep(0.0005)
    print(json.dumps({"mode": "synflood", "sent": n, "seconds": round(time.time() - t, 2)}))
    return True


def main(a):
    mode = a[0]
    if mode == "many":
        return asyncio.run(many(a[1], int(a[2]), int(a[3]), int(a[4])))
    if mode == "stream":
        return stream(a[1], int(a[2]), int(a[3]))
    if mode == "echo-server":
        asyncio.run(echo_server(a[1], int(a[2])))
        return True
    if mode == "synflood":
        return synflood(a[1], a[2], a[3], a[4], int(a[5]), int(a[6]))
    print("unknown mode", file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
