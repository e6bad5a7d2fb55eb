/*
 * tcp_timer.c - the per-lcore timer wheel and the connection timers.
 *
 * Each connection has up to six deadlines (retransmission/SYN, persist,
 * delayed ACK, keepalive, TIME_WAIT/FIN_WAIT_2, and the application's own
 * from tcp_set_timer) and is filed once in a
 * hashed wheel (1 ms ticks, 4096 slots) under the earliest of them, rounded
 * up to a tick so that an entry found in a processed slot is always due or
 * belongs to a later round. tcp_timer_run() walks the slots between the last
 * run and now; work per run is bounded by the slots walked and the entries
 * filed in them. Expiry handlers (RTO with exponential backoff and R2
 * give-up, persist probes, delayed ACK, keepalive, TIME_WAIT) live here too.
 *
 * Tail Loss Probe (RFC 8985 7). Without it a lost last segment (an SMTP
 * reply, the end of a body) is found only by the RTO, at least rto_min_ns
 * (200 ms): no later segment makes the duplicate ACKs fast retransmit needs.
 * So while data is out and nothing else is under way, the retransmission
 * timer is armed for the probe timeout instead,
 *   PTO = 2 * SRTT (+ conf.tlp_ack_delay_ns when one segment is in flight),
 * capped by the RTO. When it fires, one probe goes out: a new segment if
 * the peer's window has room for unsent data, else the last segment sent
 * again; then the RTO is armed as usual (never a second probe before an
 * ACK). The probe's ACK recovers a lost tail in about PTO + RTT; if a
 * D-SACK says the probe was a duplicate, nothing was lost; otherwise the
 * probe repaired a loss and the window is halved once (7.4).
 * The one-segment allowance is the peer's delayed ACK: RFC 8985 recommends
 * 200 ms for it, which would put the PTO past our 200 ms RTO floor and
 * leave a lone reply (every SMTP reply) unprotected. Linux peers ACK a
 * lone segment within 40 ms (their delayed-ACK minimum) and at once when
 * they answer it, as SMTP clients do; a probe sent a little early costs one
 * duplicate segment, answered by a D-SACK. conf.tlp_ack_delay_ns tunes it.
 * RACK's time-based loss detection (RFC 8985 6) is applied only where a
 * probe makes it simple (tcp_cc_sack_after_ack): a SACKed probe with
 * holes below it starts SACK recovery at once. Elsewhere RFC 6675's
 * DupThresh rule decides (no per-segment send times are kept).
 */
#include "dataplane/net/tcp_int.h"

#include <stdlib.h>

int tcp_wheel_init(struct tcp_wheel *w, unsigned slots, uint64_t tick_ns, uint64_t now)
{
	/* slots[mask + 1] is the "being run" list */
	w->slots = calloc(slots + 1, sizeof(*w->slots));
	if (!w->slots)
		return -1;
	w->mask = slots - 1;
	w->tick_ns = tick_ns;
	w->cur = now / tick_ns;
	return 0;
}

void tcp_wheel_fini(struct tcp_wheel *w)
{
	free(w->slots);
	w->slots = NULL;
}

static unsigned run_slot(const struct tcp_wheel *w) { return w->mask + 1; }

static void w_unlink(struct tcp_wheel *w, struct tcp_conn *c)
{
	struct tcp_wheel_link *l = &c->wl;
	if (l->at == 0)
		return;
	if (l->prev)
		l->prev->wl.next = l->next;
	else
		w->slots[l->slot] = l->next;
	if (l->next)
		l->next->wl.prev = l->prev;
	l->next = l->prev = NULL;
	l->at = 0;
}

static void w_push(struct tcp_wheel *w, unsigned slot, struct tcp_conn *c)
{
	struct tcp_wheel_link *l = &c->wl;
	l->slot = slot;
	l->prev = NULL;
	l->next = w->slots[slot];
	if (l->next)
		l->next->wl.prev = c;
	w->slots[slot] = c;
}

static void w_file(struct tcp_wheel *w, struct tcp_conn *c, uint64_t at)
{
	uint64_t tick = (at + w->tick_ns - 1) / w->tick_ns;
	if (tick <= w->cur)
		tick = w->cur + 1;
	c->wl.at = at;
	w_push(w, (unsigned)(tick & w->mask), c);
}

void tcp_timer_cancel(struct tcp_conn *c)
{
	w_unlink(&c->ts->wheel, c);
}

static uint64_t earliest(const struct tcp_conn *c)
{
	uint64_t t[6] = { c->rexmt_at, c->persist_at, c->delack_at, c->keep_at, c->tw_at,
			  c->app_at };
	uint64_t m = 0;
	for (unsigned i = 0; i < 6; i++)
		if (t[i] && (m == 0 || t[i] < m))
			m = t[i];
	return m;
}

