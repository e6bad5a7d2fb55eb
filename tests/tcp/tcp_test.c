/*
 * tcp_test.c - helpers for the TCP suites. See tcp_test.h.
 */
#include "tests/tcp/tcp_test.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>

#include "tests/support/heap_mempool.h"

rte_be32_t tip(const char *dotted)
{
	struct in_addr a;
	if (inet_pton(AF_INET, dotted, &a) != 1)
		abort();
	return a.s_addr;
}

static struct rte_ether_addr mac_of(uint8_t last)
{
	struct rte_ether_addr m = { { 0x02, 0, 0, 0, 0, last } };
	return m;
}

static void capture(void *ctx, struct rte_mbuf *m)
{
	struct tnode *n = ctx;
	if (n->ntx == TNODE_MAX_TX) {
		n->tx_dropped++;
		rte_pktmbuf_free(m);
		return;
	}
	n->tx[n->ntx++] = m;
}

void tconf(struct tcp_conf *c)
{
	tcp_conf_default(c);
	c->max_conns = 256;
	for (unsigned i = 0; i < 16; i++)
		c->secret[i] = (uint8_t)(0xA5 ^ i * 17);
}

void tnode_init(struct tnode *n, const char *name, const char *ip, uint8_t mac_last,
		const struct tcp_conf *conf)
{
	memset(n, 0, sizeof(*n));
	struct net_addr_conf a = {
		.mac = mac_of(mac_last),
		.ip = tip(ip),
		.netmask = tip("255.255.255.0"),
		.gateway = 0,
		.mtu = 1500,
		/* IPv6 as well: fd00:5c::<mac_last>/64 (TNODE_IP6) */
		.ip6_ok = true,
		.ip6 = { 0xfd, 0x00, 0x00, 0x5c, [15] = mac_last },
		.prefix6 = 64,
	};
	struct arp_conf ac;
	arp_conf_default(&ac);
	ac.reachable_ns = 1000000ull * NS_PER_SEC;
	n->pool = heap_mempool_create(name, TNODE_POOL, RTE_MBUF_DEFAULT_BUF_SIZE);
	if (!n->pool || net_stack_init(&n->ns, &a, n->pool, capture, n, &ac) < 0)
		abort();
	n->ns.now_ns = T0_NS;
	struct tcp_conf def;
	if (!conf) {
		tconf(&def);
		conf = &def;
	}
	n->ts = tcp_stack_create(&n->ns, conf);
	if (!n->ts)
		abort();
}

void tnode_clear(struct tnode *n)
{
	for (unsigned i = 0; i < n->ntx; i++)
		rte_pktmbuf_free(n->tx[i]);
	n->ntx = 0;
}

unsigned tnode_fini(struct tnode *n)
{
	tcp_stack_destroy(n->ts);
	tnode_clear(n);
	net_stack_fini(&n->ns);
	unsigned out = TNODE_POOL - heap_mempool_avail(n->pool);
	heap_mempool_free(n->pool);
	return out;
}

void tnode_learn(struct tnode *n, const char *ip, uint8_t mac_last)
{
	struct rte_ether_addr m = mac_of(mac_last);
	if (!arp_cache_learn(&n->ns.arp, tip(ip), &m, n->ns.now_ns, true))
		abort();
}

void tadvance(struct tnode *n, uint64_t ns)
{
	n->ns.now_ns += ns;
	tcp_tick(n->ts);
}

