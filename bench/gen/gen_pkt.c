/*
 * gen_pkt.c - Pktgen .pkt subset: parser, port state, frames. See gen_pkt.h.
 */
#include "bench/gen/gen_pkt.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOK 12

static int perr(char *err, size_t errlen, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "line %u: ", line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* "all", "0", "1-3", "0,2,5-6": does it include port 0? -1 if malformed. */
static int portlist_has0(const char *s)
{
	char buf[64], *save = NULL, *t;
	int has0 = 0;

	if (strcmp(s, "all") == 0)
		return 1;
	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long a = strtoul(t, &end, 10), b = a;
		if (end == t)
			return -1;
		if (*end == '-') {
			char *e2;
			b = strtoul(end + 1, &e2, 10);
			if (e2 == end + 1 || *e2 || b < a)
				return -1;
		} else if (*end) {
			return -1;
		}
		if (a == 0)
			has0 = 1;
	}
	return has0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* a.b.c.d[/nn] -> host order; prefix 32 when absent */
static int parse_ip(const char *s, uint32_t *ip, uint8_t *prefix)
{
	unsigned a, b, c, d, p = 32;
	int n = 0;
	char tail;

	if (sscanf(s, "%u.%u.%u.%u%n", &a, &b, &c, &d, &n) != 4 || a > 255 || b > 255 ||
	    c > 255 || d > 255)
		return -1;
	if (s[n] == '/') {
		if (sscanf(s + n + 1, "%u%c", &p, &tail) != 1 || p > 32)
			return -1;
	} else if (s[n]) {
		return -1;
	}
	*ip = a << 24 | b << 16 | c << 8 | d;
	if (prefix)
		*prefix = (uint8_t)p;
	return 0;
}

/* 00:11:22:33:44:55 or 0011:2233:4455 */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) == 6) {
		for (int i = 0; i < 6; i++) {
			if (v[i] > 255)
				return -1;
			mac[i] = (uint8_t)v[i];
		}
		return 0;
	}
	if (sscanf(s, "%4x:%4x:%4x%c", &v[0], &v[1], &v[2], &tail) == 3 && strlen(s) == 14) {
		for (int i = 0; i < 3; i++) {
			mac[2 * i] = (uint8_t)(v[i] >> 8);
			mac[2 * i + 1] = (uint8_t)v[i];
		}
		return 0;
	}
	return -1;
}

static int parse_which(const char *s)
{
	if (!strcmp(s, "start"))
		return GPW_START;
	if (!strcmp(s, "min") || !strcmp(s, "minimum"))
		return GPW_MIN;
	if (!strcmp(s, "max") || !strcmp(s, "maximum"))
		return GPW_MAX;
	if (!strcmp(s, "inc") || !strcmp(s, "increment"))
		return GPW_INC;
	return -1;
}

/* Pktgen's mask: up to 32 of 0 1 . X, most significant bit first. */
static int parse_mask(const char *s, struct gen_pkt_cmd *c)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return -1;
	c->rnd_and = 0xffffffffu;
	c->rnd_or = c->rnd_x = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t bit = 1u << (31 - i);
		switch (s[i]) {
		case '0': c->rnd_and &= ~bit; break;
		case '1': c->rnd_and &= ~bit; c->rnd_or |= bit; break;
		case 'X': case 'x': c->rnd_and &= ~bit; c->rnd_x |= bit; break;
		case '.': break;
		default: return -1;
		}
	}
	return 0;
}

