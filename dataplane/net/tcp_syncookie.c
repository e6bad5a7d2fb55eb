/*
 * tcp_syncookie.c - SYN cookies (RFC 4987), used once a listener's
 * half-open backlog (or the connection table) is full, so a SYN flood costs
 * no memory.
 *
 * The cookie is our ISN for the SYN-ACK:
 *   bits 31..27  a 64-second counter, mod 32 (cookies live 2 periods)
 *   bits 26..24  index of the MSS in a table of 8 common values
 *   bits 23..0   SipHash(secret; 4-tuple, full counter, peer ISN, MSS index)
 * The final ACK's ack - 1 must reproduce it, and is only checked at all
 * within two periods of the listener's last overflow (no cookie can be out
 * otherwise, so a matching ACK could only be a guess: 2^24 tries per
 * tuple and period; Linux's tcp_synq_no_recent_overflow likewise). As Linux
 * does, when the peer
 * offered timestamps the window scale and SACK-permitted go in the low 6
 * bits of our TSval (echoed back in TSecr): bits 3..0 the shift (15 = none),
 * bit 4 SACK-permitted. Without timestamps the connection gets neither.
 */
#include "dataplane/net/tcp_int.h"

#include "common/clock.h"

static const uint16_t mss_tab[8] = { 536, 1200, 1300, 1360, 1400, 1440, 1460, 8960 };
#define COOKIE_PERIOD_NS TCP_COOKIE_PERIOD_NS

void tcp_cookie_overflow(struct tcp_stack *ts, struct tcp_listener *l)
{
	l->overflowed = true;
	l->overflow_ns = ts->now;
}

bool tcp_cookie_recent_overflow(const struct tcp_stack *ts, const struct tcp_listener *l)
{
	return l->overflowed && ts->now - l->overflow_ns <= 2 * COOKIE_PERIOD_NS;
}

static uint32_t mac24(struct tcp_stack *ts, const struct tcp_tuple *t,
		      uint32_t counter, uint32_t peer_isn, unsigned idx)
{
	uint32_t buf[TCP_TUPLE_KEY_MAX + 3];
	unsigned n = tcp_tuple_key(t, buf);
	buf[n++] = counter;
	buf[n++] = peer_isn;
	buf[n++] = idx;
	return (uint32_t)tcp_siphash(ts->k0 ^ 0x636f6f6b6965ull, ts->k1, buf,
				     n * sizeof(buf[0])) & 0xFFFFFFu;
}

uint32_t tcp_cookie_make(struct tcp_stack *ts, const struct tcp_tuple *t,
			 uint32_t peer_isn, uint16_t mss, uint16_t *mss_used)
{
	unsigned idx = 0;
	for (unsigned i = 0; i < 8; i++)
		if (mss_tab[i] <= mss)
			idx = i;
	*mss_used = mss_tab[idx];
	uint32_t counter = (uint32_t)(ts->now / COOKIE_PERIOD_NS);
	return (counter & 31u) << 27 | (uint32_t)idx << 24 |
	       mac24(ts, t, counter, peer_isn, idx);
}

bool tcp_cookie_check(struct tcp_stack *ts, const struct tcp_tuple *t,
		      uint32_t peer_isn, uint32_t cookie, uint16_t *mss)
{
	uint32_t now = (uint32_t)(ts->now / COOKIE_PERIOD_NS);
	unsigned idx = (cookie >> 24) & 7u;
	for (uint32_t d = 0; d < 2; d++) {
		uint32_t counter = now - d;
		if ((counter & 31u) != cookie >> 27)
			continue;
		if (mac24(ts, t, counter, peer_isn, idx) == (cookie & 0xFFFFFFu)) {
			*mss = mss_tab[idx];
			return true;
		}
	}
	return false;
}

uint32_t tcp_cookie_tsval(uint32_t now_ts, uint8_t ws, bool ws_ok, bool sack)
{
	uint32_t bits = (ws_ok ? (ws & 0xFu) : 0xFu) | (sack ? 0x10u : 0u);
	return (now_ts & ~0x3Fu) | bits;
}

void tcp_cookie_ts_decode(uint32_t tsecr, bool *ws_ok, uint8_t *ws, bool *sack)
{
	uint32_t w = tsecr & 0xFu;
	*ws_ok = w != 0xFu && w <= TCP_MAX_WSCALE;
	*ws = *ws_ok ? (uint8_t)w : 0;
	*sack = (tsecr & 0x10u) != 0;
}
