/*
 * net_addr.c - text form of struct net_addr. See net_addr.h.
 */
#include "dataplane/net/net_addr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

const char *net_addr_str(const struct net_addr *a, char *buf, unsigned len)
{
	const void *src = a->family == NET_AF_INET6 ? (const void *)a->v6 : (const void *)&a->v4;
	int af = a->family == NET_AF_INET6 ? AF_INET6 : AF_INET;

	if (len == 0)
		return buf;
	if ((a->family != NET_AF_INET && a->family != NET_AF_INET6) ||
	    inet_ntop(af, src, buf, len) == NULL) {
		buf[0] = len > 1 ? '?' : '\0';
		if (len > 1)
			buf[1] = '\0';
	}
	return buf;
}
