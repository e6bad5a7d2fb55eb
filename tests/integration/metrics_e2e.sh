#!/usr/bin/env bash
# metrics_e2e.sh BUILD_DIR - the metrics of a running sluiced: Prometheus
# exposition over HTTP on a management address, and DPDK telemetry.
#
#  1. [metrics] listen on the appliance's own address (the DPDK port) is
#     refused by --check-config.
#  2. With delivery off: curl on 127.0.0.1:PORT (in the test's namespace)
#     answers an exposition that `promtool check metrics` accepts (HELP and
#     TYPE for every family, names, labels, histogram); every counter of
#     `sluicectl stats` is in it (its own family, or the one the exporter's
#     table gives it), per lcore and per shard summing to what `stats` says
#     where the value cannot have moved; /other is a 404.
#  3. Mail moves the values: 5 messages sent with swaks make
#     sluice_messages_received_total go up by exactly 5, the queue's depth
#     by 5 (one shard each), its commit histogram's count by at least one,
#     TCP's segments in and out.
#  4. dpdk-telemetry.py -f PREFIX lists /sluice/stats, /sluice/queue and
#     /sluice/dests, and /sluice/stats,smtpd gives queue_ok as `stats` does;
#     /sluice/queue the depth.
#  5. With delivery on and a route to a closed port: the destination's
#     deferrals reach sluice_destination_deferred_total{destination=...}.
set -u
. "$(dirname "$0")/lib.sh"
t_setup met "$1"
PORT=9925
ns() { ip netns exec "$T_NS" "$@"; }
scrape() { ns curl -sS --max-time 10 "http://127.0.0.1:$PORT/metrics"; }
# value FILE FAMILY [LABEL=VALUE]: the sum of FAMILY's samples (with that label)
value() {
	/usr/bin/python3 - "$@" <<'PY'
import re, sys
path, fam = sys.argv[1], sys.argv[2]
want = sys.argv[3] if len(sys.argv) > 3 else None
tot, seen = 0.0, False
for line in open(path):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line.strip())
    if not m or m.group(1) != fam:
        continue
    if want and want.replace('=', '="') + '"' not in (m.group(2) or ''):
        continue
    tot += float(m.group(3)); seen = True
print(int(tot) if seen else "missing")
PY
}

# --- 1. never on the DPDK port ---------------------------------------------------------
t_conf "[metrics]
listen = 198.18.0.2:$PORT"
"$T_SLUICED" --check-config "$T_CONF" >"$T_DIR/check.out" 2>&1; st=$?
check "listen on the appliance's own address is refused (exit $st: $(cat "$T_DIR/check.out"))" \
	sh -c "[ $st -eq 1 ] && grep -q 'metrics.listen: .*DPDK port' '$T_DIR/check.out'"

# --- 2. the exposition --------------------------------------------------------------------
t_conf "[metrics]
listen = 127.0.0.1:$PORT
[delivery]
enabled = no"
check "sluiced starts with [metrics] listen = 127.0.0.1:$PORT" t_start
check "the log says where the metrics are" \
	grep -q "metrics: Prometheus exposition at http://127.0.0.1:$PORT/metrics" "$T_LOG"
scrape >"$T_DIR/m0" 2>"$T_DIR/curl.err"; st=$?
check "curl gets /metrics (exit $st, $(wc -l <"$T_DIR/m0") lines)" \
	sh -c "[ $st -eq 0 ] && [ $(wc -l <"$T_DIR/m0") -gt 300 ]"
promtool check metrics <"$T_DIR/m0" >"$T_DIR/promtool.out" 2>&1; st=$?
check "promtool check metrics accepts it (exit $st: $(head -c 300 "$T_DIR/promtool.out"))" \
	test $st -eq 0
code=$(ns curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other")
check "another path is a 404 ($code)" test "$code" = 404
ctype=$(ns curl -sS -D - -o /dev/null "http://127.0.0.1:$PORT/metrics" | tr -d '\r' |
	awk -F': ' 'tolower($1) == "content-type" { print $2 }')
check "Content-Type is the text format's ($ctype)" \
	test "$ctype" = "text/plain; version=0.0.4; charset=utf-8"

# Every counter of `stats` in the exposition: its own family, or the one the
# exporter's table (control/metrics.c) gives it, with the label it adds.
"$T_CTL" -s "$T_SOCK" --json stats >"$T_DIR/stats.json"
scrape >"$T_DIR/m1"
/usr/bin/python3 - "$T_DIR/stats.json" "$T_DIR/m1" >"$T_DIR/cover.out" 2>&1 <<'PY'
import json, re, sys
stats = json.load(open(sys.argv[1]))["stats"]
series = {}
for line in open(sys.argv[2]):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line.strip())
    if m:
        series.setdefault(m.group(1), []).append((m.group(2) or '', float(m.group(3))))
