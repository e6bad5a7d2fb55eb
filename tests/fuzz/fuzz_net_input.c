/*
 * fuzz_net_input.c - libFuzzer harness: arbitrary frames into net_input()
 * of a stack with TCP listening (and one active open in flight) and UDP
 * sockets open (an unconnected echo on port 53, a connected socket on an
 * ephemeral port talking to the peer's port 5353, port unreachable for the
 * rest).
 *
 * The input is a sequence of records: [op][len lo][len hi][len bytes].
 * op bit 0: make the frame reach TCP, or UDP when the frame's IP protocol
 *           byte says 17, or ICMP when it says 1 (our MAC/IP as destination,
 *           the peer as source, IPv4 header and the TCP, UDP or ICMP
 *           checksum fixed up; a UDP checksum field of zero is left alone:
 *           "no checksum"; an ICMP error's quoted IPv4 header gets our
 *           address as source and the peer's as destination, so that
 *           "fragmentation needed" reaches TCP's checks), so the fuzzer
 *           spends its time in the protocols rather than on checksums;
 *           A frame whose Ethernet type says IPv6 is fixed up as IPv6
 *           instead (fd00:5c::9 to our fd00:5c::2, or to a multicast
 *           destination when it has one; the hop limit is left as it is,
 *           so ND's 255 rule is exercised; the ICMPv6 or TCP checksum right
 *           after the fixed header fixed; a "packet too big" quotes us);
 * op bit 1: after the frame, advance the clock by (op >> 2) * 13 ms and run
 *           the timers.
 * The application echoes a line per data callback, closes on 'Q', aborts on
 * 'A', and stops reading on 'H'. The UDP echo answers every datagram, and
 * one starting with 'C' closes the socket it came to and opens it again
 * (the connected one on a new ephemeral port). After the input, the clock runs for 20
 * minutes of simulated time in 100 s steps (every timer fires, late), the
 * stack is destroyed, and
 * every mbuf must be back in the pool: a leak aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "common/clock.h"
#include "dataplane/net/ipv6.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/net/udp.h"
#include "tests/support/heap_mempool.h"

#define POOL_N 2048
#define MAX_FRAME 1600

static struct rte_mempool *pool;
static const struct rte_ether_addr our_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };
static const struct rte_ether_addr peer_mac = { { 0x02, 0, 0, 0, 0, 0x09 } };
#define OUR_IP RTE_BE32(0xC6120002)	/* 198.18.0.2 */
#define PEER_IP RTE_BE32(0xC6120009)	/* 198.18.0.9 */

static void tx_drop(void *ctx, struct rte_mbuf *m)
{
	(void)ctx;
	rte_pktmbuf_free(m);
}

static bool f_accept(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	(void)c;
	return true;
}

static void f_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	(void)user;
	if (!m) {
		tcp_close(c);
		return;
	}
	uint32_t len = m->pkt_len;
	uint8_t first = len ? *rte_pktmbuf_mtod(m, uint8_t *) : 0;
	rte_pktmbuf_free(m);
	if (first == 'A') {
		tcp_abort(c);
		return;
	}
	if (first != 'H')
		tcp_recved(c, len);
	tcp_send(c, "250 2.0.0 ok\r\n", 14);
	if (first == 'Q')
		tcp_close(c);
}

static void f_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	(void)user;
	(void)why;
}

static const struct tcp_callbacks cbs = {
	.accept = f_accept, .data = f_data, .closed = f_closed,
};

/* UDP: the sockets, reopened by 'C' datagrams. */
static struct udp_stack *fus;
static struct udp_sock *u_echo, *u_conn;

static bool port_odd(void *ctx, const struct net_addr *laddr, rte_be16_t lport,
		     const struct net_addr *raddr, rte_be16_t rport)
{
	(void)ctx;
	(void)laddr;
	(void)raddr;
	(void)rport;
	return rte_be_to_cpu_16(lport) & 1;	/* "replies hash back" for half */
}

static void u_readable(struct udp_sock *s, void *user);

static void u_open(bool connected)
{
	struct udp_sock **sp = connected ? &u_conn : &u_echo;
	int rc = connected ? udp_open(fus, 0, PEER_IP, RTE_BE16(5353), sp)
			   : udp_open(fus, RTE_BE16(53), 0, 0, sp);
	if (rc != 0)
		abort();
	if (connected && !(rte_be_to_cpu_16(udp_local_port(*sp)) & 1))
		abort();	/* port_ok not honoured */
	udp_set_callback(*sp, u_readable, NULL);
}

