#!/usr/bin/python3
"""image-console.py - run commands on the appliance's serial console, for
image-test.sh. qemu serves the console (ttyS0) on a Unix socket
(-chardev socket,server=on); the image logs root in there by itself.

  image-console.py SOCKET login TIMEOUT
      Wait (at most TIMEOUT seconds) for the shell the autologin gives,
      then quiet it for scripting: no echo, no line editing, no prompt.
  image-console.py SOCKET run TIMEOUT COMMAND
      Run COMMAND in that shell (stdout and stderr), print its output and
      exit with its status; 124 if it did not end within TIMEOUT seconds.

Each command is framed by markers with a random tag, so the kernel's and
systemd's messages on the same console before and after it are left out.
"""
import os
import re
import socket
import sys
import time

PROMPT = re.compile(rb'root@[^\s:]*:[^\r\n#]*# ')


def connect(path, deadline):
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def read_until(s, pattern, deadline, poke=None):
    """Read until pattern matches the data read so far; None on timeout."""
    buf = b''
    last_poke = 0.0
    while time.monotonic() < deadline:
        if poke is not None and time.monotonic() - last_poke > 5:
            s.sendall(poke)
            last_poke = time.monotonic()
        s.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return None
        buf += chunk
        m = pattern.search(buf)
        if m:
            return buf, m
    return None


def run(s, cmd, deadline):
    tag = os.urandom(6).hex()
    # The markers are printed by printf from pieces, so the command's own
    # echo (should echo still be on) never matches them.
    line = ("printf '%%s\\n' ':B''%s'; ( %s ) </dev/null 2>&1; printf '%%s %%d\\n' ':E''%s' $?\n"
            % (tag, cmd, tag))
    s.sendall(line.encode())
    pat = re.compile(rb':B' + tag.encode() + rb'\r?\n(.*?)(?:\r?\n)?:E' + tag.encode() +
                     rb' (\d+)\r?\n', re.S)
    got = read_until(s, pat, deadline)
    if got is None:
        return None, 124
    _, m = got
    out = m.group(1).replace(b'\r\n', b'\n')
    return out, int(m.group(2))


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    path, mode, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + timeout
    s = connect(path, deadline)
    if mode == 'login':
        if read_until(s, PROMPT, deadline, poke=b'\r') is None:
            print('image-console: no shell on the console within %d s' % timeout,
                  file=sys.stderr)
            sys.exit(1)
        # dmesg -n 1: the kernel's messages off this console, or one
        # printed while a command runs lands in its output.
        s.sendall(b"dmesg -n 1; stty -echo; set +o emacs +o vi; PS1=''; PS2=''; "
                  b"export TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER= PAGER=cat\n")
        out, st = run(s, 'echo ready', deadline)
        if st != 0 or out.strip() != b'ready':
            print('image-console: the shell did not answer (%r)' % out, file=sys.stderr)
            sys.exit(1)
        return
    if mode == 'run' and len(sys.argv) == 5:
        out, st = run(s, sys.argv[4], deadline)
        if out is None:
            print('image-console: "%s" did not end within %d s' % (sys.argv[4], timeout),
                  file=sys.stderr)
        else:
            sys.stdout.buffer.write(out + (b'\n' if out and not out.endswith(b'\n') else b''))
        sys.exit(st)
    print(__doc__)
    sys.exit(2)


if __name__ == '__main__':
    main()
