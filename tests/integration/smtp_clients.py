#!/usr/bin/python3
"""smtp_clients.py - SMTP clients (and checkers) for smtp_e2e.sh.

  smtp_clients.py [--host H] [--port P] [--src ADDR] [--log FILE] MODE [ARGS]

Senders (each message body is distinct: a tag, a counter and random text).
With --log, every message answered "250 2.0.0 Ok: queued as ID" is appended
to FILE as one flushed line "ID SHA256 NRCPT SENDER PROTO", where SHA256 is
of the message as sent (after dot-unstuffing, i.e. as it must be stored
after sluiced's Received: field) and PROTO the "with" word the Received:
field must carry.

  utf8                    SMTPUTF8: UTF-8 sender and recipient (smtplib); and
                          a UTF-8 address without SMTPUTF8 gets 553 5.6.7
  starttls                STARTTLS (certificate not verified), EHLO again,
                          STARTTLS no longer offered, then a message (smtplib)
  rcpts N                 one message to N recipients over 10 domains (smtplib)
  big BYTES               one message of BYTES (SIZE= declared) (smtplib)
  bdat                    CHUNKING: three chunks ending in BDAT 0 LAST, and
                          a pipelined single BDAT LAST; content with dots
  record N CONC           N messages over CONC pipelining connections (log
                          them with --log); survives the server dying (exit
                          3 then: connections lost)
  slow                    one byte per second: EHLO, NOOP, QUIT (~20 s)
  quick N                 N messages, one connection each; prints the slowest
  garbage SEED BYTES      random bytes until 421 4.7.0 and close
  nul                     NUL in commands (500 5.5.2) and in a body
  longline                1012/1013-octet commands (RFC 5321's 512 + RFC
                          3461's 500), a 1 MB command line,
                          text lines of 998 (250), 999 and 5000 (500 5.5.2)
                          octets plus CRLF
  orcpt EXPECT            RFC 3461: smtplib sends RCPTs whose ORCPT is 497
                          and 500 characters (lines over 512 octets) and a
                          100-character ENVID: all 250; writes the recipient
                          lines queue-dump -r must show to EXPECT
  dotline                 a 1000-octet text line starting with a dot, stuffed
                          on the wire (RFC 5321 4.5.3.1.6): 250
  bare                    bare LF / CR in DATA: 550 5.5.2; bare LF command
  hops LIMIT              LIMIT-1 Received: fields pass, LIMIT and LIMIT+1
                          get 554 5.4.6
  size LIMIT              SIZE=LIMIT+1 gets 552 5.3.4 at MAIL; LIMIT+1 octets
                          of DATA or BDAT get 552 5.3.4; LIMIT octets pass
  rcptlimit N             N recipients take, the N+1th gets 452 4.5.3
  bodymem N SIZE          N unfinished bodies of SIZE held at once (beyond
                          body_memory): 250 for those that fit, 452 4.3.1 for
                          the others; then each sends again: all 250
  perclient N             N sessions from --src, the N+1th gets 421 4.7.0;
                          a freed slot is usable again
  sessions MAX SRC2 N2    MAX sessions in all, N2 of them from SRC2: one more
                          (from SRC2, within its own limit) gets 421 4.7.0
  errors N                N bad commands: 421 4.7.0 after the Nth, closed
  timeout CMD DATA        idle: 421 4.4.2 after CMD s; idle in DATA: after DATA s
  relay DOMAIN            from --src outside mynetworks: relay probes all get
                          554 5.7.1, user@DOMAIN passes
  trusted                 from --src inside mynetworks: a foreign domain passes
  postmaster HOST TO EXPECT
                          from --src outside mynetworks (RFC 5321 4.5.1):
                          <Postmaster> and postmaster@HOST (other case) get
                          250, postmaster@other.example 554 5.7.1; the
                          message is queued; writes to EXPECT the recipient
                          lines queue-dump -r must show (TO, with the
                          address used as ORCPT)
  shutdown SECS           an idle session waits for 421 4.3.2 and the close
  capture PORT FILE       a tiny SMTP server on 127.0.0.1:PORT that stores the
                          first message's content (unstuffed) in FILE

Checkers (read queue-dump -s output and the bodies of queue-dump -b DIR):

  verify-log DUMP BODIES LOG...      every logged ID present, stripped body
                                     SHA-256, NRCPT, sender and Received
                                     "with PROTO" equal (BODIES may be "-")
  verify-rcpts RCPTS EXPECT...        every line of the EXPECT files is a line
                                     of RCPTS (queue-dump -r output)
  verify-source DUMP BODIES SENDER TEMPLATE N
                                     exactly N messages from SENDER, each equal
                                     to TEMPLATE (smtp-source's message) but
                                     for the Date and Message-Id values, which
                                     are all distinct

Each mode prints one line saying what it checked and exits 0 on success,
1 on failure (the line then starts with FAIL and says why).
"""
import argparse
import asyncio
import hashlib
import os
import random
import re
import resource
import smtplib
import socket
import ssl
import sys
import threading
import time

QUEUED = re.compile(r'^250 2\.0\.0 Ok: queued as ([0-9A-HJKMNP-TV-Z]{13})$')
ID_RE = re.compile(r'^[0-9A-HJKMNP-TV-Z]{13}$')


class Fail(Exception):
    pass


def want(cond, what):
    if not cond:
        raise Fail(what)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))


# ---- message bodies ---------------------------------------------------------

ALPHABET = b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;:-_=+!?'
TABLE = bytes(ALPHABET[i % len(ALPHABET)] for i in range(256))


def make_body(tag, i, size, rnd, sender='s@example.org', rcpt='r@example.net',
              extra_headers=b'', dots=True):
    """A distinct RFC 5322 message of about `size` octets, CRLF line ends,
    ending in CRLF. With dots, some lines start with '.' (dot-stuffing)."""
    nonce = '%016x' % rnd.getrandbits(64)
    head = ('From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\n'
            'Message-Id: <%s.%d.%s@client.test>\r\n' % (sender, rcpt, tag, i, tag, i, nonce)
            ).encode('utf-8') + extra_headers + b'\r\n'
    out = [head, ('%s message %d %s\r\n' % (tag, i, nonce)).encode()]
    n = len(out[0]) + len(out[1])
    blob = rnd.randbytes(max(size - n, 0) + 200).translate(TABLE)
    pos, k = 0, 0
    while n < size:
        k += 1
        ln = rnd.randrange(0, 160)
        line = blob[pos:pos + ln]
        pos += ln
        if dots and k % 7 == 0:
            line = b'.' + line
        if dots and k % 23 == 0:
            line = b'.'
        if dots and k % 29 == 0:
            line = b'..'
        line += b'\r\n'
        out.append(line)
        n += len(line)
    return b''.join(out)


