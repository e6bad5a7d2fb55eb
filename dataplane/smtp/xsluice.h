/*
 * xsluice.h - the queue state one Sluice box hands another with a message
 * it transfers (sluicectl transfer, issue 19): the MAIL parameter
 *
 *     XSLUICE=ARRIVAL.ATTEMPTS.NEXT.EXPIRY[.ERROR]
 *
 * ARRIVAL, NEXT (next try) and EXPIRY are unix seconds, ATTEMPTS the
 * delivery attempts so far, all decimal without leading zeros; ERROR, the
 * last error text, is RFC 3461 xtext (so '=' and spaces travel as +3D,
 * +20; it may contain '.', being last). The receiving server offers the
 * EHLO keyword XSLUICE and accepts the parameter only from trusted clients
 * (mynetworks: the other boxes of the cluster); anyone else gets 555 5.5.4
 * as for any unknown parameter. With it, the new queue record keeps the
 * original arrival and expiry instead of "now" and "now + lifetime".
 *
 * Bounds (a value outside them makes the parameter invalid: 501 5.5.4):
 * times in [1, XSLUICE_TIME_MAX], ARRIVAL <= EXPIRY, ARRIVAL <= NEXT,
 * ATTEMPTS <= XSLUICE_ATTEMPTS_MAX, ERROR decoded at most XSLUICE_ERR_MAX
 * octets of printable ASCII (its xtext at most XSLUICE_PARAM_MAX in all).
 * Pure code: no allocation, usable on an lcore.
 */
#ifndef SLUICE_XSLUICE_H
#define SLUICE_XSLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XSLUICE_TIME_MAX     253402300799ull	/* 9999-12-31T23:59:59Z */
#define XSLUICE_ATTEMPTS_MAX 65535u		/* the queue's uint16_t */
#define XSLUICE_ERR_MAX      160		/* decoded octets of the last error */
#define XSLUICE_PARAM_MAX    (4 * 21 + 3 * XSLUICE_ERR_MAX)	/* the value, encoded */

struct xsluice {
	uint64_t arrival;	/* unix seconds: when the first box took it */
	uint64_t next_try;	/* unix seconds: due then */
	uint64_t expiry;	/* unix seconds: given up after this */
	uint32_t attempts;	/* delivery attempts so far */
	char last_error[XSLUICE_ERR_MAX + 1];	/* decoded; "" none */
};

/* The parameter's value for x into out (cap octets, NUL included); a last
 * error longer than XSLUICE_ERR_MAX is cut, non-printable octets become
 * '?'. Returns the length, or -1 if x is out of bounds or out too small. */
int xsluice_format(const struct xsluice *x, char *out, size_t cap);

/* Parse a value v[0..len) (no NUL needed). 0, or -1 if malformed or out of
 * bounds (x is then undefined). */
int xsluice_parse(const char *v, size_t len, struct xsluice *x);

#endif
