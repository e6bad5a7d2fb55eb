/*
 * tcp_output.c - building and sending segments.
 *
 * Every segment is a fresh mbuf from the stack's pool: TCP header, options
 * and (for data) a copy of the bytes from the connection's send queue, then
 * the checksum, then ipv4_output(). tcp_output() decides what to send from
 * the windows (min of the peer's window and cwnd) with sender-side silly
 * window avoidance (RFC 9293 3.8.6.2.1: full segments, or everything queued
 * when nothing is in flight or Nagle is off, or half the largest window
 * seen), arms the retransmission timer, and starts the persist timer when
 * data is waiting on a zero (or too small) window with nothing in flight.
 * The advertised window follows receiver-side SWS avoidance (the right edge
 * moves only by min(rcvbuf/2, MSS) or more, and never moves left).
 */
#include "dataplane/net/tcp_int.h"

#include <string.h>

#include <rte_ip.h>
#include <rte_tcp.h>

#include "dataplane/net/cksum.h"
#include "dataplane/net/ipv4.h"
#include "dataplane/net/ipv6.h"

uint16_t tcp_our_mss(const struct tcp_stack *ts, uint8_t family)
{
	uint32_t hdrs = family == NET_AF_INET6 ? TCP_V6_HDRS : TCP_V4_HDRS;
	uint32_t mss = ts->ns->addr.mtu > hdrs ? ts->ns->addr.mtu - hdrs : TCP_DEFAULT_MSS;
	uint32_t room = rte_pktmbuf_data_room_size(ts->ns->pool);
	uint32_t lim = room > RTE_PKTMBUF_HEADROOM + TCP_HDR_LEN + TCP_OPT_MAX ?
		       room - RTE_PKTMBUF_HEADROOM - TCP_HDR_LEN - TCP_OPT_MAX : 64;
	return (uint16_t)tcp_min32(tcp_min32(mss, lim), 65535);
}

uint32_t tcp_rcv_window(const struct tcp_conn *c)
{
	uint32_t buf = c->ts->conf.rcvbuf;
	return c->rcv_user >= buf ? 0 : buf - c->rcv_user;
}

/* Window field for a non-SYN segment; updates rcv_adv. */
static uint16_t adv_window(struct tcp_conn *c)
{
	uint32_t space = tcp_rcv_window(c);
	uint32_t right = c->rcv_nxt + space;
	uint32_t base = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv : c->rcv_nxt;
	if (SEQ_GT(right, base)) {
		uint32_t thresh = tcp_min32(c->ts->conf.rcvbuf / 2,
					    c->rcv_mss ? c->rcv_mss : c->mss);
		/* receiver SWS: move the edge only by min(rcvbuf/2, MSS) or
		 * more (also when reopening a zero window) */
		if (right - base >= thresh)
			c->rcv_adv = right;
	}
	if (SEQ_LT(c->rcv_adv, c->rcv_nxt))
		c->rcv_adv = c->rcv_nxt;
	uint32_t w = (c->rcv_adv - c->rcv_nxt) >> c->rcv_wscale;
	if (w > TCP_MAX_WIN)
		w = TCP_MAX_WIN;
	return (uint16_t)w;
}

/* Copy len bytes starting off bytes after snd_una out of the send queue. */
static void sq_copy(const struct tcp_conn *c, uint32_t off, uint32_t len, uint8_t *dst)
{
	const struct rte_mbuf *s = c->sq_head;
	off += c->sq_off;
	while (s && off >= s->data_len) {
		off -= s->data_len;
		s = s->next;
	}
	while (s && len) {
		uint32_t n = tcp_min32(len, (uint32_t)s->data_len - off);
		memcpy(dst, rte_pktmbuf_mtod_offset(s, const uint8_t *, off), n);
		dst += n;
		len -= n;
		off = 0;
		s = s->next;
	}
}

/* Build and send one segment. Payload (len bytes at off past snd_una) is
 * copied from c's send queue. Returns 0 or -1 (no mbuf). */
