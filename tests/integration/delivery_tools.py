#!/usr/bin/python3
"""delivery_tools.py - next hops, senders and checkers for delivery_e2e.sh.

  delivery_tools.py sink ADDR PORT DIR [--tls CERT KEY] [--code CODE] [--delay S]
                    [--rcpt-code LOCAL=CODE,...] [--dsn] [--keep]
      An aiosmtpd next hop on ADDR:PORT that keeps every message it takes:
      DIR/msgs.log gets one flushed JSON line per message (envelope, size,
      whether TLS was on, the SHA-256 of the content as received and of the
      content after its first header field, which must be our Received:
      field, and that field's queue ID; its Message-Id and "sha_norm", the
      SHA-256 of the content after a leading Received: field with Date and
      Message-Id blanked, for smtp-source's messages; "t", the arrival time)
      and DIR/conns.log one line per session start and end ("+ T PEER" /
      "- T PEER", T in ns, PEER the client's address) for the concurrency
      figures. With --code, every RCPT is
      answered CODE instead (451, 550). With --delay, the reply to the end
      of data waits S seconds (a slow next hop). With --rcpt-code, a RCPT
      whose local part is LOCAL is answered CODE ("550 5.1.1 <addr>: no
      such user here"; 4xx "... try again later"), the others 250. With
      --dsn, the sink offers DSN (RFC 3461) and records the MAIL and RCPT
      parameters it got ('mail_opts', 'rcpt_opts'); without it, aiosmtpd
      offers none. With --keep, each record has the message itself
      ('raw', base64). Runs until SIGTERM.
  delivery_tools.py stall ADDR PORT FILE
      A next hop that accepts connections and never says a word (the
      client's greeting timeout must end it); FILE counts the connections.
  delivery_tools.py syncount IFACE PORT FILE
      Counts TCP SYNs (connection attempts) to PORT seen on IFACE (an
      AF_PACKET socket: the kernel's side of the tap), into FILE.
  delivery_tools.py send HOST N CONC DOMAINS LOG
      N messages over CONC connections (smtplib), each to one recipient in
      every domain of DOMAINS (comma-separated); every one answered
      "queued as ID" is logged to LOG as "ID SHA256 RCPT..." (the SHA-256
      of the message as sent).
  delivery_tools.py check SENTLOG MSGSLOG [OTHER_SENDER]
      Every logged message arrived exactly once per recipient domain, byte
      for byte after our Received: field, which names its queue ID; prints
      a summary (exit 1 on any mismatch). Arrivals from OTHER_SENDER (the
      envelope sender of mail checked elsewhere) are left out.
  delivery_tools.py concurrency CONNSLOG
      Prints the most sessions the sink had open at once.
  delivery_tools.py source-check MSGSLOG SENDER TEMPLATE N
      smtp-source's N messages (envelope sender SENDER) arrived exactly once
      each (one record per queue ID, distinct Message-Ids), behind our
      Received: field, byte for byte what smtp-source sends with Date and
      Message-Id aside: the sha_norm of the one message in the msgs.log
      TEMPLATE, which smtp-source sent to a sink directly.
  delivery_tools.py kills SENTLOG MSGSLOG [RESTART...]
      After kill -9 rounds (at-least-once): every message smtp_clients.py
      logged in SENTLOG ("ID SHA256 NRCPT SENDER PROTO", the 250s it got)
      arrived at least once, byte for byte after our Received: field, to
      its recipient. RESTART: the times (epoch seconds) sluiced was up
      again after each kill; two copies of a message must have a restart
      between them (else exit 1: a duplicate without a crash). Prints how
      many arrived twice (or more), per kill round (the round the first
      copy arrived in), and how many arrived that the client never heard
      250 for (the connection died first). Exit 1 if one is missing or
      differs.
  delivery_tools.py rate MSGSLOG RATE WINDOW TOLERANCE
      The arrival rate at the sink: over all arrivals, and the fewest and
      most arrivals in any WINDOW seconds (windows starting at an arrival,
      lying inside the run); exit 1 unless both extremes are within
      TOLERANCE (0.1 = 10%) of RATE * WINDOW, or the run is shorter than
      WINDOW (nothing measured).
  delivery_tools.py latency MSGSLOG T0 N
      Seconds from T0 (epoch seconds) to the Nth arrival; exit 1 if fewer
      than N arrived.
  delivery_tools.py mail HOST FROM RCPT[:NOTIFY],... [--ret FULL|HDRS] [--envid E]
                        [--size N] [--subject S]
      One message over SMTP (smtplib) with per-recipient NOTIFY (e.g.
      "a@x.test:SUCCESS,FAILURE"; "-": none given); prints its queue ID.
  delivery_tools.py paced HOST N RATE DOMAIN LOG
      N messages, one after another at RATE a second, to x<i>@DOMAIN over
      one connection; LOG gets "ID T" per message, T the time the 250 came
      (epoch seconds).
  delivery_tools.py latencies LOG MSGSLOG
      For every message of LOG (paced's): the time from its 250 to its
      arrival at the sink (MSGSLOG, by queue ID); prints
      "n=N p50=S p99=S max=S" (exit 1 if one is missing).
  delivery_tools.py dsns MSGSLOG
      Every DSN a sink kept (--keep) read with Python's email package: one
      JSON line each {"qid" (the DSN's own), "from" (envelope), "rcpts",
      "ctype", "report_type", "orig" (X-Sluice-Queue-ID: the message it is
      about), "kind" (X-Sluice-Report), "attached", "recipients": [{"final",
      "action", "status", "diag", "remote"}]}.
  delivery_tools.py etrn HOST DOMAIN [SRC]
      EHLO, then "ETRN DOMAIN" (smtplib, from SRC if given): prints the
      reply's code and text.
"""
import asyncio
import base64
import email
import hashlib
import json
import os
import random
import re
import signal
import smtplib
import socket
import ssl
import struct
import sys
import threading
import time