void tcp_timer_update(struct tcp_conn *c)
{
	struct tcp_wheel *w = &c->ts->wheel;
	if (c->zombie)
		return;
	uint64_t at = earliest(c);
	if (at == c->wl.at && c->wl.slot != run_slot(w))
		return;
	w_unlink(w, c);
	if (at)
		w_file(w, c, at);
}

static bool tlp_allowed(const struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_ESTABLISHED: case TCP_CLOSE_WAIT: case TCP_FIN_WAIT_1:
	case TCP_CLOSING: case TCP_LAST_ACK:
		break;
	default:
		return false;
	}
	return c->ts->conf.tlp && c->srtt && !c->in_recovery && !c->tlp_out &&
	       c->nrexmit == 0 && c->snd_max != c->snd_una;
}

void tcp_arm_rexmt(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;

	c->pto_armed = false;
	if (tlp_allowed(c)) {
		uint64_t pto = 2 * c->srtt;
		if (c->snd_max - c->snd_una <= c->mss)
			pto += ts->conf.tlp_ack_delay_ns;
		if (pto < c->rto) {
			c->rexmt_at = ts->now + pto;
			c->pto_armed = true;
			return;
		}
	}
	c->rexmt_at = ts->now + c->rto;
}

/* The PTO passed with no ACK: send one probe, then wait for the RTO. */
static void pto_fire(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	uint32_t used = 0;

	if (!tlp_allowed(c)) {
		tcp_arm_rexmt(c);
		return;
	}
	ts->stats.tlp_probes++;
	c->tlp_dsack = false;
	if (c->snd_nxt == c->snd_max)
		used = tcp_send_new(c);	/* new data the window has room for */
	if (used) {
		ts->stats.tlp_new_data++;
		c->tlp_rexmit = false;
	} else {
		/* the last segment again (data up to snd_end, then FIN if sent) */
		uint32_t data_end = SEQ_LT(c->snd_end, c->snd_max) ? c->snd_end : c->snd_max;
		uint32_t len = tcp_min32(data_end - c->snd_una, c->mss);
		tcp_xmit_data(c, data_end - len, len, true);
		c->tlp_seq = data_end - len;
		c->tlp_rexmit = true;
	}
	c->tlp_out = true;
	c->tlp_end = c->snd_max;
	c->pto_armed = false;
	c->rexmt_at = ts->now + c->rto;
}

void tcp_tlp_ack(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_stack *ts = c->ts;

	if (!c->tlp_out)
		return;
	/* D-SACK (RFC 2883): a first block below the cumulative ACK reports
	 * a duplicate: the probe's copy or the original was not needed */
	if (s->opt.nsack && SEQ_LEQ(s->opt.sack[0].end, s->ack))
		c->tlp_dsack = true;
	if (SEQ_LT(s->ack, c->tlp_end))
		return;
	c->tlp_out = false;
	if (!c->tlp_rexmit)
		return;	/* new data: any loss shows up as usual */
	if (c->tlp_dsack) {
		ts->stats.tlp_spurious++;
		return;
	}
	ts->stats.tlp_recovered++;
	tcp_cc_tlp_repaired(c);
}

/* ---- expiry handlers ---- */

static void rto_fire(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	ts->stats.rto_fires++;
	c->nrexmit++;
	bool syn = c->state == TCP_SYN_SENT || c->state == TCP_SYN_RCVD;
	unsigned limit = syn ? ts->conf.syn_retries : ts->conf.r2;
	if (c->nrexmit == ts->conf.r1 && !syn)
		ts->stats.r1_reached++;	/* RFC 9293 R1: advisory only */
	if (c->nrexmit > limit) {
		tcp_conn_drop(c, TCP_CLOSE_TIMEOUT);
		return;
	}
	c->tlp_out = false;	/* the timeout takes over from any probe */
	c->rto = c->rto * 2 > ts->conf.rto_max_ns ? ts->conf.rto_max_ns : c->rto * 2;
	c->rtt_active = false;	/* Karn: no samples from retransmitted data */
	c->ts_rto = tcp_ts_now(c);
	if (c->ts_rto == 0)
		c->ts_rto = 1;
	if (syn) {
		ts->stats.syn_retransmits++;
		tcp_send_syn(c);
		tcp_arm_rexmt(c);
		return;
	}
	if (c->snd_max == c->snd_una)
		return;		/* nothing outstanding any more */
	tcp_cc_timeout(c);
	/* go back to snd_una: resend the first segment now, the rest as the
	 * (reset) congestion window opens again */
	uint32_t len = tcp_min32(c->sq_len, c->mss);
	c->snd_nxt = c->snd_una;
	tcp_xmit_data(c, c->snd_una, len, true);
	tcp_arm_rexmt(c);
}

