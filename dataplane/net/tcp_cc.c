/*
 * tcp_cc.c - congestion control and RTT estimation.
 *
 * RTO per RFC 6298 (SRTT/RTTVAR, G = 1 ms, clamped to [rto_min, rto_max]);
 * Karn's rule is applied where samples are taken (tcp_input.c/tcp_output.c:
 * no samples from retransmitted segments unless timestamps say which copy
 * was acked). NewReno per RFC 5681 (slow start with ABC L = 1 SMSS,
 * congestion avoidance) and RFC 6582 (fast retransmit on the third
 * duplicate ACK, fast recovery with partial ACKs retransmitting the next
 * hole, "recover" guarding against false re-entry after a timeout) and
 * limited transmit (RFC 3042). Initial window per RFC 6928 (10 segments).
 *
 * With SACK, loss recovery follows RFC 6675: a scoreboard of SACKed ranges
 * (bounded, merged), IsLost() by DupThresh segments or (DupThresh - 1) *
 * SMSS + 1 bytes SACKed above, recovery entered on the third duplicate ACK
 * or as soon as snd_una IsLost, cwnd = ssthresh = FlightSize / 2 and the
 * "pipe" estimate deciding when to send, NextSeg() rules 1-3 (lost holes
 * first, then new data, then other holes), exit at RecoveryPoint. After an
 * RTO the scoreboard is cleared (RFC 2018 section 8: the receiver may have
 * reneged); later SACKs are used again to skip data the peer holds.
 */
#include "dataplane/net/tcp_int.h"

#include "common/clock.h"

#define CWND_MAX (1u << 30)

static void sack_enter(struct tcp_conn *c);

void tcp_cc_init(struct tcp_conn *c)
{
	c->cwnd = 10u * c->mss;
	c->ssthresh = CWND_MAX;
	c->dupacks = 0;
	c->in_recovery = false;
}

void tcp_rtt_sample(struct tcp_conn *c, uint64_t r)
{
	const struct tcp_conf *cf = &c->ts->conf;
	if (r == 0)
		r = 1;
	if (c->srtt == 0) {
		c->srtt = r;
		c->rttvar = r / 2;
	} else {
		uint64_t d = c->srtt > r ? c->srtt - r : r - c->srtt;
		c->rttvar = (3 * c->rttvar + d) / 4;
		c->srtt = (7 * c->srtt + r) / 8;
	}
	uint64_t v = 4 * c->rttvar;
	if (v < NS_PER_MS)
		v = NS_PER_MS;
	uint64_t rto = c->srtt + v;
	if (rto < cf->rto_min_ns)
		rto = cf->rto_min_ns;
	if (rto > cf->rto_max_ns)
		rto = cf->rto_max_ns;
	c->rto = rto;	/* a fresh sample ends any backoff */
}

static uint32_t flight(const struct tcp_conn *c)
{
	return c->snd_max - c->snd_una;
}

static uint32_t half_flight(const struct tcp_conn *c, uint32_t fl)
{
	return tcp_max32(fl / 2, 2u * c->mss);
}

