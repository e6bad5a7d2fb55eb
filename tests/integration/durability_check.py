#!/usr/bin/python3
"""durability_check.py - reads the event log of tests/support/sync_shim.c.

  durability_check.py acks SHIMLOG CLIENTLOG MIN
      Every queue ID sluiced answered "250 ... queued as ID" (an A line)
      must have been durable before that A line: in every shard file whose
      writes carried the ID, the first commit that carried it as a
      deliverable record (flags without QF_INTENT, or unknown) and every
      write before that commit's meta page (the meta page included) were
      durable when the 250 went out. A write is durable once a sync of its
      file that began after it returned has returned, or at once when it
      went through a descriptor opened O_DSYNC. A commit is the run of data
      page writes closed by the write of a meta page (LMDB's pages 0 and 1).
      Also: every ID the client logged (CLIENTLOG, smtp_clients.py --log
      format) must be among the shim's A lines (else the shim missed a 250:
      nothing was measured), and there must be at least MIN of them.

  durability_check.py syncs SHIMLOG
      Prints the number of fdatasync/fsync calls made on data.mdb files.

Prints one line; exit 0 when the check holds, 1 (line starting FAIL) when not.
"""
import os
import sys

QF_INTENT = 4
B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'


class Fail(Exception):
    pass


def id_of(s):
    v = 0
    for ch in s:
        v = v * 32 + B32.index(ch)
    return v


def id_str(v):
    return ''.join(B32[(v >> (5 * (12 - i))) & 31] for i in range(13))


class Commit:
    def __init__(self, meta):
        self.meta = meta  # index of the meta page write closing it


class File:
    def __init__(self, path, psize):
        self.path = path
        self.psize = psize
        self.dsync = []        # per write: durable at once (O_DSYNC)
        self.synced_upto = 0   # writes [0, synced_upto) covered by a finished sync
        self.first_open = 0    # first write not known durable
        self.pending = {}      # id -> deliverable? for data writes after the last meta
        self.seen = set()      # ids carried by any write so far
        self.deliverable = {}  # id -> Commit: first commit carrying it deliverable
        self.commits = 0
        self.syncs = 0

    def advance(self):
        while self.first_open < len(self.dsync) and (
                self.first_open < self.synced_upto or self.dsync[self.first_open]):
            self.first_open += 1

    def write(self, off, dsync, keys):
        idx = len(self.dsync)
        self.dsync.append(dsync)
        if off < 2 * self.psize:
            c = Commit(idx)
            self.commits += 1
            for i, ok in self.pending.items():
                if ok and i not in self.deliverable:
                    self.deliverable[i] = c
            self.pending = {}
        else:
            for k in keys:
                i, _, fl = k.partition(':')
                i = int(i, 16)
                ok = fl == '?' or not (int(fl) & QF_INTENT)
                self.pending[i] = self.pending.get(i, False) or ok
                self.seen.add(i)
        self.advance()

    def durable(self, c):
        self.advance()
        return self.first_open > c.meta


def parse(path, on_ack=None, dirs_synced=None):
    fds, files, syncing, dirfds = {}, {}, {}, {}
    n = 0
    with open(path, 'rb') as f:
        for raw in f:
            n += 1
            p = raw.decode('utf-8', 'replace').split()
            if not p:
                continue
            t = p[0]
            if t == 'X':
                raise Fail('the shim could not record something: %s' % ' '.join(p[1:]))
            if t == 'O':
                fd, dsync, psize, fpath = int(p[1]), p[2] == '1', int(p[3]), ' '.join(p[4:])
                fds[fd] = (fpath, dsync)
                if fpath not in files:
                    files[fpath] = File(fpath, psize)
            elif t == 'C':
                fds.pop(int(p[1]), None)
                dirfds.pop(int(p[1]), None)
            elif t == 'P':
                dirfds[int(p[1])] = ' '.join(p[2:])
            elif t == 'Y':
                if int(p[2]) == 0 and int(p[1]) in dirfds and dirs_synced is not None:
                    dirs_synced.add(dirfds[int(p[1])].rstrip('/'))
            elif t == 'D':
                if int(p[1]) in fds:
                    fds[int(p[2])] = fds[int(p[1])]
            elif t == 'W':
                fd = int(p[1])
                if fd not in fds:
                    raise Fail('log line %d: write on an unknown descriptor %d' % (n, fd))
                fpath, dsync = fds[fd]
                files[fpath].write(int(p[2]), dsync, p[4:])
            elif t == 'S':
                fd = int(p[1])
                if fd >= 0 and fd in fds:
                    fl = files[fds[fd][0]]
                    fl.syncs += 1
                    syncing[fd] = (fl, len(fl.dsync))
            elif t == 'E':
                fd, rc = int(p[1]), int(p[-1])
                if fd in syncing:
                    fl, upto = syncing.pop(fd)
                    if rc == 0 and upto > fl.synced_upto:
                        fl.synced_upto = upto
            elif t == 'A':
                if on_ack:
                    on_ack(p[1], files)
    return files