static void u_readable(struct udp_sock *s, void *user)
{
	uint8_t buf[2048];
	rte_be32_t from;
	rte_be16_t fport;
	int n;

	(void)user;
	while ((n = udp_recv(s, buf, sizeof(buf), &from, &fport)) >= 0) {
		struct iovec v = { buf, (size_t)n };
		if (n > 0 && buf[0] == 'C') {
			bool connected = s == u_conn;
			udp_close(s);
			u_open(connected);
			return;
		}
		udp_send(s, s == u_conn ? 0 : from, s == u_conn ? 0 : fport, &v, 1);
	}
}

static uint16_t ipv6_l4_cksum_flat(const uint8_t *p, unsigned len, const uint8_t *src,
				   const uint8_t *dst, uint8_t proto)
{
	uint32_t sum = rte_raw_cksum(p, len) + ipv6_addr_sum(src, dst) +
		       rte_cpu_to_be_16(proto) + rte_cpu_to_be_16((uint16_t)len);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static const uint8_t our_ip6[16] = { 0xfd, 0x00, 0x00, 0x5c, [15] = 2 };
static const uint8_t peer_ip6[16] = { 0xfd, 0x00, 0x00, 0x5c, [15] = 9 };

static void fix_frame6(uint8_t *f, unsigned len)
{
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)f;
	struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eh + 1);
	unsigned plen = len - (unsigned)(sizeof(*eh) + sizeof(*ip));

	eh->src_addr = peer_mac;
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16((uint16_t)plen);
	memcpy(ip->src_addr, peer_ip6, 16);
	if (ip->dst_addr[0] == 0xff) {
		ipv6_mcast_mac(ip->dst_addr, &eh->dst_addr);
	} else {
		eh->dst_addr = our_mac;
		memcpy(ip->dst_addr, our_ip6, 16);
	}
	uint8_t *l4 = (uint8_t *)(ip + 1);
	unsigned at;
	if (ip->proto == IPPROTO_ICMPV6 && plen >= 4) {
		if (l4[0] == 2 && plen >= 8 + sizeof(*ip)) {	/* packet too big */
			struct rte_ipv6_hdr *q = (struct rte_ipv6_hdr *)(l4 + 8);
			memcpy(q->src_addr, our_ip6, 16);
			memcpy(q->dst_addr, peer_ip6, 16);
		}
		at = 2;
	} else if (ip->proto == IPPROTO_TCP && plen >= sizeof(struct rte_tcp_hdr)) {
		at = 16;
	} else {
		return;
	}
	l4[at] = l4[at + 1] = 0;
	uint16_t ck = ipv6_l4_cksum_flat(l4, plen, ip->src_addr, ip->dst_addr, ip->proto);
	memcpy(l4 + at, &ck, 2);
}