void tcp_cc_ack(struct tcp_conn *c, uint32_t ack, uint32_t acked)
{
	if (c->in_recovery && c->sack_recovery) {
		if (SEQ_GEQ(ack, c->recover)) {
			c->cwnd = c->ssthresh;	/* RFC 6675: leave recovery */
			c->in_recovery = false;
			c->sack_recovery = false;
			c->dupacks = 0;
		}
		return;	/* partial ACK: sack_output() after the scoreboard update */
	}
	if (c->in_recovery) {
		if (SEQ_GEQ(ack, c->recover)) {
			/* full ACK: deflate (RFC 6582 3.2 step 3, option 1) */
			c->cwnd = tcp_min32(c->ssthresh, tcp_max32(flight(c), c->mss) + c->mss);
			c->in_recovery = false;
			c->dupacks = 0;
			return;
		}
		/* partial ACK: retransmit the first unacked segment, deflate by
		 * the amount acked, add back one SMSS if that was >= SMSS */
		uint32_t len = tcp_min32(c->sq_len, c->mss);
		tcp_xmit_data(c, c->snd_una, len, true);
		c->cwnd = c->cwnd > acked ? c->cwnd - acked : 0;
		if (acked >= c->mss)
			c->cwnd += c->mss;
		if (c->cwnd < c->mss)
			c->cwnd = c->mss;
		tcp_arm_rexmt(c);
		return;
	}
	c->dupacks = 0;
	if (c->cwnd < c->ssthresh)
		c->cwnd += tcp_min32(acked, c->mss);
	else
		c->cwnd += tcp_max32((uint32_t)((uint64_t)c->mss * c->mss / c->cwnd), 1);
	if (c->cwnd > CWND_MAX)
		c->cwnd = CWND_MAX;
}

void tcp_cc_dupack(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct tcp_stack *ts = c->ts;
	(void)s;
	c->dupacks++;
	ts->stats.dup_acks_in++;
	if (c->sack_recovery)
		return;	/* pipe, not inflation, drives sending */
	if (c->in_recovery) {
		c->cwnd += c->mss;	/* each dupack: a segment left the network */
		tcp_output(c);
		return;
	}
	if (c->dupacks < TCP_DUPTHRESH) {
		/* RFC 3042 limited transmit: a new segment on each of the first
		 * two duplicate ACKs keeps the ACK clock going, so that small
		 * windows reach three duplicates instead of a timeout */
		if (c->snd_max - c->snd_una + c->mss <= c->cwnd + 2u * c->mss &&
		    c->snd_nxt == c->snd_max)
			tcp_send_new(c);
		return;
	}
	if (c->dupacks != TCP_DUPTHRESH)
		return;
	if (SEQ_LT(c->snd_una, c->recover))
		return;	/* RFC 6582: still covering an earlier loss episode */
	if (c->sack_ok && c->nsb) {
		sack_enter(c);
		return;
	}
	ts->stats.fast_retransmits++;
	c->ssthresh = half_flight(c, flight(c));
	c->recover = c->snd_max;
	c->in_recovery = true;
	c->rtt_active = false;
	tcp_xmit_data(c, c->snd_una, tcp_min32(c->sq_len, c->mss), true);
	c->cwnd = c->ssthresh + 3u * c->mss;
	tcp_arm_rexmt(c);
	tcp_output(c);
}

void tcp_cc_tlp_repaired(struct tcp_conn *c)
{
	/* RFC 8985 7.4.2: a loss the probe repaired is a loss: the response
	 * fast recovery would have made (the flight is gone by now: halve the
	 * window that carried it) */
	c->ssthresh = tcp_max32(c->cwnd / 2, 2u * c->mss);
	c->cwnd = c->ssthresh;
}

void tcp_cc_timeout(struct tcp_conn *c)
{
	tcp_sb_clear(c);
	c->sack_recovery = false;
	c->ssthresh = half_flight(c, flight(c));
	c->cwnd = c->mss;
	c->in_recovery = false;
	c->dupacks = 0;
	c->recover = c->snd_max;
}

/* ---- SACK scoreboard ---- */

void tcp_sb_clear(struct tcp_conn *c)
{
	c->nsb = 0;
}

uint32_t tcp_sb_skip(const struct tcp_conn *c, uint32_t seq)
{
	for (unsigned i = 0; i < c->nsb; i++)
		if (SEQ_LEQ(c->sb[i].s, seq) && SEQ_LT(seq, c->sb[i].e))
			return c->sb[i].e;
	return seq;
}

uint32_t tcp_sb_next(const struct tcp_conn *c, uint32_t seq, uint32_t limit)
{
	for (unsigned i = 0; i < c->nsb; i++)
		if (SEQ_GT(c->sb[i].s, seq))
			return SEQ_LT(c->sb[i].s, limit) ? c->sb[i].s : limit;
	return limit;
}

