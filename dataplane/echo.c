/*
 * echo.c - TCP echo server and verifying client for tests. See echo.h.
 */
#include "dataplane/echo.h"

#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include "common/log.h"
#include "dataplane/net/tcp.h"

const char *const echo_stat_names[] = { ECHO_STATS(STATS_NAME) };
const unsigned echo_stat_count = STATS_COUNT(echo_stat_names);

/* One echo session (server side) or one client connection. */
struct echo_conn {
	struct echo_service *svc;
	struct tcp_conn *c;
	bool client;
	bool in_use;
	/* server: bytes received but not yet in the send buffer */
	struct rte_mbuf *pending;
	uint32_t pending_off;
	bool fin_seen;
	/* client: stream positions */
	uint64_t seed;
	uint64_t sent, verified;
	bool failed;
	struct echo_conn *next_free;
};

struct echo_service {
	struct tcp_stack *ts;
	struct echo_conf conf;
	unsigned lcore_seed;
	struct tcp_listener *listener;
	struct echo_conn *conns;
	struct echo_conn *free;
	struct echo_stats stats;
};

/* The client's byte stream: byte i of connection seed s. */
static uint8_t stream_byte(uint64_t seed, uint64_t i)
{
	uint64_t x = (seed + (i >> 3)) * 0x9E3779B97F4A7C15ull;
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint8_t)(x >> ((i & 7) * 8));
}

static struct echo_conn *conn_get(struct echo_service *e)
{
	struct echo_conn *ec = e->free;
	if (!ec)
		return NULL;
	e->free = ec->next_free;
	memset(ec, 0, sizeof(*ec));
	ec->svc = e;
	ec->in_use = true;
	return ec;
}

static void conn_put(struct echo_conn *ec)
{
	struct echo_service *e = ec->svc;
	rte_pktmbuf_free(ec->pending);
	ec->pending = NULL;
	ec->in_use = false;
	ec->next_free = e->free;
	e->free = ec;
}

/* ---- server ---- */

/* Move pending bytes into the send buffer; returns true when all went. */
static bool server_drain(struct echo_conn *ec)
{
	while (ec->pending) {
		struct rte_mbuf *seg = ec->pending;
		uint32_t avail = rte_pktmbuf_data_len(seg) - ec->pending_off;
		size_t took = avail ? tcp_send(ec->c, rte_pktmbuf_mtod_offset(seg, const void *,
								     ec->pending_off), avail) : 0;

		if (took) {
			tcp_recved(ec->c, (uint32_t)took);
			ec->svc->stats.bytes_echoed += took;
			ec->pending_off += (uint32_t)took;
		}
		if (ec->pending_off < rte_pktmbuf_data_len(seg))
			return false;	/* send buffer full: wait for writable */
		ec->pending = seg->next;
		ec->pending_off = 0;
		if (ec->pending) {
			/* Detach the finished segment and keep the rest as a chain. */
			ec->pending->nb_segs = (uint16_t)(seg->nb_segs - 1);
			ec->pending->pkt_len = seg->pkt_len - rte_pktmbuf_data_len(seg);
			seg->next = NULL;
			seg->nb_segs = 1;
			seg->pkt_len = rte_pktmbuf_data_len(seg);
		}
		rte_pktmbuf_free_seg(seg);
	}
	return true;
}

static void server_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct echo_conn *ec = user;

	if (!m) {
		ec->fin_seen = true;
	} else if (ec->pending) {
		if (rte_pktmbuf_chain(ec->pending, m) != 0) {
			/* Cannot happen within a 64 KiB window; never echo a gap. */
			rte_pktmbuf_free(m);
			tcp_abort(c);
			conn_put(ec);
			return;
		}
	} else {
		ec->pending = m;
		ec->pending_off = 0;
	}
	if (server_drain(ec) && ec->fin_seen)
		tcp_close(c);
}

static void server_writable(struct tcp_conn *c, void *user)
{
	struct echo_conn *ec = user;
	if (server_drain(ec) && ec->fin_seen)
		tcp_close(c);
}

static void server_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct echo_conn *ec = user;
	(void)c;
	(void)why;
	ec->svc->stats.closed++;
	conn_put(ec);
}

static bool server_accept(void *lctx, struct tcp_conn *c);

static const struct tcp_callbacks server_cb = {
	.accept = server_accept,
	.data = server_data,
	.writable = server_writable,
	.closed = server_closed,
};

static bool server_accept(void *lctx, struct tcp_conn *c)
{
	struct echo_service *e = lctx;
	struct echo_conn *ec = conn_get(e);

	if (!ec) {
		e->stats.refused_full++;
		return false;
	}
	ec->c = c;
	tcp_set_user(c, ec);
	e->stats.accepted++;
	return true;
}

