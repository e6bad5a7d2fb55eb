/*
 * tcp_input.c - segment arrival: header checks, demultiplexing, and the
 * RFC 9293 3.10.7 state machine.
 *
 * Header checks: length, checksum (the port's RX flags honoured: see
 * cksum_ok), data offset, options, flag combinations, source.
 *
 * Order of checks for a connection in a synchronized state (and SYN_RCVD):
 * PAWS (RFC 7323), sequence acceptability and trimming to the window (a
 * segment failing either is answered by an ACK, at most one per
 * conf.invalid_ratelimit_ns per connection unless it carries data or FIN:
 * see oow_ack_ok), RST (RFC 5961 3: exact rcv_nxt resets, other in-window
 * RSTs draw a challenge ACK; RSTs in TIME_WAIT are ignored per RFC 1337),
 * SYN (RFC 5961 4: challenge ACK), ACK (RFC 5961 5 range check, new data
 * acked, duplicate ACKs, window update), data (in order: handed to the
 * application, then the out-of-order queue drained; out of order: queued in
 * a bounded per-connection queue, SACK blocks reported), FIN. Listeners take
 * SYNs (a SYN_RCVD connection while the backlog has room, a SYN cookie once
 * it is full) and cookie ACKs (only within two cookie periods of the
 * listener's last overflow: see tcp_syncookie.c). TIME_WAIT accepts a new
 * SYN per RFC 6191.
 *
 * Challenge ACKs (RFC 5961 7) are limited per connection, never per lcore:
 * a counter shared by all connections is the side channel of CVE-2016-5696
 * (an off-path attacker counts the challenge ACKs of his own connection to
 * learn whether his guesses at another's sequence numbers were in window).
 * Each connection gets a budget per second drawn at random around
 * conf.challenge_ack_limit (see chack_budget).
 */
#include "dataplane/net/tcp_int.h"

#include "dataplane/net/ipv6.h"

#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>

#include "common/clock.h"
#include "dataplane/net/cksum.h"

/* ---- mbuf helpers for chains ---- */

/* Remove n bytes from the front; returns the new head. */
static struct rte_mbuf *mb_chop_head(struct rte_mbuf *m, uint32_t n)
{
	while (n >= m->data_len && m->next) {
		struct rte_mbuf *nx = m->next;
		uint32_t pl = m->pkt_len - m->data_len;
		uint16_t nseg = (uint16_t)(m->nb_segs - 1);
		n -= m->data_len;
		m->next = NULL;
		m->nb_segs = 1;
		rte_pktmbuf_free_seg(m);
		m = nx;
		m->pkt_len = pl;
		m->nb_segs = nseg;
	}
	if (n > m->data_len)
		n = m->data_len;
	m->data_off = (uint16_t)(m->data_off + n);
	m->data_len = (uint16_t)(m->data_len - n);
	m->pkt_len -= n;
	return m;
}

/* Keep only the first keep bytes. */
static void mb_keep(struct rte_mbuf *m, uint32_t keep)
{
	if (keep >= m->pkt_len)
		return;
	m->pkt_len = keep;
	struct rte_mbuf *s = m;
	uint16_t nseg = 1;
	while (keep > s->data_len) {
		keep -= s->data_len;
		s = s->next;
		nseg++;
	}
	s->data_len = (uint16_t)keep;
	if (s->next) {
		rte_pktmbuf_free(s->next);
		s->next = NULL;
	}
	m->nb_segs = nseg;
}

/*
 * The challenge-ACK budget of c for second sec: uniform in
 * [limit - limit/2, limit + limit/2] (mean: the configured limit), drawn
 * by a keyed hash of the connection and the second. Per connection, so an
 * off-path attacker who counts the challenge ACKs of his own connection
 * learns nothing about any other (the side channel of CVE-2016-5696 was
 * one counter shared by all); random, so not even the count on one
 * connection is predictable (Linux randomises its limit likewise).
 */
static uint32_t chack_budget(const struct tcp_conn *c, uint64_t sec)
{
	const struct tcp_stack *ts = c->ts;
	uint32_t limit = ts->conf.challenge_ack_limit;
	if (limit == 0)
		return 0;
	uint32_t buf[TCP_TUPLE_KEY_MAX + 4];
	unsigned n = tcp_tuple_key(&c->t, buf);
	buf[n++] = c->iss;
	buf[n++] = c->irs;
	buf[n++] = (uint32_t)sec;
	buf[n++] = (uint32_t)(sec >> 32);
	uint64_t r = tcp_siphash(ts->k0 ^ 0x6368616c6c656e67ull, ts->k1, buf,
				 n * sizeof(buf[0]));
	uint32_t half = limit / 2;
	return limit - half + (uint32_t)(r % (2ull * half + 1));
}

/* RFC 5961 3.2/4.2/5.2: answer a suspicious segment with an ACK, within
 * the connection's budget for this second. */
static void challenge_ack(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	uint64_t sec = ts->now / NS_PER_SEC;
	if (c->chack_sec != sec + 1) {
		c->chack_sec = sec + 1;
		c->chack_left = chack_budget(c, sec);
	}
	if (c->chack_left == 0) {
		ts->stats.challenge_acks_limited++;
		return;
	}
	c->chack_left--;
	ts->stats.challenge_acks++;
	tcp_send_ack(c);
}

/*
 * May c answer this segment, which failed PAWS or lies outside the window,
 * with an ACK? At most one per conf.invalid_ratelimit_ns, so two ends that
 * disagree about sequence numbers cannot bounce ACKs off each other at line
 * rate (Linux: tcp_oow_rate_limited). seglen counts SYN and FIN. As in
 * Linux, a segment with data or FIN (and no SYN) is always answered: it
 * cannot come from such a loop (we only send pure ACKs back), and a peer
 * retransmitting what we already have needs our ACK to stop.
 */
static bool oow_ack_ok(struct tcp_conn *c, const struct tcp_seg *s, uint32_t seglen)
{
	struct tcp_stack *ts = c->ts;
	if ((seglen && !(s->flags & TCP_SYN)) || ts->conf.invalid_ratelimit_ns == 0)
		return true;
	if (c->oow_ack_ns && ts->now - c->oow_ack_ns < ts->conf.invalid_ratelimit_ns) {
		ts->stats.oow_acks_limited++;
		return false;
	}
	c->oow_ack_ns = ts->now;
	return true;
}