QUEUED = re.compile(rb'queued as ([0-9A-HJKMNP-TV-Z]{13})')


def sha(b):
    return hashlib.sha256(b).hexdigest()


def after_first_field(b):
    """The message after its first header field (and its continuation lines)."""
    i = b.find(b'\r\n')
    while i >= 0 and b[i + 2:i + 3] in (b' ', b'\t'):
        i = b.find(b'\r\n', i + 2)
    if i < 0:
        return b'', b
    return b[i + 2:], b[:i]


MID = re.compile(rb'^Message-Id:[ \t]*(<[^>\r\n]*>)', re.M | re.I)


def normalize_source(b):
    """smtp-source varies only Date and Message-Id per message: blank them."""
    head, sep, rest = b.partition(b'\r\n\r\n')
    head = re.sub(rb'^Date:[^\r\n]*', b'Date: *', head, flags=re.M | re.I)
    head = re.sub(rb'^Message-Id:[^\r\n]*', b'Message-Id: *', head, flags=re.M | re.I)
    return head + sep + rest


DSN_MAIL = ('RET', 'ENVID')
DSN_RCPT = ('NOTIFY', 'ORCPT')


def m_sink(addr, port, d, tls=None, code=None, delay=0.0, rcpt_codes=None, dsn=False,
           keep=False):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    os.makedirs(d, exist_ok=True)
    msgs = open(os.path.join(d, 'msgs.log'), 'a', buffering=1)
    conns = open(os.path.join(d, 'conns.log'), 'a', buffering=1)
    lock = threading.Lock()

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if dsn:	# offer DSN before the last line
                responses.insert(len(responses) - 1, '250-DSN')
            return responses

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if code:
                return '%d %s.0.0 sink says %d' % (code, str(code)[0], code)
            c = (rcpt_codes or {}).get(address.split('@')[0].lower())
            if c:
                if c >= 500:
                    return '%d 5.1.1 <%s>: no such user here' % (c, address)
                return '%d 4.2.1 <%s>: mailbox busy, try again later' % (c, address)
            envelope.rcpt_tos.append(address)
            if dsn:
                if not hasattr(envelope, 'dsn_rcpt'):
                    envelope.dsn_rcpt = []
                envelope.dsn_rcpt.append(server.dsn_last)
            return '250 2.1.5 Ok'

        async def handle_DATA(self, server, session, envelope):
            data = envelope.original_content
            rest, first = after_first_field(data)
            m = QUEUED.search(first) or re.search(rb'id ([0-9A-HJKMNP-TV-Z]{13})', first)
            base = rest if first[:9].lower() == b'received:' else data
            mid = MID.search(base.partition(b'\r\n\r\n')[0])
            rec = {'from': envelope.mail_from, 'rcpts': envelope.rcpt_tos,
                   'size': len(data), 'sha': sha(data), 'sha_rest': sha(rest),
                   'sha_norm': sha(normalize_source(base)),
                   'mid': mid.group(1).decode('latin-1') if mid else '',
                   'received': first.decode('latin-1')[:300],
                   'qid': m.group(1).decode() if m else '',
                   'tls': session.ssl is not None, 't': time.time()}
            if dsn:
                rec['mail_opts'] = getattr(envelope, 'dsn_mail', {})
                rec['rcpt_opts'] = getattr(envelope, 'dsn_rcpt', [])
            if keep:
                rec['raw'] = base64.b64encode(data).decode()
            with lock:
                msgs.write(json.dumps(rec) + '\n')
            if delay:
                await asyncio.sleep(delay)
            return '250 2.0.0 Ok: kept'

    class Server(SMTP):
        dsn_last = {}

        def _getparams(self, params):
            # with --dsn: take RFC 3461's parameters off before aiosmtpd
            # (which knows none of them) sees them, and keep them
            got = super()._getparams(params)
            if got is None or not dsn:
                return got
            mine = {k: got.pop(k) for k in list(got) if k in DSN_MAIL + DSN_RCPT}
            if any(k in DSN_MAIL for k in mine):
                self.envelope.dsn_mail = mine
            self.dsn_last = {k: v for k, v in mine.items() if k in DSN_RCPT}
            return got

        def connection_made(self, transport):
            self.peer_ip = (transport.get_extra_info('peername') or ('?',))[0]
            with lock:
                conns.write('+ %d %s\n' % (time.monotonic_ns(), self.peer_ip))
            super().connection_made(transport)

        def connection_lost(self, exc):
            with lock:
                conns.write('- %d %s\n' % (time.monotonic_ns(), getattr(self, 'peer_ip', '?')))
            super().connection_lost(exc)

    ctx = None
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls[0], tls[1])

    class Ctl(Controller):
        def factory(self):
            return Server(self.handler, hostname='sink.test', tls_context=ctx,
                          data_size_limit=64 * 1024 * 1024, enable_SMTPUTF8=True)

    c = Ctl(Handler(), hostname=addr, port=port, ready_timeout=10)
    c.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    print('sink on %s:%d' % (addr, port), flush=True)
    while not stop.wait(0.5):
        pass
    c.stop()
    return 'stopped'


