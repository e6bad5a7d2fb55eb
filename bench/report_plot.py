#!/usr/bin/env python3
"""report_plot.py - bench/run-all's report: reads what the steps left in
OUT (sluice-gen JSON reports and latency CDFs, queue-bench's table, the
queue's commit counts) and prints a Markdown report with the issue 14
ratios; draws the plots as SVG files in OUT with the standard library only
(no plotting package is installed on the build machine).

  report_plot.py OUT DURATION CONC SIZE [STEP=0|1 ...]

Exit status 1 when a figure the report needs could not be read: a ratio
that cannot be measured is reported as such and fails the run.
"""
import json
import os
import re
import sys

OUT, DURATION, CONC, SIZE = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
OK = dict(a.split("=", 1) for a in sys.argv[5:])
missing = []


def final(step):
    """The final line of STEP.json, or None."""
    try:
        with open(os.path.join(OUT, step + ".json")) as f:
            lines = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return None
    if not lines or not lines[-1].get("final") or OK.get(step) != "1":
        return None
    return lines[-1]


def series(step, key):
    try:
        with open(os.path.join(OUT, step + ".json")) as f:
            lines = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return []
    return [(l["t"], l[key]) for l in lines if "t" in l and key in l]


def cdf(step, name="data"):
    pts = []
    try:
        with open(os.path.join(OUT, step + ".cdf", name + ".cdf")) as f:
            for line in f:
                ns, p = line.split()
                pts.append((int(ns) / 1e6, float(p)))	# ms
    except (OSError, ValueError):
        return []
    return pts


def raw_ceiling(shards=1, name="raw"):
    """queue-bench's raw msg/s, average batch and queue msg/s for `shards` shards."""
    try:
        with open(os.path.join(OUT, name + ".out")) as f:
            for line in f:
                t = line.split()
                if len(t) == 7 and t[0] == "full" and t[1] == str(shards):
                    return float(t[4]), float(t[3]), float(t[2])
    except OSError:
        pass
    return None


def commits(step):
    try:
        with open(os.path.join(OUT, step + ".queue")) as f:
            c0, c1, m0, m1 = (int(x) for x in f.read().split())
        return c1 - c0, m1 - m0
    except (OSError, ValueError):
        return None


def get(step, key, what):
    d = final(step)
    if d is None:
        missing.append(f"{what}: step {step} did not complete")
        return None
    v = d
    for k in key.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    if not isinstance(v, (int, float)) or v <= 0:
        missing.append(f"{what}: {step} {key} is {v!r}")
        return None
    return float(v)


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, unit="", prec=1):
    return "not measured" if v is None else f"{v:,.{prec}f}{unit}"


# ---- SVG -------------------------------------------------------------------------------
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def svg_plot(path, title, xlabel, ylabel, lines, logx=False):
    """lines: [(label, [(x, y), ...])]. A plain line chart."""
    import math
    W, H, L, R, T, B = 640, 360, 70, 170, 30, 45
    pts = [p for _, s in lines for p in s]
    if not pts:
        return False
    fx = (lambda x: math.log10(max(x, 1e-6))) if logx else (lambda x: x)
    xs = [fx(x) for x, _ in pts]
    ys = [y for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = 0.0, max(ys) * 1.05 or 1.0
    if x1 == x0:
        x1 = x0 + 1

    def px(x):
        return L + (fx(x) - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return H - B - (y - y0) / (y1 - y0) * (H - T - B)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W/2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
         f'<text x="{(L+W-R)/2}" y="{H-8}" text-anchor="middle">{xlabel}</text>',
         f'<text x="14" y="{(T+H-B)/2}" text-anchor="middle" '
         f'transform="rotate(-90 14 {(T+H-B)/2})">{ylabel}</text>']
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        o.append(f'<text x="{L-4}" y="{py(y)+4:.1f}" text-anchor="end">{y:,.4g}</text>')
        o.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W-R}" y2="{py(y):.1f}" stroke="#ddd"/>')
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        lab = 10 ** xv if logx else xv
        xp = L + i / 5 * (W - L - R)
        o.append(f'<text x="{xp:.1f}" y="{H-B+14}" text-anchor="middle">{lab:,.3g}</text>')
    for n, (label, s) in enumerate(lines):
        if not s:
            continue
        c = COLORS[n % len(COLORS)]
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        o.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{d}"/>')
        o.append(f'<rect x="{W-R+10}" y="{T+n*16}" width="10" height="10" fill="{c}"/>')
        o.append(f'<text x="{W-R+24}" y="{T+n*16+9}">{label}</text>')
    o.append("</svg>")
    with open(os.path.join(OUT, path), "w") as f:
        f.write("\n".join(o) + "\n")
    return True