def big_body(tag, size):
    """A large message of exactly `size` octets (numbered 80-octet lines)."""
    head = ('From: <big@example.org>\r\nTo: <r@example.net>\r\nSubject: %s\r\n'
            'Message-Id: <%s.%f@client.test>\r\n\r\n' % (tag, tag, time.time())).encode()
    pattern = bytes(48 + (j % 43) for j in range(71)) + b'\r\n'
    nl = (size - len(head)) // 80 - 1
    body = bytearray(head)
    for j in range(nl):
        body += b'%07d' % j + pattern
    rest = size - len(body)  # 80..159: one last line
    body += b'e' * (rest - 2) + b'\r\n'
    return bytes(body)


def stuff(body):
    """Dot-stuff a CRLF body that ends in CRLF and add the terminator."""
    if body.startswith(b'.'):
        body = b'.' + body
    return body.replace(b'\r\n.', b'\r\n..') + b'.\r\n'


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Log:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None

    def add(self, qid, body, nrcpt, sender, proto):
        if self.fd is not None:
            os.write(self.fd, ('%s %s %d %s %s\n' % (qid, sha(body), nrcpt, sender or '<>',
                                                     proto)).encode('utf-8'))


# ---- a blocking line-level client ------------------------------------------

class Conn:
    def __init__(self, a, src=None, timeout=30):
        src = src or a.src
        self.sock = socket.create_connection((a.host, a.port), timeout=timeout,
                                             source_address=(src, 0) if src else None)
        self.f = self.sock.makefile('rb')

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One reply: its last line as text (e.g. '250 2.1.0 Ok')."""
        lines = []
        while True:
            ln = self.f.readline(4096)
            if not ln:
                raise EOFError('connection closed%s' % (' after %r' % lines if lines else ''))
            want(ln.endswith(b'\r\n'), 'reply line without CRLF: %r' % ln)
            lines.append(ln[:-2].decode('utf-8', 'replace'))
            if len(ln) < 6 or ln[3:4] != b'-':
                return lines[-1]

    def cmd(self, line):
        self.send(line + b'\r\n')
        return self.reply()

    def chunk(self, size_line, data):
        """BDAT: the command line, then exactly the chunk's octets."""
        self.send(size_line + b'\r\n' + data)
        return self.reply()

    def expect(self, line, prefix, what=None):
        r = self.cmd(line) if line is not None else self.reply()
        want(r.startswith(prefix), '%s: expected %s, got %r' %
             (what or (line[:40] if line else 'reply'), prefix, r))
        return r

    def closed(self, timeout=5):
        """True when the server closes (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        # the makefile() object holds the descriptor too: close both, or no FIN
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


def session(a, src=None, helo=b'client.test'):
    c = Conn(a, src)
    c.expect(None, '220', 'greeting')
    c.expect(b'EHLO ' + helo, '250')
    return c


def send_data(c, body):
    """DATA + body on a session with MAIL/RCPT done; returns the queue ID."""
    c.expect(b'DATA', '354')
    c.send(stuff(body))
    r = c.reply()
    m = QUEUED.match(r)
    want(m, 'end of data: expected 250 queued as ID, got %r' % r)
    return m.group(1)


def one_message(a, c, log, body, sender='s@example.org', rcpts=('r@example.net',),
                proto='ESMTP'):
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    for r in rcpts:
        c.expect(b'RCPT TO:<%s>' % r.encode(), '250')
    qid = send_data(c, body)
    log.add(qid, body, len(rcpts), sender, proto)
    return qid


def try_message(c, log, sender, body, code, what):
    """MAIL, RCPT, DATA and body on session c: the end-of-data reply must
    start with code; a 250 is logged for the spool check. Returns it."""
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    c.expect(b'RCPT TO:<r@example.net>', '250')
    c.expect(b'DATA', '354')
    c.send(stuff(body))
    r = c.reply()
    want(r.startswith(code), '%s: expected %s, got %r' % (what, code, r))
    if code == '250':
        m = QUEUED.match(r)
        want(m, 'no queue ID in %r' % r)
        log.add(m.group(1), body, 1, sender, 'ESMTP')
    return r


def smtplib_data(s, body):
    code, resp = s.data(body)
    resp = resp.decode('utf-8', 'replace')
    m = QUEUED.match('%d %s' % (code, resp))
    want(m, 'DATA: expected 250 queued as ID, got %d %r' % (code, resp))
    return m.group(1)


def smtp(a, timeout=60):
    return smtplib.SMTP(a.host, a.port, local_hostname='client.test', timeout=timeout,
                        source_address=(a.src, 0) if a.src else None)


# ---- senders ---------------------------------------------------------------

def m_utf8(a, log):
    rnd = random.Random('utf8')
    s = smtp(a)
    s.ehlo()
    want(s.has_extn('smtputf8'), 'SMTPUTF8 not offered')
    want(s.has_extn('8bitmime'), '8BITMIME not offered')
    # without SMTPUTF8 a UTF-8 address is refused
    code, resp = s.docmd('MAIL FROM:<ascii@example.org>')
    want(code == 250, 'MAIL: %d %r' % (code, resp))
    s.command_encoding = 'utf-8'
    code, resp = s.docmd('RCPT TO:<pelé@exämple.net>')
    want(code == 553 and resp.startswith(b'5.6.7'),
         'UTF-8 RCPT without SMTPUTF8: expected 553 5.6.7, got %d %r' % (code, resp))
    s.rset()
    sender, rcpt = 'jöran@exämple.org', '用户@例子.测试'
    code, resp = s.mail(sender, ['SMTPUTF8', 'BODY=8BITMIME'])
    want(code == 250, 'MAIL SMTPUTF8: %d %r' % (code, resp))
    code, resp = s.rcpt(rcpt)
    want(code == 250, 'RCPT %s: %d %r' % (rcpt, code, resp))
    body = make_body('utf8', 0, 3000, rnd, sender, rcpt,
                     'Subject2: Grüße, 你好 ✉\r\n'.encode('utf-8'))
    body += 'Ünïcödé body line ✓\r\n'.encode('utf-8')
    qid = smtplib_data(s, body)
    s.quit()
    log.add(qid, body, 1, sender, 'UTF8SMTP')
    return 'SMTPUTF8 %s -> %s queued as %s (non-SMTPUTF8 UTF-8 rcpt got 553 5.6.7)' % (
        sender, rcpt, qid)


def m_starttls(a, log):
    rnd = random.Random('starttls')
    s = smtp(a)
    s.ehlo()
    want(s.has_extn('starttls'), 'STARTTLS not offered')
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    code, resp = s.starttls(context=ctx)
    want(code == 220, 'STARTTLS: %d %r' % (code, resp))
    s.ehlo()
    want(not s.has_extn('starttls'), 'STARTTLS still offered after TLS')
    version, cipher = s.sock.version(), s.sock.cipher()[0]
    sender = 'tls@example.org'
    s.mail(sender)
    code, resp = s.rcpt('r@example.net')
    want(code == 250, 'RCPT: %d %r' % (code, resp))
    body = make_body('starttls', 0, 5000, rnd, sender)
    qid = smtplib_data(s, body)
    # a second transaction on the same TLS session
    s.mail(sender)
    s.rcpt('r2@example.net')
    body2 = make_body('starttls', 1, 70000, rnd, sender)
    qid2 = smtplib_data(s, body2)
    s.quit()
    log.add(qid, body, 1, sender, 'ESMTPS')
    log.add(qid2, body2, 1, sender, 'ESMTPS')
    return 'STARTTLS (%s %s): 2 messages queued as %s %s' % (version, cipher, qid, qid2)


def m_rcpts(a, log, n):
    rnd = random.Random('rcpts')
    s = smtp(a)
    s.ehlo()
    sender = 'many@example.org'
    s.mail(sender)
    for i in range(n):
        code, resp = s.rcpt('user%d@d%d.example.net' % (i, i % 10))
        want(code == 250, 'RCPT %d: %d %r' % (i, code, resp))
    body = make_body('rcpts', n, 4000, rnd, sender)
    qid = smtplib_data(s, body)
    s.quit()
    log.add(qid, body, n, sender, 'ESMTP')
    return '%d recipients over 10 domains, queued as %s' % (n, qid)


def m_big(a, log, size):
    s = smtp(a, timeout=300)
    s.ehlo()
    lim = s.esmtp_features.get('size', '')
    want(lim and int(lim) >= size, 'SIZE %r does not allow %d' % (lim, size))
    body = big_body('big', size)
    want(len(body) == size, 'built %d octets' % len(body))
    sender = 'big@example.org'
    code, resp = s.mail(sender, ['SIZE=%d' % size])
    want(code == 250, 'MAIL SIZE=%d: %d %r' % (size, code, resp))
    s.rcpt('r@example.net')
    t = time.time()
    qid = smtplib_data(s, body)
    dt = time.time() - t
    s.quit()
    log.add(qid, body, 1, sender, 'ESMTP')
    return '%d octets queued as %s in %.1f s' % (size, qid, dt)


def m_bdat(a, log):
    rnd = random.Random('bdat')
    c = session(a)
    c.send(b'EHLO client.test\r\n')
    caps = []
    while True:
        ln = c.f.readline().decode()
        caps.append(ln[4:].strip().upper())
        if ln[3:4] != '-':
            break
    want('CHUNKING' in caps, 'CHUNKING not offered: %r' % caps)
    sender = 'bdat@example.org'
    # 1: three chunks, the last one empty; content with dots and a fake terminator
    body = make_body('bdat', 0, 9000, rnd, sender)
    body = body[:300] + b'\r\n.\r\n' + body[300:]  # no special meaning in BDAT
    parts = [body[:4000], body[4000:]]
    c.expect(b'MAIL FROM:<%s> BODY=8BITMIME' % sender.encode(), '250')
    c.expect(b'RCPT TO:<r@example.net>', '250')
    for p in parts:
        r = c.chunk(b'BDAT %d' % len(p), p)
        want(r == '250 2.0.0 %d octets received' % len(p), 'BDAT %d: %r' % (len(p), r))
    r = c.cmd(b'BDAT 0 LAST')
    m = QUEUED.match(r)
    want(m, 'BDAT 0 LAST: %r' % r)
    log.add(m.group(1), body, 1, sender, 'ESMTP')
    ids = [m.group(1)]
    # 2: everything pipelined in one write, one BDAT LAST
    body = make_body('bdat', 1, 20000, rnd, sender)
    c.send(b'MAIL FROM:<%s>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<r2@example.org>\r\n'
           b'BDAT %d LAST\r\n' % (sender.encode(), len(body)) + body)
    for what in ('MAIL', 'RCPT', 'RCPT'):
        c.expect(None, '250', what)
    r = c.reply()
    m = QUEUED.match(r)
    want(m, 'pipelined BDAT LAST: %r' % r)
    log.add(m.group(1), body, 2, sender, 'ESMTP')
    ids.append(m.group(1))
    c.expect(b'QUIT', '221')
    return 'BDAT: 3 chunks (last BDAT 0 LAST) and a pipelined BDAT LAST, queued as %s' % ' '.join(ids)


async def areply(r):
    lines = []
    while True:
        ln = await r.readline()
        if not ln:
            raise EOFError('connection closed')
        lines.append(ln[:-2].decode('utf-8', 'replace'))
        if len(ln) < 6 or ln[3:4] != b'-':
            return lines[-1]


def m_record(a, log, n, conc, op_timeout):
    """N messages over CONC connections; tolerant of the server dying."""
    raise_nofile(conc + 64)
    tag = 'rec%x' % (int(time.time() * 1000) & 0xffffffff)
    st = {'ok': 0, 'temp': 0, 'bad': [], 'lost': 0, 'lost_why': set()}
    todo = iter(range(n))
    t0 = time.time()

    async def worker(w):
        rnd = random.Random('%s.%d' % (tag, w))
        sender = '%s.w%d@example.org' % (tag, w)
        wr = None
        try:
            r, wr = await asyncio.wait_for(asyncio.open_connection(
                a.host, a.port, local_addr=(a.src, 0) if a.src else None), op_timeout)
            g = await asyncio.wait_for(areply(r), op_timeout)
            if not g.startswith('220'):
                st['bad'].append('greeting %r' % g)
                return
            wr.write(b'EHLO w%d.client.test\r\n' % w)
            e = await asyncio.wait_for(areply(r), op_timeout)
            if not e.startswith('250'):
                st['bad'].append('EHLO %r' % e)
                return
            for i in todo:
                size = rnd.choice((300, 1000, 3000, 3000, 10000, 10000, 30000, 60000)) + rnd.randrange(500)
                body = make_body(tag, i, size, rnd, sender)
                rcpt = 'r%d@d%d.example.net' % (i, i % 7)
                wr.write(b'MAIL FROM:<%s> BODY=8BITMIME\r\nRCPT TO:<%s>\r\nDATA\r\n' % (
                    sender.encode(), rcpt.encode()))
                rs = [await asyncio.wait_for(areply(r), op_timeout) for _ in range(3)]
                if not (rs[0].startswith('250') and rs[1].startswith('250') and rs[2].startswith('354')):
                    if any(x.startswith('4') for x in rs):
                        st['temp'] += 1
                        if rs[2].startswith('354'):
                            wr.write(b'.\r\n')
                            await asyncio.wait_for(areply(r), op_timeout)
                        wr.write(b'RSET\r\n')
                        await asyncio.wait_for(areply(r), op_timeout)
                        continue
                    st['bad'].append('envelope %r' % rs)
                    return
                wr.write(stuff(body))
                rr = await asyncio.wait_for(areply(r), op_timeout)
                m = QUEUED.match(rr)
                if m:
                    log.add(m.group(1), body, 1, sender, 'ESMTP')
                    st['ok'] += 1
                elif rr.startswith('4'):
                    st['temp'] += 1
                else:
                    st['bad'].append('end of data %r' % rr)
                    return
            wr.write(b'QUIT\r\n')
            q = await asyncio.wait_for(areply(r), op_timeout)
            if not q.startswith('221'):
                st['bad'].append('QUIT %r' % q)
        except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            st['lost'] += 1
            st['lost_why'].add(type(e).__name__)
        finally:
            if wr is not None:
                wr.close()

    async def main():
        await asyncio.gather(*(worker(w) for w in range(conc)))
    asyncio.run(main())
    dt = time.time() - t0
    msg = '%d/%d queued over %d connections in %.1f s (%d temporary failures, %d connections lost%s)' % (
        st['ok'], n, conc, dt, st['temp'], st['lost'],
        (': ' + ','.join(sorted(st['lost_why']))) if st['lost'] else '')
    if st['bad']:
        raise Fail(msg + '; unexpected replies: %r' % st['bad'][:3])
    if st['lost'] or st['ok'] != n:
        print(msg)
        sys.exit(3)
    return msg


def m_quick(a, log, n):
    rnd = random.Random('quick%f' % time.time())
    worst = 0.0
    for i in range(n):
        t = time.time()
        c = session(a)
        one_message(a, c, log, make_body('quick', i, 2000, rnd))
        c.expect(b'QUIT', '221')
        c.close()
        worst = max(worst, time.time() - t)
    return '%d sessions each sent a message, slowest %.2f s' % (n, worst)


def m_slow(a, log):
    c = Conn(a, timeout=60)
    c.expect(None, '220', 'greeting')
    t = time.time()
    for line, code in ((b'EHLO s\r\n', '250'), (b'NOOP\r\n', '250'), (b'QUIT\r\n', '221')):
        for b in line:
            c.send(bytes([b]))
            time.sleep(1)
        c.expect(None, code, line.strip().decode())
    want(c.closed(5), 'not closed after QUIT')
    return 'slow client (1 byte/s, %.0f s) got all its replies' % (time.time() - t)


def m_garbage(a, log, seed, nbytes):
    rnd = random.Random(seed)
    data = rnd.randbytes(nbytes)
    c = Conn(a)
    c.expect(None, '220', 'greeting')
    got = bytearray()
    done = threading.Event()

    def reader():
        try:
            while True:
                d = c.sock.recv(65536)
                if not d:
                    break
                got.extend(d)
        except OSError:
            pass
        done.set()
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    sent = 0
    try:
        while sent < len(data) and not done.is_set():
            c.sock.sendall(data[sent:sent + 1024])
            sent += 1024
    except OSError:
        pass
    done.wait(15)
    want(done.is_set(), 'not closed within 15 s of the garbage (replies %r)' % bytes(got[-200:]))
    lines = bytes(got).split(b'\r\n')
    lines = [x for x in lines if x]
    want(lines and lines[-1].startswith(b'421 4.7.0'),
         'last reply is not 421 4.7.0: %r' % lines[-3:])
    errs = sum(1 for x in lines if x[:1] == b'5')
    return '%d random bytes (sent %d): %d 5xx replies, then 421 4.7.0 and close' % (
        nbytes, min(sent, nbytes), errs)


def m_nul(a, log):
    rnd = random.Random('nul')
    c = session(a)
    c.expect(b'NOOP a\x00b', '500 5.5.2', 'NOOP with NUL')
    c.expect(b'MAIL FROM:<a\x00b@example.org>', '500 5.5.2', 'MAIL with NUL')
    c.expect(b'\x00\x00\x00', '500 5.5.2', 'NULs only')
    c.expect(b'NOOP', '250')
    sender = 'nul@example.org'
    c.expect(b'MAIL FROM:<%s> BODY=8BITMIME' % sender.encode(), '250')
    c.expect(b'RCPT TO:<r@example.net>', '250')
    body = make_body('nul', 0, 2000, rnd, sender) + b'NUL here:\x00:and\x00\x00there\r\n'
    c.expect(b'DATA', '354')
    c.send(stuff(body))
    r = c.reply()
    m = QUEUED.match(r)
    # A relay passes the body on as it came: NULs and all (the spool check
    # compares it byte for byte). Anything but 250 is a failure.
    want(m, 'a body with NULs must be queued as sent, got %r' % r)
    log.add(m.group(1), body, 1, sender, 'ESMTP')
    c.expect(b'QUIT', '221')
    return 'NUL in commands: 500 5.5.2 each; a body with NULs was queued as %s' % m.group(1)


def m_longline(a, log):
    rnd = random.Random('longline')
    c = session(a)
    c.expect(b'NOOP ' + b'x' * 1005, '250', '1012-octet command line')
    c.expect(b'NOOP ' + b'x' * 1006, '500 5.5.2', '1013-octet command line')
    c.expect(b'MAIL FROM:<' + b'a' * 600 + b'@example.org>', '501 5.1.7', '600-octet path')
    c.expect(b'MAIL FROM:<' + b'a' * 1100 + b'@example.org>', '500 5.5.2', '1100+ octet MAIL')
    c.send(b'NOOP ')
    chunk = b'y' * 65536
    for _ in range(16):
        c.send(chunk)
    c.expect(b'', '500 5.5.2', '1 MB command line')
    c.expect(b'NOOP', '250', 'NOOP after the long lines')
    sender = 'long@example.org'
    res = []
    # text lines: 998 octets + CRLF pass, 999 + CRLF get 500 5.5.2
    for n, code in ((998, '250'), (999, '500 5.5.2'), (5000, '500 5.5.2')):
        body = make_body('longline', n, 1000, rnd, sender) + b'L' * n + b'\r\n' + b'end\r\n'
        r = try_message(c, log, sender, body, code, 'text line of %d octets + CRLF' % n)
        res.append('%d:%s' % (n, r[:9]))
    c.expect(b'QUIT', '221')
    return ('command lines: 1012 ok, 1013/1100+/1 MB get 500 5.5.2, a 600-octet path '
            '501 5.1.7, session survives; text lines: %s' % ' '.join(res))


def xtext_filler(n, seed):
    """n characters of valid xtext (with '+XX' escapes) from a seed."""
    rnd = random.Random(seed)
    out = ''
    while len(out) < n:
        if len(out) + 3 <= n and rnd.random() < 0.1:
            out += '+%02X' % rnd.choice(b'+= \t')
        else:
            out += rnd.choice('abcdefghijklmnopqrstuvwxyz0123456789.-_@')
    return out


def m_orcpt(a, log, expect):
    rnd = random.Random('orcpt')
    s = smtp(a)
    s.ehlo()
    want(s.has_extn('dsn'), 'DSN not offered')
    sender = 'dsn@example.org'
    o1 = 'rfc822;' + xtext_filler(490, 1)
    o2 = 'rfc822;' + xtext_filler(493, 2)
    rcpts = [('r1@example.net', o1, 'NOTIFY=SUCCESS,FAILURE,DELAY', 7),
             ('r2@example.net', o2, 'NOTIFY=NEVER', 8)]
    envid = xtext_filler(100, 3)
    code, resp = s.mail(sender, ['RET=HDRS', 'ENVID=' + envid])
    want(code == 250, 'MAIL with a 100-character ENVID: %d %r' % (code, resp))
    for addr, orcpt, notify, _ in rcpts:
        line = 'RCPT TO:<%s> %s ORCPT=%s' % (addr, notify, orcpt)
        want(len(line) + 2 > 512, 'the RCPT line is not over 512 octets')
        code, resp = s.rcpt(addr, [notify, 'ORCPT=' + orcpt])
        want(code == 250, 'RCPT with a %d-character ORCPT (%d-octet line): %d %r' % (
            len(orcpt), len(line) + 2, code, resp))
    body = make_body('orcpt', 0, 2000, rnd, sender)
    qid = smtplib_data(s, body)
    log.add(qid, body, len(rcpts), sender, 'ESMTP')
    s.quit()
    with open(expect, 'a') as f:
        for addr, orcpt, _, bits in rcpts:
            f.write('%s %s %s %d\n' % (qid, addr, orcpt, bits))
    return 'ORCPTs of %s characters and a 100-character ENVID: 250 queued as %s' % (
        '/'.join(str(len(r[1])) for r in rcpts), qid)


def m_dotline(a, log):
    """RFC 5321 4.5.3.1.6: 1000 octets per text line including CRLF, not
    counting the leading dot duplicated for transparency."""
    rnd = random.Random('dotline')
    c = session(a)
    sender = 'dot@example.org'
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    c.expect(b'RCPT TO:<r@example.net>', '250')
    body = make_body('dotline', 0, 500, rnd, sender) + b'.' + b'D' * 997 + b'\r\n'
    c.expect(b'DATA', '354')
    c.send(stuff(body))  # the line is 1001 octets on the wire, 1000 stored
    r = c.reply()
    m = QUEUED.match(r)
    want(m, 'a 1000-octet text line starting with "." (dot-stuffed): expected 250, got %r' % r)
    log.add(m.group(1), body, 1, sender, 'ESMTP')
    c.expect(b'QUIT', '221')
    return 'a 1000-octet line starting with a stuffed dot is accepted (%s)' % m.group(1)


def m_bare(a, log):
    rnd = random.Random('bare')
    c = session(a)
    sender = 'bare@example.org'
    res = []
    for what, bad in (('bare LF', b'one\ntwo\r\n'), ('bare CR', b'one\rtwo\r\n'),
                      ('bare LF in headers', None)):
        body = make_body('bare', len(res), 1500, rnd, sender)
        if bad is None:
            body = b'X-Bare: yes\n' + body
        else:
            body = body + bad
        try_message(c, log, sender, body, '550 5.5.2', what)
        res.append(what)
    # the session goes on: a clean message passes
    body = make_body('bare', 9, 1500, rnd, sender)
    qid = one_message(a, c, log, body, sender)
    c.send(b'NOOP\n')
    c.expect(None, '500 5.5.2', 'command ending in bare LF')
    c.expect(b'QUIT', '221')
    return '%s: 550 5.5.2 each; then a clean message (%s); command with bare LF: 500 5.5.2' % (
        ', '.join(res), qid)


def m_hops(a, log, limit):
    rnd = random.Random('hops')
    c = session(a)
    sender = 'hops@example.org'
    res = []
    for n, code in ((limit - 1, '250'), (limit, '554 5.4.6'), (limit + 1, '554 5.4.6')):
        hdrs = b''.join(b'Received: from h%d.example (h%d.example [192.0.2.%d])\r\n'
                        b'\tby h%d.example; Mon, 1 Jan 2024 00:00:%02d +0000\r\n'
                        % (k, k, k % 250 + 1, k + 1, k % 60) for k in range(n))
        body = hdrs + make_body('hops', n, 1000, rnd, sender)
        r = try_message(c, log, sender, body, code, '%d Received: fields' % n)
        res.append('%d:%s' % (n, r[:9]))
    c.expect(b'QUIT', '221')
    return 'Received: counts %s' % ' '.join(res)


def m_size(a, log, limit):
    rnd = random.Random('size')
    c = session(a)
    sender = 'size@example.org'
    c.expect(b'MAIL FROM:<%s> SIZE=%d' % (sender.encode(), limit + 1), '552 5.3.4', 'SIZE=limit+1')
    c.expect(b'MAIL FROM:<%s> SIZE=%d' % (sender.encode(), limit), '250', 'SIZE=limit')
    c.expect(b'RSET', '250')
    res = []
    for n, code in ((limit + 1, '552 5.3.4'), (limit * 3, '552 5.3.4'), (limit, '250')):
        body = make_body('size', n, n - 50, rnd, sender)
        body = body + b'p' * (n - len(body) - 2) + b'\r\n'
        want(len(body) == n, 'built %d octets, wanted %d' % (len(body), n))
        r = try_message(c, log, sender, body, code, '%d octets of DATA' % n)
        res.append('%d:%s' % (n, r[:9]))
    # BDAT over the limit
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    c.expect(b'RCPT TO:<r@example.net>', '250')
    body = make_body('size', 1, limit + 10, rnd, sender)
    r = c.chunk(b'BDAT %d LAST' % len(body), body)
    want(r.startswith('552 5.3.4'), 'BDAT of %d octets: expected 552 5.3.4, got %r' % (len(body), r))
    res.append('BDAT %d:%s' % (len(body), r[:9]))
    c.expect(b'QUIT', '221')
    return 'limit %d: SIZE=limit+1 552 5.3.4 at MAIL; DATA %s' % (limit, ' '.join(res))


def m_rcptlimit(a, log, n):
    rnd = random.Random('rcptlimit')
    c = session(a)
    sender = 'rl@example.org'
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    # pipelined, as a bulk sender would
    c.send(b''.join(b'RCPT TO:<u%d@d%d.example.net>\r\n' % (i, i % 5) for i in range(n + 2)))
    rs = [c.reply() for _ in range(n + 2)]
    want(all(r.startswith('250') for r in rs[:n]), 'first %d RCPTs: %r' % (
        n, [r for r in rs[:n] if not r.startswith('250')][:3]))
    want(rs[n].startswith('452 4.5.3') and rs[n + 1].startswith('452 4.5.3'),
         'RCPT %d and %d: expected 452 4.5.3, got %r' % (n + 1, n + 2, rs[n:]))
    body = make_body('rcptlimit', n, 2000, rnd, sender)
    qid = send_data(c, body)
    log.add(qid, body, n, sender, 'ESMTP')
    c.expect(b'QUIT', '221')
    return '%d RCPTs 250, RCPT %d: %s; message queued as %s for %d' % (n, n + 1, rs[n], qid, n)


def m_bodymem(a, log, n, size):
    """N sessions each hold SIZE octets of an unfinished DATA (more than
    body_memory in all); finishing them gives 250 to those whose bodies fit
    and 452 4.3.1 to the others; afterwards the memory is free again."""
    rnd = random.Random('bodymem')
    sender = 'mem@example.org'
    cs, bodies = [], []
    for i in range(n):
        c = session(a)
        c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
        c.expect(b'RCPT TO:<r@example.net>', '250')
        c.expect(b'DATA', '354')
        body = make_body('bodymem', i, size, rnd, sender)
        c.send(stuff(body)[:-3])  # everything but the final ".\r\n"
        cs.append(c)
        bodies.append(body)
    time.sleep(0.3)
    res = []
    for c, body in zip(cs, bodies):
        c.send(b'.\r\n')
        r = c.reply()
        m = QUEUED.match(r)
        if m:
            log.add(m.group(1), body, 1, sender, 'ESMTP')
            res.append('250')
        else:
            want(r.startswith('452 4.3.1'), 'expected 250 or 452 4.3.1, got %r' % r)
            res.append('452')
    want('452' in res, 'no 452 4.3.1 with %d x %d octets held: %s' % (n, size, ' '.join(res)))
    want(res[0] == '250', 'the first body did not fit: %s' % ' '.join(res))
    # the memory comes back: the same sessions can send again
    again = []
    for i, c in enumerate(cs):
        body = make_body('bodymem', n + i, size, rnd, sender)
        again.append(one_message(a, c, log, body, sender))
        c.expect(b'QUIT', '221')
        c.close()
    return '%d bodies of %d octets held at once: %s; then %d more, one at a time, all 250' % (
        n, size, ' '.join(res), len(again))


def open_sessions(a, n, src=None):
    cs = []
    for _ in range(n):
        c = Conn(a, src, timeout=10)
        c.expect(None, '220', 'greeting of session %d' % (len(cs) + 1))
        cs.append(c)
    return cs


def expect_refused(a, src, what):
    c = Conn(a, src, timeout=10)
    try:
        r = c.reply()
        want(r.startswith('421 4.7.0'), '%s: expected 421 4.7.0, got %r' % (what, r))
        want(c.closed(5), '%s: not closed after 421' % what)
        return r
    except EOFError:
        raise Fail('%s: closed without a 421 reply' % what)
    finally:
        c.close()


def m_perclient(a, log, n):
    cs = open_sessions(a, n)
    r = expect_refused(a, None, 'session %d' % (n + 1))
    cs[0].expect(b'QUIT', '221')
    cs[0].close()
    # the slot comes back once the server has seen the close
    t = time.time()
    while True:
        c = Conn(a, timeout=10)
        g = c.reply()
        if g.startswith('220'):
            break
        c.close()
        want(time.time() - t < 5, 'slot not freed 5 s after QUIT: %r' % g)
        time.sleep(0.2)
    dt = time.time() - t
    cs[0] = c
    for c in cs:
        c.expect(b'NOOP', '250')
        c.close()
    return '%d sessions from one client open, number %d got %r; %.2f s after a QUIT a new one got 220' % (
        n, n + 1, r, dt)


def m_sessions(a, log, mx, src2, n2):
    """MAX sessions: N2 from SRC2 (outside mynetworks), the rest from --src
    (inside mynetworks, so exempt from the per-client limit even beyond it);
    one more from SRC2, still within its own limit, gets 421 4.7.0."""
    n1 = mx - n2
    cs = open_sessions(a, n1) + open_sessions(a, n2, src2)
    r = expect_refused(a, src2, 'session %d (from %s, its number %d)' % (mx + 1, src2, n2 + 1))
    for c in cs:
        c.expect(b'NOOP', '250')
        c.close()
    return '%d sessions (%d + %d from two clients) open, number %d got %r' % (mx, n1, n2, mx + 1, r)


def m_errors(a, log, n):
    c = session(a)
    for i in range(n - 1):
        c.expect(b'XYZZY %d' % i, '500 5.5.2', 'bad command %d' % (i + 1))
    c.expect(b'XYZZY last', '500 5.5.2', 'bad command %d' % n)
    r = c.reply()
    want(r.startswith('421 4.7.0'), 'after %d errors: expected 421 4.7.0, got %r' % (n, r))
    want(c.closed(5), 'not closed after the 421')
    return '%d bad commands: 500 5.5.2 each, then %r and close' % (n, r)


def m_timeout(a, log, cmd_s, data_s):
    out = []
    for what, limit in (('command', cmd_s), ('data', data_s)):
        c = session(a)
        if what == 'data':
            c.expect(b'MAIL FROM:<t@example.org>', '250')
            c.expect(b'RCPT TO:<r@example.net>', '250')
            c.expect(b'DATA', '354')
            c.send(b'Subject: half a message\r\n\r\nand then nothing')
        t = time.time()
        c.sock.settimeout(limit + 10)
        try:
            r = c.reply()
        except socket.timeout:
            raise Fail('%s: no reply within %.0f s' % (what, limit + 10))
        dt = time.time() - t
        want(r.startswith('421 4.4.2'), 'idle in %s: expected 421 4.4.2, got %r' % (what, r))
        want(limit - 0.5 <= dt <= limit + 3, 'idle in %s: 421 after %.1f s, limit %s s' % (
            what, dt, limit))
        want(c.closed(5), 'not closed after the 421')
        out.append('%s %.1f s' % (what, dt))
        c.close()
    return 'idle sessions got 421 4.4.2 and close: %s' % ', '.join(out)


RELAY_PROBES = (
    'victim@foreign.example',
    'user%other.example@{d}',
    '"user@other.example"@{d}',
    '@{d}:user@other.example',
    '@{d},@{d}:user@other.example',
    'user@[192.0.2.1]',
    'user!other.example@{d}',
    'other.example!user@{d}',
    'user@sub.{d}',
    'user@{d}.other.example',
    'user@other.example.',  # or 501: not an address we take at all
    'user@{d}x',
    'postmaster@[127.0.0.1]',
)


def m_relay(a, log, domain):
    rnd = random.Random('relay')
    c = session(a, helo=b'outside.test')
    sender = 'outsider@example.org'
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    refused = []
    for p in RELAY_PROBES:
        addr = p.format(d=domain)
        r = c.cmd(b'RCPT TO:<%s>' % addr.encode())
        want(r.startswith('554 5.7.1') or (addr.endswith('.') and r.startswith('501 5.1.3')), 'RCPT TO:<%s> from outside: expected 554 5.7.1, got %r' % (addr, r))
        refused.append(addr)
    r = c.expect(b'DATA', '554 5.5.1', 'DATA with no valid recipients')
    c.expect(b'RSET', '250')
    rcpt = 'user@' + domain
    body = make_body('relay', 0, 1500, rnd, sender, rcpt)
    qid = one_message(a, c, log, body, sender, (rcpt, 'Other.User@' + domain.upper()))
    c.expect(b'QUIT', '221')
    return '%d relay probes from %s got 554 5.7.1 (then DATA: 554 5.5.1); <%s> accepted (%s)' % (
        len(refused), a.src, rcpt, qid)


def m_trusted(a, log):
    rnd = random.Random('trusted')
    c = session(a)
    sender = 'insider@example.org'
    rcpts = ('someone@foreign.example', 'x@[192.0.2.1]')
    qid = one_message(a, c, log, make_body('trusted', 0, 1500, rnd, sender), sender, rcpts)
    c.expect(b'QUIT', '221')
    return 'from %s (mynetworks) foreign domains relay: %s' % (a.src or 'default source', qid)


def m_postmaster(a, log, host, to, expect):
    rnd = random.Random('postmaster')
    c = session(a, helo=b'outside.test')
    sender = 'outsider@example.org'
    c.expect(b'MAIL FROM:<%s>' % sender.encode(), '250')
    c.expect(b'RCPT TO:<Postmaster>', '250 2.1.5', '<Postmaster> from outside')
    used = 'postmaster@' + host.upper()
    c.expect(b'RCPT TO:<%s> NOTIFY=FAILURE' % used.encode(), '250 2.1.5',
             '<%s> from outside' % used)
    c.expect(b'RCPT TO:<postmaster@other.example>', '554 5.7.1',
             'another domain\'s postmaster is relaying')
    body = make_body('postmaster', 0, 1500, rnd, sender, 'postmaster@' + host)
    qid = send_data(c, body)
    log.add(qid, body, 2, sender, 'ESMTP')
    c.expect(b'QUIT', '221')
    with open(expect, 'a') as f:
        f.write('%s %s rfc822;Postmaster@%s 0\n' % (qid, to, host))
        f.write('%s %s rfc822;%s 2\n' % (qid, to, used))
    return 'from %s: <Postmaster> and <%s> accepted, queued as %s for %s' % (
        a.src, used, qid, to)


def m_shutdown(a, log, secs):
    c = session(a)
    c.sock.settimeout(secs)
    try:
        r = c.reply()
    except socket.timeout:
        raise Fail('no reply within %s s' % secs)
    want(r.startswith('421 4.3.2'), 'on shutdown: expected 421 4.3.2, got %r' % r)
    want(c.closed(5), 'not closed after the 421')
    return 'an idle session got %r and close' % r


def m_capture(a, log, port, path):
    """Minimal SMTP server: store the first message's content (unstuffed)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', port))
    ls.listen(8)
    ls.settimeout(60)
    s, _ = ls.accept()
    f = s.makefile('rb')
    s.sendall(b'220 capture ESMTP\r\n')
    got = None
    while True:
        ln = f.readline()
        if not ln:
            break
        v = ln[:4].upper()
        if v == b'DATA':
            s.sendall(b'354 go\r\n')
            body = []
            while True:
                x = f.readline()
                if x in (b'.\r\n', b''):
                    break
                body.append(x[1:] if x.startswith(b'.') else x)
            if got is None:
                got = b''.join(body)
            s.sendall(b'250 2.0.0 Ok: captured\r\n')
        elif v == b'QUIT':
            s.sendall(b'221 bye\r\n')
            break
        else:
            s.sendall(b'250 ok\r\n')
    s.close()
    want(got is not None, 'no message captured')
    with open(path, 'wb') as o:
        o.write(got)
    return 'captured %d octets' % len(got)