def m_stall(addr, port, path):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    held = []
    n = 0
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        c, _ = s.accept()
        held.append(c)	# never a word; kept open until the peer gives up
        n += 1
        with open(path + '.tmp', 'w') as f:
            f.write('%d\n' % n)
        os.replace(path + '.tmp', path)


def m_syncount(iface, port, path):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.bind((iface, 0))
    n = 0
    with open(path, 'w') as f:
        f.write('0\n')
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        try:
            fr = s.recv(2048)
        except OSError:	# the tap went away: sluiced stopped
            return 'tap gone after %d SYNs' % n
        if len(fr) < 14 + 20 + 20 or fr[12:14] != b'\x08\x00':
            continue
        ip = fr[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6:
            continue
        tcp = ip[ihl:]
        dport = struct.unpack('!H', tcp[2:4])[0]
        flags = tcp[13]
        if dport == port and flags & 0x02 and not flags & 0x10:
            n += 1
            with open(path + '.tmp', 'w') as f:
                f.write('%d\n' % n)
            os.replace(path + '.tmp', path)


def m_send(host, n, conc, domains, logpath):
    domains = domains.split(',')
    log = open(logpath, 'a', buffering=1)
    lock = threading.Lock()
    errors = []
    counter = iter(range(n))
    clock = threading.Lock()

    def worker(w):
        s = None
        try:
            s = smtplib.SMTP(host, 25, timeout=120)
            s.ehlo('sender.test')
            while True:
                with clock:
                    i = next(counter, None)
                if i is None:
                    break
                rnd = random.Random('%d' % i)
                rcpts = ['u%d@%s' % (i, d) for d in domains]
                body = ('From: <s@example.org>\r\nTo: <%s>\r\nSubject: delivery %d\r\n'
                        'Message-Id: <%d.%d@sender.test>\r\n\r\n' %
                        (rcpts[0], i, i, os.getpid())).encode()
                for k in range(rnd.randint(1, 60)):
                    line = ''.join(rnd.choice('abcdefghij .') for _ in range(rnd.randint(0, 120)))
                    body += line.encode() + b'\r\n'
                body += b'.leading dot\r\n..two\r\nend\r\n'
                s.mail('s@example.org')
                for r in rcpts:
                    code, msg = s.rcpt(r)
                    if code != 250:
                        raise RuntimeError('RCPT %s: %d %r' % (r, code, msg))
                code, msg = s.data(body)
                m = QUEUED.search(msg)
                if code != 250 or not m:
                    raise RuntimeError('DATA: %d %r' % (code, msg))
                with lock:
                    log.write('%s %s %s\n' % (m.group(1).decode(), sha(body), ' '.join(rcpts)))
            s.quit()
        except Exception as e:
            errors.append('worker %d: %s' % (w, e))
    th = [threading.Thread(target=worker, args=(w,)) for w in range(conc)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    if errors:
        print('; '.join(errors[:3]))
        sys.exit(1)
    return '%d messages to %d domain(s) over %d connections' % (n, len(domains), conc)


def m_check(sentlog, msgslog, other=None):
    sent = {}
    for line in open(sentlog):
        f = line.split()
        if len(f) < 3:
            continue
        sent[f[0]] = (f[1], f[2:])
    got = {}
    bad = []
    for line in open(msgslog):
        r = json.loads(line)
        if other and r['from'] == other:
            continue
        got.setdefault(r['qid'], []).append(r)
    missing = dup = wrong = 0
    for qid, (h, rcpts) in sent.items():
        recs = got.get(qid, [])
        want = {}
        for r in rcpts:
            want.setdefault(r.split('@', 1)[1].lower(), []).append(r)
        by = {}
        for r in recs:
            doms = {x.split('@', 1)[1].lower() for x in r['rcpts']}
            for dm in doms:
                by.setdefault(dm, []).append(r)
            if r['sha_rest'] != h:
                wrong += 1
                bad.append('%s: content differs (%s)' % (qid, r['received'][:80]))
            if not r['received'].startswith('Received: '):
                wrong += 1
                bad.append('%s: first field is not our Received: %r' % (qid, r['received'][:60]))
        for dm, rs in want.items():
            arrived = by.get(dm, [])
            if not arrived:
                missing += 1
                bad.append('%s: nothing for %s' % (qid, dm))
            elif len(arrived) > 1:
                dup += 1
                bad.append('%s: %d copies for %s' % (qid, len(arrived), dm))
            elif sorted(arrived[0]['rcpts']) != sorted(rs):
                wrong += 1
                bad.append('%s: recipients %r, want %r' % (qid, arrived[0]['rcpts'], rs))
    extra = [q for q in got if q not in sent]
    summary = ('%d messages sent, %d arrived records; missing %d, duplicated %d, wrong %d, '
               'unknown %d' % (len(sent), sum(len(v) for v in got.values()), missing, dup,
                               wrong, len(extra)))
    if bad or extra or not sent:
        print(summary + ': ' + '; '.join(bad[:5]))
        sys.exit(1)
    return summary


def m_concurrency(path):
    cur = mx = 0
    ev = []
    for line in open(path):
        k, t = line.split()[:2]
        ev.append((int(t), 1 if k == '+' else -1))
    for _, d in sorted(ev):
        cur += d
        mx = max(mx, cur)
    return str(mx)


def read_msgs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def m_source_check(msgslog, sender, template, n):
    tm = read_msgs(template)
    if len(tm) != 1:
        print('the template log %s has %d messages, want 1' % (template, len(tm)))
        sys.exit(1)
    want_norm = tm[0]['sha_norm']
    recs = [r for r in read_msgs(msgslog) if r['from'] == sender]
    qids, mids, bad = {}, set(), []
    for r in recs:
        qids[r['qid']] = qids.get(r['qid'], 0) + 1
        mids.add(r['mid'])
        if not r['received'].startswith('Received: ') or not r['qid']:
            bad.append('first field is not our Received: naming a queue ID: %r' % r['received'][:80])
        elif r['sha_norm'] != want_norm:
            bad.append('%s: content differs from what smtp-source sends' % r['qid'])
        if not r['mid']:
            bad.append('%s: no Message-Id' % r['qid'])
    dups = sum(1 for v in qids.values() if v > 1)
    summary = ('%d of smtp-source\'s %d messages arrived, %d queue IDs (%d twice), %d Message-Ids, '
               '%d differ' % (len(recs), n, len(qids), dups, len(mids), len(bad)))
    if bad or dups or len(recs) != n or len(qids) != n or len(mids) != n:
        print(summary + ': ' + '; '.join(bad[:3]))
        sys.exit(1)
    return summary + ' (byte for byte, Date and Message-Id aside)'


def m_kills(sentlog, msgslog, restarts):
    restarts = sorted(float(k) for k in restarts)

    def run(t):		# the run of sluiced (0: before the first kill) a copy arrived in
        return next((i for i, rt in enumerate(restarts) if t < rt), len(restarts))
    sent = {}
    for line in open(sentlog):
        f = line.split()
        if len(f) != 5:
            continue	# a line cut by the client's end (never a 250 we count)
        sent[f[0]] = (f[1], int(f[2]), f[3])
    got = {}
    for r in read_msgs(msgslog):
        got.setdefault(r['qid'], []).append(r)
    missing, wrong, bad = 0, 0, []
    dup_round = [0] * len(restarts)
    most, uncrashed = 1, 0
    for qid, (h, nrcpt, sender) in sent.items():
        recs = got.get(qid, [])
        if not recs:
            missing += 1
            bad.append('%s: never arrived' % qid)
            continue
        for r in recs:
            if r['sha_rest'] != h or not r['received'].startswith('Received: '):
                wrong += 1
                bad.append('%s: content differs (%s)' % (qid, r['received'][:60]))
            if r['from'] != sender or len(r['rcpts']) != nrcpt:
                wrong += 1
                bad.append('%s: envelope %s %r, sent %s, %d recipient(s)' %
                           (qid, r['from'], r['rcpts'], sender, nrcpt))
        if len(recs) > 1:
            most = max(most, len(recs))
            runs = sorted(run(r['t']) for r in recs)
            if len(set(runs)) != len(runs) or runs[0] >= len(restarts):
                uncrashed += 1
                bad.append('%s: %d copies, no restart between two of them' % (qid, len(recs)))
            else:
                dup_round[runs[0]] += 1
    unacked = [q for q in got if q not in sent]
    for q in unacked:	# the 250 died with the connection: still ours, intact or not?
        for r in got[q]:
            if not q or not r['received'].startswith('Received: '):
                wrong += 1
                bad.append('an arrival not relayed by us: %r' % r['received'][:60])
    summary = ('%d answered 250, %d arrival records: missing %d, differing %d; %d arrived more '
               'than once (at most %d copies; per kill round %s); %d arrived without the 250 '
               'reaching the client' % (len(sent), sum(len(v) for v in got.values()), missing,
                                        wrong, sum(dup_round) + uncrashed, most,
                                        '/'.join(str(x) for x in dup_round) or '-',
                                        len(unacked)))
    if uncrashed:
        summary += '; %d duplicated without a crash between the copies' % uncrashed
    if bad or not sent:
        print(summary + ': ' + '; '.join(bad[:5]))
        sys.exit(1)
    return summary


def m_rate(msgslog, rate, window, tol):
    ts = sorted(r['t'] for r in read_msgs(msgslog))
    if len(ts) < 2 or ts[-1] - ts[0] < window:
        print('%d arrivals over %.1f s: less than a %g s window, nothing measured' %
              (len(ts), ts[-1] - ts[0] if ts else 0, window))
        sys.exit(1)
    overall = (len(ts) - 1) / (ts[-1] - ts[0])
    counts = []
    j = 0
    for i, t in enumerate(ts):
        if t + window > ts[-1]:
            break
        while j < len(ts) and ts[j] < t + window:
            j += 1
        counts.append(j - i)
    want = rate * window
    lo, hi = min(counts), max(counts)
    summary = ('%d arrivals in %.1f s: %.2f/s; in every %g s window %d..%d arrivals '
               '(%.2f..%.2f/s, want %g/s +-%d%%)' %
               (len(ts), ts[-1] - ts[0], overall, window, lo, hi, lo / window, hi / window, rate,
                round(tol * 100)))
    if lo < want * (1 - tol) or hi > want * (1 + tol):
        print(summary)
        sys.exit(1)
    return summary


def m_latency(msgslog, t0, n):
    ts = sorted(r['t'] for r in read_msgs(msgslog))
    if len(ts) < n:
        print('only %d of %d arrived' % (len(ts), n))
        sys.exit(1)
    return '%.2f' % (ts[n - 1] - t0)


def m_mail(host, sender, rcpts, ret=None, envid=None, size=0, subject='test'):
    s = smtplib.SMTP(host, 25, timeout=120)
    s.ehlo('mail.client.test')
    opts = []
    if ret:
        opts.append('RET=' + ret)
    if envid:
        opts.append('ENVID=' + envid)
    code, msg = s.mail(sender, opts)
    if code != 250:
        raise SystemExit('MAIL: %d %r' % (code, msg))
    for r in rcpts.split(','):
        addr, _, notify = r.partition(':')
        code, msg = s.rcpt(addr, ['NOTIFY=' + notify.replace('+', ',')]
                           if notify and notify != '-' else [])
        if code != 250:
            raise SystemExit('RCPT %s: %d %r' % (addr, code, msg))
    body = ('From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-Id: <%d.%d@client.test>\r\n\r\n'
            % (sender or 'mailer-daemon@client.test', rcpts.split(',')[0].split(':')[0],
               subject, os.getpid(), int(time.time() * 1e6))).encode()
    line = b'a line of the message body, to make it as long as asked\r\n'
    while len(body) < size:
        body += line
    code, msg = s.data(body)
    m = QUEUED.search(msg)
    if code != 250 or not m:
        raise SystemExit('DATA: %d %r' % (code, msg))
    s.quit()
    return m.group(1).decode()


def m_paced(host, n, rate, domain, logpath):
    log = open(logpath, 'a', buffering=1)
    s = smtplib.SMTP(host, 25, timeout=120)
    s.ehlo('paced.client.test')
    t0 = time.monotonic()
    for i in range(n):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        body = ('From: <p@example.org>\r\nTo: <x%d@%s>\r\nSubject: paced %d\r\n\r\n'
                'paced message %d\r\n' % (i, domain, i, i)).encode()
        s.mail('p@example.org')
        code, msg = s.rcpt('x%d@%s' % (i, domain))
        if code != 250:
            raise SystemExit('RCPT: %d %r' % (code, msg))
        code, msg = s.data(body)
        m = QUEUED.search(msg)
        if code != 250 or not m:
            raise SystemExit('DATA: %d %r' % (code, msg))
        log.write('%s %.6f\n' % (m.group(1).decode(), time.time()))
    s.quit()
    return '%d messages at %g/s' % (n, rate)


def m_latencies(logpath, msgslog):
    sent = {}
    for line in open(logpath):
        f = line.split()
        if len(f) == 2:
            sent[f[0]] = float(f[1])
    got = {}
    for r in read_msgs(msgslog):
        got.setdefault(r['qid'], r['t'])
    lat = []
    missing = [q for q in sent if q not in got]
    if missing or not sent:
        print('%d of %d never arrived' % (len(missing), len(sent)))
        sys.exit(1)
    lat = sorted(got[q] - t for q, t in sent.items())

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]
    return 'n=%d p50=%.4f p99=%.4f max=%.4f' % (len(lat), pct(0.5), pct(0.99), lat[-1])


def m_dsns(msgslog):
    from email import policy
    out = []
    for r in read_msgs(msgslog):
        raw = base64.b64decode(r.get('raw', ''))
        rest, first = after_first_field(raw)	# our Received: field first
        m = email.message_from_bytes(rest if first[:9].lower() == b'received:' else raw,
                                     policy=policy.default)
        d = {'qid': r['qid'], 'from': r['from'], 'rcpts': r['rcpts'],
             'ctype': m.get_content_type(), 'report_type': m.get_param('report-type'),
             'kind': str(m.get('X-Sluice-Report', '')), 'orig': '', 'attached': '',
             'recipients': []}
        if m.is_multipart():
            parts = m.get_payload()
            for p in parts:
                if p.get_content_type() in ('message/delivery-status',
                                            'message/global-delivery-status'):
                    blocks = p.get_payload()
                    d['orig'] = str(blocks[0].get('X-Sluice-Queue-ID', ''))
                    for b in blocks[1:]:
                        d['recipients'].append({
                            'final': str(b.get('Final-Recipient', '')),
                            'action': str(b.get('Action', '')),
                            'status': str(b.get('Status', '')),
                            'diag': ' '.join(str(b.get('Diagnostic-Code', '')).split()),
                            'remote': str(b.get('Remote-MTA', ''))})
            if len(parts) >= 3:
                d['attached'] = parts[2].get_content_type()
        out.append(json.dumps(d))
    return '\n'.join(out)


def m_etrn(host, domain, src=None):
    s = smtplib.SMTP(host, 25, timeout=60, source_address=(src, 0) if src else None)
    s.ehlo('etrn.client.test')
    code, msg = s.docmd('ETRN', domain)
    s.quit()
    return '%d %s' % (code, msg.decode('utf-8', 'replace'))


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        sys.exit(2)
    mode = a[0]
    if mode == 'sink':
        tls = None
        code = None
        if '--tls' in a:
            i = a.index('--tls')
            tls = (a[i + 1], a[i + 2])
            del a[i:i + 3]
        if '--code' in a:
            i = a.index('--code')
            code = int(a[i + 1])
            del a[i:i + 2]
        delay = 0.0
        if '--delay' in a:
            i = a.index('--delay')
            delay = float(a[i + 1])
            del a[i:i + 2]
        rcpt_codes = {}
        if '--rcpt-code' in a:
            i = a.index('--rcpt-code')
            for kv in a[i + 1].split(','):
                k, _, v = kv.partition('=')
                rcpt_codes[k.lower()] = int(v)
            del a[i:i + 2]
        dsn = keep = False
        if '--dsn' in a:
            a.remove('--dsn')
            dsn = True
        if '--keep' in a:
            a.remove('--keep')
            keep = True
        r = m_sink(a[1], int(a[2]), a[3], tls, code, delay, rcpt_codes, dsn, keep)
    elif mode == 'stall':
        r = m_stall(a[1], int(a[2]), a[3])
    elif mode == 'syncount':
        r = m_syncount(a[1], int(a[2]), a[3])
    elif mode == 'send':
        r = m_send(a[1], int(a[2]), int(a[3]), a[4], a[5])
    elif mode == 'check':
        r = m_check(a[1], a[2], a[3] if len(a) > 3 else None)
    elif mode == 'concurrency':
        r = m_concurrency(a[1])
    elif mode == 'source-check':
        r = m_source_check(a[1], a[2], a[3], int(a[4]))
    elif mode == 'kills':
        r = m_kills(a[1], a[2], a[3:])
    elif mode == 'rate':
        r = m_rate(a[1], float(a[2]), float(a[3]), float(a[4]))
    elif mode == 'latency':
        r = m_latency(a[1], float(a[2]), int(a[3]))
    elif mode == 'mail':
        kw = {}
        for opt, key, conv in (('--ret', 'ret', str), ('--envid', 'envid', str),
                               ('--size', 'size', int), ('--subject', 'subject', str)):
            if opt in a:
                i = a.index(opt)
                kw[key] = conv(a[i + 1])
                del a[i:i + 2]
        r = m_mail(a[1], a[2], a[3], **kw)
    elif mode == 'paced':
        r = m_paced(a[1], int(a[2]), float(a[3]), a[4], a[5])
    elif mode == 'latencies':
        r = m_latencies(a[1], a[2])
    elif mode == 'dsns':
        r = m_dsns(a[1])
    elif mode == 'etrn':
        r = m_etrn(a[1], a[2], a[3] if len(a) > 3 else None)
    else:
        print(__doc__)
        sys.exit(2)
    print(r)


if __name__ == '__main__':
    main()
