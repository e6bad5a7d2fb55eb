#!/usr/bin/env python3
"""reload_sessions.py - one reload with an SMTP session open across it.

  reload_sessions.py ctl|hup HOST CTL SOCK CONF NEWCONF PID LOG GEN BIG

Opens session s1 (EHLO), then reloads: `sluicectl reload` (ctl) or SIGHUP
to PID, waiting for "reload GEN of CONF: applied" in LOG (hup), after NEWCONF
is copied over CONF. Then opens session s2 and tries a BIG-byte message on
each. Prints "name value" lines for the suite to check:

  s1_size        SIZE s1's EHLO advertised (before the reload)
  reload_rc      sluicectl's exit status (ctl), or 0 when the log line came (hup)
  reload_out     sluicectl's output (one line, JSON), or the log line (hup)
  s2_size        SIZE s2's EHLO advertised (after)
  s2_mail_big    the reply code to MAIL FROM SIZE=BIG on s2
  s2_data_big    the final reply code to sending a BIG-byte message on s2
  s1_noop        the reply code to NOOP on s1 after the reload (still up?)
  s1_data_big    the final reply code to sending a BIG-byte message on s1
                 (smtplib declares SIZE= when offered: 552 comes at MAIL)
"""
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time

mode, host, ctl, sock, conf, newconf, pid, log, gen, big = sys.argv[1:11]
big = int(big)


def session():
    s = smtplib.SMTP(host, 25, timeout=30)
    s.ehlo("client.test")
    return s


def size_of(s):
    return s.esmtp_features.get("size", "none").strip() or "none"


def message(n):
    head = "From: <s@example.org>\r\nTo: <r@example.net>\r\nSubject: reload\r\n\r\n"
    line = "x" * 76 + "\r\n"
    body = line * (n // len(line) + 1)
    return (head + body).encode()


def send_big(s):
    """The code of the reply to the message's end (MAIL and RCPT must pass)."""
    try:
        s.sendmail("s@example.org", ["r@example.net"], message(big))
        return 250
    except smtplib.SMTPDataError as e:
        return e.smtp_code
    except smtplib.SMTPSenderRefused as e:
        return e.smtp_code
    except smtplib.SMTPRecipientsRefused as e:
        return list(e.recipients.values())[0][0]
    except (smtplib.SMTPServerDisconnected, OSError):
        return "disconnected"


out = {}
s1 = session()
out["s1_size"] = size_of(s1)

shutil.copyfile(newconf, conf)
if mode == "ctl":
    r = subprocess.run([ctl, "-s", sock, "--json", "reload"], capture_output=True, text=True,
                       timeout=30)
    out["reload_rc"] = r.returncode
    out["reload_out"] = (r.stdout + r.stderr).replace("\n", "\\n")
else:
    os.kill(int(pid), signal.SIGHUP)
    want = "reload %s of %s: applied" % (gen, conf)
    out["reload_rc"] = 1
    out["reload_out"] = "no '%s' in the log within 30 s" % want
    end = time.time() + 30
    while time.time() < end:
        with open(log, errors="replace") as f:
            hit = [l for l in f if want in l]
        if hit:
            out["reload_rc"] = 0
            out["reload_out"] = hit[-1].strip()
            break
        time.sleep(0.1)

s2 = session()
out["s2_size"] = size_of(s2)
code, _ = s2.mail("s@example.org", ["SIZE=%d" % big])
out["s2_mail_big"] = code
s2.rset()
out["s2_data_big"] = send_big(s2)
try:
    out["s1_noop"] = s1.noop()[0]
except (smtplib.SMTPServerDisconnected, OSError):
    out["s1_noop"] = "disconnected"
out["s1_data_big"] = send_big(s1)
for s in (s1, s2):
    try:
        s.quit()
    except (smtplib.SMTPServerDisconnected, OSError):
        pass
for k, v in out.items():
    print(k, v)