void tinject(struct tnode *n, const char *src, const struct tseg *s)
{
	uint8_t buf[4096];
	struct rte_ether_hdr *eh = (struct rte_ether_hdr *)buf;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
	uint8_t *th = (uint8_t *)(ip + 1);
	eh->dst_addr = n->ns.addr.mac;
	eh->src_addr = mac_of(9);
	eh->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	unsigned olen = s->optlen;
	unsigned hlen = 20 + ((olen + 3) & ~3u);
	memset(th, 0, hlen);
	struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)th;
	t->src_port = rte_cpu_to_be_16(s->sport);
	t->dst_port = rte_cpu_to_be_16(s->dport);
	t->sent_seq = rte_cpu_to_be_32(s->seq);
	t->recv_ack = rte_cpu_to_be_32(s->ack);
	t->data_off = (uint8_t)((s->doff_override ? s->doff_override : hlen / 4) << 4);
	t->tcp_flags = s->flags;
	t->rx_win = rte_cpu_to_be_16(s->wnd);
	if (olen)
		memcpy(th + 20, s->opts, olen);
	if (s->len)
		memcpy(th + hlen, s->data, s->len);
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + hlen + s->len));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = tip(src);
	ip->dst_addr = n->ns.addr.ip;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	t->cksum = rte_ipv4_udptcp_cksum(ip, t);
	if (s->partial_cksum)
		t->cksum = rte_ipv4_phdr_cksum(ip, 0);
	if (s->bad_cksum)
		t->cksum ^= 0x1234;
	unsigned flen = (unsigned)(sizeof(*eh) + sizeof(*ip) + hlen + s->len);
	struct rte_mbuf *m = rte_pktmbuf_alloc(n->pool);
	if (!m)
		abort();
	memcpy(rte_pktmbuf_append(m, (uint16_t)flen), buf, flen);
	m->ol_flags |= s->ol_flags;
	net_input(&n->ns, m);
}

static bool parse(struct rte_mbuf *m, struct tout *o)
{
	const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ether_hdr *eh = (const void *)p;
	if (eh->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return false;
	const struct rte_ipv4_hdr *ip = (const void *)(eh + 1);
	if (ip->next_proto_id != IPPROTO_TCP)
		return false;
	const uint8_t *th = (const uint8_t *)ip + rte_ipv4_hdr_len(ip);
	const struct rte_tcp_hdr *t = (const void *)th;
	unsigned tot = rte_be_to_cpu_16(ip->total_length) - rte_ipv4_hdr_len(ip);
	unsigned doff = (t->data_off >> 4) * 4u;
	memset(o, 0, sizeof(*o));
	o->seq = rte_be_to_cpu_32(t->sent_seq);
	o->ack = rte_be_to_cpu_32(t->recv_ack);
	o->flags = t->tcp_flags;
	o->wnd = rte_be_to_cpu_16(t->rx_win);
	o->sport = rte_be_to_cpu_16(t->src_port);
	o->dport = rte_be_to_cpu_16(t->dst_port);
	o->dst = ip->dst_addr;
	if (tcp_opt_parse(th + 20, doff - 20, t->tcp_flags & TCP_SYN, &o->opt) != TCP_OPT_OK)
		abort();
	o->len = (uint16_t)(tot - doff);
	memcpy(o->data, th + doff, o->len);
	/* checksum must verify */
	{
		uint8_t copy[2048];
		memcpy(copy, th, tot);
		((struct rte_tcp_hdr *)copy)->cksum = 0;
		if (rte_ipv4_udptcp_cksum(ip, copy) != t->cksum)
			abort();
	}
	return true;
}

bool tpop(struct tnode *n, struct tout *o)
{
	while (n->ntx) {
		struct rte_mbuf *m = n->tx[0];
		memmove(&n->tx[0], &n->tx[1], (n->ntx - 1) * sizeof(n->tx[0]));
		n->ntx--;
		bool ok = parse(m, o);
		rte_pktmbuf_free(m);
		if (ok)
			return true;
	}
	return false;
}

unsigned tpending(const struct tnode *n) { return n->ntx; }

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

unsigned topts_syn(uint8_t *p, uint16_t mss, int ws, bool sack, bool ts, uint32_t tsval,
		   uint32_t tsecr)
{
	unsigned n = 0;
	if (mss) {
		p[n++] = 2; p[n++] = 4; p[n++] = (uint8_t)(mss >> 8); p[n++] = (uint8_t)mss;
	}
	if (sack) {
		p[n++] = 1; p[n++] = 1; p[n++] = 4; p[n++] = 2;
	}
	if (ts) {
		p[n++] = 1; p[n++] = 1; p[n++] = 8; p[n++] = 10;
		put32(p + n, tsval); put32(p + n + 4, tsecr); n += 8;
	}
	if (ws >= 0) {
		p[n++] = 1; p[n++] = 3; p[n++] = 3; p[n++] = (uint8_t)ws;
	}
	return n;
}

unsigned topts_ts(uint8_t *p, uint32_t tsval, uint32_t tsecr)
{
	return topts_syn(p, 0, -1, false, true, tsval, tsecr);
}

/* ---- recording application ---- */

static bool a_accept(void *lctx, struct tcp_conn *c)
{
	struct tapp *a = lctx;
	a->accepted++;
	if (a->refuse)
		return false;
	a->conn = c;
	tcp_set_user(c, a);
	return true;
}

static void a_connected(struct tcp_conn *c, void *user)
{
	struct tapp *a = user;
	a->connected++;
	a->conn = c;
}

static void a_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct tapp *a = user;
	a->data_calls++;
	if (!m) {
		a->eof++;
		if (a->close_on_eof)
			tcp_close(c);
		return;
	}
	uint32_t len = m->pkt_len;
	for (struct rte_mbuf *s = m; s; s = s->next) {
		if (a->rxlen + s->data_len > a->rxcap)
			abort();
		memcpy(a->rx + a->rxlen, rte_pktmbuf_mtod(s, void *), s->data_len);
		a->rxlen += s->data_len;
	}
	rte_pktmbuf_free(m);
	if (!a->manual_recved)
		tcp_recved(c, len);
}

