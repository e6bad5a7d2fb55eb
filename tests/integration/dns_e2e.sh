#!/usr/bin/env bash
# dns_e2e.sh BUILD_DIR - sluiced's resolver and router over net_tap, against
# a dnsmasq in the test's namespace (dns_zone.sh serves the zones): every
# routing case comes back right, the queries really leave through the
# dataplane (UDP, and TCP for a truncated answer), the cache honours TTLs, a
# dead server is a temporary error within the configured bound, and the
# second server is used when the first is silent.
#
# The lookups are made with `sluicectl route lookup` / `dns lookup`, which the
# daemon hands to its control-plane thread (control/plane.c).
set -u
. "$(dirname "$0")/lib.sh"
t_setup dns "$1"
here=$(cd "$(dirname "$0")" && pwd)
ns() { ip netns exec "$T_NS" "$@"; }
DNSMASQ=
trap '[ -n "$DNSMASQ" ] && kill "$DNSMASQ" 2>/dev/null; t_teardown' EXIT

dnsmasq_up() {	# dnsmasq_up IP: start the zones' server on IP (in the namespace)
	ip netns exec "$T_NS" bash "$here/dns_zone.sh" "$1" "$T_DIR" >>"$T_DIR/dnsmasq.out" 2>&1 &
	DNSMASQ=$!
	wait_for 10 sh -c "ip netns exec '$T_NS' ss -lun | grep -q '$1:53 '"
}
dnsmasq_down() {
	[ -n "$DNSMASQ" ] && kill "$DNSMASQ" 2>/dev/null && wait "$DNSMASQ" 2>/dev/null
	DNSMASQ=
}
queries_logged() { grep -c "query\[$2\] $1 " "$T_DIR/dnsmasq-198.18.0.1.log" 2>/dev/null; }

# route DOMAIN: the route as "status dsn addr:port/pref/mx ..." (one line)
route() {
	"$T_CTL" -s "$T_SOCK" --json route lookup "$1" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["route"]
print(" ".join([r["status"], r["dsn"] or "-"] +
               ["%s:%d/%d/%s" % (h["addr"], h["port"], h["pref"], h["mx"]) for h in r["hops"]]))' \
		2>/dev/null || echo "unreadable"
}
# dns NAME TYPE: "status ttl records..."
dnsq() {
	"$T_CTL" -s "$T_SOCK" --json dns lookup "$1" "$2" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["dns"]
recs = [x if isinstance(x, str) else "%d:%s" % (x["pref"], x["host"]) for x in r["records"]]
print(" ".join([r["status"], str(r["ttl"])] + recs))' 2>/dev/null || echo "unreadable"
}

# --- 1. every routing case through the dataplane -----------------------------
t_conf "[dns]
servers = 198.18.0.1
timeout = 500ms
attempts = 2"
check "sluiced starts" t_start
check "dnsmasq serves the test zones in the namespace" dnsmasq_up 198.18.0.1

r=$(route pref.test)
check "MX by preference: $r" test "$r" = \
	"ok - 198.18.0.21:25/10/mx-a.pref.test 198.18.0.22:25/20/mx-b.pref.test 198.18.0.23:25/30/mx-c.pref.test"
r=$(route equal.test)
check "equal preferences, all three: $r" sh -c "echo '$r' | grep -q '^ok - ' &&
	[ \$(echo '$r' | tr ' ' '\n' | grep -c '/10/e[123].equal.test') -eq 3 ]"
firsts=$(for i in $(seq 1 30); do route equal.test | cut -d' ' -f3 | cut -d: -f1; done | sort -u | tr '\n' ' ')
check "equal preferences in random order: each MX came first in 30 lookups ($firsts)" \
	test "$firsts" = "198.18.0.31 198.18.0.32 198.18.0.33 "
r=$(route nomx.test)
check "no MX: the domain's own address (implicit MX): $r" test "$r" = "ok - 198.18.0.41:25/0/nomx.test"
r=$(route nullmx.test)
check "null MX: permanent 5.1.10: $r" test "$r" = "perm 5.1.10"
r=$(route nope.test)
check "NXDOMAIN: permanent 5.1.2: $r" test "$r" = "perm 5.1.2"
t0=$(date +%s%N)
r=$(route servfail.test)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a server that cannot answer: temporary 4.4.3 ($r, ${ms} ms)" test "$r" = "temp 4.4.3"
r=$(route cname.test)
check "MX target behind a CNAME chain: $r" test "$r" = "ok - 198.18.0.51:25/10/alias.test"
tcp0=$(stat dpsock.tcp_opens)
r=$(route big.test)
check "40 MX records (truncated over UDP): the 5 best addresses: $(echo "$r" | cut -c1-80)..." \
	sh -c "[ \$(echo '$r' | wc -w) -eq 7 ] && echo '$r' | grep -q '198.18.1.1:25/1/.*198.18.1.5:25/5/'"
tcp1=$(stat dpsock.tcp_opens)
check "the truncated answer came again over TCP through our stack (dpsock.tcp_opens $tcp0 -> $tcp1)" \
	test "$tcp1" -gt "$tcp0"
check "dnsmasq saw the queries come from the appliance (198.18.0.2)" \
	grep -q "query\[MX\] pref.test from 198.18.0.2" "$T_DIR/dnsmasq-198.18.0.1.log"