static int seg_send(struct tcp_stack *ts, const struct tcp_tuple *t, uint32_t seq,
		    uint32_t ack, uint8_t flags, uint16_t wnd,
		    const struct tcp_opt_out *o, const struct tcp_conn *c,
		    uint32_t off, uint32_t len)
{
	struct net_stack *ns = ts->ns;
	struct rte_mbuf *m = rte_pktmbuf_alloc(ns->pool);
	if (!m) {
		ts->stats.tx_nombuf++;
		return -1;
	}
	uint8_t optbuf[TCP_OPT_MAX];
	unsigned olen = o ? tcp_opt_build(optbuf, o) : 0;
	unsigned hlen = TCP_HDR_LEN + olen;
	if (rte_pktmbuf_headroom(m) < IPV6_OUT_HEADROOM) {
		rte_pktmbuf_free(m);
		ts->stats.tx_nombuf++;
		return -1;
	}
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(hlen + len));
	if (!p) {
		rte_pktmbuf_free(m);
		ts->stats.tx_nombuf++;
		return -1;
	}
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)p;
	th->src_port = t->lport;
	th->dst_port = t->rport;
	th->sent_seq = rte_cpu_to_be_32(seq);
	th->recv_ack = rte_cpu_to_be_32((flags & TCP_ACK) ? ack : 0);
	th->data_off = (uint8_t)((hlen / 4) << 4);
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(wnd);
	th->cksum = 0;
	th->tcp_urp = 0;
	if (olen)
		memcpy(p + TCP_HDR_LEN, optbuf, olen);
	if (len)
		sq_copy(c, off, len, p + hlen);
	ts->stats.seg_out++;
	ts->stats.bytes_out += len;
	if (flags & TCP_RST)
		ts->stats.rst_out++;
	if (net_addr_is_v6(&t->raddr)) {
		if (ns->tx_tcp_cksum) {
			/* the port finishes it; ipv6_output sets l2/l3_len */
			uint32_t sum = ipv6_addr_sum(t->laddr.v6, t->raddr.v6) +
				       rte_cpu_to_be_16(IPPROTO_TCP) +
				       rte_cpu_to_be_16((uint16_t)(hlen + len));
			while (sum >> 16)
				sum = (sum & 0xffff) + (sum >> 16);
			m->ol_flags |= RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
			th->cksum = (uint16_t)sum;
			ns->stats.tcp_tx_cksum_offload++;
		} else {
			th->cksum = ipv6_l4_cksum(m, 0, hlen + len, t->laddr.v6, t->raddr.v6,
						  IPPROTO_TCP);
		}
		ipv6_output(ns, m, t->raddr.v6, t->laddr.v6, IPPROTO_TCP, 0);
		return 0;
	}
	struct rte_ipv4_hdr iph;
	memset(&iph, 0, sizeof(iph));
	iph.version_ihl = 0x45;
	iph.next_proto_id = IPPROTO_TCP;
	iph.src_addr = t->laddr.v4;
	iph.dst_addr = t->raddr.v4;
	iph.total_length = rte_cpu_to_be_16((uint16_t)(sizeof(iph) + hlen + len));
	if (ns->tx_tcp_cksum) {
		/* The port finishes it (net_stack.h); ipv4_output sets l2/l3_len. */
		m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
		th->cksum = rte_ipv4_phdr_cksum(&iph, m->ol_flags);
		ns->stats.tcp_tx_cksum_offload++;
	} else {
		/* rte_ipv4_udptcp_cksum's value, summed by net_raw_cksum */
		uint32_t sum = (uint32_t)net_raw_cksum(th, hlen + len) +
			       rte_ipv4_phdr_cksum(&iph, 0);
		uint16_t ck;
		sum = (sum & 0xffff) + (sum >> 16);
		ck = (uint16_t)~sum;
		th->cksum = ck ? ck : 0xffff;
	}
	ipv4_output(ns, m, t->raddr.v4, IPPROTO_TCP);
	return 0;
}

