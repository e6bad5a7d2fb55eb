/*
 * smtp_policy.c - relay policy decisions (see smtp_policy.h).
 */
#include "dataplane/smtp/smtp_policy.h"

#include <arpa/inet.h>
#include <string.h>

static bool is_sep(char c)
{
	return c == ' ' || c == ',' || c == '\t' || c == '\n';
}

int smtp_parse_ipv4(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*ip = ntohl(a.s_addr);
	return 0;
}

/* An IPv6 CIDR ("2001:db8::/32"; no prefix length: /128). */
static int add_net6(struct smtp_policy *p, char *buf)
{
	unsigned bits = 128;
	char *slash = strchr(buf, '/');
	struct in6_addr a;
	if (p->nnets6 >= SMTP_POLICY_MAX_NETS)
		return -1;
	if (slash != NULL) {
		*slash = '\0';
		const char *b = slash + 1;
		if (*b == '\0' || strlen(b) > 3)
			return -1;
		bits = 0;
		for (; *b; b++) {
			if (*b < '0' || *b > '9')
				return -1;
			bits = bits * 10 + (unsigned)(*b - '0');
		}
		if (bits == 0 || bits > 128)
			return -1;	/* /0 would be an open relay */
	}
	if (inet_pton(AF_INET6, buf, &a) != 1)
		return -1;
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
		uint8_t mask = (uint8_t)(0xffu >> keep);	/* host bits */
		if (a.s6_addr[i] & mask)
			return -1;	/* host bits set */
	}
	memcpy(p->nets6[p->nnets6].net, a.s6_addr, 16);
	p->nets6[p->nnets6].bits = (uint8_t)bits;
	p->nnets6++;
	return 0;
}

static int add_net(struct smtp_policy *p, const char *tok, size_t n)
{
	char buf[64];
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, tok, n);
	buf[n] = '\0';
	if (strchr(buf, ':'))
		return add_net6(p, buf);
	if (p->nnets >= SMTP_POLICY_MAX_NETS)
		return -1;
	unsigned bits = 32;
	char *slash = strchr(buf, '/');
	if (slash != NULL) {
		*slash = '\0';
		const char *b = slash + 1;
		if (*b == '\0' || strlen(b) > 2)
			return -1;
		bits = 0;
		for (; *b; b++) {
			if (*b < '0' || *b > '9')
				return -1;
			bits = bits * 10 + (unsigned)(*b - '0');
		}
		if (bits == 0 || bits > 32)
			return -1;	/* /0 would be an open relay */
	}
	uint32_t ip;
	if (smtp_parse_ipv4(buf, &ip) != 0)
		return -1;
	uint32_t mask = bits == 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> bits);
	if (ip & ~mask)
		return -1;	/* host bits set: almost surely a typo */
	p->nets[p->nnets].net = ip;
	p->nets[p->nnets].mask = mask;
	p->nnets++;
	return 0;
}

static int add_domain(struct smtp_policy *p, const char *tok, size_t n)
{
	bool sub = false;
	if (n > 0 && tok[0] == '.') {
		sub = true;
		tok++;
		n--;
	}
	if (n > 0 && tok[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || p->ndomains >= SMTP_POLICY_MAX_DOMAINS)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = tok[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return -1;
		if (c == '.' && (i == 0 || tok[i - 1] == '.'))
			return -1;
	}
	struct smtp_policy_domain *d = &p->domains[p->ndomains++];
	d->subdomains = sub;
	d->len = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		d->name[i] = (tok[i] >= 'A' && tok[i] <= 'Z') ? (char)(tok[i] + 32) : tok[i];
	d->name[n] = '\0';
	return 0;
}

static int each(struct smtp_policy *p, const char *s,
		int (*fn)(struct smtp_policy *, const char *, size_t))
{
	if (s == NULL)
		return 0;
	while (*s) {
		while (*s && is_sep(*s))
			s++;
		const char *t = s;
		while (*s && !is_sep(*s))
			s++;
		if (s > t && fn(p, t, (size_t)(s - t)) != 0)
			return -1;
	}
	return 0;
}

int smtp_policy_init(struct smtp_policy *p, const char *mynetworks,
		     const char *relay_domains)
{
	p->nnets = 0;
	p->ndomains = 0;
	p->nnets6 = 0;
	if (each(p, mynetworks, add_net) != 0 || each(p, relay_domains, add_domain) != 0) {
		p->nnets = 0;
		p->ndomains = 0;
		p->nnets6 = 0;
		return -1;
	}
	return 0;
}

bool smtp_policy_trusted(const struct smtp_policy *p, uint32_t ip)
{
	for (unsigned i = 0; i < p->nnets; i++)
		if ((ip & p->nets[i].mask) == p->nets[i].net)
			return true;
	return false;
}

static bool ieq_n(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (x != y)
			return false;
	}
	return true;
}

bool smtp_policy_trusted6(const struct smtp_policy *p, const uint8_t ip6[16])
{
	for (unsigned i = 0; i < p->nnets6; i++) {
		const struct smtp_policy_net6 *n = &p->nets6[i];
		unsigned full = n->bits / 8, rest = n->bits % 8;
		if (memcmp(ip6, n->net, full) != 0)
			continue;
		if (rest && ((ip6[full] ^ n->net[full]) & (uint8_t)(0xff00u >> rest)))
			continue;
		return true;
	}
	return false;
}

static enum smtp_relay check(const struct smtp_policy *p, bool trusted,
			     const char *local, const char *domain, bool literal);

enum smtp_relay smtp_policy_check(const struct smtp_policy *p, uint32_t ip,
				  const char *local, const char *domain, bool literal)
{
	return check(p, smtp_policy_trusted(p, ip), local, domain, literal);
}

enum smtp_relay smtp_policy_check6(const struct smtp_policy *p, const uint8_t ip6[16],
				   const char *local, const char *domain, bool literal)
{
	return check(p, smtp_policy_trusted6(p, ip6), local, domain, literal);
}

static enum smtp_relay check(const struct smtp_policy *p, bool trusted,
			     const char *local, const char *domain, bool literal)
{
	if (trusted)
		return SMTP_RELAY_OK;
	if (literal || domain == NULL)
		return SMTP_RELAY_DENIED;
	if (local != NULL && strpbrk(local, "%!@") != NULL)
		return SMTP_RELAY_DENIED;
	size_t n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	for (unsigned i = 0; i < p->ndomains; i++) {
		const struct smtp_policy_domain *d = &p->domains[i];
		if (!d->subdomains) {
			if (n == d->len && ieq_n(domain, d->name, n))
				return SMTP_RELAY_OK;
		} else if (n > d->len && domain[n - d->len - 1] == '.' &&
			   ieq_n(domain + n - d->len, d->name, d->len)) {
			return SMTP_RELAY_OK;
		}
	}
	return SMTP_RELAY_DENIED;
}

/* Case-insensitive equality of a and b, a trailing dot of either ignored. */
static bool domain_eq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	if (na != nb || na == 0)
		return false;
	for (size_t i = 0; i < na; i++) {
		char x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x = (char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

bool smtp_policy_postmaster(const char *local, const char *domain, const char *hostname)
{
	static const char pm[] = "postmaster";
	if (local == NULL || strlen(local) != sizeof(pm) - 1 || !ieq_n(local, pm, sizeof(pm) - 1))
		return false;
	return domain == NULL || domain[0] == '\0' ||
	       (hostname != NULL && domain_eq(domain, hostname));
}