static void fix_frame(uint8_t *f, unsigned len)
{
	if (len >= sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv6_hdr) &&
	    f[12] == 0x86 && f[13] == 0xdd) {
		fix_frame6(f, len);
		return;
	}
	if (len < sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr))
		return;
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)f;
	eh->dst_addr = our_mac;
	eh->src_addr = peer_mac;
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
	unsigned iplen = len - (unsigned)sizeof(*eh);
	ip->version_ihl = 0x45;
	ip->fragment_offset = 0;
	ip->time_to_live = 64;
	bool udp = ip->next_proto_id == IPPROTO_UDP;
	bool icmp = ip->next_proto_id == IPPROTO_ICMP;
	ip->next_proto_id = udp ? IPPROTO_UDP : icmp ? IPPROTO_ICMP : IPPROTO_TCP;
	ip->src_addr = PEER_IP;
	ip->dst_addr = OUR_IP;
	ip->total_length = rte_cpu_to_be_16((uint16_t)iplen);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	if (icmp && iplen >= sizeof(*ip) + 8) {
		uint8_t *ic = (uint8_t *)(ip + 1);
		unsigned iclen = iplen - (unsigned)sizeof(*ip);
		/* an error quoting one of our datagrams: the quote from us */
		if (iclen >= 8 + sizeof(*ip) && (ic[8] >> 4) == 4) {
			struct rte_ipv4_hdr *q = (struct rte_ipv4_hdr *)(ic + 8);
			q->src_addr = OUR_IP;
			q->dst_addr = PEER_IP;
		}
		ic[2] = ic[3] = 0;
		uint16_t ck = (uint16_t)~rte_raw_cksum(ic, iclen);
		memcpy(ic + 2, &ck, 2);
		return;
	}
	if (udp && iplen >= sizeof(*ip) + sizeof(struct rte_udp_hdr)) {
		struct rte_udp_hdr *uh = (struct rte_udp_hdr *)(ip + 1);
		unsigned ulen = rte_be_to_cpu_16(uh->dgram_len);
		uint32_t sum;
		/* Over the UDP length when it is sane (else the length check
		 * drops it anyway); a zero field means "none": keep it. */
		if (uh->dgram_cksum == 0 || ulen < sizeof(*uh) || ulen > iplen - sizeof(*ip))
			return;
		uh->dgram_cksum = 0;
		sum = rte_raw_cksum(uh, ulen);
		sum += rte_raw_cksum(&ip->src_addr, 8);
		sum += rte_cpu_to_be_16(IPPROTO_UDP) + rte_cpu_to_be_16((uint16_t)ulen);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		uh->dgram_cksum = (uint16_t)~sum ? (uint16_t)~sum : 0xffff;
	} else if (!udp && iplen >= sizeof(*ip) + sizeof(struct rte_tcp_hdr)) {
		struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);
		th->cksum = 0;
		th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pool) {
		pool = heap_mempool_create("fuzz", POOL_N, RTE_MBUF_DEFAULT_BUF_SIZE);
		if (!pool)
			abort();
	}
	struct net_addr_conf addr = {
		.mac = our_mac, .ip = OUR_IP, .netmask = RTE_BE32(0xFFFFFF00),
		.gateway = 0, .mtu = 1500,
		.ip6_ok = true, .ip6 = { 0xfd, 0x00, 0x00, 0x5c, [15] = 2 }, .prefix6 = 64,
	};
	struct arp_conf ac;
	arp_conf_default(&ac);
	struct net_stack ns;
	if (net_stack_init(&ns, &addr, pool, tx_drop, NULL, &ac) < 0)
		abort();
	ns.now_ns = 1000 * NS_PER_SEC;
	arp_cache_learn(&ns.arp, PEER_IP, &peer_mac, ns.now_ns, true);
	struct tcp_conf cf;
	tcp_conf_default(&cf);
	cf.max_conns = 16;
	cf.backlog = 2;
	cf.sndbuf = 4096;
	cf.rcvbuf = 4096;
	cf.ooo_max_segs = 4;
	cf.challenge_ack_limit = 5;
	memset(cf.secret, 0x42, sizeof(cf.secret));
	struct tcp_stack *ts = tcp_stack_create(&ns, &cf);
	if (!ts)
		abort();
	tcp_listen(ts, RTE_BE16(25), &cbs, NULL);
	struct tcp_conn *act = tcp_connect(ts, PEER_IP, RTE_BE16(2525), &cbs, NULL);
	if (act)
		tcp_send(act, "EHLO fuzz\r\n", 11);
	struct udp_conf uc;
	udp_conf_default(&uc);
	uc.max_socks = 4;
	uc.rxq_dgrams = 4;
	uc.rxq_bytes = 4096;
	uc.rxq_mbufs = 12;
	uc.icmp_rate = 5;
	uc.icmp_burst = 2;
	uc.port_ok = port_odd;
	memset(uc.secret, 0x17, sizeof(uc.secret));
	fus = udp_stack_create(&ns, &uc);
	if (!fus)
		abort();
	u_open(false);
	u_open(true);
	{
		struct iovec q = { "query", 5 };
		if (udp_send(u_conn, 0, 0, &q, 1) != 5)
			abort();
	}

	size_t i = 0;
	while (i + 3 <= size) {
		uint8_t op = data[i];
		unsigned len = (unsigned)data[i + 1] | (unsigned)data[i + 2] << 8;
		i += 3;
		if (len > size - i)
			len = (unsigned)(size - i);
		if (len > MAX_FRAME)
			len = MAX_FRAME;
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		if (!m)
			abort();
		uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
		if (len && !p)
			abort();
		if (len)
			memcpy(p, data + i, len);
		i += len;
		if (op & 1)
			fix_frame(p, len);
		net_input(&ns, m);
		if (op & 2) {
			ns.now_ns += (uint64_t)(op >> 2) * 13 * NS_PER_MS;
			tcp_tick(ts);
			net_tick(&ns);
		}
	}
	for (int k = 0; k < 12; k++) {
		ns.now_ns += 100 * NS_PER_SEC;
		tcp_tick(ts);
		net_tick(&ns);
	}
	if (udp_stack_sock_count(fus) != 2)
		abort();	/* the echo and the connected socket, always */
	udp_stack_destroy(fus);
	fus = NULL;
	tcp_stack_destroy(ts);
	net_stack_fini(&ns);
	if (heap_mempool_avail(pool) != POOL_N)
		abort();	/* mbuf leak */
	return 0;
}
