#!/usr/bin/python3
"""durability_clients.py - the SMTP load of durability.sh.

  durability_clients.py [--host H] [--port P] --log FILE [--op-timeout S] load N CONC

N messages over CONC pipelining connections. Message i goes to 1 to 3
recipients in different domains (d0..d6.example.net), so many messages
span several queue shards. Every message answered "250 2.0.0 Ok: queued
as ID" is appended to FILE at once, as smtp_clients.py's --log does
("ID SHA256 NRCPT SENDER PROTO", SHA256 of the message as stored after
sluiced's Received: field), so smtp_clients.py verify-log checks them.

Survives the server dying under it (the power-cut rounds): exits 3 then,
1 on a wrong reply, 0 when all N were queued. Prints one line.
"""
import argparse
import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smtp_clients as sc  # noqa: E402  (make_body, stuff, Log, QUEUED, areply)


def rcpts_of(i):
    n = 1 + i % 3
    return ['r%d.%d@d%d.example.net' % (i, k, (i + 3 * k) % 7) for k in range(n)]


def load(a, log, n, conc, op_timeout):
    sc.raise_nofile(conc + 64)
    tag = 'dur%x' % (int(time.time() * 1000) & 0xffffffff)
    st = {'ok': 0, 'temp': 0, 'bad': [], 'lost': 0, 'multi': 0}
    todo = iter(range(n))
    t0 = time.time()

    async def worker(w):
        rnd = random.Random('%s.%d' % (tag, w))
        sender = '%s.w%d@example.org' % (tag, w)
        wr = None
        try:
            r, wr = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), op_timeout)
            g = await asyncio.wait_for(sc.areply(r), op_timeout)
            if not g.startswith('220'):
                st['bad'].append('greeting %r' % g)
                return
            wr.write(b'EHLO w%d.client.test\r\n' % w)
            if not (await asyncio.wait_for(sc.areply(r), op_timeout)).startswith('250'):
                st['bad'].append('EHLO')
                return
            for i in todo:
                size = rnd.choice((300, 2000, 6000, 20000)) + rnd.randrange(500)
                body = sc.make_body(tag, i, size, rnd, sender)
                rc = rcpts_of(i)
                wr.write(b'MAIL FROM:<%s>\r\n' % sender.encode() +
                         b''.join(b'RCPT TO:<%s>\r\n' % x.encode() for x in rc) + b'DATA\r\n')
                rs = [await asyncio.wait_for(sc.areply(r), op_timeout) for _ in range(len(rc) + 2)]
                if not (all(x.startswith('250') for x in rs[:-1]) and rs[-1].startswith('354')):
                    if any(x.startswith('4') for x in rs):
                        st['temp'] += 1
                        if rs[-1].startswith('354'):
                            wr.write(b'.\r\n')
                            await asyncio.wait_for(sc.areply(r), op_timeout)
                        wr.write(b'RSET\r\n')
                        await asyncio.wait_for(sc.areply(r), op_timeout)
                        continue
                    st['bad'].append('envelope %r' % rs)
                    return
                wr.write(sc.stuff(body))
                rr = await asyncio.wait_for(sc.areply(r), op_timeout)
                m = sc.QUEUED.match(rr)
                if m:
                    log.add(m.group(1), body, len(rc), sender, 'ESMTP')
                    st['ok'] += 1
                    st['multi'] += len(rc) > 1
                elif rr.startswith('4'):
                    st['temp'] += 1
                else:
                    st['bad'].append('end of data %r' % rr)
                    return
            wr.write(b'QUIT\r\n')
            await asyncio.wait_for(sc.areply(r), op_timeout)
        except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            st['lost'] += 1
        finally:
            if wr is not None:
                wr.close()

    async def main():
        await asyncio.gather(*(worker(w) for w in range(conc)))
    asyncio.run(main())
    msg = '%d/%d queued (%d to several domains) over %d connections in %.1f s, %d temporary failures, %d connections lost' % (
        st['ok'], n, st['multi'], conc, time.time() - t0, st['temp'], st['lost'])
    if st['bad']:
        print('FAIL load: %s; unexpected replies: %r' % (msg, st['bad'][:3]))
        sys.exit(1)
    print(msg)
    sys.exit(0 if st['ok'] == n and not st['lost'] else 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='198.18.0.2')
    ap.add_argument('--port', type=int, default=25)
    ap.add_argument('--log', required=True)
    ap.add_argument('--op-timeout', type=float, default=20)
    ap.add_argument('mode', choices=['load'])
    ap.add_argument('n', type=int)
    ap.add_argument('conc', type=int)
    a = ap.parse_args()
    load(a, sc.Log(a.log), a.n, a.conc, a.op_timeout)


if __name__ == '__main__':
    main()