# ---- checkers --------------------------------------------------------------

def read_dump(path):
    d = {}
    with open(path, 'rb') as f:
        for ln in f:
            p = ln.decode('utf-8', 'surrogateescape').split()
            want(len(p) == 6, 'queue-dump line without 6 fields (use -s): %r' % ln)
            d[p[0]] = p
    return d


def split_received(b):
    """(first header field, rest) when b starts with a Received: field."""
    if not b[:9].lower() == b'received:':
        return None, b
    i = 0
    while True:
        j = b.find(b'\n', i)
        if j < 0:
            return None, b
        i = j + 1
        if i >= len(b) or b[i:i + 1] not in (b' ', b'\t'):
            return b[:i], b[i:]


def m_verify_log(a, log, dump, bodies, logs):
    d = read_dump(dump)
    seen, n, protos = set(), 0, {}
    for lf in logs:
        with open(lf, 'rb') as f:
            for ln in f:
                p = ln.decode('utf-8', 'surrogateescape').split()
                if len(p) != 5:
                    continue  # a line cut by a crash of the client (never ours)
                qid, h, nrcpt, sender, proto = p
                want(ID_RE.match(qid), 'bad queue ID %r' % qid)
                want(qid not in seen, 'queue ID %s answered twice' % qid)
                seen.add(qid)
                n += 1
                want(qid in d, '%s (acknowledged, %s) is not in the spool' % (qid, lf))
                e = d[qid]
                want(e[5] == h, '%s: stored body (without Received:) %s, sent %s' % (qid, e[5], h))
                want(e[2] == nrcpt, '%s: %s recipients stored, %s sent' % (qid, e[2], nrcpt))
                want(e[1] == sender, '%s: sender %r stored, %r sent' % (qid, e[1], sender))
                if bodies != '-':
                    with open(os.path.join(bodies, qid + '.eml'), 'rb') as f2:
                        rec, _ = split_received(f2.read())
                    want(rec is not None, '%s: no Received: field first' % qid)
                    want(re.search(rb'\sby \S+ \(Sluice\) with ' + proto.encode() + rb'[\s;]', rec),
                         '%s: Received: does not say "with %s": %r' % (qid, proto, rec))
                    want(rec.endswith(b'\r\n') and b'\n' not in rec.replace(b'\r\n', b''),
                         '%s: Received: field with a bare CR/LF: %r' % (qid, rec))
                    m = re.search(rb'\sid (\S+?)[\s;]', rec)
                    want(m and m.group(1) == qid.encode(),
                         '%s: Received: id is not the queue ID: %r' % (qid, rec))
                protos[proto] = protos.get(proto, 0) + 1
    want(n > 0, 'no acknowledged message in %s' % ' '.join(logs))
    return '%d acknowledged messages all in the spool, byte-exact%s (%s)' % (
        n, ', Received: checked' if bodies != '-' else '',
        ' '.join('%s:%d' % kv for kv in sorted(protos.items())))