table = {  # group.name -> (family, label) of control/metrics.c's table
    "smtpd.queue_ok": ("sluice_messages_received_total", None),
    "sched.rcpt_sent": ("sluice_delivery_recipients_total", 'status="sent"'),
    "sched.rcpt_deferred": ("sluice_delivery_recipients_total", 'status="deferred"'),
    "sched.rcpt_bounced": ("sluice_delivery_recipients_total", 'status="bounced"'),
    "sched.rcpt_expired": ("sluice_delivery_recipients_total", 'status="expired"'),
    "tcp.seg_in": ("sluice_tcp_segments_total", 'direction="in"'),
    "tcp.seg_out": ("sluice_tcp_segments_total", 'direction="out"'),
    "tcp.bytes_in": ("sluice_tcp_bytes_total", 'direction="in"'),
    "tcp.bytes_out": ("sluice_tcp_bytes_total", 'direction="out"'),
    "tcp.rst_in": ("sluice_tcp_resets_total", 'direction="in"'),
    "tcp.rst_out": ("sluice_tcp_resets_total", 'direction="out"'),
    "net.rx_frames": ("sluice_net_frames_total", 'direction="in"'),
    "net.tx_frames": ("sluice_net_frames_total", 'direction="out"'),
    "net.rx_bytes": ("sluice_net_bytes_total", 'direction="in"'),
    "net.tx_bytes": ("sluice_net_bytes_total", 'direction="out"'),
    "udp.rx": ("sluice_udp_datagrams_total", 'direction="in"'),
    "udp.tx": ("sluice_udp_datagrams_total", 'direction="out"'),
    "udp.rx_bytes": ("sluice_udp_bytes_total", 'direction="in"'),
    "udp.tx_bytes": ("sluice_udp_bytes_total", 'direction="out"'),
    "port.ipackets": ("sluice_port_packets_total", 'direction="in"'),
    "port.opackets": ("sluice_port_packets_total", 'direction="out"'),
    "port.ibytes": ("sluice_port_bytes_total", 'direction="in"'),
    "port.obytes": ("sluice_port_bytes_total", 'direction="out"'),
    "gauge.tcp_conns": ("sluice_tcp_connections", None),
    "gauge.tcp_mbufs_held": ("sluice_tcp_mbufs_held", None),
    "gauge.udp_socks": ("sluice_udp_sockets", None),
    "gauge.udp_mbufs_held": ("sluice_udp_mbufs_held", None),
    "gauge.dpsock_evt_slots_free": ("sluice_dpsock_event_slots_free", None),
    "gauge.mbufs_free": ("sluice_mbufs_free", None),
    "gauge.dpsock_socks": ("sluice_dpsock_sockets", None),
    "gauge.dpsock_req_slots_free": ("sluice_dpsock_request_slots_free", None),
    "smtp_gauge.sessions": ("sluice_smtp_sessions", None),
    "smtp_gauge.inflight": ("sluice_smtp_messages_in_flight", None),
    "smtp_gauge.body_chunks_used": ("sluice_smtp_body_chunks_used", None),
    "delivery_gauge.conns_open": ("sluice_delivery_connections", 'state="open"'),
    "delivery_gauge.conns_idle": ("sluice_delivery_connections", 'state="idle"'),
    "delivery_gauge.jobs_held": ("sluice_delivery_jobs_held", None),
    "ctl.clients": ("sluice_ctl_clients", None),
    "ctl.out_bytes": ("sluice_ctl_reply_bytes_pending", None),
    "route.jobs": ("sluice_route_lookups_in_progress", None),
    "route.routes": ("sluice_route_static_routes", None),
    "dns.cache_entries": ("sluice_dns_cache_entries", None),
    "dns.cache_bytes": ("sluice_dns_cache_bytes", None),
    "dns.queries_in_flight": ("sluice_dns_queries_in_flight", None),
    "dns.waiters": ("sluice_dns_waiters", None),
    "net.eth_drop_not_for_us": ("sluice_net_eth_drop_not_for_this_host_total", None),
    "net.arp_drop_not_for_us": ("sluice_net_arp_drop_not_for_this_host_total", None),
    "net.ip_drop_not_for_us": ("sluice_net_ip_drop_not_for_this_host_total", None),
    "net.ip6_drop_not_for_us": ("sluice_net_ip6_drop_not_for_this_host_total", None),
    "net.nd_rx_ns": ("sluice_net_nd_rx_solicitations_total", None),
    "net.nd_tx_ns": ("sluice_net_nd_tx_solicitations_total", None),
    "drain.active": ("sluice_drain_active", None),
    "sched.xfer_active": ("sluice_sched_transfer_active", None),
    "drain_hook.running": ("sluice_drain_hook_running", None),
    "smtpd.refused_draining": ("sluice_smtp_refused_draining_total", None),
    "smtpd.rej_conn_rate": ("sluice_client_rate_refusals_total", 'limit="connections"'),
    "smtpd.rej_msg_rate": ("sluice_client_rate_refusals_total", 'limit="messages"'),
    "smtpd.rej_rcpt_rate": ("sluice_client_rate_refusals_total", 'limit="recipients"'),
    "smtpd.rej_auth_rate": ("sluice_client_rate_refusals_total", 'limit="auth_failures"'),
    "smtpd.rej_user_rate": ("sluice_client_rate_refusals_total", 'limit="user"'),
    "clients.tracked": ("sluice_clients_tracked", None),
}
def sane(s): return re.sub(r'[^a-zA-Z0-9_:]', '_', s)
missing, checked, compared, differ = [], 0, 0, []
# counters that cannot move between the two reads while nothing is sent
still = ("smtpd.", "smtp.", "queue.", "route.routes", "sched.", "echo.")
for key, v in stats.items():
    group, name = key.split(".", 1)
    if re.match(r'^(echo|steer)[0-9]+$', group):
        continue  # per-lcore copies: the exporter's lcore label carries them
    fam, label = table.get(key, ("sluice_%s_%s_total" % (sane(group), sane(name)), None))
    rows = [r for r in series.get(fam, []) if label is None or label in r[0]]
    if not rows:
        missing.append("%s -> %s%s" % (key, fam, "{%s}" % label if label else ""))
        continue
    checked += 1
    if key.startswith(still):
        compared += 1
        total = sum(r[1] for r in rows)
        if total != v:
            differ.append("%s: stats %d, exposition %d" % (key, v, total))