def check_acks(shimlog, clientlog, minimum):
    acked = {}
    bad = []
    bad_ids = set()
    multi = [0]

    dirs_synced = set()

    def on_ack(s, files):
        if s in acked:
            return  # a retransmission of the same reply
        if not acked:
            # The first 250: every shard directory and the spool directory
            # must have been fsynced (their entries are what finds the data).
            need = set()
            for fp in files:
                d = os.path.dirname(fp)
                need.update((d, os.path.dirname(d)))
            for d in sorted(need - dirs_synced):
                bad.append('%s: answered 250 before directory %s was fsynced' % (s, d))
                bad_ids.add(s)
        acked[s] = True
        i = id_of(s)
        carried = [f for f in files.values() if i in f.seen]
        n0 = len(bad)
        if not carried:
            bad.append('%s: answered 250 but no write to any shard carried it' % s)
        if len(carried) > 1:
            multi[0] += 1
        for f in carried:
            c = f.deliverable.get(i)
            if c is None:
                bad.append('%s: answered 250 while %s held it only as an intent or in an unfinished commit' % (s, f.path))
            elif not f.durable(c):
                bad.append('%s: answered 250 before its commit in %s was synced (write %d of %d not durable)' % (
                    s, f.path, f.first_open, c.meta))
        if len(bad) > n0:
            bad_ids.add(s)

    files = parse(shimlog, on_ack, dirs_synced)
    logged = set()
    with open(clientlog, 'rb') as f:
        for ln in f:
            p = ln.decode('utf-8', 'replace').split()
            if len(p) == 5:
                logged.add(p[0])
    missing = sorted(logged - set(acked))
    if missing:
        raise Fail('%d IDs the client got 250 for are not in the shim log (e.g. %s): nothing measured' % (
            len(missing), missing[0]))
    if len(acked) < minimum:
        raise Fail('only %d acknowledgements seen, at least %d wanted' % (len(acked), minimum))
    if bad:
        raise Fail('%d of %d acknowledgements not durable when sent; first: %s' % (len(bad_ids), len(acked), bad[0]))
    syncs = sum(f.syncs for f in files.values())
    commits = sum(f.commits for f in files.values())
    return ('%d acknowledgements (%d of messages in several shards), each sent after its commit was durable: '
            '%d commits, %d syncs over %d shard files' % (len(acked), multi[0], commits, syncs, len(files)))


def main():
    try:
        if len(sys.argv) == 5 and sys.argv[1] == 'acks':
            print(check_acks(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        elif len(sys.argv) == 3 and sys.argv[1] == 'syncs':
            files = parse(sys.argv[2])
            print(sum(f.syncs for f in files.values()))
        else:
            print('usage: durability_check.py acks SHIMLOG CLIENTLOG MIN | syncs SHIMLOG')
            sys.exit(2)
    except Fail as e:
        print('FAIL %s' % e)
        sys.exit(1)
    except (OSError, ValueError) as e:
        print('FAIL %s: %s' % (type(e).__name__, e))
        sys.exit(1)


if __name__ == '__main__':
    main()