def m_verify_rcpts(a, log, rcpts, expects):
    with open(rcpts) as f:
        have = set(ln.rstrip('\n') for ln in f)
    n = 0
    for e in expects:
        with open(e) as f:
            for ln in f:
                ln = ln.rstrip('\n')
                want(ln in have, 'not stored as expected: %r' % ln[:200])
                n += 1
    want(n > 0, 'nothing expected in %s' % ' '.join(expects))
    return '%d recipients stored as expected (address, ORCPT, NOTIFY)' % n


def normalize_source(b):
    """smtp-source varies Date and Message-Id per message: blank them."""
    head, sep, rest = b.partition(b'\r\n\r\n')
    want(sep, 'no end of headers')
    mid = re.search(rb'^Message-Id: (<[^>\r\n]+>)\r?$', head, re.M | re.I)
    head = re.sub(rb'^Date: [^\r\n]*', b'Date: *', head, flags=re.M)
    head = re.sub(rb'^Message-Id: [^\r\n]*', b'Message-Id: *', head, flags=re.M | re.I)
    return head + sep + rest, mid.group(1) if mid else None


def m_verify_source(a, log, dump, bodies, sender, template, n):
    d = read_dump(dump)
    with open(template, 'rb') as f:
        tmpl, tmid = normalize_source(f.read())
    want(tmid is not None, 'template without Message-Id')
    mids, count = set(), 0
    for qid, e in d.items():
        if e[1] != sender:
            continue
        count += 1
        with open(os.path.join(bodies, qid + '.eml'), 'rb') as f:
            rec, rest = split_received(f.read())
        want(rec is not None, '%s: no Received: field first' % qid)
        want(rec.startswith(b'Received: from ') and b'(Sluice) with SMTP' in rec,
             '%s: unexpected Received: %r' % (qid, rec))
        norm, mid = normalize_source(rest)
        if norm != tmpl:
            i = next((k for k in range(min(len(norm), len(tmpl))) if norm[k] != tmpl[k]),
                     min(len(norm), len(tmpl)))
            raise Fail('%s differs from what smtp-source sends at octet %d (%d vs %d octets): '
                       'stored %r, sent %r' % (qid, i, len(norm), len(tmpl), norm[i - 20:i + 40],
                                               tmpl[i - 20:i + 40]))
        want(mid not in mids, '%s: Message-Id %r stored twice' % (qid, mid))
        mids.add(mid)
    want(count == n, '%d messages from %s in the spool, smtp-source sent %d' % (count, sender, n))
    return '%d messages from smtp-source, each byte-exact (Date/Message-Id aside), %d distinct Message-Ids' % (
        count, len(mids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='198.18.0.2')
    ap.add_argument('--port', type=int, default=25)
    ap.add_argument('--src', default=None)
    ap.add_argument('--log', default=None)
    ap.add_argument('--op-timeout', type=float, default=20)
    ap.add_argument('mode')
    ap.add_argument('args', nargs='*')
    a = ap.parse_args()
    log = Log(a.log)
    x = a.args
    modes = {
        'utf8': lambda: m_utf8(a, log),
        'starttls': lambda: m_starttls(a, log),
        'rcpts': lambda: m_rcpts(a, log, int(x[0])),
        'big': lambda: m_big(a, log, int(x[0])),
        'bdat': lambda: m_bdat(a, log),
        'record': lambda: m_record(a, log, int(x[0]), int(x[1]), a.op_timeout),
        'quick': lambda: m_quick(a, log, int(x[0])),
        'slow': lambda: m_slow(a, log),
        'garbage': lambda: m_garbage(a, log, x[0], int(x[1])),
        'nul': lambda: m_nul(a, log),
        'longline': lambda: m_longline(a, log),
        'dotline': lambda: m_dotline(a, log),
        'orcpt': lambda: m_orcpt(a, log, x[0]),
        'bare': lambda: m_bare(a, log),
        'hops': lambda: m_hops(a, log, int(x[0])),
        'size': lambda: m_size(a, log, int(x[0])),
        'rcptlimit': lambda: m_rcptlimit(a, log, int(x[0])),
        'bodymem': lambda: m_bodymem(a, log, int(x[0]), int(x[1])),
        'perclient': lambda: m_perclient(a, log, int(x[0])),
        'sessions': lambda: m_sessions(a, log, int(x[0]), x[1], int(x[2])),
        'errors': lambda: m_errors(a, log, int(x[0])),
        'timeout': lambda: m_timeout(a, log, float(x[0]), float(x[1])),
        'relay': lambda: m_relay(a, log, x[0]),
        'trusted': lambda: m_trusted(a, log),
        'postmaster': lambda: m_postmaster(a, log, x[0], x[1], x[2]),
        'shutdown': lambda: m_shutdown(a, log, float(x[0])),
        'capture': lambda: m_capture(a, log, int(x[0]), x[1]),
        'verify-log': lambda: m_verify_log(a, log, x[0], x[1], x[2:]),
        'verify-rcpts': lambda: m_verify_rcpts(a, log, x[0], x[1:]),
        'verify-source': lambda: m_verify_source(a, log, x[0], x[1], x[2], x[3], int(x[4])),
    }
    if a.mode not in modes:
        ap.error('unknown mode %r' % a.mode)
    try:
        print(modes[a.mode]())
    except Fail as e:
        print('FAIL %s: %s' % (a.mode, e))
        sys.exit(1)
    except (OSError, EOFError, smtplib.SMTPException, ssl.SSLError, IndexError, ValueError) as e:
        print('FAIL %s: %s: %s' % (a.mode, type(e).__name__, e))
        sys.exit(1)


if __name__ == '__main__':
    main()