static int parse_set(struct gen_pkt_cmd *c, char **t, int n, char *err, size_t errlen)
{
	static const char *const nums[] = { "count", "size", "rate", "burst", "sport", "dport" };
	static const uint8_t numf[] = { GPF_COUNT, GPF_SIZE, GPF_RATE, GPF_BURST, GPF_SPORT, GPF_DPORT };

	c->op = GPO_SET;
	if (n < 4)
		return perr(err, errlen, c->line, "set: too few words");
	for (unsigned i = 0; i < 6; i++) {
		if (strcmp(t[2], nums[i]))
			continue;
		c->field = numf[i];
		if (n != 4)
			return perr(err, errlen, c->line, "set %s: one value", nums[i]);
		if (c->field == GPF_RATE) {
			char *end;
			double r = strtod(t[3], &end);
			if (end == t[3] || *end || r < 0 || r > 100)
				return perr(err, errlen, c->line, "rate: a percentage 0..100");
			c->num = (uint64_t)(r * 1000.0);	/* milli-percent */
			return 0;
		}
		if (parse_u64(t[3], c->field == GPF_COUNT ? UINT64_MAX :
			      c->field == GPF_SIZE ? GEN_PKT_MAX_SIZE :
			      c->field == GPF_BURST ? 256 : 65535, &c->num) < 0 ||
		    (c->field == GPF_SIZE && c->num < GEN_PKT_MIN_SIZE) ||
		    (c->field == GPF_BURST && c->num == 0))
			return perr(err, errlen, c->line, "set %s: bad value \"%s\"", nums[i], t[3]);
		return 0;
	}
	if (!strcmp(t[2], "type") && n == 4) {
		c->field = GPF_TYPE;
		if (!strcmp(t[3], "ipv4") || !strcmp(t[3], "ip4"))
			c->num = GPT_IPV4;
		else if (!strcmp(t[3], "arp"))
			c->num = GPT_ARP;
		else
			return perr(err, errlen, c->line, "set type: ipv4 or arp here");
		return 0;
	}
	if (!strcmp(t[2], "proto") && n == 4) {
		c->field = GPF_PROTO;
		if (!strcmp(t[3], "tcp"))
			c->num = GPP_TCP;
		else if (!strcmp(t[3], "udp"))
			c->num = GPP_UDP;
		else if (!strcmp(t[3], "icmp"))
			c->num = GPP_ICMP;
		else
			return perr(err, errlen, c->line, "set proto: tcp, udp or icmp");
		return 0;
	}
	if ((!strcmp(t[2], "src") || !strcmp(t[2], "dst")) && n == 5) {
		bool src = t[2][0] == 's';
		if (!strcmp(t[3], "mac")) {
			c->field = src ? GPF_SRC_MAC : GPF_DST_MAC;
			if (parse_mac(t[4], c->mac) < 0)
				return perr(err, errlen, c->line, "bad MAC \"%s\"", t[4]);
			return 0;
		}
		if (!strcmp(t[3], "ip")) {
			c->field = src ? GPF_SRC_IP : GPF_DST_IP;
			if (parse_ip(t[4], &c->ip, &c->prefix) < 0)
				return perr(err, errlen, c->line, "bad address \"%s\"", t[4]);
			return 0;
		}
	}
	if (!strcmp(t[2], "rnd") && n == 6) {
		uint64_t idx, off;
		c->field = GPF_RND;
		if (parse_u64(t[3], GEN_PKT_RND_MAX - 1, &idx) < 0 ||
		    parse_u64(t[4], GEN_PKT_MAX_SIZE - 8, &off) < 0 || parse_mask(t[5], c) < 0)
			return perr(err, errlen, c->line, "set rnd <idx 0..%d> <offset> <mask>",
				    GEN_PKT_RND_MAX - 1);
		c->rnd_idx = (uint8_t)idx;
		c->rnd_off = (uint16_t)off;
		return 0;
	}
	return perr(err, errlen, c->line, "set %s: not supported here", t[2]);
}