void tcp_send_ctl(struct tcp_stack *ts, const struct tcp_tuple *t, uint32_t seq,
		  uint32_t ack, uint8_t flags, uint16_t wnd,
		  const struct tcp_opt_out *o)
{
	seg_send(ts, t, seq, ack, flags, wnd, o, NULL, 0, 0);
}

void tcp_send_rst_for(struct tcp_stack *ts, const struct tcp_seg *s)
{
	if (s->flags & TCP_RST)
		return;
	struct tcp_tuple t = { .laddr = s->daddr, .raddr = s->saddr,
			       .lport = s->dport, .rport = s->sport };
	if (s->flags & TCP_ACK) {
		tcp_send_ctl(ts, &t, s->ack, 0, TCP_RST, 0, NULL);
	} else {
		uint32_t ack = s->seq + s->len + !!(s->flags & TCP_SYN) +
			       !!(s->flags & TCP_FIN);
		tcp_send_ctl(ts, &t, 0, ack, TCP_RST | TCP_ACK, 0, NULL);
	}
}

/* Options of a non-SYN segment: timestamps, SACK blocks. */
static void conn_opts(struct tcp_conn *c, struct tcp_opt_out *o)
{
	memset(o, 0, sizeof(*o));
	if (c->ts_ok) {
		o->ts_ok = true;
		o->tsval = tcp_ts_now(c);
		o->tsecr = c->ts_recent;
	}
	if (c->sack_ok && c->nooo) {
		/* RFC 2018: first block holds the most recent arrival; the
		 * queue is sorted and disjoint, so merge touching entries */
		struct { uint32_t s, e; } blk[TCP_MAX_SACK + 1];
		unsigned nb = 0, first = 0;
		for (unsigned i = 0; i < c->nooo; i++) {
			uint32_t s = c->ooo[i].seq, e = s + c->ooo[i].len + c->ooo[i].fin;
			if (nb && blk[nb - 1].e == s) {
				blk[nb - 1].e = e;
			} else {
				if (nb == TCP_MAX_SACK + 1)
					break;
				blk[nb].s = s;
				blk[nb].e = e;
				nb++;
			}
			if (SEQ_LEQ(s, c->last_ooo_seq) && SEQ_LT(c->last_ooo_seq, e))
				first = nb - 1;
		}
		unsigned k = 0;
		if (nb) {
			o->sack[k].start = blk[first].s;
			o->sack[k].end = blk[first].e;
			k++;
		}
		for (unsigned i = 0; i < nb && k < TCP_MAX_SACK; i++) {
			if (i == first)
				continue;
			o->sack[k].start = blk[i].s;
			o->sack[k].end = blk[i].e;
			k++;
		}
		o->nsack = (uint8_t)k;
	}
}

static void acked_now(struct tcp_conn *c)
{
	c->delack_at = 0;
	c->rcv_unacked = 0;
	c->ack_now = false;
	c->last_ack_sent = c->rcv_nxt;
}

void tcp_send_ack(struct tcp_conn *c)
{
	struct tcp_opt_out o;
	conn_opts(c, &o);
	uint16_t w = adv_window(c);
	/* snd_max, not snd_nxt: while retransmitting after a timeout snd_nxt
	 * is behind what the peer has already received, and an ACK below its
	 * rcv_nxt would be discarded as old (BSD does the same) */
	seg_send(c->ts, &c->t, c->snd_max, c->rcv_nxt, TCP_ACK, w, &o, NULL, 0, 0);
	c->stat_out++;
	acked_now(c);
}

void tcp_send_keepalive(struct tcp_conn *c)
{
	struct tcp_opt_out o;
	conn_opts(c, &o);
	uint16_t w = adv_window(c);
	seg_send(c->ts, &c->t, c->snd_una - 1, c->rcv_nxt, TCP_ACK, w, &o, NULL, 0, 0);
	c->stat_out++;
}

void tcp_send_rst_conn(struct tcp_conn *c)
{
	if (c->state == TCP_SYN_SENT || c->state == TCP_CLOSED)
		return;
	tcp_send_ctl(c->ts, &c->t, c->snd_max, c->rcv_nxt, TCP_RST | TCP_ACK, 0, NULL);
}