static void a_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	struct tapp *a = user;
	a->writable++;
}

static void a_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	(void)c;
	struct tapp *a = user;
	a->closed++;
	a->reason = why;
	a->conn = NULL;
}

static void a_timer(struct tcp_conn *c, void *user)
{
	struct tapp *a = user;
	a->timers++;
	if (a->timer_rearm_ns)
		tcp_set_timer(c, c->ts->now + a->timer_rearm_ns);
}

const struct tcp_callbacks tapp_cb = {
	.timer = a_timer,
	.accept = a_accept,
	.connected = a_connected,
	.data = a_data,
	.writable = a_writable,
	.closed = a_closed,
};

void tapp_init(struct tapp *a, size_t rxcap)
{
	memset(a, 0, sizeof(*a));
	a->rx = malloc(rxcap ? rxcap : 1);
	a->rxcap = rxcap;
}

void tapp_fini(struct tapp *a)
{
	free(a->rx);
	a->rx = NULL;
}

/* ---- two stacks back to back ---- */

uint64_t trand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13; x ^= x >> 7; x ^= x << 17;
	*s = x;
	return x;
}

void twire_init(struct twire *w, uint64_t seed, const struct tcp_conf *ca,
		const struct tcp_conf *cb)
{
	memset(w, 0, sizeof(*w));
	w->rng = seed ? seed : 1;
	tnode_init(&w->a, "wire_a", "198.18.0.2", 2, ca);
	tnode_init(&w->b, "wire_b", "198.18.0.3", 3, cb);
	tnode_learn(&w->a, "198.18.0.3", 3);
	tnode_learn(&w->b, "198.18.0.2", 2);
}

unsigned twire_fini(struct twire *w)
{
	/* destroy both stacks before counting: frames cross pools */
	tcp_stack_destroy(w->a.ts);
	tcp_stack_destroy(w->b.ts);
	w->a.ts = w->b.ts = NULL;
	tnode_clear(&w->a);
	tnode_clear(&w->b);
	net_stack_fini(&w->a.ns);
	net_stack_fini(&w->b.ns);
	unsigned out = (TNODE_POOL - heap_mempool_avail(w->a.pool)) +
		       (TNODE_POOL - heap_mempool_avail(w->b.pool));
	heap_mempool_free(w->a.pool);
	heap_mempool_free(w->b.pool);
	return out;
}

