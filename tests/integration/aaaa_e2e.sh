#!/usr/bin/env bash
# aaaa_e2e.sh BUILD_DIR - delivery to IPv6 next hops over net_tap (issue 16,
# acceptance 1's delivery part). In the test's namespace:
#   - a dnsmasq listening ONLY on fd00:5c::1 (IPv6), the appliance's sole
#     DNS server ([dns] servers = [fd00:5c::1]:53): the resolver's UDP over
#     IPv6 through the dataplane;
#   - six.test: MX 10 mx.six.test, which has only an AAAA (fd00:5c::1);
#   - dual.test: MX 10 mx.dual.test with an A (198.18.0.1) and an AAAA
#     (fd00:5c::1); [delivery] prefer = ipv4 makes the A the first try, and
#     nothing listens on 198.18.0.1:25 (refused), so the IPv6 address is
#     the fallback within the same attempt;
#   - an aiosmtpd next hop (delivery_tools.py sink) listening only on
#     [fd00:5c::1]:25.
# Messages are submitted over IPv4 with swaks; every one must arrive at the
# sink (count and queue IDs checked), the mail log must show the IPv6 relay
# address, and nothing may be deferred. Last, a client on fd00:5c::7 (PTR
# client6.test, whose AAAA confirms it) gets its verified name in Received:
# the reverse lookup over ip6.arpa; and a 550 from the IPv6 next hop shows
# in the log and in the bounce (Remote-MTA, Diagnostic-Code, the relay's
# IPv6 text). Two worker lcores throughout.
set -u
. "$(dirname "$0")/lib.sh"
t_setup aaaa "$1"
. "$(dirname "$0")/relay_lib.sh"
ME6=fd00:5c::2
K6=fd00:5c::1
C6=fd00:5c::7	# an IPv6 client with a reverse name
N=${AAAA_MSGS:-10}	# messages per domain
DNSMASQ=
trap '[ -n "$DNSMASQ" ] && kill "$DNSMASQ" 2>/dev/null; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; t_teardown' EXIT

# netns.sh turns IPv6 off in the namespace; this suite needs it on the tap.
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
start6() {
	t_start || return 1
	ns sysctl -qw "net.ipv6.conf.$T_IF.disable_ipv6=0" || return 1
	ns ip -6 addr add $K6/64 dev "$T_IF" nodad || return 1
}
ping_ok() { ns ping -6 -c 1 -W 1 $ME6 >/dev/null 2>&1; }
dnsmasq_up() {
	ns dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
		--listen-address=$K6 --port=53 --local=/test/ --local-ttl=300 \
		--log-queries --log-facility="$T_DIR/dnsmasq.log" --pid-file="$T_DIR/dnsmasq.pid" \
		--mx-host=six.test,mx.six.test,10 --host-record=mx.six.test,$K6 \
		--mx-host=dual.test,mx.dual.test,10 --host-record=mx.dual.test,198.18.0.1,$K6 \
		--host-record=client6.test,$C6 \
		>"$T_DIR/dnsmasq.out" 2>&1 &
	DNSMASQ=$!
	wait_for 10 sh -c "ip netns exec '$T_NS' ss -lun | grep -q '\[$K6\]:53 '"
}

# Two worker lcores: the resolver's UDP replies and the delivery's TCP
# over IPv6 must be steered back to the lcore that owns the flow.
t_conf "[lcores]
workers = 2
[net]
address6 = $ME6/64
[dns]
servers = [$K6]:53
timeout = 500ms
attempts = 2
[delivery]
address_family = any
prefer = ipv4
[smtp]
hostname = sluice.test
reverse_lookup_wait = 2s
mynetworks = 198.18.0.0/24 $C6/128"
check "sluiced starts with address6 = $ME6/64 and an IPv6 DNS server" start6
wait_for 30 ping_ok
check "dnsmasq answers on [$K6]:53 only" dnsmasq_up
check "no DNS server listens on IPv4 ($(ns ss -lun | grep ':53 ' | awk '{print $4}' | tr '\n' ' '))" \
	sh -c "! ip netns exec '$T_NS' ss -lun | grep ':53 ' | grep -qv '\[$K6\]'"
