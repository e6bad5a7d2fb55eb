/*
 * tls_pump.c - the bytes between a TCP connection and an SMTP engine, in
 * the clear or through TLS (see tls_pump.h for the buffers and the rules).
 */
#include "dataplane/smtp/tls_pump.h"

#include <string.h>

#include <rte_mbuf.h>

#include "dataplane/net/tcp.h"
#include "dataplane/smtp/tls.h"

void tls_pump_reset(struct tls_pump *tp)
{
	tp->up = false;
	tp->in_start = tp->in_end = 0;
	tp->pt_start = tp->pt_end = 0;
	tp->co_start = tp->co_end = 0;
}

bool tls_pump_append(struct tls_pump *tp, uint32_t cap, const struct rte_mbuf *m)
{
	uint32_t len = rte_pktmbuf_pkt_len(m);

	if (cap - tp->in_end < len && tp->in_start > 0) {
		memmove(tp->in, tp->in + tp->in_start, tp->in_end - tp->in_start);
		tp->in_end -= tp->in_start;
		tp->in_start = 0;
	}
	if (cap - tp->in_end < len)
		return false;
	for (const struct rte_mbuf *seg = m; seg; seg = seg->next) {
		memcpy(tp->in + tp->in_end, rte_pktmbuf_mtod(seg, const void *),
		       rte_pktmbuf_data_len(seg));
		tp->in_end += rte_pktmbuf_data_len(seg);
	}
	return true;
}

bool tls_pump_output_pending(const struct tls_pump *tp, const struct tls_pump_out *o)
{
	const char *p;

	if (o->peek(o->eng, &p) > 0)
		return true;
	return tp->tls && (tp->co_start < tp->co_end || tls_pending_out(tp->tls) > 0);
}

bool tls_pump_input_empty(const struct tls_pump *tp)
{
	return tp->in_start == tp->in_end && tp->pt_start == tp->pt_end;
}

void tls_pump_drop_input(struct tls_pump *tp, struct tcp_conn *tcp)
{
	if (tcp && tp->in_end > tp->in_start)
		tcp_recved(tcp, tp->in_end - tp->in_start);
	tp->in_start = tp->in_end = 0;
}

/* Plaintext: the engine's output straight into TCP's send buffer. */
static int flush_clear(struct tcp_conn *tcp, const struct tls_pump_out *o)
{
	const char *p;
	size_t n, took;
	int moved = 0;

	while ((n = o->peek(o->eng, &p)) > 0) {
		took = tcp_send(tcp, p, n);
		if (took == 0)
			break;
		o->consume(o->eng, took);
		moved = 1;
	}
	return moved;
}

int tls_pump_flush(struct tls_pump *tp, struct tcp_conn *tcp, const struct tls_pump_out *o)
{
	const char *p;
	size_t n, took;
	int moved = 0;

	if (!tcp)
		return 0;
	if (!tp->tls)
		return flush_clear(tcp, o);
	for (;;) {
		if (tp->co_start < tp->co_end) {
			took = tcp_send(tcp, tp->co + tp->co_start, tp->co_end - tp->co_start);
			tp->co_start += (uint32_t)took;
			if (took > 0)
				moved = 1;
			if (tp->co_start < tp->co_end)
				break;	/* TCP is full: its writable callback brings us back */
		}
		tp->co_start = tp->co_end = 0;
		if (tls_pending_out(tp->tls) > 0) {
			tp->co_end = (uint32_t)tls_take(tp->tls, tp->co, sizeof(tp->co));
			continue;
		}
		if (!tp->up || (n = o->peek(o->eng, &p)) == 0)
			break;
		ssize_t w = tls_write(tp->tls, p, n);
		if (w < 0)
			return -1;
		if (w == 0)
			break;
		o->consume(o->eng, (size_t)w);
		moved = 1;
	}
	return moved;
}

/* Decrypt into pt while it has room; compacts it first when the engine
 * consumed its front. 1: something came, 0: nothing now, -1: ended. */
static int decrypt(struct tls_pump *tp)
{
	ssize_t r;

	if (tp->pt_start > 0 && tp->pt_start == tp->pt_end)
		tp->pt_start = tp->pt_end = 0;
	if (tp->pt_end == TLS_PUMP_PT_MAX && tp->pt_start > 0) {
		memmove(tp->pt, tp->pt + tp->pt_start, tp->pt_end - tp->pt_start);
		tp->pt_end -= tp->pt_start;
		tp->pt_start = 0;
	}
	if (tp->pt_end == TLS_PUMP_PT_MAX)
		return 0;
	r = tls_read(tp->tls, tp->pt + tp->pt_end, TLS_PUMP_PT_MAX - tp->pt_end);
	if (r < 0)
		return -1;
	tp->pt_end += (uint32_t)r;
	return r > 0;
}

enum tls_pump_event tls_pump_input(struct tls_pump *tp, struct tcp_conn *tcp, bool handshake,
				   bool *moved)
{
	if (!tp->tls || !tcp)
		return TLS_PUMP_IDLE;
	for (;;) {
		if (tp->up) {
			int r = decrypt(tp);
			if (r < 0) {
				tls_pump_drop_input(tp, tcp);
				return TLS_PUMP_ENDED;
			}
			if (r > 0) {
				*moved = true;
				continue;
			}
			if (tp->pt_end == TLS_PUMP_PT_MAX)
				return TLS_PUMP_IDLE;	/* the engine must make room */
		} else if (handshake) {
			int h = tls_handshake(tp->tls);
			if (h < 0) {
				tls_pump_drop_input(tp, tcp);
				return TLS_PUMP_HS_FAILED;
			}
			if (h == 1) {
				tp->up = true;
				*moved = true;
				return TLS_PUMP_UP;
			}
		} else {
			return TLS_PUMP_IDLE;
		}
		if (tp->in_start == tp->in_end)
			return TLS_PUMP_IDLE;
		size_t n = tp->in_end - tp->in_start;
		ssize_t f = tls_feed(tp->tls, tp->in + tp->in_start,
				     n < TLS_PUMP_FEED_MAX ? n : TLS_PUMP_FEED_MAX);
		if (f <= 0) {
			tls_pump_drop_input(tp, tcp);
			return TLS_PUMP_FEED_FAILED;
		}
		tp->in_start += (uint32_t)f;
		tcp_recved(tcp, (uint32_t)f);
		if (tp->in_start == tp->in_end)
			tp->in_start = tp->in_end = 0;
		*moved = true;
	}
}

size_t tls_pump_readable(const struct tls_pump *tp, const uint8_t **p)
{
	if (tp->tls) {
		*p = tp->pt + tp->pt_start;
		return tp->pt_end - tp->pt_start;
	}
	*p = tp->in + tp->in_start;
	return tp->in_end - tp->in_start;
}

void tls_pump_consumed(struct tls_pump *tp, struct tcp_conn *tcp, size_t n)
{
	if (tp->tls) {
		tp->pt_start += (uint32_t)n;
		if (tp->pt_start == tp->pt_end)
			tp->pt_start = tp->pt_end = 0;
		return;
	}
	tp->in_start += (uint32_t)n;
	if (tcp && n > 0)
		tcp_recved(tcp, (uint32_t)n);
	if (tp->in_start == tp->in_end)
		tp->in_start = tp->in_end = 0;
}