# The cache: TTL 300 answers are asked once; TTL 0 every time.
dnsq nomx.test a >/dev/null; dnsq nomx.test a >/dev/null
n=$(queries_logged nomx.test A)
check "a cached answer (TTL 300) is asked for once in 3 lookups ($n queries)" test "$n" -eq 1
a=$(dnsq ttl0.test a); dnsq ttl0.test a >/dev/null; dnsq ttl0.test a >/dev/null
n=$(queries_logged ttl0.test A)
check "a TTL 0 answer is asked for every time ($n queries for 3 lookups: $a)" test "$n" -eq 3
hits=$(stat dns.cache_hits)
check "dns.cache_hits counts the hits ($hits)" test "$hits" -ge 2
a=$(dnsq 198.18.0.21 ptr)
check "a PTR lookup works ($a)" sh -c "echo '$a' | grep -q '^NXDOMAIN\|^NODATA\|^OK'"

# A dead server: a temporary error within the configured bound (500 ms x 1
# server x (2^2 - 1) = 1.5 s, plus the resolver's 1 s of slack).
dnsmasq_down
t0=$(date +%s%N)
r=$(route gone.test)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "dnsmasq stopped: temporary 4.4.3 ($r) in ${ms} ms (bound 2500 ms + margin)" \
	sh -c "[ '$r' = 'temp 4.4.3' ] && [ $ms -le 4000 ]"
r=$(route pref.test)
check "what was cached still routes meanwhile: $(echo "$r" | cut -c1-40)..." \
	sh -c "echo '$r' | grep -q '^ok - 198.18.0.21:25/10/'"
t_stop; check "clean stop" test $? -eq 0

# --- 2. the client's reverse name in Received ----------------------------------
# dnsmasq's host-record sink.test,198.18.0.1 gives the PTR and the A that
# confirms it; 198.18.0.7 has no PTR (NXDOMAIN). With dnsmasq stopped, a new
# client's message waits the 1 s bound (the resolver would take 2.5 s to give
# up), no more, and says unknown.
t_conf "[dns]
servers = 198.18.0.1
timeout = 500ms
attempts = 2
[smtp]
reverse_lookup_wait = 1s"
check "sluiced starts with reverse lookups (wait 1s)" t_start
check "dnsmasq up" dnsmasq_up 198.18.0.1
ns ip addr add 198.18.0.7/24 dev "$T_IF"
ns ip addr add 198.18.0.8/24 dev "$T_IF"
send_from() {	# send_from SRC NAME: one message from SRC; prints its queue ID
	ns swaks --server 198.18.0.2 --local-interface "$1" --helo "$2.client.test" \
		--from "$2@example.org" --to r@example.net --header "Subject: $2" 2>&1 |
		sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-Z]*\).*/\1/p'
}
id1=$(send_from 198.18.0.1 named)
id2=$(send_from 198.18.0.7 noptr)
check "messages from both clients queued (${id1:-none}, ${id2:-none})" test -n "$id1" -a -n "$id2"
n=$(stat smtpd.rdns_named); u=$(stat smtpd.rdns_unknown)
check "the lookups were answered: $n named, $u unknown" test "$n" -ge 1 -a "$u" -ge 1
dnsmasq_down
t0=$(date +%s%N)
id3=$(send_from 198.18.0.8 nodns)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "no DNS server: the message waited for the bound, not for DNS (${ms} ms, ${id3:-none})" \
	sh -c "[ -n '$id3' ] && [ $ms -ge 900 ] && [ $ms -lt 2400 ]"
w=$(stat smtpd.rdns_waited)
check "counted as a message that waited out the bound ($w)" test "$w" -ge 1
t_stop; check "clean stop" test $? -eq 0
mkdir -p "$T_DIR/bodies"
"$T_BUILD/tests/integration/queue-dump" -b "$T_DIR/bodies" "$T_DIR/spool" >"$T_DIR/dump" 2>&1
trace() { head -c 300 "$T_DIR/bodies/$1.eml" 2>/dev/null | tr -d '\r' | tr '\n\t' '  '; }
has() { trace "$1" | grep -qF "$2"; }
check "verified name in Received: $(trace "$id1" | cut -c1-60)" \
	has "$id1" "from named.client.test (sink.test [198.18.0.1])"
check "no PTR: unknown in Received: $(trace "$id2" | cut -c1-60)" \
	has "$id2" "from noptr.client.test (unknown [198.18.0.7])"
check "DNS down: unknown in Received: $(trace "$id3" | cut -c1-60)" \
	has "$id3" "from nodns.client.test (unknown [198.18.0.8])"
rm -rf "$T_DIR/spool"

# --- 3. the second server when the first is silent -----------------------------
# 198.18.0.3 is on the namespace's subnet but nobody has it: not even ARP
# answers, so the first server is silent, not refusing.
t_conf "[dns]
servers = 198.18.0.3, 198.18.0.1
timeout = 500ms
attempts = 2"
check "sluiced starts with a silent first server" t_start
check "dnsmasq up again" dnsmasq_up 198.18.0.1
t0=$(date +%s%N)
r=$(route pref.test)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the second server answers after the first's timeout ($r, ${ms} ms)" \
	sh -c "echo '$r' | grep -q '^ok - 198.18.0.21:25/10/' && [ $ms -ge 400 ]"
t_stop; check "clean stop" test $? -eq 0
dnsmasq_down

finish