listening6() { ns ss -ltn | grep -q " \[$K6\]:25 "; }
bg $TOOLS sink "$K6" 25 "$T_DIR/sink6" --rcpt-code bounce=550 --keep >"$T_DIR/sink6.out" 2>&1
check "an aiosmtpd next hop on [$K6]:25 only" wait_for 20 listening6
check "nothing listens on 198.18.0.1:25 (the IPv4 next hop refuses)" \
	sh -c "! ip netns exec '$T_NS' ss -ltn | grep -q ' 198.18.0.1:25 \| 0.0.0.0:25 '"

r=$("$T_CTL" -s "$T_SOCK" dns lookup mx.six.test aaaa 2>&1 | tr '\n' ' ')
check "sluicectl dns lookup mx.six.test aaaa: $r" sh -c "echo '$r' | grep -q '$K6'"
check "dnsmasq saw it from our IPv6 address" \
	grep -q "query\[AAAA\] mx.six.test from $ME6" "$T_DIR/dnsmasq.log"

r=$("$T_CTL" -s "$T_SOCK" --json route lookup dual.test 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["route"]
print(" ".join([r["status"]] + ["%s/%d/%s" % (h["addr"], h["port"], h["mx"]) for h in r["hops"]]))' \
	2>/dev/null)
check "dual.test routes IPv4 first (prefer = ipv4), IPv6 as the fallback: $r" \
	test "$r" = "ok 198.18.0.1/25/mx.dual.test $K6/25/mx.dual.test"

for i in $(seq 1 "$N"); do
	SW_TO=v6-$i@six.test sw six$i || fail "swaks to six.test #$i"
	SW_TO=dual-$i@dual.test sw dual$i || fail "swaks to dual.test #$i"
done
want=$((2 * N))
sent=$(wc -l <"$SENT")
check "$want messages queued ($sent)" test "$sent" -eq "$want"
all_in() { [ "$(sink_lines "$T_DIR/sink6")" -ge "$want" ]; }
check "all $want arrived at the IPv6-only sink" wait_for 60 all_in
got=$(/usr/bin/python3 -c '
import json, sys
print(" ".join(sorted(json.loads(l)["qid"] for l in open(sys.argv[1]))))' "$T_DIR/sink6/msgs.log")
exp=$(cut -d' ' -f1 "$SENT" | sort | tr '\n' ' ' | sed 's/ $//')
check "the sink holds exactly the queued IDs, once each" test "$got" = "$exp"
# aiosmtpd's Controller connects to itself once at start (from $K6)
ours=$(grep -c "^+ .* $ME6\$" "$T_DIR/sink6/conns.log")
other=$(grep '^+' "$T_DIR/sink6/conns.log" | awk '{print $3}' | grep -vx "$ME6" | sort | uniq -c |
	tr -s ' ' | tr '\n' ';')
check "the sessions came from our IPv6 address ($ours; others: ${other:-none})" \
	sh -c "[ $ours -ge 1 ] && { [ -z '$other' ] || [ '$other' = ' 1 $K6;' ]; }"
n6=$(grep -c "relay=mx.six.test\[$K6\]:25, .*status=sent" "$T_LOG")
check "the log shows relay=mx.six.test[$K6]:25 for all $N to six.test ($n6)" test "$n6" -eq "$N"
nd=$(grep -c "relay=mx.dual.test\[$K6\]:25, .*status=sent" "$T_LOG")
check "dual.test: delivered over IPv6 after the IPv4 address refused ($nd of $N)" test "$nd" -eq "$N"
ref=$(stat delivery.connect_refused); fo=$(stat delivery.hop_failovers)
check "the IPv4 next hop was tried first and refused ($ref refused, $fo failovers)" \
	test "$ref" -ge 1 -a "$fo" -ge 1
def=$(grep -c 'status=deferred' "$T_LOG")
check "nothing deferred ($def)" test "$def" -eq 0
check "drained" wait_for 30 drained
q=$(grep -c "query\[AAAA\] mx.dual.test from $ME6" "$T_DIR/dnsmasq.log")
check "the AAAA of mx.dual.test was asked over IPv6 ($q queries)" test "$q" -ge 1

# An IPv6 client's verified reverse name in Received.
ns ip -6 addr add $C6/64 dev "$T_IF" nodad
out=$(ns timeout 60 swaks -6 --server $ME6 --local-interface $C6 --helo c6.test \
	--from c6@example.org --to rdns@six.test 2>&1)
id6=$(printf '%s\n' "$out" | sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-Z]*\).*/\1/p')
check "a message from [$C6] queued (${id6:-none})" test -n "$id6"
from6() { grep -q "\"qid\": \"$id6\"" "$T_DIR/sink6/msgs.log" 2>/dev/null; }
check "it arrived at the sink" wait_for 30 from6
rec=$(grep "\"qid\": \"$id6\"" "$T_DIR/sink6/msgs.log" | /usr/bin/python3 -c '
import json, sys
print(json.loads(sys.stdin.readline())["received"].replace("\r\n", " "))' 2>/dev/null)
check "Received names it: $(echo "$rec" | cut -c1-70)" \
	sh -c "echo '$rec' | grep -qF 'from c6.test (client6.test [IPv6:$C6])'"
check "the PTR was asked over ip6.arpa" grep -q "query\[PTR\] 7\.0\.0\.0.*ip6\.arpa from $ME6" \
	"$T_DIR/dnsmasq.log"
n=$(stat smtpd.rdns_named)
check "counted as a verified name ($n)" test "$n" -ge 1

# A 550 from the IPv6 next hop: the log and the bounce (delivered back to
# the same sink) carry the IPv6 relay and its reply.
out=$(ns timeout 60 swaks --server $HOST --helo b.test --from back@six.test --to bounce@six.test 2>&1)
idb=$(printf '%s\n' "$out" | sed -n 's/^<[~-]  *250 2\.0\.0 Ok: queued as \([0-9A-Z]*\).*/\1/p')
check "a message to a user the next hop refuses queued (${idb:-none})" test -n "$idb"
bounced() { grep -q "$idb: to=<bounce@six.test>, relay=mx.six.test\[$K6\]:25, .*status=bounced (host mx.six.test\[$K6\] said: 550" "$T_LOG"; }
check "the log: relay=mx.six.test[$K6]:25 ... status=bounced (host mx.six.test[$K6] said: 550 ...)" \
	wait_for 30 bounced
dsn_in() { grep -q '"from": "<>", "rcpts": \["back@six.test"\]' "$T_DIR/sink6/msgs.log"; }
check "the bounce reached the sender's domain over IPv6" wait_for 30 dsn_in
grep '"from": "<>", "rcpts": \["back@six.test"\]' "$T_DIR/sink6/msgs.log" | head -n 1 |
	/usr/bin/python3 -c 'import base64, json, sys; sys.stdout.write(base64.b64decode(json.loads(sys.stdin.readline())["raw"]).decode("latin-1"))' \
	>"$T_DIR/dsn.eml" 2>/dev/null
check "its Remote-MTA is dns; mx.six.test" grep -q "^Remote-MTA: dns; mx.six.test" "$T_DIR/dsn.eml"
check "its Diagnostic-Code is the IPv6 hop's 550" grep -q "^Diagnostic-Code: smtp; 550 5.1.1" "$T_DIR/dsn.eml"
check "its text names the IPv6 relay" grep -q "mx.six.test\[$K6\]" "$T_DIR/dsn.eml"
m=$(stat steer.misrouted)
check "no frame reached a stack that does not own its flow (misrouted $m)" test "$m" -eq 0
t_stop; check "clean stop" test $? -eq 0

grep -q "worker 1" "$T_LOG"; check "two workers ran" test $? -eq 0
finish
