#!/usr/bin/python3
"""stage_table.py - cycles per accepted message on sluiced's worker lcore,
by stage of the path a message takes (issue 17, acceptance 3).

    stage_table.py PERF_REPORT CPU_SECONDS MESSAGES MHZ [LABEL]

PERF_REPORT: `perf report --stdio --no-children --sort dso,sym -g none` of a
profile of the worker thread alone (perf record -t TID), taken while the
generator ran. CPU_SECONDS: the thread's user+system time over the same
window; MESSAGES: messages accepted (queue.messages) over it; MHZ: the clock
the cycles are counted at (this VM has no cycle counter, so cycles are CPU
time x the nominal clock). Each stage's cycles per message is its share of
the samples x CPU_SECONDS x MHZ / MESSAGES.

A sample counts where it was taken (self time): a static function the
compiler inlined counts in its caller, so the stages follow the symbols the
binary keeps. Prints a Markdown table; exit 1 when a figure is missing.
"""
import re
import sys

# (stage, dso regex, symbol regex): the first match wins, so order matters.
STAGES = [
    ("kernel (syscalls, interrupts, idle sleeps)", r"kernel|\[k\]", r""),
    ("port I/O: PMD rx/tx, mbufs, mempool", r"librte_(net_|mempool|mbuf|ethdev|ring)", r""),
    ("port I/O: PMD rx/tx, mbufs, mempool", r"", r"^(eth_memif|memif_|eth_af_packet|eth_af_xdp|"
     r"eth_tap|virtio|rte_eth_|rte_pktmbuf|rte_mbuf|rte_mempool|common_ring_|bucket_|"
     r"mempool_)"),
    ("queue hand-off: rings to the queue writer and the plane", r"",
     r"^(rte_ring|ring_|ask_|__rte_ring|queue_)"),
    ("TLS", r"libssl|libcrypto", r""),
    ("SMTP engine: commands, replies, DATA framing", r"",
     r"^(smtp_session|smtp_parse|smtp_data|smtp_cmd|smtp_received|smtp_policy|smtp_sasl|"
     r"smtp_xtext|reply|do_|txn_|rcpt_|session_|cmd_|parse_|content|line_octet|emit|ieq)"),
    ("SMTP service: arena copy, submission, completions, timers", r"",
     r"^(smtp_service|on_body|on_rcpt|on_data|on_accept|on_closed|on_timer|on_writable|"
     r"submit|take_completions|pump|feed_engine|flush_output|conn_|chunk_|body_|answer|"
     r"limits_|rdns_|handle_event|set_deadline|timer_arm|live_)"),
    ("TCP", r"", r"^(tcp_|syncookie|cookie_|seg_)"),
    ("Ethernet, ARP, IP, ICMP, UDP, steering", r"",
     r"^(eth_|net_|ipv4_|ipv6_|arp_|icmp|udp_|steer|cksum|rte_ipv4|rte_raw_cksum|"
     r"__rte_raw_cksum|rte_net_)"),
    ("lcore loop, clock, delivery poll", r"", r"^(lcore_|dp_|dpsock_|dlv_|worker_|tsc_|"
     r"rte_rdtsc|rte_pause|poll_|idle_)"),
    ("libc: memcpy, memchr, str*, printf", r"libc", r""),
]
OTHER = "other"


def parse(path):
    rows = []
    pat = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return rows


def stage_of(dso, kind, sym):
    for name, dre, sre in STAGES:
        if kind == "k" and name.startswith("kernel"):
            return name
        if dre and not re.search(dre, dso):
            continue
        if sre and not re.search(sre, sym):
            continue
        if not dre and not sre:
            continue
        return name
    return OTHER


def main():
    if len(sys.argv) < 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    rows = parse(sys.argv[1])
    try:
        cpu, msgs, mhz = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    except ValueError:
        print("stage_table: CPU_SECONDS, MESSAGES and MHZ must be numbers", file=sys.stderr)
        return 1
    label = sys.argv[5] if len(sys.argv) > 5 else ""
    if not rows or cpu <= 0 or msgs <= 0 or mhz <= 0:
        print(f"stage_table: nothing measured ({len(rows)} symbols, {cpu} s, "
              f"{msgs} messages, {mhz} MHz)", file=sys.stderr)
        return 1
    total = sum(r[0] for r in rows)
    per_msg = cpu * mhz * 1e6 / msgs
    stages, tops = {}, {}
    for pct, dso, kind, sym in rows:
        s = stage_of(dso, kind, sym)
        stages[s] = stages.get(s, 0.0) + pct
        tops.setdefault(s, []).append((pct, sym))
    print(f"### Cycles per accepted message on the worker lcore{': ' + label if label else ''}\n")
    print(f"{msgs:,.0f} messages, {cpu:.2f} s of worker CPU, {mhz:,.0f} MHz: "
          f"**{per_msg:,.0f} cycles per message** ({len(rows)} symbols, "
          f"{total:.1f}% of the samples attributed)\n")
    print("| stage | share | cycles/msg | top symbols |")
    print("| --- | ---: | ---: | --- |")
    for s in sorted(stages, key=lambda k: -stages[k]):
        share = stages[s] / total
        top = ", ".join(f"{n} {p:.1f}%" for p, n in sorted(tops[s], reverse=True)[:3])
        print(f"| {s} | {share:.1%} | {share * per_msg:,.0f} | {top} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
