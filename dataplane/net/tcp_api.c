/*
 * tcp_api.c - the application side of tcp.h: listen, connect (with
 * source-port selection through conf.port_ok), send into the bounded send
 * queue, recved (reopening the receive window), close, abort, accessors.
 */
#include "dataplane/net/tcp_int.h"

#include <string.h>

struct tcp_listener *tcp_listen(struct tcp_stack *ts, rte_be16_t port,
				const struct tcp_callbacks *cb, void *lctx)
{
	if (port == 0 || tcp_listener_find(ts, port))
		return NULL;
	for (unsigned i = 0; i < ts->conf.max_listeners; i++) {
		struct tcp_listener *l = &ts->lst[i];
		if (l->used)
			continue;
		memset(l, 0, sizeof(*l));
		l->used = true;
		l->ts = ts;
		l->port = port;
		l->cb = *cb;
		l->lctx = lctx;
		return l;
	}
	return NULL;
}

void tcp_unlisten(struct tcp_listener *l)
{
	struct tcp_stack *ts = l->ts;
	for (unsigned i = 0; i < ts->conf.max_conns; i++) {
		struct tcp_conn *c = &ts->conns[i];
		if (c->ts && !c->zombie && c->lst == l) {
			tcp_send_rst_conn(c);
			tcp_conn_release(c);
		}
	}
	l->used = false;
	l->half_open = 0;
}

struct tcp_conn *tcp_connect(struct tcp_stack *ts, rte_be32_t dst, rte_be16_t port,
			     const struct tcp_callbacks *cb, void *user)
{
	struct net_addr a = net_addr_v4(dst);
	return tcp_connect_addr(ts, &a, port, cb, user);
}

struct tcp_conn *tcp_connect_addr(struct tcp_stack *ts, const struct net_addr *dst,
				  rte_be16_t port, const struct tcp_callbacks *cb,
				  void *user)
{
	ts->now = ts->ns->now_ns;
	const struct tcp_conf *cf = &ts->conf;
	uint32_t range = (uint32_t)cf->port_hi - cf->port_lo + 1;
	struct tcp_tuple t;
	memset(&t, 0, sizeof(t));
	t.raddr = *dst;
	t.rport = port;
	if (port == 0 || !net_local_addr(ts->ns, dst->family, &t.laddr) ||
	    net_addr_is_zero(dst))
		return NULL;
	bool found = false;
	for (uint32_t n = 0; n < range; n++) {
		uint16_t p = ts->next_port;
		ts->next_port = p >= cf->port_hi ? cf->port_lo : (uint16_t)(p + 1);
		t.lport = rte_cpu_to_be_16(p);
		if (tcp_conn_lookup(ts, &t))
			continue;
		if (cf->port_ok && !cf->port_ok(cf->port_ok_ctx, &t.laddr, t.lport, &t.raddr, t.rport))
			continue;
		found = true;
		break;
	}
	if (!found) {
		ts->stats.port_exhausted++;
		return NULL;
	}
	struct tcp_conn *c = tcp_conn_alloc(ts, &t);
	if (!c)
		return NULL;
	ts->stats.conn_opened_active++;
	c->iss = tcp_isn(ts, &t);
	tcp_conn_setup(c);
	c->cbs = *cb;
	c->user = user;
	c->app = true;
	c->state = TCP_SYN_SENT;
	c->mss = TCP_DEFAULT_MSS;
	c->rcv_mss = TCP_DEFAULT_MSS;
	c->rcv_wscale = 0;
	c->rtt_start = ts->now;
	tcp_send_syn(c);
	tcp_arm_rexmt(c);
	tcp_timer_update(c);
	return c;
}

size_t tcp_send_space(const struct tcp_conn *c)
{
	uint32_t buf = c->ts->conf.sndbuf;
	return c->sq_len >= buf ? 0 : buf - c->sq_len;
}

/*
 * Transmit now, or - when the application calls from inside the processing
 * of one of this connection's segments - once that segment is done. Then a
 * reply goes out with the segment's ACK, and a reply followed by
 * tcp_close() ("221 Bye" and FIN) leaves as one segment.
 */
static void tcp_output_soon(struct tcp_conn *c)
{
	if (c->in_input)
		c->out_deferred = true;
	else
		tcp_output(c);
}