static unsigned move(struct twire *w, struct tnode *from, struct tnode *to)
{
	unsigned n = from->ntx;
	if (n == 0)
		return 0;
	struct rte_mbuf **batch = malloc(n * sizeof(*batch));
	memcpy(batch, from->tx, n * sizeof(*batch));
	from->ntx = 0;
	for (unsigned i = 0; i + 1 < n; i++) {
		if (w->reorder_pm && trand(&w->rng) % 1000 < w->reorder_pm) {
			struct rte_mbuf *t = batch[i];
			batch[i] = batch[i + 1];
			batch[i + 1] = t;
			w->reordered++;
			i++;
		}
	}
	static int trace = -1;
	if (trace < 0)
		trace = getenv("TCP_WIRE_TRACE") != NULL;
	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *m = batch[i];
		bool lose = w->loss_pm && trand(&w->rng) % 1000 < w->loss_pm;
		if (trace) {
			const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
			const struct rte_tcp_hdr *th = (const void *)(p + 34);
			struct tcp_opts o;
			unsigned doff = (th->data_off >> 4) * 4u;
			tcp_opt_parse(p + 54, doff - 20, th->tcp_flags & TCP_SYN, &o);
			fprintf(stderr, "%llu %s %u>%u %s%s%s%s seq %u ack %u len %u wnd %u ts %u/%u sack %u",
				(unsigned long long)(from->ns.now_ns / 1000000),
				lose ? "LOST" : "    ",
				rte_be_to_cpu_16(th->src_port), rte_be_to_cpu_16(th->dst_port),
				th->tcp_flags & TCP_SYN ? "S" : "", th->tcp_flags & TCP_FIN ? "F" : "",
				th->tcp_flags & TCP_RST ? "R" : "", th->tcp_flags & TCP_ACK ? "." : "",
				rte_be_to_cpu_32(th->sent_seq), rte_be_to_cpu_32(th->recv_ack),
				(unsigned)(m->pkt_len - 34 - doff), rte_be_to_cpu_16(th->rx_win),
				o.tsval, o.tsecr, o.nsack);
			for (unsigned k = 0; k < o.nsack; k++)
				fprintf(stderr, " [%u,%u)", o.sack[k].start, o.sack[k].end);
			fprintf(stderr, "\n");
		}
		if (lose) {
			w->lost++;
			rte_pktmbuf_free(m);
			continue;
		}
		if (w->dup_pm && trand(&w->rng) % 1000 < w->dup_pm) {
			struct rte_mbuf *d = rte_pktmbuf_alloc(to->pool);
			if (d) {
				memcpy(rte_pktmbuf_append(d, (uint16_t)m->pkt_len),
				       rte_pktmbuf_mtod(m, void *), m->pkt_len);
				w->duped++;
				net_input(&to->ns, d);
			}
		}
		w->delivered++;
		net_input(&to->ns, m);
	}
	free(batch);
	return n;
}

unsigned twire_pump(struct twire *w)
{
	unsigned total = 0;
	for (unsigned round = 0; round < 1000; round++) {
		unsigned k = move(w, &w->a, &w->b) + move(w, &w->b, &w->a);
		total += k;
		if (k == 0)
			break;
	}
	return total;
}

void twire_advance(struct twire *w, uint64_t ns)
{
	w->a.ns.now_ns += ns;
	w->b.ns.now_ns += ns;
	tcp_tick(w->a.ts);
	tcp_tick(w->b.ts);
	/* ARP and ND timers (the ARP entries live far longer than a test) */
	net_tick(&w->a.ns);
	net_tick(&w->b.ns);
}
