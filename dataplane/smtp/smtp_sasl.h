/*
 * smtp_sasl.h - the SASL pieces SMTP AUTH (RFC 4954) needs on the packet
 * path: strict base64 (RFC 4648, padded, no whitespace) and the PLAIN
 * mechanism's message (RFC 4616: [authzid] NUL authcid NUL passwd). No heap,
 * no system calls; every output bounded by its caller's buffer.
 */
#ifndef SLUICE_SMTP_SASL_H
#define SLUICE_SMTP_SASL_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_AUTH_NAME_MAX 64	/* an authentication identity (= users.h's) */
#define SMTP_AUTH_PASS_MAX 128	/* a password (= users.h's) */

/* Decode len characters of base64 into out (cap octets). The decoded
 * length, or -1 (not strict base64, or longer than cap). */
int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* Split a decoded PLAIN message into the identity and the password (copied,
 * NUL-terminated; the password's length in *pass_len). An authzid must be
 * empty or the authcid itself (we authorise no one as someone else). 0, or
 * -1 (malformed, a part too long, a NUL or control octet in the name, a NUL
 * in the password). */
int sasl_plain_split(const uint8_t *msg, size_t len, char name[SMTP_AUTH_NAME_MAX + 1],
		     char pass[SMTP_AUTH_PASS_MAX + 1], size_t *pass_len);

/* A LOGIN username or password (decoded): copied NUL-terminated if it has
 * no NUL octet and fits max. 0 or -1. */
int sasl_login_part(const uint8_t *msg, size_t len, char *out, size_t max);

#endif