static int parse_range(struct gen_pkt_cmd *c, char **t, int n, char *err, size_t errlen)
{
	int w;

	c->op = GPO_RANGE;
	if (n == 4 && !strcmp(t[2], "proto")) {
		c->field = GPF_PROTO;
		if (!strcmp(t[3], "tcp"))
			c->num = GPP_TCP;
		else if (!strcmp(t[3], "udp"))
			c->num = GPP_UDP;
		else
			return perr(err, errlen, c->line, "range proto: tcp or udp");
		return 0;
	}
	if (n == 5 && !strcmp(t[2], "size")) {
		c->field = GPF_SIZE;
		w = parse_which(t[3]);
		if (w < 0 || parse_u64(t[4], GEN_PKT_MAX_SIZE, &c->num) < 0 ||
		    (w != GPW_INC && c->num < GEN_PKT_MIN_SIZE))
			return perr(err, errlen, c->line, "range size start|min|max|inc <n>");
		c->which = (uint8_t)w;
		return 0;
	}
	if (n == 6 && (!strcmp(t[2], "src") || !strcmp(t[2], "dst"))) {
		bool src = t[2][0] == 's';
		w = parse_which(t[4]);
		if (w < 0)
			return perr(err, errlen, c->line, "range: start, min, max or inc, not \"%s\"", t[4]);
		c->which = (uint8_t)w;
		if (!strcmp(t[3], "ip")) {
			char a[32];
			snprintf(a, sizeof(a), "%s", t[5]);
			char *slash = strchr(a, '/');
			if (slash)
				*slash = '\0';	/* Pktgen drops a mask here */
			c->field = src ? GPF_SRC_IP : GPF_DST_IP;
			if (parse_ip(a, &c->ip, NULL) < 0)
				return perr(err, errlen, c->line, "bad address \"%s\"", t[5]);
			return 0;
		}
		if (!strcmp(t[3], "port")) {
			c->field = src ? GPF_SPORT : GPF_DPORT;
			if (parse_u64(t[5], 65535, &c->num) < 0)
				return perr(err, errlen, c->line, "bad port \"%s\"", t[5]);
			return 0;
		}
		if (!strcmp(t[3], "mac")) {
			c->field = src ? GPF_SRC_MAC : GPF_DST_MAC;
			if (w != GPW_START)
				return perr(err, errlen, c->line, "range mac: only start here");
			if (parse_mac(t[5], c->mac) < 0)
				return perr(err, errlen, c->line, "bad MAC \"%s\"", t[5]);
			return 0;
		}
	}
	return perr(err, errlen, c->line, "range: not supported here");
}

static int parse_line(struct gen_pkt_prog *p, char *line, unsigned lineno, char *err, size_t errlen)
{
	char *t[MAX_TOK], *save = NULL, *hash = strchr(line, '#');
	int n = 0, has0;
	struct gen_pkt_cmd *c;

	if (hash)
		*hash = '\0';
	for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (n == MAX_TOK)
			return perr(err, errlen, lineno, "too many words");
		t[n++] = w;
	}
	if (n == 0 || !strcmp(t[0], "page"))
		return 0;
	if (p->n == GEN_PKT_MAX_CMDS)
		return perr(err, errlen, lineno, "more than %d commands", GEN_PKT_MAX_CMDS);
	c = &p->cmd[p->n];
	memset(c, 0, sizeof(*c));
	c->line = lineno;
	if (!strcmp(t[0], "delay") || !strcmp(t[0], "sleep")) {
		if (n != 2 || parse_u64(t[1], 3600000, &c->num) < 0)
			return perr(err, errlen, lineno, "%s <n>", t[0]);
		if (t[0][0] == 's')
			c->num *= 1000;
		c->op = GPO_DELAY;
		p->n++;
		return 0;
	}
	if (n < 2)
		return perr(err, errlen, lineno, "\"%s\": not supported here", t[0]);
	if ((!strcmp(t[0], "enable") || !strcmp(t[0], "disable")) && n == 2 &&
	    (!strcmp(t[1], "mac_from_arp") || !strcmp(t[1], "screen"))) {
		if (t[1][0] == 's')
			return 0;	/* display only */
		c->op = t[0][0] == 'e' ? GPO_ENABLE : GPO_DISABLE;
		c->field = GPF_MACARP;
		c->port0 = true;
		p->n++;
		return 0;
	}
	has0 = portlist_has0(t[1]);
	if (has0 < 0)
		return perr(err, errlen, lineno, "bad port list \"%s\"", t[1]);
	c->port0 = has0 == 1;
	if (!strcmp(t[0], "start") || !strcmp(t[0], "stop")) {
		if (n != 2)
			return perr(err, errlen, lineno, "%s <ports>", t[0]);
		c->op = t[0][2] == 'a' ? GPO_START : GPO_STOP;
	} else if (!strcmp(t[0], "enable") || !strcmp(t[0], "disable")) {
		if (n != 3 || (strcmp(t[2], "range") && strcmp(t[2], "random")))
			return perr(err, errlen, lineno, "%s <ports> range|random", t[0]);
		c->op = t[0][0] == 'e' ? GPO_ENABLE : GPO_DISABLE;
		c->field = strcmp(t[2], "range") == 0 ? GPF_RANGE : GPF_RANDOM;
	} else if (!strcmp(t[0], "set")) {
		if (parse_set(c, t, n, err, errlen) < 0)
			return -1;
	} else if (!strcmp(t[0], "range")) {
		if (parse_range(c, t, n, err, errlen) < 0)
			return -1;
	} else {
		return perr(err, errlen, lineno, "\"%s\": not supported here", t[0]);
	}
	p->n++;
	return 0;
}

