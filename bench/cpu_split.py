#!/usr/bin/python3
"""cpu_split.py - where the whole machine's CPU time went over a window,
by process and thread, per message (issue 17: accept on af_packet).

    cpu_split.py [--ns NETNS]... [--pid PID]... window REPORT FROM TO [LABEL]

It watches a sluice-gen --report file (one JSON line a second, with msg_ok,
the messages answered 250 so far): when per-second line FROM appears it
takes a snapshot of every task's user and system time
(/proc/PID/task/TID/stat, fields 14 and 15) and of /proc/stat's cpu line,
when line TO appears another, and prints a Markdown table for the
messages answered between the two lines: CPU seconds, share of the
machine and cycles per message (seconds x the clock of /proc/cpuinfo /
messages: this VM has no cycle counter, as in stage_table.py).

The step's own processes are those in network namespace NETNS (the bench
runs sluiced, sluice-gen and Postfix in one) or PID and its descendants;
they get a row each by role: sluice-gen, sluiced's worker lcore, sluiced's
other threads by name (main, queue writer, plane...), Postfix's daemons.
Kernel threads (ksoftirqd, kworker...) get rows of their own: they serve
everyone. Every other process is another tenant's (other engineers' builds
and tests on this machine), summed in one row with its top names, with
the time of processes that started and ended between two snapshots (user
+ system of /proc/stat less what the snapshots saw). Then the
machine's softirq, irq and idle time from /proc/stat (softirq run on a
task's way back from a system call is charged to that task unless the
kernel accounts IRQ time apart; the column shows what it does count).

A snapshot is taken at every per-second line from FROM to TO: a task
born inside the window counts from 0, one that ends inside it counts up
to the last snapshot that saw it (a process's last second is missing;
Postfix's smtpd processes end after 100 connections). Exit 1 when a
figure is missing.
"""
import argparse
import json
import os
import sys
import time

KTHREADS = ("ksoftirqd", "kworker", "rcu_", "migration", "jbd2", "kswapd", "kdamond")
POSTFIX = ("smtpd", "cleanup", "qmgr", "master", "trivial-rewrite", "postlogd", "anvil",
           "proxymap", "tlsmgr", "bounce", "pickup", "showq", "postdrop", "sendmail")


def ns_inodes(names):
    out = set()
    for n in names:
        try:
            out.add(os.stat(f"/run/netns/{n}").st_ino)
        except OSError:
            pass
    return out


def read(path):
    with open(path) as f:
        return f.read()


def stat_fields(s):
    """(comm, fields after it): comm may hold spaces and parentheses."""
    lp, rp = s.index("("), s.rindex(")")
    return s[lp + 1:rp], s[rp + 2:].split()


def take(netns, roots):
    """Every task's times, whether its process is the step's."""
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm, f = stat_fields(read(f"/proc/{pid}/stat"))
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                ino = None
            procs[int(pid)] = (comm, int(f[1]), ino)
        except OSError:
            continue

    def mine(pid):
        for _ in range(64):
            if pid in roots:
                return True
            p = procs.get(pid)
            if not p:
                return False
            if p[2] in netns:
                return True
            pid = p[1]
        return False

    tasks = {}
    for pid, (pcomm, _, _) in procs.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        m = mine(pid)
        for tid in tids:
            try:
                tcomm, f = stat_fields(read(f"/proc/{pid}/task/{tid}/stat"))
            except OSError:
                continue
            tasks[f"{pid}/{tid}"] = [pcomm, tcomm, int(f[11]), int(f[12]), m]
    cpu = [int(x) for x in read("/proc/stat").split("\n", 1)[0].split()[1:]]
    return {"hz": os.sysconf("SC_CLK_TCK"), "cpu": cpu, "tasks": tasks}


def mhz_now():
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1])
    return 0.0


def series_line(report, k, limit_s=120):
    """The msg_ok of per-second line K (1-based) of REPORT once it is there."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            rows = [l for l in read(report).splitlines() if l.startswith('{"t":')]
        except OSError:
            rows = []
        if len(rows) >= k:
            return json.loads(rows[k - 1])["msg_ok"]
        time.sleep(0.01)
    return None


def group(pcomm, tcomm, mine):
    """The row a task's time goes to."""
    for k in KTHREADS:
        if pcomm.startswith(k):
            return f"kernel thread: {k.rstrip('_')}"
    if not mine:
        return None		# another tenant's
    if pcomm == "sluice-gen":
        return "sluice-gen (all threads)"
    if pcomm == "sluiced":
        if tcomm.startswith(("lcore-worker", "rte-worker")):
            return "sluiced: worker lcore"
        return f"sluiced: {tcomm} thread"
    if pcomm in POSTFIX:
        return f"postfix: {pcomm}"
    return f"step: {pcomm}"