/* Apply the peer's SYN options; set MSS and windows. */
static void negotiate(struct tcp_conn *c, const struct tcp_opts *o)
{
	struct tcp_stack *ts = c->ts;
	c->peer_mss = o->mss_ok ? o->mss : TCP_DEFAULT_MSS;
	if (c->peer_mss < 64)
		c->peer_mss = 64;
	if (o->ws_ok) {
		c->ws_ok = true;
		c->snd_wscale = o->ws;
		c->rcv_wscale = ts->conf.wscale;
	} else {
		c->ws_ok = false;
		c->snd_wscale = c->rcv_wscale = 0;
	}
	c->sack_ok = o->sack_perm && ts->conf.sack;
	c->ts_ok = o->ts_ok && ts->conf.timestamps;
	if (c->ts_ok) {
		c->ts_recent = o->tsval;
		c->ts_recent_ns = ts->now;
	}
	uint32_t mss = tcp_min32(c->peer_mss, tcp_our_mss(ts, c->t.laddr.family));
	if (c->ts_ok)
		mss -= 12;
	c->mss = (uint16_t)mss;
	c->rcv_mss = TCP_DEFAULT_MSS;
}

static bool conn_dead(const struct tcp_conn *c) { return c->zombie; }

/* SYN_RCVD/SYN_SENT -> ESTABLISHED, with the application told. */
static void conn_established(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	struct tcp_listener *l = c->lst;
	if (l && !c->cookie && c->state == TCP_SYN_RCVD && l->half_open)
		l->half_open--;
	c->lst = NULL;
	c->state = TCP_ESTABLISHED;
	c->rexmt_at = 0;
	c->nrexmit = 0;
	ts->stats.conn_established++;
	tcp_cc_init(c);
	if (c->keepalive)
		c->keep_at = ts->now + ts->conf.keepalive_idle_ns;
	if (c->passive) {
		if (!l) {
			tcp_send_rst_conn(c);
			tcp_conn_release(c);
			return;
		}
		c->cbs = l->cb;
		c->app = true;
		if (!c->cbs.accept || !c->cbs.accept(l->lctx, c)) {
			if (!conn_dead(c)) {
				c->app = false;
				ts->stats.conn_aborted++;
				tcp_send_rst_conn(c);
				tcp_conn_release(c);
			}
			return;
		}
	} else if (c->cbs.connected) {
		c->cbs.connected(c, c->user);
	}
	if (conn_dead(c))
		return;
	if (c->user_closed && c->state == TCP_ESTABLISHED)
		c->state = TCP_FIN_WAIT_1;
}

/* Handle our FIN being acked. Returns false if c is gone. */
static bool fin_acked_transitions(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	if (!c->user_closed || !SEQ_GT(c->snd_una, c->snd_end))
		return true;
	switch (c->state) {
	case TCP_FIN_WAIT_1:
		c->state = TCP_FIN_WAIT_2;
		c->rexmt_at = 0;
		if (ts->conf.fin_wait2_ns)
			c->tw_at = ts->now + ts->conf.fin_wait2_ns;
		return true;
	case TCP_CLOSING:
		tcp_enter_timewait(c);
		return !conn_dead(c);
	case TCP_LAST_ACK:
		tcp_conn_drop(c, TCP_CLOSE_NORMAL);
		return false;
	default:
		return true;
	}
}

/* The peer's FIN arrived in order (rcv_nxt is at it). */
static void fin_in(struct tcp_conn *c)
{
	c->rcv_nxt++;
	c->fin_rcvd = true;
	c->ack_now = true;
	bool our_fin_acked = c->user_closed && SEQ_GT(c->snd_una, c->snd_end);
	switch (c->state) {
	case TCP_SYN_RCVD:
	case TCP_ESTABLISHED:
		c->state = TCP_CLOSE_WAIT;
		break;
	case TCP_FIN_WAIT_1:
		c->state = our_fin_acked ? TCP_TIME_WAIT : TCP_CLOSING;
		break;
	case TCP_FIN_WAIT_2:
		c->state = TCP_TIME_WAIT;
		break;
	default:
		break;
	}
	bool tw = c->state == TCP_TIME_WAIT;
	if (tw)
		c->state = TCP_FIN_WAIT_2;	/* enter properly below */
	if (c->app && c->cbs.data)
		c->cbs.data(c, c->user, NULL);	/* end of stream */
	if (conn_dead(c))
		return;
	if (tw) {
		tcp_send_ack(c);
		tcp_enter_timewait(c);
	}
}

static void deliver(struct tcp_conn *c, struct rte_mbuf *m)
{
	struct tcp_stack *ts = c->ts;
	uint32_t len = m->pkt_len;
	c->rcv_nxt += len;
	c->rcv_unacked += len;
	ts->stats.bytes_in += len;
	if (len > c->rcv_mss)
		c->rcv_mss = (uint16_t)tcp_min32(len, 65535);
	if (len == 0 || !c->app || !c->cbs.data) {
		rte_pktmbuf_free(m);
		return;
	}
	c->rcv_user += len;
	c->cbs.data(c, c->user, m);
}

static void ooo_remove(struct tcp_conn *c, unsigned i)
{
	c->ts->ooo_bytes -= c->ooo[i].len;
	c->ts->ooo_mbufs -= c->ooo[i].nmb;
	memmove(&c->ooo[i], &c->ooo[i + 1], (c->nooo - i - 1) * sizeof(c->ooo[0]));
	c->nooo--;
}