# ---- figures ---------------------------------------------------------------------------
rc, rc2 = raw_ceiling(), raw_ceiling(name="raw-after")
if rc is None or rc2 is None:
    missing.append("raw LMDB ceiling: queue-bench's table (before or after accept) "
                   "has no 1-shard row")
    raw_msg_s = raw_batch = q_msg_s = None
else:
    raw_msg_s, raw_batch, q_msg_s = ((a + b) / 2 for a, b in zip(rc, rc2))
acc = get("accept", "msg_s_steady", "accept rate (memif)")
gen1 = get("gen1", "msg_s_steady", "generator ceiling, 1 lcore")
gen2 = get("gen2", "msg_s_steady", "generator ceiling, 2 lcores")
pfa = get("pf-accept", "msg_s_steady", "accept rate (Postfix)")
rel = get("relay", "sink_msg_s_steady", "relay rate (Sluice)")
pfr = get("pf-relay", "sink_msg_s_steady", "relay rate (Postfix)")
cps = get("conn", "conn_s_steady", "connections/s")
afc = get("af-conn", "msg_s_steady", "accept rate, a connection per message (af_packet)")
pfc = get("pf-conn", "msg_s_steady", "accept rate, a connection per message (Postfix)")
p99 = get("accept", "data.p99_us", "p99 end of DATA -> 250")
p50 = get("accept", "data.p50_us", "p50 end of DATA -> 250")
el = get("accept", "elapsed_s", "accept step's length")
cm = commits("accept")
if cm is None or cm[0] <= 0:
    missing.append("group commits over the accept step: unreadable")
    interval_us = batch = None
else:
    interval_us = el * 1e6 / cm[0] if el else None
    batch = cm[1] / cm[0]

rows = [
    ("accept rate, Sluice (memif) / raw LMDB ceiling (queue-bench raw, sync=full, "
     "mean of before and after)", ratio(acc, raw_msg_s), "0.8",
     f"{fmt(acc, ' msg/s')} / {fmt(raw_msg_s, ' msg/s')}"
     + (f" ({rc[0]:,.0f} before, {rc2[0]:,.0f} after)" if rc and rc2 else "")),
    ("accept rate, Sluice (memif) / Postfix (veth)", ratio(acc, pfa), "30x",
     f"{fmt(acc, ' msg/s')} / {fmt(pfa, ' msg/s')}"),
    ("accept, a connection per message: Sluice on af_packet (make run's default port) "
     "/ Postfix (veth), the same client", ratio(afc, pfc), "10x",
     f"{fmt(afc, ' msg/s')} / {fmt(pfc, ' msg/s')}"),
    ("end-to-end relay, Sluice / Postfix (generator to sink)", ratio(rel, pfr), "-",
     f"{fmt(rel, ' msg/s')} / {fmt(pfr, ' msg/s')}"),
    ("p99 end of DATA -> 250 / mean group-commit interval", ratio(p99, interval_us), "-",
     f"{fmt(p99 and p99 / 1000, ' ms', 2)} / {fmt(interval_us and interval_us / 1000, ' ms', 3)}"),
    ("connections/s, a connection per message", cps, "-", f"{fmt(cps, ' conn/s')}"),
    ("sluice-gen -> sluice-gen sink, 2 generator lcores / 1", ratio(gen2, gen1), "> 1",
     f"{fmt(gen2, ' msg/s')} / {fmt(gen1, ' msg/s')}"),
    ("generator ceiling (1 lcore, to a sluice-gen sink) / Sluice's accept rate",
     ratio(gen1, acc), "> 1", f"{fmt(gen1, ' msg/s')} / {fmt(acc, ' msg/s')}"),
]

print("# Sluice benchmark report (bench/run-all)\n")
print(f"{SIZE} messages, one recipient, {CONC} sessions in a closed loop, "
      f"{DURATION} s a step; rates are sluice-gen's per-second medians. "
      "Each ratio is of two figures measured in this run.\n")
print("| figure | ratio | target | measured |")
print("| --- | ---: | --- | --- |")
for name, r, target, detail in rows:
    print(f"| {name} | {fmt(r, '', 2)} | {target} | {detail} |")
print()
if batch is not None:
    print(f"sluiced's group commits in the accept step: {cm[0]} commits of "
          f"{batch:.1f} messages on average (one recipient domain: one shard); "
          f"queue-bench's raw row (1 shard, the same) "
          f"used batches of {fmt(raw_batch, '', 1)} at {CONC} in flight and its "
          f"queue row reached {fmt(q_msg_s, ' msg/s', 0)}. "
          f"p50 end of DATA -> 250: {fmt(p50 and p50 / 1000, ' ms', 2)}.\n")

plots = []
if svg_plot("throughput.svg", "messages/s over time", "s", "msg/s",
            [("Sluice accept", series("accept", "msg_s")),
             ("Postfix accept", series("pf-accept", "msg_s")),
             ("Sluice relay (at sink)", series("relay", "sink_msg_s")),
             ("Postfix relay (at sink)", series("pf-relay", "sink_msg_s")),
             ("gen -> gen sink, 1 lcore", series("gen1", "msg_s")),
             ("gen -> gen sink, 2 lcores", series("gen2", "msg_s"))]):
    plots.append(("Throughput over time", "throughput.svg"))
