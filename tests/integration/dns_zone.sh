#!/usr/bin/env bash
# dns_zone.sh LISTEN_IP DIR [quiet] - a dnsmasq serving the test zones of
# dns_e2e.sh (and `make run`'s .test names) on LISTEN_IP:53, in the
# foreground, logging every query to DIR/dnsmasq-LISTEN_IP.log (not with
# quiet, which the bench uses: logging costs dnsmasq most of its time). Nothing is
# forwarded anywhere: no upstream servers, no /etc/hosts, /etc/resolv.conf.
#
#   pref.test     MX 10 mx-a, 20 mx-b, 30 mx-c    (listed out of order)
#   equal.test    MX 10 e1, 10 e2, 10 e3          (equal preferences)
#   nomx.test     A only                          (implicit MX)
#   nullmx.test   MX 0 .                          (RFC 7505)
#   nope.test     nothing                         (NXDOMAIN)
#   servfail.test forwarded to a server that never answers (temporary)
#   cname.test    MX 10 alias.test -> CNAME alias2.test -> CNAME realhost.test
#   big.test      40 MX records with long names   (truncated over UDP: TCP)
#   ttl0.test     A with TTL 0
#   *.bench.test  any name: 198.18.0.99           (the resolver bench)
#   sink.test     MX 10 sink.test, A 198.18.0.1   (make run's next hop)
#   *.18.198.in-addr.arpa  the PTRs of the host records; others NXDOMAIN
# Other records have a TTL of 300 s (--local-ttl).
set -u
ip=$1 dir=$2 quiet=${3:-}
args=(--keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address="$ip"
	--port=53 --local=/test/ --local=/18.198.in-addr.arpa/ --local-ttl=300
	--log-facility="$dir/dnsmasq-$ip.log" --pid-file="$dir/dnsmasq-$ip.pid"
	--mx-host=pref.test,mx-b.pref.test,20 --mx-host=pref.test,mx-a.pref.test,10
	--mx-host=pref.test,mx-c.pref.test,30
	--host-record=mx-a.pref.test,198.18.0.21 --host-record=mx-b.pref.test,198.18.0.22
	--host-record=mx-c.pref.test,198.18.0.23
	--mx-host=equal.test,e1.equal.test,10 --mx-host=equal.test,e2.equal.test,10
	--mx-host=equal.test,e3.equal.test,10
	--host-record=e1.equal.test,198.18.0.31 --host-record=e2.equal.test,198.18.0.32
	--host-record=e3.equal.test,198.18.0.33
	--host-record=nomx.test,198.18.0.41
	--dns-rr=nullmx.test,15,000000
	--server=/servfail.test/198.18.0.250
	--cname=alias.test,alias2.test --cname=alias2.test,realhost.test
	--host-record=realhost.test,198.18.0.51 --mx-host=cname.test,alias.test,10
	--host-record=ttl0.test,198.18.0.61,0
	--address=/bench.test/198.18.0.99
	--mx-host=sink.test,sink.test,10 --host-record=sink.test,198.18.0.1)
for i in $(seq 1 40); do
	args+=(--mx-host="big.test,mx-with-a-rather-long-name-number-$i.big-mail-provider.test,$i")
	args+=(--host-record="mx-with-a-rather-long-name-number-$i.big-mail-provider.test,198.18.1.$i")
done
[ "$quiet" = quiet ] || args+=(--log-queries)
exec dnsmasq "${args[@]}"
