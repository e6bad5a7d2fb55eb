/*
 * tcp_conn.c - the per-lcore connection table and connection lifecycle.
 *
 * Connections live in one preallocated array (conf.max_conns slots, a free
 * stack of indices) and are found by 4-tuple in an open-addressing table
 * (linear probing, backward-shift deletion, 2x the slots, keyed hash so a
 * peer cannot aim collisions). A released connection is unhashed at once
 * but its slot is only reused after tcp_reap() at the end of the current
 * input/tick, so handles held by callers stay valid memory (state CLOSED)
 * until then. Also here: SipHash-2-4, RFC 6528 ISNs, stack create/destroy.
 */
#include "dataplane/net/tcp_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

const char *const tcp_stat_names[] = { TCP_STATS(STATS_NAME) };
const unsigned tcp_stat_count = STATS_COUNT(tcp_stat_names);

/* ---- SipHash-2-4 ---- */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); } while (0)

uint64_t tcp_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const uint8_t *in = data;
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t mi;
		memcpy(&mi, in + i, 8);
		v3 ^= mi; SIPROUND; SIPROUND; v0 ^= mi;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b; SIPROUND; SIPROUND; v0 ^= b;
	v2 ^= 0xff;
	SIPROUND; SIPROUND; SIPROUND; SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t tcp_tuple_hash32(const struct tcp_stack *ts, const struct tcp_tuple *t,
			  uint32_t salt)
{
	uint32_t buf[TCP_TUPLE_KEY_MAX + 1];
	unsigned n = tcp_tuple_key(t, buf);
	buf[n++] = salt;
	return (uint32_t)tcp_siphash(ts->k0, ts->k1, buf, n * sizeof(buf[0]));
}

/* Table hash: a cheap keyed mix (per packet); the key hides the layout.
 * Addresses enter folded to 32 bits (net_addr_fold: an IPv4 address is
 * itself, so IPv4 costs three xors more than before); IPv6 tuples that
 * fold alike only share a probe chain, the lookup compares in full. */