def table(a, b, msgs, mhz, label):
    hz = b["hz"]
    rows, others = {}, {}
    for k, (pc, tc, u, s, m) in b["tasks"].items():
        u0, s0 = a["tasks"][k][2:4] if k in a["tasks"] else (0, 0)
        g = group(pc, tc, m)
        r = rows.setdefault(g, [0, 0]) if g else others.setdefault(pc, [0, 0])
        r[0] += u - u0
        r[1] += s - s0
    cpu = [y - x for x, y in zip(a["cpu"], b["cpu"])]
    total = sum(cpu[:8])		# user nice system idle iowait irq softirq steal
    if total <= 0 or msgs <= 0 or mhz <= 0:
        print(f"cpu_split: missing figure (ticks {total}, messages {msgs}, MHz {mhz})",
              file=sys.stderr)
        return 1
    # time of tasks that came and went inside the window: user + system
    # less what the snapshots saw (another tenant's compilers, mostly)
    gone = cpu[0] + cpu[1] + cpu[2] - sum(sum(v) for v in rows.values()) - \
        sum(sum(v) for v in others.values())
    others["(started and ended in the window)"] = [max(gone, 0), 0]
    ou = sum(v[0] for v in others.values())
    osy = sum(v[1] for v in others.values())
    top = sorted(others.items(), key=lambda kv: -sum(kv[1]))[:4]
    rows[f"other tenants ({', '.join(f'{n} {sum(v) / hz:.2f}' for n, v in top if sum(v))})"] = \
        [ou, osy]

    def cyc(t):
        return t / hz * mhz * 1e6 / msgs
    print(f"### Whole-machine CPU per message{': ' + label if label else ''}\n")
    print(f"{msgs} messages in the window, {total / hz:.2f} CPU-seconds of machine time "
          f"({os.cpu_count()} CPUs), {mhz:.0f} MHz\n")
    print("| who | user s | system s | share | cycles/message |")
    print("| --- | ---: | ---: | ---: | ---: |")
    step = 0
    for g, (u, s) in sorted(rows.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        if u + s <= 0:
            continue
        if not g.startswith("other tenants"):
            step += u + s
        print(f"| {g} | {u / hz:.2f} | {s / hz:.2f} | {100 * (u + s) / total:.1f}% "
              f"| {cyc(u + s):,.0f} |")
    print(f"| **the step and kernel threads** | | | {100 * step / total:.1f}% "
          f"| **{cyc(step):,.0f}** |")
    print(f"| **with the machine's softirq time** | | | {100 * (step + cpu[6]) / total:.1f}% "
          f"| **{cyc(step + cpu[6]):,.0f}** |")
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    print("\n/proc/stat over the window:", ", ".join(
        f"{n} {100 * v / total:.1f}%" for n, v in zip(names, cpu[:8])),
        f"(softirq {cyc(cpu[6]):,.0f} cycles/message, idle {cyc(cpu[3]):,.0f})")
    return 0


def window(report, k0, k1, label, netns, roots):
    if series_line(report, k0) is None:
        print(f"cpu_split: {report} never reached line {k0}", file=sys.stderr)
        return 1
    a = take(netns, roots)
    m0 = series_line(report, k0)
    last = {"hz": a["hz"], "cpu": a["cpu"], "tasks": dict(a["tasks"])}
    for k in range(k0 + 1, k1 + 1):
        if series_line(report, k) is None:
            print(f"cpu_split: {report} never reached line {k}", file=sys.stderr)
            return 1
        b = take(netns, roots)
        last["tasks"].update(b["tasks"])	# a task that ended keeps its last sighting
        last["cpu"] = b["cpu"]
    m1 = series_line(report, k1)
    return table(a, last, m1 - m0, mhz_now(), label)


def main(argv):
    ap = argparse.ArgumentParser(usage=__doc__.split("\n")[3].strip())
    ap.add_argument("--ns", action="append", default=[])
    ap.add_argument("--pid", action="append", type=int, default=[])
    ap.add_argument("cmd", choices=["window"])
    ap.add_argument("report")
    ap.add_argument("first", type=int)
    ap.add_argument("last", type=int)
    ap.add_argument("label", nargs="?", default="")
    a = ap.parse_args(argv[1:])
    if not 1 <= a.first < a.last:
        print("cpu_split: FROM must be >= 1 and below TO", file=sys.stderr)
        return 2
    return window(a.report, a.first, a.last, a.label, ns_inodes(a.ns), set(a.pid))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