size_t tcp_send(struct tcp_conn *c, const void *buf, size_t len)
{
	struct tcp_stack *ts = c->ts;
	if (c->zombie || c->user_closed)
		return 0;
	switch (c->state) {
	case TCP_SYN_SENT: case TCP_SYN_RCVD: case TCP_ESTABLISHED: case TCP_CLOSE_WAIT:
		break;
	default:
		return 0;
	}
	size_t space = tcp_send_space(c);
	size_t want = len < space ? len : space;
	const uint8_t *src = buf;
	size_t done = 0;
	while (done < want) {
		struct rte_mbuf *tl = c->sq_tail;
		if (!tl || rte_pktmbuf_tailroom(tl) == 0) {
			if (!tcp_budget_room(ts)) {
				/* the lcore's send queues hold mbuf_budget
				 * mbufs: writable() once there is room */
				ts->stats.sndbuf_budget_waits++;
				tcp_budget_wait(c);
				break;
			}
			struct rte_mbuf *n = rte_pktmbuf_alloc(ts->ns->pool);
			if (!n) {
				ts->stats.tx_nombuf++;
				break;
			}
			c->sq_mbufs++;
			ts->sq_mbufs++;
			if (tl)
				tl->next = n;
			else
				c->sq_head = n;
			c->sq_tail = tl = n;
		}
		size_t k = rte_pktmbuf_tailroom(tl);
		if (k > want - done)
			k = want - done;
		memcpy(rte_pktmbuf_mtod_offset(tl, uint8_t *, tl->data_len), src + done, k);
		tl->data_len = (uint16_t)(tl->data_len + k);
		tl->pkt_len += (uint32_t)k;
		done += k;
	}
	c->sq_len += (uint32_t)done;
	c->snd_end += (uint32_t)done;
	if (done < len)
		c->want_writable = true;
	if (done)
		tcp_output_soon(c);
	return done;
}

void tcp_recved(struct tcp_conn *c, uint32_t len)
{
	if (c->zombie)
		return;
	uint32_t before = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	c->rcv_user -= len < c->rcv_user ? len : c->rcv_user;
	if (c->state != TCP_ESTABLISHED && c->state != TCP_FIN_WAIT_1 &&
	    c->state != TCP_FIN_WAIT_2)
		return;
	uint32_t now = tcp_rcv_window(c);
	uint32_t mss = c->rcv_mss ? c->rcv_mss : TCP_DEFAULT_MSS;
	/* window update when it grows by 2 segments / half the buffer, or
	 * opens from (nearly) closed */
	if (now > before &&
	    (now - before >= tcp_min32(2u * mss, c->ts->conf.rcvbuf / 2) ||
	     (before < mss && now >= mss))) {
		if (c->in_input)
			c->ack_now = true;	/* one ACK when the segment is done */
		else
			tcp_send_ack(c);
	}
}

void tcp_close(struct tcp_conn *c)
{
	if (c->zombie || c->user_closed)
		return;
	switch (c->state) {
	case TCP_SYN_SENT:
	case TCP_SYN_RCVD:
		c->user_closed = true;	/* FIN once established */
		return;
	case TCP_ESTABLISHED:
		c->user_closed = true;
		c->state = TCP_FIN_WAIT_1;
		break;
	case TCP_CLOSE_WAIT:
		c->user_closed = true;
		c->state = TCP_LAST_ACK;
		break;
	default:
		return;
	}
	tcp_output_soon(c);
}

void tcp_abort(struct tcp_conn *c)
{
	if (c->zombie)
		return;
	c->ts->stats.conn_aborted++;
	tcp_send_rst_conn(c);
	c->app = false;
	tcp_conn_release(c);
}

void tcp_set_user(struct tcp_conn *c, void *user) { c->user = user; }

void tcp_set_timer(struct tcp_conn *c, uint64_t at_ns)
{
	if (c->zombie || !c->app)
		return;
	c->app_at = at_ns;
	tcp_timer_update(c);
}
void *tcp_get_user(const struct tcp_conn *c) { return c->user; }
void tcp_set_nodelay(struct tcp_conn *c, bool on) { c->nodelay = on; }
enum tcp_state tcp_get_state(const struct tcp_conn *c) { return (enum tcp_state)c->state; }

void tcp_set_keepalive(struct tcp_conn *c, bool on)
{
	c->keepalive = on;
	if (c->zombie)
		return;
	c->keep_at = on && tcp_synced(c) ? c->ts->now + c->ts->conf.keepalive_idle_ns : 0;
	tcp_timer_update(c);
}

void tcp_get_tuple(const struct tcp_conn *c, struct tcp_tuple *t) { *t = c->t; }

void tcp_get_info(const struct tcp_conn *c, struct tcp_conn_info *i)
{
	memset(i, 0, sizeof(*i));
	i->state = (enum tcp_state)c->state;
	i->snd_una = c->snd_una;
	i->snd_nxt = c->snd_nxt;
	i->snd_wnd = c->snd_wnd;
	i->rcv_nxt = c->rcv_nxt;
	i->rcv_wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	i->cwnd = c->cwnd;
	i->ssthresh = c->ssthresh;
	i->mss = c->mss;
	i->snd_wscale = c->snd_wscale;
	i->rcv_wscale = c->rcv_wscale;
	i->ts_ok = c->ts_ok;
	i->sack_ok = c->sack_ok;
	i->srtt_ns = c->srtt;
	i->rto_ns = c->rto;
	i->retransmits = c->stat_rexmit;
	i->seg_in = c->stat_in;
	i->seg_out = c->stat_out;
	i->sndq_bytes = c->sq_len;
	i->ooo_segs = c->nooo;
}