void tcp_send_syn(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	struct tcp_opt_out o;
	memset(&o, 0, sizeof(o));
	o.syn = true;
	o.mss = tcp_our_mss(ts, c->t.laddr.family);
	uint8_t flags = TCP_SYN;
	uint32_t ack = 0;
	if (c->state == TCP_SYN_SENT) {
		o.ws_ok = true;
		o.ws = ts->conf.wscale;
		o.sack_perm = ts->conf.sack;
		o.ts_ok = ts->conf.timestamps;
		o.tsval = tcp_ts_now(c);
		o.tsecr = 0;
	} else {
		flags |= TCP_ACK;
		ack = c->rcv_nxt;
		o.ws_ok = c->ws_ok;
		o.ws = c->rcv_wscale;
		o.sack_perm = c->sack_ok;
		o.ts_ok = c->ts_ok;
		o.tsval = tcp_ts_now(c);
		o.tsecr = c->ts_recent;
	}
	uint32_t w = tcp_min32(tcp_rcv_window(c), TCP_MAX_WIN);
	seg_send(ts, &c->t, c->iss, ack, flags, (uint16_t)w, &o, NULL, 0, 0);
	c->stat_out++;
	c->snd_nxt = c->iss + 1;
	if (SEQ_LT(c->snd_max, c->snd_nxt))
		c->snd_max = c->snd_nxt;
	if (c->state == TCP_SYN_RCVD) {
		c->rcv_adv = c->rcv_nxt + w;
		acked_now(c);
	}
}

static bool fin_states(const struct tcp_conn *c)
{
	return c->state == TCP_FIN_WAIT_1 || c->state == TCP_CLOSING ||
	       c->state == TCP_LAST_ACK;
}

/* Sends [seq, seq+len) (+FIN when it ends the stream); returns sequence
 * space used (len + FIN). */
static uint32_t xmit(struct tcp_conn *c, uint32_t seq, uint32_t len, bool rexmit)
{
	struct tcp_stack *ts = c->ts;
	struct tcp_opt_out o;
	conn_opts(c, &o);
	/* SACK blocks take room from the payload: the segment must fit the
	 * MSS the peer announced (c->mss already leaves room for timestamps) */
	uint8_t tmp[TCP_OPT_MAX];
	unsigned olen = tcp_opt_build(tmp, &o);
	uint32_t base = c->mss + (c->ts_ok ? 12u : 0u);
	uint32_t room = base > olen + 1 ? base - olen : 1;
	if (len > room)
		len = room;
	bool fin = c->user_closed && fin_states(c) && seq + len == c->snd_end;
	uint8_t flags = TCP_ACK;
	if (fin)
		flags |= TCP_FIN;
	if (len && seq + len == c->snd_end)
		flags |= TCP_PSH;
	uint16_t w = adv_window(c);
	if (seg_send(ts, &c->t, seq, c->rcv_nxt, flags, w, &o, c, seq - c->snd_una, len) != 0)
		return 0;
	c->stat_out++;
	acked_now(c);
	uint32_t used = len + fin;
	if (SEQ_GT(seq + used, c->snd_max))
		c->snd_max = seq + used;
	if (rexmit) {
		ts->stats.retransmits++;
		c->stat_rexmit++;
		if (c->rtt_active && SEQ_LEQ(seq, c->rtt_seq))
			c->rtt_active = false;	/* Karn */
	} else if (!c->rtt_active && !c->ts_ok && used && seq == c->snd_nxt &&
		   c->snd_wnd > 0) {
		c->rtt_active = true;
		c->rtt_seq = seq;
		c->rtt_start = ts->now;
	}
	return used;
}

uint32_t tcp_xmit_data(struct tcp_conn *c, uint32_t seq, uint32_t len, bool rexmit)
{
	uint32_t used = xmit(c, seq, len, rexmit);
	if (rexmit && seq == c->snd_nxt)
		c->snd_nxt = seq + used;
	return used;
}