print("checked %d counters, %d compared" % (checked, compared))
for m in missing: print("missing:", m)
for d in differ: print("differs:", d)
sys.exit(1 if missing or differ or checked < 300 else 0)
PY
st=$?
check "every counter of stats is in the exposition ($(head -1 "$T_DIR/cover.out"); $(grep -c '^missing\|^differs' "$T_DIR/cover.out") missing or different: $(grep -m3 '^missing\|^differs' "$T_DIR/cover.out" | tr '\n' ' '))" \
	test $st -eq 0
lc=$(grep -c '^sluice_tcp_segments_total{lcore="[0-9]*",direction="in"}' "$T_DIR/m1")
check "TCP segments per lcore ($lc series with lcore and direction labels)" test "$lc" -ge 1
sh=$(grep -c '^sluice_queue_depth{shard="[0-9]"}' "$T_DIR/m1")
check "queue depth per shard ($sh shards)" test "$sh" -eq 4
check "a commit histogram per shard" \
	sh -c "[ \$(grep -c '^sluice_queue_commit_seconds_bucket{shard=\"[0-9]\",le=\"+Inf\"}' '$T_DIR/m1') -eq 4 ]"
check "HELP and TYPE lines for sluice_messages_received_total" \
	sh -c "grep -q '^# HELP sluice_messages_received_total ' '$T_DIR/m1' &&
	       grep -q '^# TYPE sluice_messages_received_total counter$' '$T_DIR/m1'"

# --- 3. values move with mail -------------------------------------------------------------
r0=$(value "$T_DIR/m1" sluice_messages_received_total)
d0=$(value "$T_DIR/m1" sluice_queue_depth)
c0=$(value "$T_DIR/m1" sluice_queue_commit_seconds_count)
s0=$(value "$T_DIR/m1" sluice_tcp_segments_total direction=in)
o0=$(value "$T_DIR/m1" sluice_tcp_segments_total direction=out)
sent=0
for i in 1 2 3 4 5; do
	ns swaks --server 198.18.0.2 --from "s$i@client.test" --to "r$i@dom$i.test" \
		--timeout 30 >"$T_DIR/swaks.$i" 2>&1 && grep -q "250 2.0.0 Ok: queued as" \
		"$T_DIR/swaks.$i" && sent=$((sent + 1))
