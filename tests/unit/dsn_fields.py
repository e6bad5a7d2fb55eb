#!/usr/bin/python3
"""dsn_fields.py - reads one message (a DSN the scheduler queued) with Python's
email package and prints what it found, one "key=value" line each, for
test_sched.c to check:

    dsn_fields.py FILE

  ctype=multipart/report            the top-level content type
  report-type=delivery-status       its report-type parameter
  from=, to=, subject=, auto-submitted=, x-sluice-report=
  parts=N                           the parts of the report
  msg.<Field>=value                 per-message delivery-status fields
  rcptK.<Field>=value               per-recipient fields of recipient K
  attached=<content type>           the third part's type
  attached.subject=...              the attached message's (or headers') Subject
  ok                                the last line, when it parsed as a DSN

Exit 1 (with the reason) when it is not a multipart/report with a
message/delivery-status part.
"""
import email
import sys
from email import policy


def text_of(value):
    """A value as text: surrogate-escaped octets back to UTF-8."""
    s = ' '.join(str(value).split())
    try:
        return s.encode('utf-8', 'surrogateescape').decode('utf-8')
    except UnicodeError:
        return s


def main():
    raw = open(sys.argv[1], 'rb').read()
    m = email.message_from_bytes(raw, policy=policy.default)
    out = []
    out.append('ctype=%s' % m.get_content_type())
    out.append('report-type=%s' % m.get_param('report-type'))
    for h in ('from', 'to', 'subject', 'auto-submitted', 'x-sluice-report'):
        out.append('%s=%s' % (h, str(m.get(h, ''))))
    if not m.is_multipart() or m.get_content_type() != 'multipart/report':
        print('\n'.join(out))
        print('not a multipart/report')
        return 1
    parts = m.get_payload()
    out.append('parts=%d' % len(parts))
    ds = [p for p in parts if p.get_content_type() in ('message/delivery-status',
                                                       'message/global-delivery-status')]
    if len(ds) != 1:
        print('\n'.join(out))
        print('no delivery-status part')
        return 1
    blocks = ds[0].get_payload()
    if ds[0].get_content_type() == 'message/global-delivery-status':
        # the email package reads it as one message and loses its UTF-8:
        # take the part's octets from the raw message and split the blocks
        delim = b'\r\n--' + m.get_boundary().encode()
        body = b''
        for piece in raw.split(delim)[1:]:
            h, _, b = piece.partition(b'\r\n\r\n')
            if b'global-delivery-status' in h.lower():
                body = b
        text = body.decode('utf-8', 'replace').replace('\r\n', '\n')
        blocks = [email.message_from_string(b.strip('\n') + '\n\n', policy=policy.default)
                  for b in text.split('\n\n') if b.strip()]
    for k, b in enumerate(blocks):
        prefix = 'msg' if k == 0 else 'rcpt%d' % (k - 1)
        for name, value in b.items():
            out.append('%s.%s=%s' % (prefix, name, text_of(value)))
    if len(parts) >= 3:
        a = parts[2]
        out.append('attached=%s' % a.get_content_type())
        if a.get_content_type() == 'message/rfc822':
            inner = a.get_payload()[0]
            out.append('attached.subject=%s' % inner.get('subject', ''))
        else:
            hdr = email.message_from_bytes(a.get_payload(decode=True) or b'',
                                           policy=policy.default)
            out.append('attached.subject=%s' % hdr.get('subject', ''))
    out.append('ok')
    sys.stdout.buffer.write(('\n'.join(out) + '\n').encode('utf-8', 'replace'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