/* ---- client ---- */

static void client_push(struct echo_conn *ec)
{
	uint8_t buf[2048];

	while (ec->sent < ec->svc->conf.bytes) {
		uint64_t left = ec->svc->conf.bytes - ec->sent;
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf), took;
		for (size_t i = 0; i < n; i++)
			buf[i] = stream_byte(ec->seed, ec->sent + i);
		took = tcp_send(ec->c, buf, n);
		ec->sent += took;
		if (took < n)
			return;	/* wait for writable */
	}
}

static void client_connected(struct tcp_conn *c, void *user)
{
	(void)c;
	client_push(user);
}

static void client_data(struct tcp_conn *c, void *user, struct rte_mbuf *m)
{
	struct echo_conn *ec = user;
	struct echo_service *e = ec->svc;

	if (!m) {	/* server closed: did we get everything? */
		if (ec->verified != e->conf.bytes)
			ec->failed = true;
		tcp_close(c);
		return;
	}
	tcp_recved(c, rte_pktmbuf_pkt_len(m));
	for (struct rte_mbuf *s = m; s; s = s->next) {
		const uint8_t *p = rte_pktmbuf_mtod(s, const uint8_t *);
		for (uint32_t i = 0; i < rte_pktmbuf_data_len(s); i++, ec->verified++)
			if (ec->verified >= e->conf.bytes ||
			    p[i] != stream_byte(ec->seed, ec->verified)) {
				if (!ec->failed)
					e->stats.client_mismatch++;
				ec->failed = true;
			}
	}
	rte_pktmbuf_free(m);
	if (!ec->failed && ec->verified == e->conf.bytes)
		tcp_close(c);	/* all back: FIN; the server closes in turn */
}

static void client_writable(struct tcp_conn *c, void *user)
{
	(void)c;
	client_push(user);
}

static void client_closed(struct tcp_conn *c, void *user, enum tcp_close_reason why)
{
	struct echo_conn *ec = user;
	struct echo_service *e = ec->svc;

	(void)c;
	if (!ec->failed && ec->verified == e->conf.bytes) {
		e->stats.client_ok++;
		e->stats.client_bytes_verified += ec->verified;
	} else {
		e->stats.client_failed++;
		log_warn("echo client: connection failed (%s) after %llu/%llu bytes verified",
			 tcp_close_reason_name(why), (unsigned long long)ec->verified,
			 (unsigned long long)e->conf.bytes);
	}
	conn_put(ec);
}

static const struct tcp_callbacks client_cb = {
	.connected = client_connected,
	.data = client_data,
	.writable = client_writable,
	.closed = client_closed,
};

void echo_start_clients(struct echo_service *e)
{
	if (!e || !e->conf.connect_ip)
		return;
	for (unsigned i = 0; i < e->conf.connections; i++) {
		struct echo_conn *ec = conn_get(e);
		if (!ec) {
			e->stats.client_connect_failed++;
			continue;
		}
		ec->client = true;
		ec->seed = ((uint64_t)e->lcore_seed << 32) | i;
		ec->c = tcp_connect(e->ts, e->conf.connect_ip,
				    rte_cpu_to_be_16(e->conf.connect_port), &client_cb, ec);
		if (!ec->c) {
			e->stats.client_connect_failed++;
			conn_put(ec);
			continue;
		}
		e->stats.client_started++;
	}
}

/* ---- life cycle ---- */

struct echo_service *echo_create(struct tcp_stack *ts, const struct echo_conf *c,
				 unsigned lcore_seed)
{
	struct echo_service *e;
	unsigned n = c->max_conns ? c->max_conns : 1024;

	if (!c->port && !c->connect_ip)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->conns = calloc(n, sizeof(*e->conns));
	if (!e->conns) {
		free(e);
		return NULL;
	}
	e->ts = ts;
	e->conf = *c;
	e->conf.max_conns = n;
	e->lcore_seed = lcore_seed;
	for (unsigned i = n; i-- > 0;) {
		e->conns[i].svc = e;
		e->conns[i].next_free = e->free;
		e->free = &e->conns[i];
	}
	if (c->port) {
		e->listener = tcp_listen(ts, rte_cpu_to_be_16(c->port), &server_cb, e);
		if (!e->listener) {
			log_err("echo service: cannot listen on port %u", c->port);
			echo_destroy(e);
			return NULL;
		}
	}
	return e;
}

void echo_destroy(struct echo_service *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < e->conf.max_conns; i++)
		rte_pktmbuf_free(e->conns[i].pending);
	free(e->conns);
	free(e);
}

const struct echo_stats *echo_get_stats(const struct echo_service *e)
{
	return &e->stats;
}
