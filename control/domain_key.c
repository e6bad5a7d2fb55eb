/*
 * domain_key.c - the domain patterns of per-domain settings. See domain_key.h.
 */
#include "control/domain_key.h"

#include <ctype.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

int domain_key_parse(const char *s, size_t len, struct domain_key *k)
{
	size_t label = 0;

	k->subdomains = len > 0 && s[0] == '.';
	if (k->subdomains) {
		s++;
		len--;
	}
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
		} else if (isalnum((unsigned char)ch) || ch == '-') {
			if ((label == 0 && ch == '-') || ++label > 63)
				return -1;
		} else {
			return -1;
		}
		k->name[i] = (char)tolower((unsigned char)ch);
	}
	if (label == 0 || s[len - 1] == '-')
		return -1;
	k->name[len] = '\0';
	k->len = (uint8_t)len;
	return 0;
}

unsigned domain_key_match(const struct domain_key *k, const char *domain)
{
	size_t qlen = strlen(domain);

	if (qlen > 0 && domain[qlen - 1] == '.')
		qlen--;
	if (!k->subdomains)
		return qlen == k->len && strncasecmp(domain, k->name, qlen) == 0 ? UINT_MAX : 0;
	if (qlen > k->len + 1u && domain[qlen - k->len - 1] == '.' &&
	    strncasecmp(domain + qlen - k->len, k->name, k->len) == 0)
		return 1u + k->len;
	return 0;
}

const char *domain_key_trim(const char *s, size_t *len)
{
	while (*len && (*s == ' ' || *s == '\t')) {
		s++;
		(*len)--;
	}
	while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
		(*len)--;
	return s;
}

int domain_key_list(const char *text, unsigned max, const char *rest_says,
		    domain_key_entry_fn fn, void *ctx, char *err, size_t errlen)
{
	struct domain_key seen[DOMAIN_KEY_LIST_MAX];
	const char *cur = text;
	unsigned n = 0;

	if (max > DOMAIN_KEY_LIST_MAX)
		max = DOMAIN_KEY_LIST_MAX;
	while (*cur) {
		size_t elen = strcspn(cur, ";"), dlen, rlen;
		const char *entry = domain_key_trim(cur, &elen), *colon, *dom, *rest;
		struct domain_key *k = &seen[n < max ? n : max - 1];
		char ferr[256];

		cur += strcspn(cur, ";");
		if (*cur == ';')
			cur++;
		if (elen == 0)
			continue;
		colon = memchr(entry, ':', elen);
		if (!colon) {
			snprintf(err, errlen, "'%.*s' is not 'domain: %s'",
				 (int)(elen > 60 ? 60 : elen), entry, rest_says);
			return -1;
		}
		if (n == max) {
			snprintf(err, errlen, "more than %u domains", max);
			return -1;
		}
		dlen = (size_t)(colon - entry);
		dom = domain_key_trim(entry, &dlen);
		if (domain_key_parse(dom, dlen, k) < 0) {
			snprintf(err, errlen, "'%.*s' is not a domain or .domain",
				 (int)(dlen > 60 ? 60 : dlen), dom);
			return -1;
		}
		for (unsigned i = 0; i < n; i++)
			if (seen[i].subdomains == k->subdomains && strcmp(seen[i].name, k->name) == 0) {
				snprintf(err, errlen, "%s%s is listed twice",
					 k->subdomains ? "." : "", k->name);
				return -1;
			}
		rlen = elen - dlen - 1;
		rest = domain_key_trim(colon + 1, &rlen);
		if (fn(ctx, k, rest, rlen, ferr, sizeof(ferr)) < 0) {
			snprintf(err, errlen, "%s%s: %s", k->subdomains ? "." : "", k->name, ferr);
			return -1;
		}
		n++;
	}
	return (int)n;
}
