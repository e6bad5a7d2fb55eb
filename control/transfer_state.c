/*
 * transfer_state.c - the transfer's destination on disk, so a restart goes
 * on with it. See transfer_state.h.
 */
#include "control/transfer_state.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/atomic_file.h"

#define LINE_MAX_TS 96		/* an IPv6 address (45), " 65535 unheld\n", room */

static int path_of(const char *dir, char *out, size_t n, char *err, size_t errlen)
{
	int w = snprintf(out, n, "%s/%s", dir, TRANSFER_STATE_FILE);

	if (w < 0 || (size_t)w >= n || (size_t)w > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, errlen, "%.64s: path too long", dir);
		return -1;
	}
	return 0;
}

int transfer_dest_parse(const char *text, struct net_addr *to, uint16_t *port, char *err,
			size_t errlen)
{
	char host[LINE_MAX_TS], *addr = host, *ps = NULL, *end;
	unsigned long p = 25;
	struct in_addr in;
	uint8_t a6[16];

	memset(to, 0, sizeof(*to));
	*port = 0;
	if (strlen(text) >= sizeof(host)) {
		snprintf(err, errlen, "transfer --to: '%.60s...' is too long for an address", text);
		return -1;
	}
	strcpy(host, text);
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "transfer --to: '%.60s' is not [ADDRESS] or "
				 "[ADDRESS]:PORT", text);
			return -1;
		}
		*close = '\0';
		addr = host + 1;
		if (strncasecmp(addr, "IPv6:", 5) == 0)
			addr += 5;
		if (close[1] == ':')
			ps = close + 2;
	} else if ((ps = strchr(host, ':')) && strchr(ps + 1, ':')) {
		ps = NULL;		/* two colons or more: a bare IPv6 address */
	} else if (ps) {
		*ps++ = '\0';		/* a.b.c.d:PORT */
	}
	if (ps) {
		p = strtoul(ps, &end, 10);
		if (!*ps || *end || p == 0 || p > 65535) {
			snprintf(err, errlen, "transfer --to: '%.40s' is not a port", ps);
			return -1;
		}
	}
	if (inet_pton(AF_INET, addr, &in) == 1)
		*to = net_addr_v4(in.s_addr);
	else if (inet_pton(AF_INET6, addr, a6) == 1)
		*to = net_addr_v6(a6);
	if (net_addr_is_zero(to)) {
		memset(to, 0, sizeof(*to));
		snprintf(err, errlen, "transfer --to: '%.60s' is not an IP address (a box of the "
			 "cluster, by its address)", addr);
		return -1;
	}
	*port = (uint16_t)p;
	return 0;
}

int transfer_state_save(const char *dir, const struct transfer_state *t, char *err,
			size_t errlen)
{
	static const struct atomic_file_attr attr = { .mode = 0640 };
	char path[ATOMIC_FILE_PATH_MAX + 1], line[LINE_MAX_TS], ip[NET_ADDR_STRLEN];
	int len;

	if (path_of(dir, path, sizeof(path), err, errlen) < 0)
		return -1;
	if (!t)
		return atomic_file_remove(path, err, errlen);
	if (net_addr_is_zero(&t->addr) || !t->port ||
	    (t->addr.family != NET_AF_INET && t->addr.family != NET_AF_INET6)) {
		snprintf(err, errlen, "transfer state: no address or port to record");
		return -1;
	}
	net_addr_str(&t->addr, ip, sizeof(ip));
	len = snprintf(line, sizeof(line), "%s %u %s\n", ip, (unsigned)t->port,
		       t->include_held ? "held" : "unheld");
	return atomic_file_write(path, line, (size_t)len, &attr, err, errlen);
}

/* Parse "a.b.c.d PORT held|unheld" (one line, its newline optional). */
static int parse(const char *line, struct transfer_state *t)
{
	char ip[NET_ADDR_STRLEN], word[8], extra;
	unsigned port;
	struct in_addr a;
	uint8_t a6[16];

	if (sscanf(line, "%45s %5u %7s %c", ip, &port, word, &extra) != 3 || port == 0 ||
	    port > 65535)
		return -1;
	if (strcmp(word, "held") != 0 && strcmp(word, "unheld") != 0)
		return -1;
	if (inet_pton(AF_INET, ip, &a) == 1)
		t->addr = net_addr_v4(a.s_addr);
	else if (inet_pton(AF_INET6, ip, a6) == 1)
		t->addr = net_addr_v6(a6);
	else
		return -1;
	if (net_addr_is_zero(&t->addr))
		return -1;
	t->port = (uint16_t)port;
	t->include_held = word[0] == 'h';
	return 0;
}

int transfer_state_load(const char *dir, struct transfer_state *t, char *err, size_t errlen)
{
	char path[ATOMIC_FILE_PATH_MAX + 1], line[LINE_MAX_TS];
	size_t n;
	int rc;

	memset(t, 0, sizeof(*t));
	if (path_of(dir, path, sizeof(path), err, errlen) < 0)
		return -1;
	rc = atomic_file_read(path, line, sizeof(line), &n, err, errlen);
	if (rc <= 0)
		return rc;
	if (parse(line, t) < 0) {
		memset(t, 0, sizeof(*t));
		snprintf(err, errlen, "%s: not 'ADDRESS PORT held|unheld'", path);
		return -1;
	}
	return 1;
}
