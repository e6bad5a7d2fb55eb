/*
 * tcp_opt.c - TCP option parsing and building (RFC 9293 3.1/3.2, RFC 7323
 * window scale and timestamps, RFC 2018 SACK).
 *
 * Parsing follows RFC 9293 3.2: EOL ends the list, NOP is skipped, any other
 * option must have a length of at least 2 that stays inside the header;
 * otherwise the option list is malformed and the segment is dropped. Unknown
 * options with a valid length are skipped. Known options with a wrong length
 * are ignored (as Linux does). MSS, window scale and SACK-permitted count
 * only on SYN segments.
 */
#include "dataplane/net/tcp_int.h"

#include <string.h>

#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACK_PERM 4
#define OPT_SACK 5
#define OPT_TS 8

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

enum tcp_opt_result tcp_opt_parse(const uint8_t *p, unsigned len, bool syn,
				  struct tcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	unsigned i = 0;
	while (i < len) {
		uint8_t kind = p[i];
		if (kind == OPT_EOL)
			break;
		if (kind == OPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len)
			return TCP_OPT_MALFORMED;	/* no room for the length */
		uint8_t olen = p[i + 1];
		if (olen < 2 || i + olen > len)
			return TCP_OPT_MALFORMED;
		const uint8_t *v = p + i + 2;
		switch (kind) {
		case OPT_MSS:
			if (olen == 4 && syn) {
				o->mss_ok = true;
				o->mss = get16(v);
			}
			break;
		case OPT_WS:
			if (olen == 3 && syn) {
				o->ws_ok = true;
				o->ws = v[0] > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : v[0];
			}
			break;
		case OPT_SACK_PERM:
			if (olen == 2 && syn)
				o->sack_perm = true;
			break;
		case OPT_TS:
			if (olen == 10) {
				o->ts_ok = true;
				o->tsval = get32(v);
				o->tsecr = get32(v + 4);
			}
			break;
		case OPT_SACK:
			if (olen >= 10 && (olen - 2) % 8 == 0 && !syn) {
				unsigned n = (olen - 2u) / 8u;
				o->nsack = 0;
				for (unsigned k = 0; k < n && k < TCP_MAX_SACK; k++) {
					o->sack[k].start = get32(v + 8 * k);
					o->sack[k].end = get32(v + 8 * k + 4);
					o->nsack++;
				}
			}
			break;
		default:
			break;	/* unknown, valid length: skip */
		}
		i += olen;
	}
	return TCP_OPT_OK;
}

unsigned tcp_opt_build(uint8_t *p, const struct tcp_opt_out *o)
{
	unsigned n = 0;
	if (o->syn) {
		p[n++] = OPT_MSS; p[n++] = 4; put16(p + n, o->mss); n += 2;
		if (o->sack_perm && o->ts_ok) {
			p[n++] = OPT_SACK_PERM; p[n++] = 2;
		} else if (o->sack_perm) {
			p[n++] = OPT_NOP; p[n++] = OPT_NOP;
			p[n++] = OPT_SACK_PERM; p[n++] = 2;
		}
		if (o->ts_ok) {
			if (!o->sack_perm) {
				p[n++] = OPT_NOP; p[n++] = OPT_NOP;
			}
			p[n++] = OPT_TS; p[n++] = 10;
			put32(p + n, o->tsval); put32(p + n + 4, o->tsecr); n += 8;
		}
		if (o->ws_ok) {
			p[n++] = OPT_NOP; p[n++] = OPT_WS; p[n++] = 3; p[n++] = o->ws;
		}
		return n;
	}
	if (o->ts_ok) {
		p[n++] = OPT_NOP; p[n++] = OPT_NOP;
		p[n++] = OPT_TS; p[n++] = 10;
		put32(p + n, o->tsval); put32(p + n + 4, o->tsecr); n += 8;
	}
	if (o->nsack) {
		unsigned room = (TCP_OPT_MAX - n - 4) / 8;
		unsigned k = o->nsack < room ? o->nsack : room;
		if (k) {
			p[n++] = OPT_NOP; p[n++] = OPT_NOP;
			p[n++] = OPT_SACK; p[n++] = (uint8_t)(2 + 8 * k);
			for (unsigned j = 0; j < k; j++) {
				put32(p + n, o->sack[j].start);
				put32(p + n + 4, o->sack[j].end);
				n += 8;
			}
		}
	}
	return n;
}