if svg_plot("latency_cdf.svg", "end of DATA -> 250, CDF", "ms (log)", "fraction",
            [("Sluice", cdf("accept")), ("Postfix", cdf("pf-accept")),
             ("Sluice, relay on", cdf("relay")), ("Postfix, relay on", cdf("pf-relay"))],
            logx=True):
    plots.append(("End of DATA -> 250, CDF", "latency_cdf.svg"))
if svg_plot("conn_s.svg", "connections/s, a connection per message", "s", "conn/s",
            [("Sluice", series("conn", "conn_s"))]):
    plots.append(("Connections/s", "conn_s.svg"))
for title, f in plots:
    print(f"## {title}\n\n![{title}]({f})\n")

def cpu(step):
    """Shares of the machine's CPU time over the step, from /proc/stat."""
    try:
        with open(os.path.join(OUT, step + ".cpu")) as f:
            a, b = [[int(x) for x in l.split()[1:]] for l in f.read().splitlines()[:2]]
    except (OSError, ValueError):
        return None
    d = [y - x for x, y in zip(a, b)]
    d += [0] * (8 - len(d))
    tot = sum(d[:8]) or 1
    return {"user": (d[0] + d[1]) / tot, "system": (d[2] + d[5] + d[6]) / tot,
            "iowait": d[4] / tot, "idle": d[3] / tot, "steal": d[7] / tot}


STEPS = ["raw", "accept", "raw-after", "gen1", "gen2", "conn", "relay", "pf-accept", "pf-relay",
         "af-conn", "pf-conn"]
cpus = [(s, cpu(s)) for s in STEPS if cpu(s)]
if cpus:
    print("## CPU time over each step (the whole machine)\n")
    print("| step | user | system+irq | iowait | idle | steal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for st, c in cpus:
        print(f"| {st} | {c['user']:.0%} | {c['system']:.0%} | {c['iowait']:.0%} | "
              f"{c['idle']:.0%} | {c['steal']:.0%} |")
    print()
# The processes a step runs; any other one sampled is another tenant of
# the machine (other builds and benchmarks, virtual machines) competing for
# the same cores.
OURS = {"sluiced", "sluice-queue", "sluice-plane", "sluice-gen", "eal-intr-thread",
        "telemetry-v2", "perf", "swapper", "queue-bench", "smtpd", "cleanup", "qmgr",
        "trivial-rewrite", "master", "postlogd", "smtp", "anvil", "proxymap", "bounce",
        "scache", "pickup", "showq", "postfix-script", "postfix", "bash", "sleep",
        "python3", "ip", "ss", "sluicectl"}
OURS_PREFIX = ("rte-worker", "rte_mp", "kworker", "ksoftirqd", "migration", "rcu", "jbd2",
               "kdamond", "idle_inject", "cpuhp")


def others(step):
    """Share of perf's samples in processes that are not the step's own."""
    try:
        with open(os.path.join(OUT, step + ".comm.txt")) as f:
            rows = [l.split(None, 1) for l in f if "%" in l]
    except OSError:
        return None
    tot = oth = 0.0
    names = {}
    for pct, comm in rows:
        v = float(pct.rstrip("%"))
        comm = comm.strip()
        tot += v
        if comm not in OURS and not comm.startswith(OURS_PREFIX):
            oth += v
            names[comm] = names.get(comm, 0) + v
    top = ", ".join(f"{n} {v:.0f}%" for n, v in sorted(names.items(), key=lambda x: -x[1])[:4])
    return oth, top


shares = [(st, others(st)) for st in STEPS if others(st)]
if shares:
    print("Samples in other tenants' processes (by command name, so a lower "
          "bound: another tenant's sluiced or python3 counts as this step's):\n")
    for st, (oth, top) in shares:
        print(f"- {st}: {oth:.0f}% ({top})")
    print()
for st in STEPS:
    try:
        with open(os.path.join(OUT, st + ".perf.txt")) as f:
            prof = [re.sub(r"\s+-\s+-\s*$", "", l.rstrip())
                    for l in f.read().rstrip().splitlines()]
    except OSError:
        continue
    print(f"### Profile of {st} (perf, system-wide; top entries)\n")
    print("```")
    print("\n".join(prof[:40]))
    print("```\n")

print("## Steps\n")
print("| step | completed | report |")
print("| --- | --- | --- |")
for s in STEPS:
    st = {"1": "yes", "0": "FAILED"}.get(OK.get(s), "not run")
    print(f"| {s} | {st} | {s}.out, {s}.json |")
print()
if missing:
    print("## Not measured\n")
    for m in missing:
        print(f"- {m}")
    sys.exit(1)