static void sb_trim(struct tcp_conn *c)
{
	unsigned j = 0;
	for (unsigned i = 0; i < c->nsb; i++) {
		if (SEQ_LEQ(c->sb[i].e, c->snd_una))
			continue;
		c->sb[j] = c->sb[i];
		if (SEQ_LT(c->sb[j].s, c->snd_una))
			c->sb[j].s = c->snd_una;
		j++;
	}
	c->nsb = j;
}

static void sb_insert(struct tcp_conn *c, uint32_t st, uint32_t en)
{
	struct { uint32_t s, e; } t[TCP_SB_MAX + 1];
	unsigned n = 0, i = 0;
	while (i < c->nsb && SEQ_LT(c->sb[i].s, st)) {
		t[n].s = c->sb[i].s;
		t[n].e = c->sb[i].e;
		n++;
		i++;
	}
	t[n].s = st;
	t[n].e = en;
	n++;
	for (; i < c->nsb; i++) {
		t[n].s = c->sb[i].s;
		t[n].e = c->sb[i].e;
		n++;
	}
	/* merge overlapping or touching ranges */
	unsigned m = 0;
	for (unsigned k = 1; k < n; k++) {
		if (SEQ_LEQ(t[k].s, t[m].e)) {
			if (SEQ_GT(t[k].e, t[m].e))
				t[m].e = t[k].e;
		} else {
			t[++m] = t[k];
		}
	}
	n = m + 1;
	if (n > TCP_SB_MAX)
		n = TCP_SB_MAX;	/* forget the highest: we only resend more */
	for (unsigned k = 0; k < n; k++) {
		c->sb[k].s = t[k].s;
		c->sb[k].e = t[k].e;
	}
	c->nsb = n;
}

void tcp_cc_sack_update(struct tcp_conn *c, const struct tcp_seg *s)
{
	sb_trim(c);
	if (!c->sack_ok)
		return;
	for (unsigned i = 0; i < s->opt.nsack; i++) {
		uint32_t st = s->opt.sack[i].start, en = s->opt.sack[i].end;
		c->ts->stats.sack_blocks_in++;
		if (!SEQ_LT(st, en) || SEQ_GT(en, c->snd_max) || SEQ_LEQ(en, c->snd_una))
			continue;	/* bogus, or D-SACK of old data */
		if (SEQ_LT(st, c->snd_una))
			st = c->snd_una;
		sb_insert(c, st, en);
	}
}

/* Holes (unSACKed bytes) below L are lost (RFC 6675 IsLost). */
static uint32_t lost_limit(const struct tcp_conn *c)
{
	uint32_t bytes = 0;
	for (unsigned i = c->nsb; i-- > 0;) {
		bytes += c->sb[i].e - c->sb[i].s;
		if (c->nsb - i >= TCP_DUPTHRESH ||
		    bytes >= (TCP_DUPTHRESH - 1u) * c->mss + 1u)
			return c->sb[i].s;
	}
	return c->snd_una;
}

static uint32_t sacked_in(const struct tcp_conn *c, uint32_t a, uint32_t b)
{
	uint32_t n = 0;
	for (unsigned i = 0; i < c->nsb; i++) {
		uint32_t s = SEQ_GT(c->sb[i].s, a) ? c->sb[i].s : a;
		uint32_t e = SEQ_LT(c->sb[i].e, b) ? c->sb[i].e : b;
		if (SEQ_LT(s, e))
			n += e - s;
	}
	return n;
}

/* RFC 6675 pipe: bytes believed in the network. */
static uint32_t pipe_estimate(const struct tcp_conn *c, uint32_t lost)
{
	uint32_t total = c->snd_max - c->snd_una;
	uint32_t sacked = sacked_in(c, c->snd_una, c->snd_max);
	uint32_t from = SEQ_GT(c->high_rxt, c->snd_una) ? c->high_rxt : c->snd_una;
	uint32_t lost_unrx = 0;
	if (SEQ_LT(from, lost))
		lost_unrx = (lost - from) - sacked_in(c, from, lost);
	uint32_t p = total - sacked;
	return p > lost_unrx ? p - lost_unrx : 0;
}

