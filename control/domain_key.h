/*
 * domain_key.h - the domain patterns of per-domain settings.
 *
 * [retry] per_domain and [dest] per_domain name a domain ("example.com":
 * that domain) or a parent (".example.com": every subdomain of it, not the
 * domain itself). Given a domain, the exact pattern wins, else the longest
 * parent that covers it. Patterns are stored lower case, without a
 * trailing dot; matching ignores case and one trailing dot.
 */
#ifndef SLUICE_DOMAIN_KEY_H
#define SLUICE_DOMAIN_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct domain_key {
	bool subdomains;	/* ".example.net": any subdomain of name */
	uint8_t len;		/* strlen(name) */
	char name[254];		/* lower case, no leading or trailing dot */
};

/* A domain or ".domain" of len characters: labels of letters, digits and
 * hyphens, 1..63 each, 253 in all; a trailing dot is dropped. 0 or -1. */
int domain_key_parse(const char *s, size_t len, struct domain_key *k);

/* How closely k covers domain: 0 not at all; the exact domain beats any
 * parent, and a longer parent beats a shorter one. */
unsigned domain_key_match(const struct domain_key *k, const char *domain);

/*
 * Walk a list "domain: REST; .domain: REST; ..." (at most max entries):
 * each domain is parsed and must not repeat; fn gets it with its REST
 * (trimmed, len characters, not NUL-terminated) and returns 0, or -1 with
 * err filled (then prefixed here with the domain). `rest_says` names what
 * REST is, for the message when a colon is missing ("schedule"). Returns
 * the entries taken, or -1 with err.
 */
#define DOMAIN_KEY_LIST_MAX 64
typedef int (*domain_key_entry_fn)(void *ctx, const struct domain_key *k, const char *rest,
				   size_t len, char *err, size_t errlen);
int domain_key_list(const char *text, unsigned max, const char *rest_says,
		    domain_key_entry_fn fn, void *ctx, char *err, size_t errlen);

/* s[0..*len) without leading and trailing blanks (*len updated). */
const char *domain_key_trim(const char *s, size_t *len);

#endif