/* Queue an out-of-order segment (seq > rcv_nxt). Consumes m. */
static void ooo_insert(struct tcp_conn *c, uint32_t seq, struct rte_mbuf *m, bool fin)
{
	struct tcp_stack *ts = c->ts;
	uint32_t len = m->pkt_len;
	uint32_t end = seq + len;
	unsigned i = 0;
	while (i < c->nooo && SEQ_LEQ(c->ooo[i].seq, seq))
		i++;
	/* predecessor overlap */
	if (i > 0) {
		struct tcp_ooo *p = &c->ooo[i - 1];
		uint32_t pend = p->seq + p->len;
		if (SEQ_GEQ(pend, end) && (!fin || p->fin || SEQ_GT(pend, end))) {
			rte_pktmbuf_free(m);	/* nothing new */
			return;
		}
		if (SEQ_GT(pend, seq)) {
			uint32_t d = pend - seq;
			if (d > len)
				d = len;
			m = mb_chop_head(m, d);
			seq += d;
			len -= d;
		}
	}
	/* successors fully covered go; a partial one trims our tail */
	while (i < c->nooo && SEQ_LT(c->ooo[i].seq, end)) {
		struct tcp_ooo *n = &c->ooo[i];
		if (SEQ_LEQ(n->seq + n->len, end)) {
			if (n->m)
				rte_pktmbuf_free(n->m);
			ooo_remove(c, i);
			continue;
		}
		len = n->seq - seq;
		mb_keep(m, len);
		end = seq + len;
		fin = false;
		break;
	}
	if (len == 0 && !fin) {
		rte_pktmbuf_free(m);
		return;
	}
	if (ts->ooo_bytes + len > ts->conf.ooo_max_bytes) {
		ts->stats.ooo_dropped++;
		rte_pktmbuf_free(m);
		return;
	}
	/* mbufs this segment would hold (none for a bare FIN) */
	uint16_t nmb = len ? m->nb_segs : 0;
	if (ts->conf.mbuf_budget &&
	    ts->sq_mbufs + ts->ooo_mbufs + nmb > ts->conf.mbuf_budget) {
		ts->stats.ooo_dropped++;	/* at the lcore's mbuf budget */
		rte_pktmbuf_free(m);
		return;
	}
	/* continues the previous entry: chain onto it (a burst behind one
	 * hole then takes one entry, not one per segment) */
	if (i > 0 && len > 0) {
		struct tcp_ooo *p = &c->ooo[i - 1];
		if (p->m && !p->fin && p->seq + p->len == seq &&
		    rte_pktmbuf_chain(p->m, m) == 0) {
			p->len += len;
			p->fin = fin;
			p->nmb = (uint16_t)(p->nmb + nmb);
			ts->ooo_bytes += len;
			ts->ooo_mbufs += nmb;
			c->last_ooo_seq = seq;
			ts->stats.ooo_queued++;
			/* and now touches the next one? */
			if (i < c->nooo && c->ooo[i].seq == p->seq + p->len && !p->fin &&
			    c->ooo[i].m && rte_pktmbuf_chain(p->m, c->ooo[i].m) == 0) {
				p->len += c->ooo[i].len;
				p->fin = c->ooo[i].fin;
				p->nmb = (uint16_t)(p->nmb + c->ooo[i].nmb);
				c->ooo[i].m = NULL;	/* its bytes now count in p */
				memmove(&c->ooo[i], &c->ooo[i + 1],
					(c->nooo - i - 1) * sizeof(c->ooo[0]));
				c->nooo--;
			}
			return;
		}
	}
	if (c->nooo >= ts->conf.ooo_max_segs) {
		ts->stats.ooo_dropped++;
		rte_pktmbuf_free(m);
		return;
	}
	memmove(&c->ooo[i + 1], &c->ooo[i], (c->nooo - i) * sizeof(c->ooo[0]));
	c->ooo[i].seq = seq;
	c->ooo[i].len = len;
	c->ooo[i].fin = fin;
	if (len == 0) {
		rte_pktmbuf_free(m);
		m = NULL;
	}
	c->ooo[i].m = m;
	c->ooo[i].nmb = nmb;
	c->nooo++;
	ts->ooo_bytes += len;
	ts->ooo_mbufs += nmb;
	c->last_ooo_seq = seq;
	ts->stats.ooo_queued++;
}

/* After rcv_nxt advanced: deliver what the queue now continues. */
static void ooo_drain(struct tcp_conn *c)
{
	while (c->nooo && SEQ_LEQ(c->ooo[0].seq, c->rcv_nxt) && !conn_dead(c)) {
		struct tcp_ooo e = c->ooo[0];
		ooo_remove(c, 0);
		uint32_t end = e.seq + e.len;
		if (SEQ_LT(end, c->rcv_nxt) || (end == c->rcv_nxt && !e.fin)) {
			if (e.m)
				rte_pktmbuf_free(e.m);
			continue;
		}
		c->ts->stats.ooo_merged++;
		c->ack_now = true;
		if (e.m) {
			struct rte_mbuf *m = e.m;
			if (SEQ_LT(e.seq, c->rcv_nxt))
				m = mb_chop_head(m, c->rcv_nxt - e.seq);
			deliver(c, m);
		}
		if (e.fin && !conn_dead(c)) {
			fin_in(c);
			break;
		}
	}
}

static void process_data(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_stack *ts = c->ts;
	bool fin = s->flags & TCP_FIN;
	bool can_rcv = c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
		       c->state == TCP_FIN_WAIT_2;
	if (!can_rcv || (s->len == 0 && !fin)) {
		rte_pktmbuf_free(m);
		return;
	}
	if (s->seq != c->rcv_nxt) {
		ooo_insert(c, s->seq, m, fin);
		c->ack_now = true;	/* duplicate ACK with SACK */
		return;
	}
	bool had_ooo = c->nooo > 0;
	bool owed = c->ack_now;
	/*
	 * ACK at once every second full segment (RFC 1122 4.2.3.2), and at the
	 * end of each of the sender's writes (PSH): a sender under Nagle holds
	 * its next small write until everything is acked, so delaying this
	 * ACK would stall it for the whole delayed-ACK time (a 10 KiB SMTP
	 * body followed by ".\r\n": 40 ms per message). Decided before the
	 * data goes up, so an application that answers at once carries the
	 * ACK on its reply instead of a segment of its own.
	 */
	if (c->rcv_unacked + s->len >= 2u * c->rcv_mss || (s->flags & TCP_PSH)) {
		c->ack_now = true;
		c->ack_lazy = ts->conf.ack_coalesce && !had_ooo && !owed;
	}
	deliver(c, m);
	if (conn_dead(c))
		return;
	if (fin) {
		/* FIN covers the queue too: anything beyond it is bogus */
		for (unsigned i = c->nooo; i-- > 0;) {
			if (c->ooo[i].m)
				rte_pktmbuf_free(c->ooo[i].m);
			ooo_remove(c, i);
		}
		fin_in(c);
		return;
	}
	if (had_ooo) {
		c->ack_now = true;	/* a hole filled: ACK at once */
		ooo_drain(c);
		if (conn_dead(c))
			return;
	}
	if (c->rcv_unacked >= 2u * c->rcv_mss)
		c->ack_now = true;
	else if (c->rcv_unacked && !c->ack_now && !c->delack_at)
		c->delack_at = ts->now + ts->conf.delack_ns;
}