static uint32_t rexmit_hole(struct tcp_conn *c, uint32_t seq, uint32_t limit)
{
	uint32_t end = tcp_sb_next(c, seq, limit);
	uint32_t len = tcp_min32(end - seq, c->mss);
	if (len == 0)
		return 0;
	c->ts->stats.sack_retransmits++;
	uint32_t used = tcp_xmit_data(c, seq, len, true);
	if (used == 0)
		return 0;	/* no mbuf: the RTO will retry */
	c->high_rxt = seq + used;
	return used;
}

/* Send what pipe allows, by NextSeg() rules 1-3. */
static void sack_output(struct tcp_conn *c)
{
	for (unsigned n = 0; n < 64; n++) {
		uint32_t lost = lost_limit(c);
		uint32_t pipe = pipe_estimate(c, lost);
		if (c->cwnd < pipe + c->mss)
			break;
		uint32_t seq = SEQ_GT(c->high_rxt, c->snd_una) ? c->high_rxt : c->snd_una;
		for (unsigned k = 0; k < TCP_SB_MAX + 1; k++)
			seq = tcp_sb_skip(c, seq);
		/* rule 1: a lost hole */
		if (SEQ_LT(seq, lost) && rexmit_hole(c, seq, lost))
			continue;
		/* rule 2: new data */
		if (tcp_send_new(c))
			continue;
		/* rule 3: a hole not yet deemed lost, below the highest SACK */
		uint32_t top = c->nsb ? c->sb[c->nsb - 1].e : c->snd_una;
		if (SEQ_LT(seq, top) && rexmit_hole(c, seq, top))
			continue;
		break;
	}
}

static void sack_enter(struct tcp_conn *c)
{
	struct tcp_stack *ts = c->ts;
	ts->stats.fast_retransmits++;
	ts->stats.sack_recoveries++;
	c->ssthresh = half_flight(c, flight(c));
	c->cwnd = c->ssthresh;
	c->recover = c->snd_max;
	c->in_recovery = true;
	c->sack_recovery = true;
	c->rtt_active = false;
	c->high_rxt = c->snd_una;
	/* the first unSACKed segment goes now, whatever pipe says */
	rexmit_hole(c, c->snd_una, c->snd_max);
	tcp_arm_rexmt(c);
	sack_output(c);
}

void tcp_cc_sack_after_ack(struct tcp_conn *c)
{
	if (!c->sack_ok || c->snd_max == c->snd_una)
		return;
	if (c->sack_recovery) {
		sack_output(c);
		return;
	}
	/* RACK's verdict (RFC 8985 6.2) in the one case a probe makes: the
	 * probe resent the last segment PTO (>= 2 SRTT) after everything
	 * below it went out, and the peer SACKs it while holes remain below:
	 * those were sent before a segment that arrived and are older than an
	 * RTT plus any reordering window, so lost. Recover now rather than
	 * wait for DupThresh SACKs that a lost tail cannot produce. */
	if (!c->in_recovery && c->tlp_out && c->tlp_rexmit && c->nsb &&
	    SEQ_GT(c->sb[c->nsb - 1].e, c->tlp_seq) && SEQ_LT(c->snd_una, c->sb[0].s) &&
	    SEQ_GEQ(c->snd_una, c->recover)) {
		c->tlp_out = false;
		c->ts->stats.tlp_recovered++;
		sack_enter(c);
		return;
	}
	if (!c->in_recovery && c->nsb && SEQ_GEQ(c->snd_una, c->recover) &&
	    SEQ_LT(c->snd_una, lost_limit(c)))
		sack_enter(c);
}