int gen_pkt_parse(struct gen_pkt_prog *p, const char *text, char *err, size_t errlen)
{
	char line[512];
	unsigned lineno = 0;
	const char *s = text;

	p->n = 0;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		lineno++;
		if (len >= sizeof(line))
			return perr(err, errlen, lineno, "line too long");
		memcpy(line, s, len);
		line[len] = '\0';
		if (parse_line(p, line, lineno, err, errlen) < 0)
			return -1;
		s += len + (nl ? 1 : 0);
	}
	return 0;
}

int gen_pkt_load(struct gen_pkt_prog *p, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	static char text[256 * 1024];	/* start-up only, one profile at a time */
	size_t n;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	if (ferror(f) || !feof(f)) {
		snprintf(err, errlen, "%s: unreadable or over %zu bytes", path, sizeof(text) - 1);
		fclose(f);
		return -1;
	}
	fclose(f);
	text[n] = '\0';
	if (memchr(text, '\0', n)) {
		snprintf(err, errlen, "%s: not a text file", path);
		return -1;
	}
	if (gen_pkt_parse(p, text, err, errlen) < 0) {
		char e[256];
		snprintf(e, sizeof(e), "%s", err);
		snprintf(err, errlen, "%s: %s", path, e);
		return -1;
	}
	return 0;
}

/* ---- port state ---------------------------------------------------------- */

void gen_pkt_port_default(struct gen_pkt_port *pp)
{
	static const uint8_t smac[6] = { 0x02, 0, 0, 0, 0, 1 }, dmac[6] = { 0x02, 0, 0, 0, 0, 2 };

	memset(pp, 0, sizeof(*pp));
	pp->type = GPT_IPV4;
	pp->proto = GPP_UDP;
	pp->range_proto = GPP_UDP;
	pp->size = GEN_PKT_MIN_SIZE;
	pp->rate = 100.0;
	pp->burst = 32;
	pp->sport = 1234;
	pp->dport = 5678;
	memcpy(pp->src_mac, smac, 6);
	memcpy(pp->dst_mac, dmac, 6);
	pp->src_ip = 0xc0a80101;	/* 192.168.1.1/24, Pktgen's port 0 */
	pp->src_prefix = 24;
	pp->dst_ip = 0xc0a80201;
}

static void range_set(struct gen_pkt_range *r, uint8_t which, uint32_t v)
{
	switch (which) {
	case GPW_START: r->start = r->cur = v; break;
	case GPW_MIN: r->min = v; break;
	case GPW_MAX: r->max = v; break;
	default: r->inc = v; break;
	}
}