/* New data acked (snd_una < ack <= snd_max). */
static void ack_new(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_stack *ts = c->ts;
	uint32_t ack = s->ack;
	uint32_t acked = ack - c->snd_una;
	uint32_t data = tcp_min32(acked, c->sq_len);
	if (data)
		tcp_sq_free_acked(c, data);
	if (c->ts_ok && s->opt.ts_ok && s->opt.tsecr) {
		/* An echo older than the last RTO comes from a copy sent before
		 * the timeout (the peer echoes the oldest unacked segment it
		 * holds, RFC 7323 4.3): it would measure the RTO wait, not the
		 * path. Karn's rule, applied to timestamps. */
		uint32_t d = tcp_ts_now(c) - s->opt.tsecr;
		if ((int32_t)d >= 0 && d < 600000 &&
		    (c->ts_rto == 0 || SEQ_GEQ(s->opt.tsecr, c->ts_rto)))
			tcp_rtt_sample(c, (uint64_t)(d ? d : 1) * NS_PER_MS);
	} else if (c->rtt_active && SEQ_GT(ack, c->rtt_seq)) {
		tcp_rtt_sample(c, ts->now - c->rtt_start);
		c->rtt_active = false;
	}
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, ack))
		c->snd_nxt = ack;
	c->nrexmit = 0;
	c->persist_shift = 0;
	tcp_cc_ack(c, ack, acked);
	tcp_tlp_ack(c, s);
	if (c->snd_una == c->snd_max)
		c->rexmt_at = 0;
	else if (!c->in_recovery || c->sack_recovery)
		tcp_arm_rexmt(c);
}

static void update_window(struct tcp_conn *c, const struct tcp_seg *s)
{
	if (SEQ_LT(c->snd_wl1, s->seq) ||
	    (c->snd_wl1 == s->seq && SEQ_LEQ(c->snd_wl2, s->ack))) {
		c->snd_wnd = (uint32_t)s->wnd << c->snd_wscale;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		if (c->snd_wnd > c->max_sndwnd)
			c->max_sndwnd = c->snd_wnd;
	}
}

static void syn_sent_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_stack *ts = c->ts;
	rte_pktmbuf_free(m);	/* data on a SYN-ACK is not kept: it comes again */
	if (s->flags & TCP_ACK) {
		if (SEQ_LEQ(s->ack, c->iss) || SEQ_GT(s->ack, c->snd_max)) {
			ts->stats.drop_bad_ack++;
			tcp_send_rst_for(ts, s);
			return;
		}
	}
	if (s->flags & TCP_RST) {
		ts->stats.rst_in++;
		if (s->flags & TCP_ACK)
			tcp_conn_drop(c, TCP_CLOSE_REFUSED);
		return;
	}
	if (!(s->flags & TCP_SYN))
		return;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	c->rcv_adv = c->rcv_nxt;
	negotiate(c, &s->opt);
	if (s->flags & TCP_ACK) {
		if (c->ts_ok && s->opt.tsecr) {
			uint32_t d = tcp_ts_now(c) - s->opt.tsecr;
			if ((int32_t)d >= 0 && d < 600000 && c->nrexmit == 0)
				tcp_rtt_sample(c, (uint64_t)(d ? d : 1) * NS_PER_MS);
		} else if (c->nrexmit == 0 && c->rtt_start) {
			tcp_rtt_sample(c, ts->now - c->rtt_start);
		}
		c->snd_una = s->ack;
		c->snd_wnd = s->wnd;	/* never scaled in a SYN */
		c->max_sndwnd = c->snd_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		tcp_send_ack(c);
		conn_established(c);
		if (!conn_dead(c))
			tcp_output(c);
		return;
	}
	/* simultaneous open */
	c->state = TCP_SYN_RCVD;
	c->snd_wnd = s->wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = c->iss;
	tcp_send_syn(c);
	tcp_arm_rexmt(c);
}

static void listen_input(struct tcp_stack *ts, struct tcp_listener *l,
			 struct tcp_seg *s, struct rte_mbuf *m, uint32_t iss_min,
			 bool use_iss_min);

static void conn_input_body(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m);

/* Send the ACK owed for this segment, or queue it for the end of the burst
 * (conf.ack_coalesce, in-order data only): data we send meanwhile carries
 * it, and several segments of one burst get one ACK. */
static void ack_out(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;

	if (c->ack_lazy && (c->ack_queued || ts->nackq < TCP_ACKQ_MAX)) {
		c->ack_lazy = false;
		if (!c->ack_queued) {
			c->ack_queued = true;
			ts->ackq[ts->nackq++] = c;
		}
		return;
	}
	c->ack_lazy = false;
	tcp_send_ack(c);
}

/* The ACKs ack_out() held back. */
static void ack_flush(struct tcp_stack *ts)
{
	for (unsigned i = 0; i < ts->nackq; i++) {
		struct tcp_conn *c = ts->ackq[i];
		if (!c->ack_queued)
			continue;	/* released meanwhile */
		c->ack_queued = false;
		if (!c->zombie && c->ack_now && c->state != TCP_TIME_WAIT)
			tcp_send_ack(c);
	}
	ts->nackq = 0;
}

static void conn_input(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	c->in_input = true;
	c->ack_lazy = false;
	conn_input_body(c, s, m);
	c->in_input = false;
	if (c->out_deferred && !conn_dead(c)) {
		/* what the application sent during the segment (tcp_output_soon) */
		c->out_deferred = false;
		tcp_output(c);
		if (!conn_dead(c) && c->ack_now && c->state != TCP_TIME_WAIT)
			ack_out(c);
	}
}

/*
 * A half-open connection gets an ACK it cannot take, which carries a valid
 * cookie for its tuple. Two ways that happens under load:
 *  - the peer's SYN was answered twice: with a cookie while the backlog was
 *    full, then, when the peer sent its SYN again, from the backlog with
 *    another ISN; the peer took the cookie SYN-ACK;
 *  - a SYN with the peer's tuple but another ISN (a flood from the peer's
 *    address, an old duplicate) took a backlog slot between the cookie
 *    SYN-ACK and the peer's ACK.
 * Either way the peer is established and a RST would reset it (seen as
 * ECONNRESET). A valid cookie proves we answered this peer's ISN; the
 * half-open connection proves nothing (a SYN costs nothing to forge). So it
 * gives way and the listener takes the ACK as a cookie ACK. True if it did
 * (m is consumed, c is gone).
 */
static bool half_open_gives_way(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_stack *ts = c->ts;
	struct tcp_listener *l = c->lst;
	uint16_t mss;

	if (!c->passive || c->cookie || !l || !ts->conf.syncookies ||
	    (s->flags & (TCP_SYN | TCP_RST)) ||
	    !tcp_cookie_recent_overflow(ts, l) ||
	    !tcp_cookie_check(ts, &c->t, s->seq - 1, s->ack - 1, &mss))
		return false;
	ts->stats.syncookies_over_half_open++;
	tcp_conn_release(c);
	listen_input(ts, l, s, m, 0, false);
	return true;
}