static void output(struct tcp_conn *c, bool force)
{
	struct tcp_stack *ts = c->ts;
	switch (c->state) {
	case TCP_ESTABLISHED: case TCP_CLOSE_WAIT: case TCP_FIN_WAIT_1:
	case TCP_CLOSING: case TCP_LAST_ACK:
		break;
	default:
		return;
	}
	for (unsigned n = 0; n < 256; n++) {
		/* resending after a timeout: skip what the peer has SACKed */
		if (c->nsb && SEQ_LT(c->snd_nxt, c->snd_max)) {
			for (unsigned k = 0; k < TCP_SB_MAX + 1; k++)
				c->snd_nxt = tcp_sb_skip(c, c->snd_nxt);
			if (SEQ_GT(c->snd_nxt, c->snd_max))
				c->snd_nxt = c->snd_max;
		}
		uint32_t in_flight = c->snd_nxt - c->snd_una;
		uint32_t unsent = SEQ_GT(c->snd_end, c->snd_nxt) ? c->snd_end - c->snd_nxt : 0;
		bool fin_pending = c->user_closed && fin_states(c) &&
				   SEQ_LEQ(c->snd_nxt, c->snd_end);
		uint32_t wnd = tcp_min32(c->snd_wnd, c->cwnd);
		uint32_t usable = wnd > in_flight ? wnd - in_flight : 0;
		uint32_t len = tcp_min32(tcp_min32(unsent, usable), c->mss);
		if (c->nsb && SEQ_LT(c->snd_nxt, c->snd_max))
			len = tcp_min32(len, tcp_sb_next(c, c->snd_nxt, c->snd_max) - c->snd_nxt);
		if (len == 0) {
			if (fin_pending && unsent == 0) {
				uint32_t used = xmit(c, c->snd_nxt, 0,
						     SEQ_LT(c->snd_nxt, c->snd_max));
				c->snd_nxt += used;
				if (!c->rexmt_at && used)
					tcp_arm_rexmt(c);
			}
			break;
		}
		if (!force && len < c->mss && !(len == unsent && (c->nodelay || in_flight == 0)) &&
		    !(c->max_sndwnd && len >= c->max_sndwnd / 2))
			break;
		uint32_t used = xmit(c, c->snd_nxt, len, SEQ_LT(c->snd_nxt, c->snd_max));
		if (used == 0)
			break;	/* no mbuf: the timers will retry */
		c->snd_nxt += used;
		if (!c->rexmt_at || c->pto_armed)
			tcp_arm_rexmt(c);	/* new data restarts a PTO (RFC 8985 7.2) */
		force = false;
	}
	uint32_t unsent = SEQ_GT(c->snd_end, c->snd_nxt) ? c->snd_end - c->snd_nxt : 0;
	if (c->snd_nxt == c->snd_una && unsent > 0) {
		if (!c->persist_at) {
			c->persist_shift = 0;
			uint64_t d = c->rto < ts->conf.rto_min_ns ? ts->conf.rto_min_ns : c->rto;
			c->persist_at = ts->now + d;
		}
	} else {
		c->persist_at = 0;
	}
	tcp_timer_update(c);
}

uint32_t tcp_send_new(struct tcp_conn *c)
{
	if (SEQ_LT(c->snd_nxt, c->snd_max))
		return 0;	/* only genuinely new data */
	uint32_t in_flight = c->snd_nxt - c->snd_una;
	uint32_t unsent = SEQ_GT(c->snd_end, c->snd_nxt) ? c->snd_end - c->snd_nxt : 0;
	uint32_t usable = c->snd_wnd > in_flight ? c->snd_wnd - in_flight : 0;
	uint32_t len = tcp_min32(tcp_min32(unsent, usable), c->mss);
	if (len == 0)
		return 0;
	uint32_t used = xmit(c, c->snd_nxt, len, false);
	c->snd_nxt += used;
	if (!c->rexmt_at && used)
		tcp_arm_rexmt(c);
	return used;
}

void tcp_output(struct tcp_conn *c) { output(c, false); }
void tcp_output_force(struct tcp_conn *c) { output(c, true); }