void gen_pkt_apply(struct gen_pkt_port *pp, const struct gen_pkt_cmd *c)
{
	if (!c->port0)
		return;
	switch (c->op) {
	case GPO_START:
		pp->sending = true;
		pp->sent = 0;
		return;
	case GPO_STOP:
		pp->sending = false;
		return;
	case GPO_ENABLE:
	case GPO_DISABLE:
		if (c->field == GPF_RANGE)
			pp->range_on = c->op == GPO_ENABLE;
		else if (c->field == GPF_MACARP)
			pp->mac_from_arp = c->op == GPO_ENABLE;
		else
			pp->random_on = c->op == GPO_ENABLE;
		return;
	case GPO_RANGE:
		switch (c->field) {
		case GPF_PROTO: pp->range_proto = (uint8_t)c->num; break;
		case GPF_SIZE: range_set(&pp->r_size, c->which, (uint32_t)c->num); break;
		case GPF_SRC_IP: range_set(&pp->r_src_ip, c->which, c->ip); break;
		case GPF_DST_IP: range_set(&pp->r_dst_ip, c->which, c->ip); break;
		case GPF_SPORT: range_set(&pp->r_sport, c->which, (uint32_t)c->num); break;
		case GPF_DPORT: range_set(&pp->r_dport, c->which, (uint32_t)c->num); break;
		case GPF_SRC_MAC: memcpy(pp->range_src_mac, c->mac, 6); pp->range_src_mac_set = true; break;
		case GPF_DST_MAC: memcpy(pp->range_dst_mac, c->mac, 6); pp->range_dst_mac_set = true; break;
		default: break;
		}
		return;
	case GPO_SET:
		switch (c->field) {
		case GPF_COUNT: pp->count = c->num; break;
		case GPF_SIZE: pp->size = (uint32_t)c->num; break;
		case GPF_RATE: pp->rate = (double)c->num / 1000.0; break;
		case GPF_BURST: pp->burst = (unsigned)c->num; break;
		case GPF_SPORT: pp->sport = (uint16_t)c->num; break;
		case GPF_DPORT: pp->dport = (uint16_t)c->num; break;
		case GPF_TYPE: pp->type = (uint8_t)c->num; break;
		case GPF_PROTO: pp->proto = (uint8_t)c->num; break;
		case GPF_SRC_MAC: memcpy(pp->src_mac, c->mac, 6); break;
		case GPF_DST_MAC: memcpy(pp->dst_mac, c->mac, 6); break;
		case GPF_SRC_IP: pp->src_ip = c->ip; pp->src_prefix = c->prefix; break;
		case GPF_DST_IP: pp->dst_ip = c->ip; break;
		case GPF_RND:
			pp->rnd[c->rnd_idx].on = true;
			pp->rnd[c->rnd_idx].off = c->rnd_off;
			pp->rnd[c->rnd_idx].and_mask = c->rnd_and;
			pp->rnd[c->rnd_idx].or_mask = c->rnd_or;
			pp->rnd[c->rnd_idx].x_mask = c->rnd_x;
			break;
		default: break;
		}
		return;
	default:
		return;
	}
}

/* ---- frames ---------------------------------------------------------------- */

/* The range's current value, then advance (Pktgen: wrap to min past max).
 * A range never set (all zero) gives the single value. */
