/*
 * smtp_policy.h - relay policy: who may send where.
 *
 *  - a client whose address is in `mynetworks` (CIDR list of either
 *    family, e.g. "198.18.0.0/24 10.0.0.0/8 2001:db8:5c::/48", separated
 *    by spaces or commas) may relay to any domain, address literals
 *    included;
 *  - anyone may send to a domain in `relay_domains` ("example.com" matches
 *    exactly that domain, ".example.com" any subdomain of it - not the
 *    domain itself; case-insensitive, a trailing dot ignored);
 *  - anyone may send to our postmaster (RFC 5321 4.5.1): "postmaster" in
 *    any case, alone ("RCPT TO:<Postmaster>") or at our own hostname; the
 *    session stores such mail for the configured [smtp] postmaster address
 *    (see smtp_server.h);
 *  - everything else is refused: 554 5.7.1 Relay access denied.
 * An empty policy relays nothing, so no configuration becomes an open relay
 * by accident. "0.0.0.0/0" and "::/0" in mynetworks are refused at parse
 * time for the same reason. For clients outside mynetworks, a local part holding
 * routing characters ('%', '!', '@' inside quotes) is refused even for a
 * relay domain (the classic "user%other@relay" open-relay probe).
 *
 * Parsed once (smtp_policy_init), read-only afterwards: one instance may be
 * shared by every lcore.
 */
#ifndef SLUICE_SMTP_POLICY_H
#define SLUICE_SMTP_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#define SMTP_POLICY_MAX_NETS    128
#define SMTP_POLICY_MAX_DOMAINS 256

struct smtp_policy_net {
	uint32_t net, mask;	/* host byte order */
};

struct smtp_policy_net6 {
	uint8_t net[16];	/* host bits zero */
	uint8_t bits;		/* prefix length, 1..128 */
};

struct smtp_policy_domain {
	bool subdomains;	/* ".example.com" */
	uint8_t len;
	char name[256];		/* lower case, no leading/trailing dot */
};

struct smtp_policy {
	unsigned nnets, ndomains, nnets6;
	struct smtp_policy_net nets[SMTP_POLICY_MAX_NETS];
	struct smtp_policy_net6 nets6[SMTP_POLICY_MAX_NETS];
	struct smtp_policy_domain domains[SMTP_POLICY_MAX_DOMAINS];
};

/* Either string may be NULL or empty. Returns 0, or -1 on a syntax error
 * (bad CIDR, host bits set, /0, bad domain, too many entries); the policy
 * is then empty (relays nothing). */
int smtp_policy_init(struct smtp_policy *p, const char *mynetworks,
		     const char *relay_domains);

/* ip in host byte order */
bool smtp_policy_trusted(const struct smtp_policy *p, uint32_t ip);

/* ip6: 16 bytes, network order */
bool smtp_policy_trusted6(const struct smtp_policy *p, const uint8_t ip6[16]);

enum smtp_relay {
	SMTP_RELAY_OK = 0,
	SMTP_RELAY_DENIED,	/* 554 5.7.1 Relay access denied */
};

/*
 * May a client at `ip` send to local@domain? `literal` is true when the
 * domain is an address literal. `local` may be NULL (not checked).
 */
enum smtp_relay smtp_policy_check(const struct smtp_policy *p, uint32_t ip,
				  const char *local, const char *domain, bool literal);

/* The same for a client at an IPv6 address. */
enum smtp_relay smtp_policy_check6(const struct smtp_policy *p, const uint8_t ip6[16],
				   const char *local, const char *domain, bool literal);

/*
 * Is local@domain our postmaster, which anyone may send to (RFC 5321 4.5.1)?
 * local is "postmaster" in any case (unquoted), and domain is empty (the
 * domainless "<Postmaster>" of 4.1.1.3) or our hostname (any case, a
 * trailing dot ignored). Postmaster at another domain is not ours.
 */
bool smtp_policy_postmaster(const char *local, const char *domain, const char *hostname);

/* Parse dotted-quad IPv4 into host byte order. 0 or -1. */
int smtp_parse_ipv4(const char *s, uint32_t *ip);

#endif
