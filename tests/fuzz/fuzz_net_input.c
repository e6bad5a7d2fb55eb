/*
 * fuzz_net_input.c - libFuzzer harness: arbitrary frames into net_input()
 * of a stack with TCP listening (and one active open in flight).
 *
 * The input is a sequence of records: [op][len lo][len hi][len bytes].
 * op bit 0: make the frame reach TCP (our MAC/IP as destination, the peer as
 *           source, IPv4 header and TCP/IP checksums fixed up), so the fuzzer
 *           spends its time in the TCP state machine rather than on checksums;
 * op bit 1: after the frame, advance the clock by (op >> 2) * 13 ms and run
 *           the timers.
 * The application echoes a line per data callback, closes on 'Q', aborts on
 * 'A', and stops reading on 'H'. After the input, the clock runs for 20
 * minutes of simulated time in 100 s steps (every timer fires, late), the
 * stack is destroyed, and
 * every mbuf must be back in the pool: a leak aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>

#include "common/clock.h"
#include "dataplane/net/net_stack.h"
#include "dataplane/net/tcp.h"
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

static void fix_frame(uint8_t *f, unsigned len)
{
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
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = PEER_IP;
	ip->dst_addr = OUR_IP;
	ip->total_length = rte_cpu_to_be_16((uint16_t)iplen);
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	if (iplen >= sizeof(*ip) + sizeof(struct rte_tcp_hdr)) {
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
	tcp_stack_destroy(ts);
	net_stack_fini(&ns);
	if (heap_mempool_avail(pool) != POOL_N)
		abort();	/* mbuf leak */
	return 0;
}