static uint32_t range_next(struct gen_pkt_range *r, uint32_t single)
{
	uint32_t v;

	if (!r->start && !r->min && !r->max && !r->inc)
		return single;
	v = r->cur;
	if (r->inc) {
		uint64_t n = (uint64_t)r->cur + r->inc;
		r->cur = n > r->max || n < r->min ? r->min : (uint32_t)n;
	}
	return v;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* Pktgen's random masks (enable random): each slot's 32-bit word. */
static void apply_masks(const struct gen_pkt_port *pp, uint8_t *buf, size_t len, struct gen_rng *r)
{
	if (!pp->random_on)
		return;
	for (unsigned i = 0; i < GEN_PKT_RND_MAX; i++) {
		const struct gen_pkt_rnd *m = &pp->rnd[i];
		uint32_t w;
		if (!m->on || (size_t)m->off + 4 > len)
			continue;
		w = (uint32_t)buf[m->off] << 24 | (uint32_t)buf[m->off + 1] << 16 |
		    (uint32_t)buf[m->off + 2] << 8 | buf[m->off + 3];
		w = (w & m->and_mask) | m->or_mask | ((uint32_t)gen_rng_next(r) & m->x_mask);
		put32(buf + m->off, w);
	}
}

/* Does an active mask change any bit of [off, off + n)? */
static bool masked(const struct gen_pkt_port *pp, size_t off, size_t n)
{
	if (!pp->random_on)
		return false;
	for (unsigned i = 0; i < GEN_PKT_RND_MAX; i++) {
		const struct gen_pkt_rnd *m = &pp->rnd[i];
		uint32_t touched = ~m->and_mask | m->or_mask | m->x_mask;
		if (!m->on)
			continue;
		for (size_t b = off; b < off + n; b++) {
			if (b < m->off || b >= (size_t)m->off + 4)
				continue;
			if ((touched >> (8 * (3 - (b - m->off)))) & 0xff)
				return true;
		}
	}
	return false;
}

size_t gen_pkt_frame(struct gen_pkt_port *pp, uint8_t *buf, size_t cap, struct gen_rng *r)
{
	bool rg = pp->range_on;
	uint32_t size = rg ? range_next(&pp->r_size, pp->size) : pp->size;
	uint32_t sip = rg ? range_next(&pp->r_src_ip, pp->src_ip) : pp->src_ip;
	uint32_t dip = rg ? range_next(&pp->r_dst_ip, pp->dst_ip) : pp->dst_ip;
	uint16_t sport = (uint16_t)(rg ? range_next(&pp->r_sport, pp->sport) : pp->sport);
	uint16_t dport = (uint16_t)(rg ? range_next(&pp->r_dport, pp->dport) : pp->dport);
	uint8_t proto = rg ? pp->range_proto : pp->proto;
	const uint8_t *smac = rg && pp->range_src_mac_set ? pp->range_src_mac : pp->src_mac;
	const uint8_t *dmac = rg && pp->range_dst_mac_set ? pp->range_dst_mac : pp->dst_mac;
	size_t len;

	if (size < GEN_PKT_MIN_SIZE)
		size = GEN_PKT_MIN_SIZE;
	if (size > GEN_PKT_MAX_SIZE)
		size = GEN_PKT_MAX_SIZE;
	len = size - 4;			/* Pktgen's sizes count the FCS */
	if (len > cap)
		len = cap;
	memset(buf, 0, len);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	if (pp->type == GPT_ARP) {
		put16(buf + 12, 0x0806);
		put16(buf + 14, 1);		/* Ethernet */
		put16(buf + 16, 0x0800);
		buf[18] = 6;
		buf[19] = 4;
		put16(buf + 20, 1);		/* request */
		memcpy(buf + 22, smac, 6);
		put32(buf + 28, sip);
		put32(buf + 38, dip);	/* target MAC stays zero */
		apply_masks(pp, buf, len, r);
		return len;
	}
	{
		uint8_t *ip = buf + 14, *l4 = ip + 20;
		size_t l4len = len - 34, hl = proto == GPP_TCP ? 20 : 8;
		size_t ck = proto == GPP_TCP ? 16 : proto == GPP_UDP ? 6 : 2;
		put16(buf + 12, 0x0800);
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(len - 14));
		put16(ip + 4, (uint16_t)gen_rng_next(r));
		ip[8] = 64;
		ip[9] = proto == GPP_TCP ? 6 : proto == GPP_UDP ? 17 : 1;
		put32(ip + 12, sip);
		put32(ip + 16, dip);
		for (size_t i = hl; i < l4len; i++)
			l4[i] = (uint8_t)('a' + (i - hl) % 26);	/* Pktgen's "abc" pattern */
		if (proto == GPP_TCP) {
			put16(l4, sport);
			put16(l4 + 2, dport);
			put32(l4 + 4, (uint32_t)gen_rng_next(r));
			l4[12] = 0x50;
			l4[13] = 0x10;			/* ACK, as Pktgen */
			put16(l4 + 14, 8192);
		} else if (proto == GPP_UDP) {
			put16(l4, sport);
			put16(l4 + 2, dport);
			put16(l4 + 4, (uint16_t)l4len);
		} else {
			l4[0] = 8;			/* echo request */
			put16(l4 + 4, (uint16_t)gen_rng_next(r));
		}
		apply_masks(pp, buf, len, r);
		/* Checksums after the masks (as a NIC's offload would), except
		 * those a mask covers: those stay as the mask left them. */
		if (!masked(pp, 24, 2)) {
			put16(ip + 10, 0);
			put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
		}
		if (!masked(pp, 34 + ck, 2)) {
			put16(l4 + ck, 0);
			if (proto == GPP_ICMP) {
				put16(l4 + 2, csum_fold(csum_add(0, l4, l4len)));
			} else {
				uint8_t ph[12];
				memcpy(ph, ip + 12, 8);
				ph[8] = 0;
				ph[9] = proto == GPP_TCP ? 6 : 17;
				put16(ph + 10, (uint16_t)l4len);
				put16(l4 + ck, csum_fold(csum_add(csum_add(0, ph, 12), l4, l4len)));
			}
		}
	}
	return len;
}