static void conn_input_body(struct tcp_conn *c, struct tcp_seg *s, struct rte_mbuf *m)
{
	struct tcp_stack *ts = c->ts;
	c->stat_in++;
	if (c->state == TCP_SYN_SENT) {
		syn_sent_input(c, s, m);
		return;
	}
	/* RFC 6191: a new SYN may reopen a TIME_WAIT connection */
	if (c->state == TCP_TIME_WAIT && (s->flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN) {
		bool ok;
		if (c->ts_ok && s->opt.ts_ok)
			ok = SEQ_GT(s->opt.tsval, c->ts_recent);
		else
			ok = SEQ_GT(s->seq, c->rcv_nxt);
		struct tcp_listener *l = tcp_listener_find(ts, c->t.lport);
		if (ok && l) {
			uint32_t iss_min = c->snd_nxt + 65535u + 2u;
			ts->stats.timewait_reuse++;
			tcp_conn_release(c);
			listen_input(ts, l, s, m, iss_min, true);
			return;
		}
	}
	/* before the sequence checks: the cookie's ACK need not be in the
	 * half-open connection's window (another ISN made it) */
	if (c->state == TCP_SYN_RCVD && (s->flags & TCP_ACK) &&
	    !(SEQ_LT(c->snd_una, s->ack) && SEQ_LEQ(s->ack, c->snd_max)) &&
	    half_open_gives_way(c, s, m))
		return;
	uint32_t seglen = s->len + !!(s->flags & TCP_SYN) + !!(s->flags & TCP_FIN);
	/* SYN_RCVD: a SYN again */
	if (c->state == TCP_SYN_RCVD && (s->flags & TCP_SYN) && !(s->flags & TCP_RST) &&
	    s->seq == c->irs) {
		if ((s->flags & TCP_ACK) && !c->passive) {
			/* simultaneous open: the peer's SYN-ACK; take its ACK */
			s->flags &= (uint8_t)~TCP_SYN;
			s->seq++;
			seglen--;
		} else {
			tcp_send_syn(c);
			rte_pktmbuf_free(m);
			return;
		}
	}
	/* PAWS */
	if (c->ts_ok && s->opt.ts_ok && !(s->flags & TCP_RST) &&
	    SEQ_LT(s->opt.tsval, c->ts_recent) &&
	    ts->now - c->ts_recent_ns < 24ull * 86400 * NS_PER_SEC) {
		ts->stats.drop_stale_ts++;
		if (oow_ack_ok(c, s, seglen))
			tcp_send_ack(c);
		rte_pktmbuf_free(m);
		return;
	}
	c->last_rcv_ns = ts->now;
	c->keep_probes = 0;
	if (c->state == TCP_FIN_WAIT_2 && ts->conf.fin_wait2_ns)
		c->tw_at = ts->now + ts->conf.fin_wait2_ns;	/* idle timeout */
	if (c->keepalive && tcp_synced(c))
		c->keep_at = ts->now + ts->conf.keepalive_idle_ns;

	/* sequence acceptability (RFC 9293 3.10.7.4, first check) */
	uint32_t wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	bool ok;
	bool zero_wnd_data = false;
	if (seglen == 0)
		ok = wnd == 0 ? s->seq == c->rcv_nxt :
		     SEQ_LEQ(c->rcv_nxt, s->seq) && SEQ_LT(s->seq, c->rcv_nxt + wnd);
	else if (wnd == 0) {
		ok = false;
		/* allowance for ACKs and RSTs (RFC 9293): process the control
		 * part of a segment at rcv_nxt, drop its data */
		if (s->seq == c->rcv_nxt)
			zero_wnd_data = true;
	} else {
		uint32_t last = s->seq + seglen - 1;
		ok = (SEQ_LEQ(c->rcv_nxt, s->seq) && SEQ_LT(s->seq, c->rcv_nxt + wnd)) ||
		     (SEQ_LEQ(c->rcv_nxt, last) && SEQ_LT(last, c->rcv_nxt + wnd));
	}
	if (!ok && !zero_wnd_data) {
		if (s->flags & TCP_RST) {
			ts->stats.rst_ignored++;
		} else {
			ts->stats.drop_out_of_window++;
			if (oow_ack_ok(c, s, seglen))
				tcp_send_ack(c);
		}
		rte_pktmbuf_free(m);
		return;
	}
	uint32_t orig_seq = s->seq;
	if (zero_wnd_data) {
		ts->stats.drop_rcv_full++;
		mb_keep(m, 0);
		s->len = 0;
		s->flags &= (uint8_t)~(TCP_FIN | TCP_SYN);
		c->ack_now = true;
	}
	/* trim to the window */
	if (SEQ_LT(s->seq, c->rcv_nxt)) {
		uint32_t d = c->rcv_nxt - s->seq;
		if (s->flags & TCP_SYN) {
			s->flags &= (uint8_t)~TCP_SYN;
			s->seq++;
			d--;
		}
		if (d >= s->len) {
			if (d > s->len)
				s->flags &= (uint8_t)~TCP_FIN;	/* old FIN */
			d = s->len;
		}
		if (d) {
			m = mb_chop_head(m, d);
			s->len -= d;
			c->ack_now = true;	/* partly duplicate */
		}
		s->seq += d;
	}
	if (s->len && SEQ_GT(s->seq + s->len, c->rcv_nxt + wnd)) {
		uint32_t keep = c->rcv_nxt + wnd - s->seq;
		mb_keep(m, keep);
		s->len = keep;
		s->flags &= (uint8_t)~TCP_FIN;
		c->ack_now = true;
	}
	/* RFC 7323 4.3: remember the timestamp to echo */
	if (c->ts_ok && s->opt.ts_ok && SEQ_LEQ(orig_seq, c->last_ack_sent) &&
	    SEQ_GEQ(s->opt.tsval, c->ts_recent)) {
		c->ts_recent = s->opt.tsval;
		c->ts_recent_ns = ts->now;
	}

	/* RST (RFC 5961 3.2) */
	if (s->flags & TCP_RST) {
		ts->stats.rst_in++;
		rte_pktmbuf_free(m);
		if (orig_seq != c->rcv_nxt) {
			challenge_ack(c);
			return;
		}
		if (c->state == TCP_TIME_WAIT) {
			ts->stats.rst_ignored++;	/* RFC 1337 */
			return;
		}
		if (c->state == TCP_SYN_RCVD && c->passive) {
			ts->stats.conn_reset++;
			tcp_conn_release(c);
			return;
		}
		tcp_conn_drop(c, c->state == TCP_SYN_RCVD ? TCP_CLOSE_REFUSED : TCP_CLOSE_RESET);
		return;
	}
	/* SYN in a synchronized state (RFC 5961 4.2) */
	if (s->flags & TCP_SYN) {
		rte_pktmbuf_free(m);
		challenge_ack(c);
		return;
	}
	if (!(s->flags & TCP_ACK)) {
		ts->stats.drop_bad_flags++;
		rte_pktmbuf_free(m);
		return;
	}
	/* ACK */
	if (c->state == TCP_SYN_RCVD) {
		if (!(SEQ_LT(c->snd_una, s->ack) && SEQ_LEQ(s->ack, c->snd_max))) {
			ts->stats.drop_bad_ack++;
			tcp_send_rst_for(ts, s);
			rte_pktmbuf_free(m);
			return;
		}
		c->snd_una = s->ack;
		if (SEQ_LT(c->snd_nxt, s->ack))
			c->snd_nxt = s->ack;
		c->snd_wnd = (uint32_t)s->wnd << c->snd_wscale;
		c->max_sndwnd = c->snd_wnd;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = s->ack;
		if (c->ts_ok && s->opt.ts_ok && s->opt.tsecr && c->nrexmit == 0) {
			uint32_t d = tcp_ts_now(c) - s->opt.tsecr;
			if ((int32_t)d >= 0 && d < 600000)
				tcp_rtt_sample(c, (uint64_t)(d ? d : 1) * NS_PER_MS);
		}
		conn_established(c);
		if (conn_dead(c)) {
			rte_pktmbuf_free(m);
			return;
		}
	} else {
		uint32_t max_back = tcp_max32(c->max_sndwnd, 65535u);
		if (SEQ_GT(s->ack, c->snd_max) || SEQ_LT(s->ack, c->snd_una - max_back)) {
			ts->stats.drop_bad_ack++;
			rte_pktmbuf_free(m);
			challenge_ack(c);
			return;
		}
		bool dup = s->ack == c->snd_una && s->len == 0 &&
			   !(s->flags & TCP_FIN) && c->snd_nxt != c->snd_una &&
			   c->snd_wnd > 0 &&
			   ((uint32_t)s->wnd << c->snd_wscale) == c->snd_wnd;
		if (SEQ_GT(s->ack, c->snd_una)) {
			ack_new(c, s);
			if (conn_dead(c)) {
				rte_pktmbuf_free(m);
				return;
			}
		}
		tcp_cc_sack_update(c, s);
		if (dup)
			tcp_cc_dupack(c, s);
		update_window(c, s);
		tcp_cc_sack_after_ack(c);
		if (!fin_acked_transitions(c)) {
			rte_pktmbuf_free(m);
			return;
		}
		if (c->state == TCP_TIME_WAIT) {
			rte_pktmbuf_free(m);
			return;
		}
	}
	process_data(c, s, m);
	if (conn_dead(c))
		return;
	tcp_output(c);
	if (conn_dead(c))
		return;
	if (c->ack_now && c->state != TCP_TIME_WAIT)
		ack_out(c);
	if (c->want_writable && c->app && tcp_send_space(c) > 0 &&
	    (c->state == TCP_ESTABLISHED || c->state == TCP_CLOSE_WAIT)) {
		if (!tcp_budget_room(ts)) {
			/* room in its buffer but not in the lcore's budget:
			 * the budget wake-up owes it writable() */
			tcp_budget_wait(c);
		} else {
			c->want_writable = false;
			tcp_budget_unwait(c);
			if (c->cbs.writable)
				c->cbs.writable(c, c->user);
			if (conn_dead(c))
				return;
		}
	}
	tcp_timer_update(c);
}

static void listen_input(struct tcp_stack *ts, struct tcp_listener *l,
			 struct tcp_seg *s, struct rte_mbuf *m, uint32_t iss_min,
			 bool use_iss_min)
{
	struct tcp_tuple t = { .laddr = s->daddr, .raddr = s->saddr,
			       .lport = s->dport, .rport = s->sport };
	if (s->flags & TCP_RST) {
		rte_pktmbuf_free(m);
		return;
	}
	if ((s->flags & (TCP_ACK | TCP_SYN)) == TCP_ACK) {
		uint16_t mss;
		bool cookies = ts->conf.syncookies;
		if (cookies && !tcp_cookie_recent_overflow(ts, l)) {
			/* no cookie of ours can be out: answer as for no
			 * connection, whatever the ACK carries */
			ts->stats.syncookies_no_overflow++;
			cookies = false;
		}
		if (!cookies || !tcp_cookie_check(ts, &t, s->seq - 1, s->ack - 1, &mss)) {
			if (cookies)
				ts->stats.syncookies_failed++;
			ts->stats.drop_no_conn++;
			tcp_send_rst_for(ts, s);
			rte_pktmbuf_free(m);
			return;
		}
		struct tcp_conn *c = tcp_conn_alloc(ts, &t);
		if (!c) {
			ts->stats.drop_nomem++;
			rte_pktmbuf_free(m);
			return;
		}
		ts->stats.syncookies_validated++;
		ts->stats.conn_opened_passive++;
		c->iss = s->ack - 1;
		tcp_conn_setup(c);
		c->passive = true;
		c->cookie = true;
		c->lst = l;
		c->irs = s->seq - 1;
		c->rcv_nxt = s->seq;
		struct tcp_opts o;
		memset(&o, 0, sizeof(o));
		o.mss_ok = true;
		o.mss = mss;
		if (s->opt.ts_ok && ts->conf.timestamps) {
			o.ts_ok = true;
			o.tsval = s->opt.tsval;
			tcp_cookie_ts_decode(s->opt.tsecr, &o.ws_ok, &o.ws, &o.sack_perm);
		}
		negotiate(c, &o);
		c->state = TCP_SYN_RCVD;
		c->snd_nxt = c->snd_max = c->iss + 1;
		c->rcv_adv = c->rcv_nxt + tcp_min32(ts->conf.rcvbuf, TCP_MAX_WIN);
		c->last_ack_sent = c->rcv_nxt;
		conn_input(c, s, m);
		return;
	}
	rte_pktmbuf_free(m);
	if ((s->flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		return;
	if (l->half_open >= ts->conf.backlog || (ts->nfree == 0 && !ts->tw_head)) {
		if (!ts->conf.syncookies) {
			ts->stats.drop_listen_full++;
			return;
		}
		uint16_t mss_used;
		tcp_cookie_overflow(ts, l);
		uint32_t cookie = tcp_cookie_make(ts, &t, s->seq,
			s->opt.mss_ok ? s->opt.mss : TCP_DEFAULT_MSS, &mss_used);
		struct tcp_opt_out o;
		memset(&o, 0, sizeof(o));
		o.syn = true;
		o.mss = tcp_our_mss(ts, t.laddr.family);
		if (s->opt.ts_ok && ts->conf.timestamps) {
			o.ts_ok = true;
			o.ws_ok = s->opt.ws_ok;
			o.ws = ts->conf.wscale;
			o.sack_perm = s->opt.sack_perm && ts->conf.sack;
			uint32_t now_ts = (uint32_t)(ts->now / NS_PER_MS) +
					  tcp_tuple_hash32(ts, &t, 0x7473u);
			o.tsval = tcp_cookie_tsval(now_ts, s->opt.ws, s->opt.ws_ok,
						   o.sack_perm);
			o.tsecr = s->opt.tsval;
		}
		ts->stats.syncookies_sent++;
		tcp_send_ctl(ts, &t, cookie, s->seq + 1, TCP_SYN | TCP_ACK,
			     (uint16_t)tcp_min32(ts->conf.rcvbuf, TCP_MAX_WIN), &o);
		return;
	}
	struct tcp_conn *c = tcp_conn_alloc(ts, &t);
	if (!c) {
		ts->stats.drop_nomem++;
		return;
	}
	ts->stats.conn_opened_passive++;
	c->iss = tcp_isn(ts, &t);
	if (use_iss_min && SEQ_LT(c->iss, iss_min))
		c->iss = iss_min;
	tcp_conn_setup(c);
	c->passive = true;
	c->lst = l;
	l->half_open++;
	c->irs = s->seq;
	c->rcv_nxt = s->seq + 1;
	negotiate(c, &s->opt);
	c->state = TCP_SYN_RCVD;
	tcp_send_syn(c);
	tcp_arm_rexmt(c);
	tcp_timer_update(c);
}

/*
 * Is the segment's checksum right? The port's verdict in the mbuf first,
 * as DPDK defines RTE_MBUF_F_RX_L4_CKSUM_*: BAD drops; GOOD is taken; NONE
 * ("checksum in packet not valid, but data integrity verified") is taken
 * too: that is a frame the sending kernel left with a partial checksum
 * (only the pseudo-header sum in the field, CHECKSUM_PARTIAL) on a virtual
 * link, where nothing ever corrupts it. UNKNOWN: checked here, pseudo-header
 * plus segment. Counts drop_cksum / cksum_offload_ok.
 */
static bool cksum_ok(struct tcp_stack *ts, const struct rte_mbuf *m,
		     uint32_t addr_sum, uint32_t tcplen)
{
	uint64_t f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	if (f == RTE_MBUF_F_RX_L4_CKSUM_BAD) {
		ts->stats.drop_cksum++;
		return false;
	}
	if (f != RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN) {
		ts->stats.cksum_offload_ok++;
		return true;
	}
	uint16_t raw;
	if (net_cksum_mbuf(m, 0, tcplen, &raw) != 0) {
		ts->stats.drop_short++;
		return false;
	}
	/* rte_raw_cksum sums 16-bit words as they lie in memory: the
	 * pseudo-header is added the same way (addr_sum: its addresses).
	 * IPv6's 32-bit length and next-header words (RFC 8200 8.1) sum as
	 * IPv4's 16-bit ones do: their high halves are zero. */
	uint32_t sum = raw + addr_sum;
	sum += rte_cpu_to_be_16(IPPROTO_TCP);
	sum += rte_cpu_to_be_16((uint16_t)tcplen);
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	if (sum != 0xFFFF) {
		ts->stats.drop_cksum++;
		return false;
	}
	return true;
}

static void seg_input(struct tcp_stack *ts, struct rte_mbuf *m, struct tcp_seg *s,
		      uint32_t tcplen, uint32_t addr_sum, bool src_is_us);

void tcp_input_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	struct tcp_stack *ts = ctx;
	ts->now = ts->ns->now_ns;
	ts->stats.seg_in++;
	uint32_t ihl = rte_ipv4_hdr_len(ip);
	uint32_t tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < ihl + TCP_HDR_LEN || m->pkt_len < tot - ihl) {
		ts->stats.drop_short++;
		rte_pktmbuf_free(m);
		return;
	}
	struct tcp_seg s;
	memset(&s, 0, sizeof(s));
	s.saddr.family = s.daddr.family = NET_AF_INET;
	s.saddr.v4 = ip->src_addr;
	s.daddr.v4 = ip->dst_addr;
	uint32_t addr_sum = (ip->src_addr >> 16) + (ip->src_addr & 0xFFFF) +
			    (ip->dst_addr >> 16) + (ip->dst_addr & 0xFFFF);
	seg_input(ts, m, &s, tot - ihl, addr_sum, ip->src_addr == ts->ns->addr.ip);
}

void tcp_input6_l4(void *ctx, struct rte_mbuf *m, const struct rte_ipv6_hdr *ip)
{
	struct tcp_stack *ts = ctx;
	ts->now = ts->ns->now_ns;
	ts->stats.seg_in++;
	/* ipv6.c cut the datagram to its payload, extension headers off */
	uint32_t tcplen = m->pkt_len;
	if (tcplen < TCP_HDR_LEN) {
		ts->stats.drop_short++;
		rte_pktmbuf_free(m);
		return;
	}
	struct tcp_seg s;
	memset(&s, 0, sizeof(s));
	s.saddr.family = s.daddr.family = NET_AF_INET6;
	memcpy(s.saddr.v6, ip->src_addr, 16);
	memcpy(s.daddr.v6, ip->dst_addr, 16);
	/* ipv6.c passes only unicast destinations of ours to TCP */
	seg_input(ts, m, &s, tcplen, ipv6_addr_sum(ip->src_addr, ip->dst_addr),
		  ipv6_is_ours(ts->ns, ip->src_addr));
}

/* The rest of input, for either family: m holds the segment (perhaps with
 * padding beyond tcplen), s its addresses. */
static void seg_input(struct tcp_stack *ts, struct rte_mbuf *m, struct tcp_seg *s,
		      uint32_t tcplen, uint32_t addr_sum, bool src_is_us)
{
	mb_keep(m, tcplen);
	if (!cksum_ok(ts, m, addr_sum, tcplen)) {
		rte_pktmbuf_free(m);
		return;
	}
	uint8_t hb[TCP_HDR_LEN + TCP_OPT_MAX];
	const struct rte_tcp_hdr *th = rte_pktmbuf_read(m, 0, TCP_HDR_LEN, hb);
	uint32_t doff = (uint32_t)(th->data_off >> 4) * 4;
	if (doff < TCP_HDR_LEN || doff > tcplen) {
		ts->stats.drop_bad_off++;
		rte_pktmbuf_free(m);
		return;
	}
	s->seq = rte_be_to_cpu_32(th->sent_seq);
	s->ack = rte_be_to_cpu_32(th->recv_ack);
	s->wnd = rte_be_to_cpu_16(th->rx_win);
	s->flags = th->tcp_flags & 0x3F;
	s->sport = th->src_port;
	s->dport = th->dst_port;
	if (doff > TCP_HDR_LEN) {
		const uint8_t *op = rte_pktmbuf_read(m, TCP_HDR_LEN, doff - TCP_HDR_LEN,
						     hb + TCP_HDR_LEN);
		if (tcp_opt_parse(op, doff - TCP_HDR_LEN, s->flags & TCP_SYN, &s->opt) != TCP_OPT_OK) {
			ts->stats.drop_bad_opt++;
			rte_pktmbuf_free(m);
			return;
		}
	}
	if ((s->flags & TCP_SYN) && (s->flags & (TCP_FIN | TCP_RST))) {
		ts->stats.drop_bad_flags++;
		rte_pktmbuf_free(m);
		return;
	}
	if (s->sport == 0 || s->dport == 0 || net_addr_eq(&s->saddr, &s->daddr) || src_is_us) {
		ts->stats.drop_bad_src++;
		rte_pktmbuf_free(m);
		return;
	}
	m = mb_chop_head(m, doff);
	s->len = m->pkt_len;
	struct tcp_tuple t = { .laddr = s->daddr, .raddr = s->saddr,
			       .lport = s->dport, .rport = s->sport };
	struct tcp_conn *c = tcp_conn_lookup(ts, &t);
	if (c) {
		conn_input(c, s, m);
	} else {
		struct tcp_listener *l = tcp_listener_find(ts, s->dport);
		if (l) {
			listen_input(ts, l, s, m, 0, false);
		} else {
			ts->stats.drop_no_conn++;
			tcp_send_rst_for(ts, s);
			rte_pktmbuf_free(m);
		}
	}
	if (ts->bw_head)
		tcp_budget_wake(ts);
	tcp_reap(ts);
}

void tcp_tick(struct tcp_stack *ts)
{
	ts->now = ts->ns->now_ns;
	ack_flush(ts);
	tcp_timer_run(ts);
	if (ts->bw_head)
		tcp_budget_wake(ts);
	tcp_reap(ts);
}

/*
 * Path MTU discovery (RFC 1191), with RFC 5927's defences: a router said
 * a segment of ours was too big for its next hop. Taken only when the
 * quote names a connection (addresses and ports: the lookup), in a
 * synchronized state, whose sequence number is one we sent and is not yet
 * acknowledged (SND.UNA <= SEG.SEQ < SND.MAX), and when the reported MTU
 * is below the quoted datagram's size (it must have been too big) but
 * never below TCP_PMTU_MIN. Then the MSS drops to fit and what is in
 * flight is sent again in the new size at once: the router dropped it,
 * and this is not congestion, so the window stays (as Linux's
 * tcp_simple_retransmit). The MSS never grows back (no RFC 4821 probing):
 * a connection lives for one SMTP session.
 *
 * IPv4 fragments stay dropped (ipv4.c): our segments are sized by MSS with
 * DF set, and so are every TCP peer's, so a fragment is either a peer's
 * mistake or an attack on reassembly memory; UDP (DNS) answers fit in one
 * datagram, or the resolver retries over TCP.
 */
static void pmtu_lower(struct tcp_stack *ts, struct tcp_tuple *t, uint32_t mtu,
		       uint32_t quoted_len, const uint8_t *l4);

void tcp_frag_needed_l4(void *ctx, uint16_t mtu, const struct rte_ipv4_hdr *q,
			const uint8_t *l4)
{
	struct tcp_stack *ts = ctx;
	struct tcp_tuple t;

	ts->now = ts->ns->now_ns;
	memset(&t, 0, sizeof(t));
	t.laddr = net_addr_v4(q->src_addr);
	t.raddr = net_addr_v4(q->dst_addr);
	pmtu_lower(ts, &t, mtu, rte_be_to_cpu_16(q->total_length), l4);
}

/* ICMPv6 packet too big (RFC 8201): the same checks; the MTU is never
 * taken below IPv6's minimum link MTU, 1280. */
void tcp_pkt_too_big_l4(void *ctx, uint32_t mtu, const struct rte_ipv6_hdr *q,
			const uint8_t *l4)
{
	struct tcp_stack *ts = ctx;
	struct tcp_tuple t;

	ts->now = ts->ns->now_ns;
	memset(&t, 0, sizeof(t));
	t.laddr = net_addr_v6(q->src_addr);
	t.raddr = net_addr_v6(q->dst_addr);
	pmtu_lower(ts, &t, mtu, rte_be_to_cpu_16(q->payload_len) + sizeof(*q), l4);
}

static void pmtu_lower(struct tcp_stack *ts, struct tcp_tuple *tp, uint32_t mtu,
		       uint32_t quoted_len, const uint8_t *l4)
{
	struct tcp_tuple t = *tp;
	struct tcp_conn *c;
	uint32_t seq, mss;
	bool v6 = net_addr_is_v6(&t.laddr);

	memcpy(&t.lport, l4, 2);
	memcpy(&t.rport, l4 + 2, 2);
	memcpy(&seq, l4 + 4, 4);
	seq = rte_be_to_cpu_32(seq);
	c = tcp_conn_lookup(ts, &t);
	if (!c || c->zombie || !tcp_synced(c) || c->state == TCP_TIME_WAIT ||
	    SEQ_LT(seq, c->snd_una) || SEQ_GEQ(seq, c->snd_max) ||
	    mtu == 0 || mtu >= quoted_len) {
		ts->stats.pmtu_rejected++;
		return;
	}
	if (v6 && mtu < IPV6_MIN_MTU)
		mtu = IPV6_MIN_MTU;
	else if (!v6 && mtu < TCP_PMTU_MIN)
		mtu = TCP_PMTU_MIN;
	mss = mtu - (v6 ? TCP_V6_HDRS : TCP_V4_HDRS) - (c->ts_ok ? 12 : 0);
	if (mss >= c->mss) {
		ts->stats.pmtu_rejected++;	/* not smaller than in use */
		return;
	}
	ts->stats.pmtu_lowered++;
	c->mss = (uint16_t)mss;
	if (c->in_input)
		return;
	c->snd_nxt = c->snd_una;	/* resend the flight in the new size */
	tcp_output(c);
}