static void persist_fire(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	uint32_t unsent = c->snd_una + c->sq_len - c->snd_nxt;
	if (c->snd_nxt != c->snd_una || (unsent == 0 && !c->user_closed))
		return;
	if (c->snd_wnd == 0 && unsent > 0) {
		/* zero-window probe, as Linux sends it: a zero-length segment
		 * with seq = snd_una - 1, which the peer must answer with an ACK
		 * carrying its current window. Sending a byte of data instead
		 * would move snd_max past what the peer can accept and make our
		 * own ACKs unacceptable to it while the window stays shut. */
		ts->stats.persist_probes++;
		tcp_send_keepalive(c);
		if (c->persist_shift < 16)
			c->persist_shift++;
		uint64_t d = c->rto << c->persist_shift;
		if (d > ts->conf.rto_max_ns || c->persist_shift >= 16)
			d = ts->conf.rto_max_ns;
		c->persist_at = ts->now + d;
		return;
	}
	tcp_output_force(c);	/* SWS override: send what the window allows */
}

static void keep_fire(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	if (!c->keepalive || (c->state != TCP_ESTABLISHED && c->state != TCP_CLOSE_WAIT))
		return;
	if (ts->now - c->last_rcv_ns < ts->conf.keepalive_idle_ns && c->keep_probes == 0) {
		c->keep_at = c->last_rcv_ns + ts->conf.keepalive_idle_ns;
		return;
	}
	if (c->keep_probes >= ts->conf.keepalive_probes) {
		tcp_send_rst_conn(c);
		tcp_conn_drop(c, TCP_CLOSE_KEEPALIVE);
		return;
	}
	c->keep_probes++;
	ts->stats.keepalive_probes++;
	tcp_send_keepalive(c);
	c->keep_at = ts->now + ts->conf.keepalive_intvl_ns;
}

static void conn_expire(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	uint64_t now = ts->now;
	if (c->tw_at && c->tw_at <= now) {
		c->tw_at = 0;
		if (c->state == TCP_TIME_WAIT) {
			ts->stats.timewait_expired++;
			tcp_conn_release(c);
			return;
		}
		if (c->state == TCP_FIN_WAIT_2) {
			tcp_conn_drop(c, TCP_CLOSE_TIMEOUT);
			return;
		}
	}
	if (c->delack_at && c->delack_at <= now) {
		c->delack_at = 0;
		ts->stats.delayed_acks++;
		tcp_send_ack(c);
	}
	if (c->rexmt_at && c->rexmt_at <= now) {
		c->rexmt_at = 0;
		if (c->pto_armed)
			pto_fire(c);
		else
			rto_fire(c);
		if (c->zombie)
			return;
	}
	if (c->persist_at && c->persist_at <= now) {
		c->persist_at = 0;
		persist_fire(c);
	}
	if (c->keep_at && c->keep_at <= now) {
		c->keep_at = 0;
		keep_fire(c);
		if (c->zombie)
			return;
	}
	if (c->app_at && c->app_at <= now) {
		c->app_at = 0;
		if (c->app && c->cbs.timer) {
			ts->stats.app_timers++;
			c->cbs.timer(c, c->user);
			if (c->zombie)
				return;
		}
	}
	tcp_timer_update(c);
}

void tcp_timer_run(struct tcp_stack *ts)
{
	struct tcp_wheel *w = &ts->wheel;
	uint64_t now_tick = ts->now / w->tick_ns;
	if (now_tick <= w->cur)
		return;
	uint64_t from = w->cur + 1;
	if (now_tick - w->cur > (uint64_t)w->mask + 1)
		from = now_tick - w->mask;	/* every slot once */
	w->cur = now_tick;
	unsigned rs = run_slot(w);
	for (uint64_t t = from; t <= now_tick; t++) {
		unsigned s = (unsigned)(t & w->mask);
		/* move the slot to the run list, then pop entries one by one: a
		 * handler may cancel or re-file any connection safely */
		while (w->slots[s]) {
			struct tcp_conn *c = w->slots[s];
			uint64_t at = c->wl.at;
			w_unlink(w, c);
			c->wl.at = at;
			w_push(w, rs, c);
		}
		while (w->slots[rs]) {
			struct tcp_conn *c = w->slots[rs];
			uint64_t at = c->wl.at;
			w_unlink(w, c);
			if (at <= ts->now)
				conn_expire(c);
			else
				w_file(w, c, at);
		}
	}
}