static uint32_t ht_hash(const struct tcp_stack *ts, const struct tcp_tuple *t)
{
	uint64_t x = ((uint64_t)net_addr_fold(&t->raddr) << 32 |
		      net_addr_fold(&t->laddr)) ^ ts->k0;
	uint64_t y = ((uint64_t)t->rport << 16 | t->lport) ^ ts->k1;
	x ^= y * 0x9e3779b97f4a7c15ull;
	x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

static bool tuple_eq(const struct tcp_tuple *a, const struct tcp_tuple *b)
{
	return a->lport == b->lport && a->rport == b->rport &&
	       net_addr_eq(&a->raddr, &b->raddr) && net_addr_eq(&a->laddr, &b->laddr);
}

struct tcp_conn *tcp_conn_lookup(struct tcp_stack *ts, const struct tcp_tuple *t)
{
	unsigned i = ht_hash(ts, t) & ts->ht_mask;
	for (;;) {
		uint32_t v = ts->ht[i];
		if (v == 0)
			return NULL;
		struct tcp_conn *c = &ts->conns[v - 1];
		if (tuple_eq(&c->t, t))
			return c;
		i = (i + 1) & ts->ht_mask;
	}
}

static void ht_insert(struct tcp_stack *ts, struct tcp_conn *c)
{
	unsigned i = ht_hash(ts, &c->t) & ts->ht_mask;
	while (ts->ht[i] != 0)
		i = (i + 1) & ts->ht_mask;
	ts->ht[i] = c->idx + 1;
}

static void ht_remove(struct tcp_stack *ts, struct tcp_conn *c)
{
	unsigned i = ht_hash(ts, &c->t) & ts->ht_mask;
	while (ts->ht[i] != c->idx + 1) {
		if (ts->ht[i] == 0)
			return;
		i = (i + 1) & ts->ht_mask;
	}
	/* backward-shift deletion keeps probe chains intact */
	unsigned j = i;
	for (;;) {
		ts->ht[i] = 0;
		for (;;) {
			j = (j + 1) & ts->ht_mask;
			if (ts->ht[j] == 0)
				return;
			unsigned home = ht_hash(ts, &ts->conns[ts->ht[j] - 1].t) & ts->ht_mask;
			/* can the entry at j move to i? only if home is not in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		ts->ht[i] = ts->ht[j];
		i = j;
	}
}

static void tw_unlink(struct tcp_stack *ts, struct tcp_conn *c)
{
	if (c->state != TCP_TIME_WAIT)
		return;
	if (c->tw_prev)
		c->tw_prev->tw_next = c->tw_next;
	else if (ts->tw_head == c)
		ts->tw_head = c->tw_next;
	if (c->tw_next)
		c->tw_next->tw_prev = c->tw_prev;
	else if (ts->tw_tail == c)
		ts->tw_tail = c->tw_prev;
	c->tw_next = c->tw_prev = NULL;
}

struct tcp_conn *tcp_conn_alloc(struct tcp_stack *ts, const struct tcp_tuple *t)
{
	if (ts->nfree == 0 && ts->tw_head) {
		/* table full: recycle the oldest TIME_WAIT slot (nobody holds a
		 * handle to it: the application was told when it entered) */
		struct tcp_conn *o = ts->tw_head;
		ts->stats.timewait_recycled++;
		tcp_conn_release(o);
		ts->zombies = o->zombie_next;	/* it is at the head */
		o->zombie_next = NULL;
		ts->free_idx[ts->nfree++] = o->idx;
		ts->used--;
	}
	if (ts->nfree == 0) {
		ts->stats.conn_table_full++;
		return NULL;
	}
	uint32_t idx = ts->free_idx[--ts->nfree];
	struct tcp_conn *c = &ts->conns[idx];
	struct tcp_ooo *ooo = c->ooo;
	memset(c, 0, sizeof(*c));
	c->ooo = ooo;
	c->idx = idx;
	c->ts = ts;
	c->t = *t;
	c->nodelay = ts->conf.nodelay;
	c->keepalive = ts->conf.keepalive;
	ht_insert(ts, c);
	ts->used++;
	return c;
}

static void sq_free_all(struct tcp_conn *c)
{
	if (c->sq_head)
		rte_pktmbuf_free(c->sq_head);	/* the queue is one chain */
	c->ts->sq_mbufs -= c->sq_mbufs;
	c->sq_mbufs = 0;
	c->sq_head = c->sq_tail = NULL;
	c->sq_len = c->sq_off = 0;
}

void tcp_ooo_free_all(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	for (unsigned i = 0; i < c->nooo; i++) {
		if (c->ooo[i].m)
			rte_pktmbuf_free(c->ooo[i].m);
		ts->ooo_bytes -= c->ooo[i].len;
		ts->ooo_mbufs -= c->ooo[i].nmb;
	}
	c->nooo = 0;
}

void tcp_budget_wait(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	if (c->budget_wait)
		return;
	c->budget_wait = true;
	c->bw_next = NULL;
	c->bw_prev = ts->bw_tail;
	if (ts->bw_tail)
		ts->bw_tail->bw_next = c;
	else
		ts->bw_head = c;
	ts->bw_tail = c;
}

void tcp_budget_unwait(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	if (!c->budget_wait)
		return;
	if (c->bw_prev)
		c->bw_prev->bw_next = c->bw_next;
	else
		ts->bw_head = c->bw_next;
	if (c->bw_next)
		c->bw_next->bw_prev = c->bw_prev;
	else
		ts->bw_tail = c->bw_prev;
	c->bw_next = c->bw_prev = NULL;
	c->budget_wait = false;
}

#define TCP_BUDGET_WAKE_MAX 64u	/* writable() calls per wake pass */

void tcp_budget_wake(struct tcp_stack *ts)
{
	/* Visit each connection waiting at entry at most once: a callback
	 * that hits the budget again re-files itself at the tail. */
	struct tcp_conn *last = ts->bw_tail;
	unsigned n = 0, steps = 0;
	while (ts->bw_head && tcp_budget_room(ts) && n < TCP_BUDGET_WAKE_MAX &&
	       steps++ < 4 * TCP_BUDGET_WAKE_MAX) {
		struct tcp_conn *c = ts->bw_head;
		bool final = c == last;
		tcp_budget_unwait(c);
		if (c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD) {
			tcp_budget_wait(c);	/* writable once established */
		} else if (!c->zombie && c->app && c->want_writable &&
			   tcp_send_space(c) > 0 &&
			   (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT)) {
			c->want_writable = false;
			n++;
			if (c->cbs.writable)
				c->cbs.writable(c, c->user);
		}
		if (final)
			break;
	}
}

unsigned tcp_stack_mbufs_held(const struct tcp_stack *ts)
{
	return ts->sq_mbufs + ts->ooo_mbufs;
}

/* Drop n acked bytes from the front of the send queue. */
void tcp_sq_free_acked(struct tcp_conn *c, uint32_t n)
{
	c->sq_len -= n;
	n += c->sq_off;
	while (c->sq_head && n >= c->sq_head->data_len) {
		struct rte_mbuf *h = c->sq_head;
		n -= h->data_len;
		c->sq_head = h->next;
		h->next = NULL;
		h->nb_segs = 1;
		if (c->sq_head) {
			c->sq_head->nb_segs = 1;	/* not used as a chain count */
		} else {
			c->sq_tail = NULL;
		}
		rte_pktmbuf_free_seg(h);
		c->sq_mbufs--;
		c->ts->sq_mbufs--;
	}
	c->sq_off = n;
	if (c->sq_head == NULL)
		c->sq_off = 0;
}

void tcp_conn_release(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	if (c->zombie)
		return;
	tcp_timer_cancel(c);
	ht_remove(ts, c);
	tw_unlink(ts, c);
	if (c->lst && c->state == TCP_SYN_RCVD && c->lst->half_open)
		c->lst->half_open--;
	c->lst = NULL;
	tcp_budget_unwait(c);
	c->ack_queued = false;	/* its ackq entry is skipped */
	sq_free_all(c);
	tcp_ooo_free_all(c);
	c->state = TCP_CLOSED;
	c->zombie = true;
	c->app = false;
	c->zombie_next = ts->zombies;
	ts->zombies = c;
}

void tcp_reap(struct tcp_stack *ts)
{
	while (ts->zombies) {
		struct tcp_conn *c = ts->zombies;
		ts->zombies = c->zombie_next;
		c->zombie_next = NULL;
		ts->free_idx[ts->nfree++] = c->idx;
		ts->used--;
	}
}

void tcp_conn_drop(struct tcp_conn *c, enum tcp_close_reason why)
{
	struct tcp_stack *ts = c->ts;
	if (c->zombie)
		return;
	switch (why) {
	case TCP_CLOSE_NORMAL: ts->stats.conn_closed++; break;
	case TCP_CLOSE_RESET: ts->stats.conn_reset++; break;
	case TCP_CLOSE_REFUSED: ts->stats.conn_refused++; break;
	default: ts->stats.conn_timeout++; break;
	}
	bool tell = c->app;
	void *user = c->user;
	tcp_conn_release(c);
	if (tell && c->cbs.closed)
		c->cbs.closed(c, user, why);
}

void tcp_enter_timewait(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	c->state = TCP_TIME_WAIT;
	ts->stats.timewait_entered++;
	c->tw_prev = ts->tw_tail;
	c->tw_next = NULL;
	if (ts->tw_tail)
		ts->tw_tail->tw_next = c;
	else
		ts->tw_head = c;
	ts->tw_tail = c;
	c->rexmt_at = c->persist_at = c->delack_at = c->keep_at = c->app_at = 0;
	c->tw_at = ts->now + 2 * ts->conf.msl_ns;
	/* the send queue is all acked by now; drop anything held */
	tcp_budget_unwait(c);
	c->ack_queued = false;	/* its ackq entry is skipped */
	sq_free_all(c);
	tcp_ooo_free_all(c);
	tcp_timer_update(c);
	if (c->app) {
		c->app = false;
		ts->stats.conn_closed++;
		if (c->cbs.closed)
			c->cbs.closed(c, c->user, TCP_CLOSE_NORMAL);
	}
}

uint32_t tcp_isn(struct tcp_stack *ts, const struct tcp_tuple *t)
{
	/* RFC 6528: ISN = M + F(4-tuple, secret), M a 4 us clock. */
	return (uint32_t)(ts->now / 4000) + tcp_tuple_hash32(ts, t, 0x15415415u);
}

uint32_t tcp_ts_now(const struct tcp_conn *c)
{
	return (uint32_t)(c->ts->now / NS_PER_MS) + c->ts_off;
}

/* Common initial state of a connection once its tuple is known. */
void tcp_conn_setup(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	c->rto = ts->conf.rto_init_ns;
	c->ts_off = tcp_tuple_hash32(ts, &c->t, 0x7473u);
	c->peer_mss = TCP_DEFAULT_MSS;
	c->rcv_wscale = 0;
	c->last_rcv_ns = ts->now;
	c->recover = c->iss;
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->snd_end = c->iss + 1;
}

struct tcp_listener *tcp_listener_find(struct tcp_stack *ts, rte_be16_t port)
{
	for (unsigned i = 0; i < ts->conf.max_listeners; i++)
		if (ts->lst[i].used && ts->lst[i].port == port)
			return &ts->lst[i];
	return NULL;
}

void tcp_conf_default(struct tcp_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_conns = 4096;
	c->max_listeners = 64;
	c->backlog = 256;
	c->syncookies = true;
	c->sndbuf = 64 * 1024;
	c->rcvbuf = 64 * 1024;
	c->ooo_max_segs = 32;
	c->ooo_max_bytes = 8u << 20;
	c->wscale = 7;
	c->timestamps = true;
	c->sack = true;
	c->nodelay = true;
	c->msl_ns = 30 * NS_PER_SEC;
	c->rto_init_ns = 1 * NS_PER_SEC;
	c->rto_min_ns = 200 * NS_PER_MS;
	c->rto_max_ns = 60 * NS_PER_SEC;
	c->delack_ns = 40 * NS_PER_MS;
	c->tlp = true;
	c->tlp_ack_delay_ns = 40 * NS_PER_MS;
	c->fin_wait2_ns = 60 * NS_PER_SEC;
	c->syn_retries = 6;
	c->r1 = 3;
	c->r2 = 15;
	c->keepalive = false;
	c->keepalive_idle_ns = 7200 * NS_PER_SEC;
	c->keepalive_intvl_ns = 75 * NS_PER_SEC;
	c->keepalive_probes = 9;
	c->challenge_ack_limit = 1000;
	c->invalid_ratelimit_ns = 500 * NS_PER_MS;
	c->port_lo = 32768;
	c->port_hi = 60999;
}

struct tcp_stack *tcp_stack_create(struct net_stack *ns, const struct tcp_conf *conf)
{
	if (conf->max_conns == 0 || conf->max_conns > (1u << 24) ||
	    conf->max_listeners == 0 || conf->ooo_max_segs == 0 ||
	    conf->wscale > TCP_MAX_WSCALE || conf->port_lo == 0 ||
	    conf->port_hi < conf->port_lo || conf->sndbuf == 0 || conf->rcvbuf < 1024)
		return NULL;
	struct tcp_stack *ts = calloc(1, sizeof(*ts));
	if (!ts)
		return NULL;
	ts->ns = ns;
	ts->conf = *conf;
	if (ts->conf.rcvbuf > (TCP_MAX_WIN << ts->conf.wscale))
		ts->conf.rcvbuf = TCP_MAX_WIN << ts->conf.wscale;
	if (ts->conf.delack_ns > 200 * NS_PER_MS)
		ts->conf.delack_ns = 200 * NS_PER_MS;
	ts->now = ns->now_ns;
	memcpy(&ts->k0, conf->secret, 8);
	memcpy(&ts->k1, conf->secret + 8, 8);
	unsigned n = conf->max_conns;
	unsigned hsz = 1;
	while (hsz < 2 * n)
		hsz <<= 1;
	ts->conns = calloc(n, sizeof(*ts->conns));
	ts->free_idx = calloc(n, sizeof(*ts->free_idx));
	ts->ht = calloc(hsz, sizeof(*ts->ht));
	ts->ooo_pool = calloc((size_t)n * conf->ooo_max_segs, sizeof(*ts->ooo_pool));
	ts->lst = calloc(conf->max_listeners, sizeof(*ts->lst));
	ts->ackq = calloc(TCP_ACKQ_MAX, sizeof(*ts->ackq));
	if (!ts->conns || !ts->free_idx || !ts->ht || !ts->ooo_pool || !ts->lst || !ts->ackq ||
	    tcp_wheel_init(&ts->wheel, 4096, NS_PER_MS, ns->now_ns) != 0) {
		tcp_stack_destroy(ts);
		return NULL;
	}
	ts->ht_mask = hsz - 1;
	for (unsigned i = 0; i < n; i++) {
		ts->conns[i].ooo = &ts->ooo_pool[(size_t)i * conf->ooo_max_segs];
		ts->free_idx[i] = n - 1 - i;
	}
	ts->nfree = n;
	ts->next_port = (uint16_t)(conf->port_lo +
		(uint32_t)(ts->k0 % ((uint32_t)conf->port_hi - conf->port_lo + 1)));
	ns->tcp_input = tcp_input_l4;
	ns->tcp_frag_needed = tcp_frag_needed_l4;
	ns->tcp_input6 = tcp_input6_l4;
	ns->tcp_pkt_too_big = tcp_pkt_too_big_l4;
	ns->tcp_ctx = ts;
	return ts;
}

void tcp_stack_destroy(struct tcp_stack *ts)
{
	if (!ts)
		return;
	if (ts->conns) {
		for (unsigned i = 0; i < ts->conf.max_conns; i++) {
			struct tcp_conn *c = &ts->conns[i];
			if (c->ts && !c->zombie && c->state != TCP_CLOSED) {
				c->app = false;
				tcp_conn_release(c);
			}
		}
		tcp_reap(ts);
	}
	if (ts->ns && ts->ns->tcp_ctx == ts) {
		ts->ns->tcp_input = NULL;
		ts->ns->tcp_frag_needed = NULL;
		ts->ns->tcp_input6 = NULL;
		ts->ns->tcp_pkt_too_big = NULL;
		ts->ns->tcp_ctx = NULL;
	}
	tcp_wheel_fini(&ts->wheel);
	free(ts->conns);
	free(ts->free_idx);
	free(ts->ht);
	free(ts->ooo_pool);
	free(ts->lst);
	free(ts->ackq);
	free(ts);
}

const struct tcp_stats *tcp_stack_stats(const struct tcp_stack *ts) { return &ts->stats; }
unsigned tcp_stack_conn_count(const struct tcp_stack *ts) { return ts->used; }

const char *tcp_state_name(enum tcp_state s)
{
	static const char *const n[] = {
		"CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED",
		"FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK",
		"TIME_WAIT",
	};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

const char *tcp_close_reason_name(enum tcp_close_reason r)
{
	static const char *const n[] = {
		"normal", "reset", "refused", "timeout", "keepalive", "nomem",
	};
	return (unsigned)r < sizeof(n) / sizeof(n[0]) ? n[r] : "?";
}