done
check "swaks sent 5 messages, each answered 250 queued ($sent)" test $sent -eq 5
got() { scrape >"$T_DIR/m2" && [ "$(value "$T_DIR/m2" sluice_messages_received_total)" = "$((r0 + 5))" ]; }
wait_for 20 got
r1=$(value "$T_DIR/m2" sluice_messages_received_total)
check "sluice_messages_received_total went up by exactly 5 ($r0 -> $r1)" test "$r1" = "$((r0 + 5))"
d1=$(value "$T_DIR/m2" sluice_queue_depth)
check "sluice_queue_depth went up by 5 over the shards ($d0 -> $d1)" test "$d1" = "$((d0 + 5))"
c1=$(value "$T_DIR/m2" sluice_queue_commit_seconds_count)
check "the commit histogram counted the commits ($c0 -> $c1)" test "$c1" -ge "$((c0 + 1))"
s1=$(value "$T_DIR/m2" sluice_tcp_segments_total direction=in)
o1=$(value "$T_DIR/m2" sluice_tcp_segments_total direction=out)
check "TCP segments in and out moved (in $s0 -> $s1, out $o0 -> $o1)" \
	sh -c "[ $s1 -gt $s0 ] && [ $o1 -gt $o0 ]"
q=$(stat smtpd.queue_ok)
check "  ... and agree with stats (smtpd.queue_ok $q)" test "$q" = "$r1"
promtool check metrics <"$T_DIR/m2" >"$T_DIR/promtool2.out" 2>&1
check "promtool accepts the exposition with mail in the queue" test $? -eq 0

# --- 4. DPDK telemetry ---------------------------------------------------------------------
tel() { printf '%s\n' "$@" | timeout 20 dpdk-telemetry.py -f "sl$$" 2>&1; }
tel / >"$T_DIR/tel.list"
check "dpdk-telemetry.py lists /sluice/stats, /sluice/queue, /sluice/dests ($(grep -o '/sluice/[a-z]*' "$T_DIR/tel.list" | sort -u | tr '\n' ' '))" \
	sh -c "grep -q '\"/sluice/stats\"' '$T_DIR/tel.list' && grep -q '\"/sluice/queue\"' '$T_DIR/tel.list' &&
	       grep -q '\"/sluice/dests\"' '$T_DIR/tel.list'"
tel /sluice/stats,smtpd /sluice/stats /sluice/queue >"$T_DIR/tel.out"
tq=$(/usr/bin/python3 -c '
import json, re, sys
for line in open(sys.argv[1]):
    line = line.strip().lstrip("-> ").strip()
    try: j = json.loads(line)
    except Exception: continue
    if "/sluice/stats" in j and isinstance(j["/sluice/stats"], dict):
        print(j["/sluice/stats"].get("queue_ok", "none")); break
' "$T_DIR/tel.out")
check "/sluice/stats,smtpd gives queue_ok = $r1 (got ${tq:-nothing})" test "${tq:-x}" = "$r1"
check "/sluice/stats lists the groups" grep -q '"/sluice/stats": \[[^]]*"tcp"' "$T_DIR/tel.out"
tdepth=$(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip().lstrip("-> ").strip()
    try: j = json.loads(line)
    except Exception: continue
    if "/sluice/queue" in j:
        q = j["/sluice/queue"]; print(sum(v["depth"] for v in q.values() if isinstance(v, dict))); break
' "$T_DIR/tel.out")
check "/sluice/queue gives the depth over the shards ($tdepth = $d1)" test "${tdepth:-x}" = "$d1"
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0

# --- 5. destinations ------------------------------------------------------------------------
t_conf "[metrics]
listen = 127.0.0.1:$PORT
top_destinations = 5
[dest]
failed_cohort_limit = 0
[retry]
min_backoff = 1s"
check "sluiced starts with delivery on" t_start
"$T_CTL" -s "$T_SOCK" route set dead.test '[198.18.0.1]:9' >/dev/null
for i in 1 2 3; do
	ns swaks --server 198.18.0.2 --from s@client.test --to "r$i@dead.test" --timeout 30 \
		>"$T_DIR/swaks.d$i" 2>&1
done
dead() { scrape >"$T_DIR/m3" && v=$(value "$T_DIR/m3" sluice_destination_deferred_total \
	'destination=[198.18.0.1]:9') && [ "$v" != missing ] && [ "$v" -ge 3 ]; }
wait_for 30 dead
v=$(value "$T_DIR/m3" sluice_destination_deferred_total 'destination=[198.18.0.1]:9')
check "the closed port's deferrals are in sluice_destination_deferred_total ($v >= 3)" \
	sh -c "[ '$v' != missing ] && [ '$v' -ge 3 ]"
promtool check metrics <"$T_DIR/m3" >"$T_DIR/promtool3.out" 2>&1
check "promtool accepts it with destination series" test $? -eq 0
t_stop; st=$?
check "clean stop (exit $st)" test $st -eq 0
finish
