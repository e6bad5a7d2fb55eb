/*
 * queue_schema.h - the on-disk layout of a shard: keys and records.
 *
 * Named databases of one shard environment (domains are inside keys, never
 * one database per domain):
 *
 *   msg   id(8)                       -> message record (envelope, recipients)
 *   body  id(8) chunk(4)              -> body bytes, stored once per shard, cut
 *                                        in chunks of one overflow page each
 *                                        (see queue_shard.c: no contiguous runs
 *                                        of free pages needed, so no fragmentation)
 *   due   when(8) id(8)               -> ""   (not held, has undone recipients;
 *                                              when = due time, or lease end if claimed)
 *   dom   domain '\0' id(8)           -> ""   (per domain, in arrival order)
 *   sum   (retired: emptied at open; the per-domain summary lives in
 *          memory, queue_agg.h, rebuilt from the records at open. It held
 *          domain '\0' slot(4) -> active(4) deferred(4) held(4).)
 *   hist  id(8) seq(4)                -> attempt: time(8) rcpt(2) state(1) reply
 *   meta  "id_resv"                   -> highest queue ID reserved (8)
 *
 * All integers are big-endian, so keys sort by time / ID. Domains in keys are
 * normalised by q_domain_norm (ASCII lower case, one trailing dot dropped),
 * and so is the domain a shard is chosen by: every spelling of a domain is
 * one domain for shards, lists and the summary. Addresses in records are
 * kept as the client gave them.
 */
#ifndef SLUICE_QUEUE_SCHEMA_H
#define SLUICE_QUEUE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#define QK_DUE_LEN   16
#define QK_HIST_LEN  12
#define QK_DOM_MAX   (255 + 1 + 8)
#define QK_SUM_MAX   QK_DOM_MAX	/* (255 + 1 + 4), same buffers */
#define QSUM_LEN     12
#define QSLOT_SECONDS 300

#define QREC_VERSION 4	/* written; versions 1 to 3 are still read */
#define QREC_PRIOR_ERR_MAX 160	/* the carried last error (xsluice.h's XSLUICE_ERR_MAX) */
/*
 * QF_INTENT: a part of a message that spans shards, stored while the other
 * shards may not have theirs yet. It is not due and cannot be claimed until
 * every shard has stored its part and sealed it (cleared the flag); see
 * queue_shard.c. Recovery deletes every part of a message with a part still
 * marked: that message was never acknowledged.
 */
/*
 * QF_WARNED: the sender has had its delay warning for this message (one per
 * message, RFC 3461 NOTIFY=DELAY): set in every shard holding a part.
 */
enum { QF_HELD = 1, QF_CLAIMED = 2, QF_INTENT = 4, QF_WARNED = 8 };

static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);  p[3] = (uint8_t)v;
}

static inline uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Keys. The *_MAX sizes bound every buffer; functions return the length. */
void qk_id(uint8_t out[8], uint64_t id);
size_t qk_due(uint8_t out[QK_DUE_LEN], uint64_t when, uint64_t id);
void qk_due_parse(const uint8_t *key, uint64_t *when, uint64_t *id);
size_t qk_dom(uint8_t out[QK_DOM_MAX], const char *dom, size_t dlen, uint64_t id);
size_t qk_dom_prefix(uint8_t out[QK_DOM_MAX], const char *dom, size_t dlen);
size_t qk_sum(uint8_t out[QK_SUM_MAX], const char *dom, size_t dlen, uint32_t slot);
size_t qk_hist(uint8_t out[QK_HIST_LEN], uint64_t id, uint32_t seq);
#define QK_BODY_LEN 12
size_t qk_body(uint8_t out[QK_BODY_LEN], uint64_t id, uint32_t chunk);

/* Domain of an address (after the last '@'; "" when none). */
const char *q_addr_domain(const char *addr, size_t *len);

#define QK_DOMAIN_MAX 255
/*
 * The one normal form of a domain: ASCII lower case (bytes >= 0x80 as they
 * are), one trailing dot dropped ("Example.COM." -> "example.com"; "x.."
 * stays, so normalising twice changes nothing). q_domain_len gives the
 * length without the dot; q_domain_norm writes the normal form, clipped to
 * QK_DOMAIN_MAX bytes, NUL-terminated, and returns its length.
 */
size_t q_domain_len(const char *dom, size_t len);
size_t q_domain_norm(char out[QK_DOMAIN_MAX + 1], const char *dom, size_t len);
/* Same domain once normalised? */
int q_domain_eq(const char *a, size_t al, const char *b, size_t bl);
/* FNV-1a over the normal form: shard = q_domain_hash() % N. */
uint32_t q_domain_hash(const char *dom, size_t len);

/* The message record. Strings point into the decoded buffer (NUL-terminated). */
struct qrec_rcpt {
	const char *addr, *orcpt, *reply;
	uint8_t state, notify;
	uint16_t attempts;
	uint64_t last_attempt;
	const char *dsn;	/* the last result's enhanced status ("5.1.1"), "" */
};

struct qrec {
	uint8_t flags;		/* QF_* */
	uint8_t ret;
	uint8_t body_flags;	/* enum queue_body_flags */
	uint16_t nrcpt;
	uint32_t token;		/* claim generation */
	uint32_t hist_seq;	/* next history sequence number */
	uint64_t arrival, expiry, size, due, claim_until;
	uint64_t shards;	/* spans shards: the set of them (bit i = shard i), else 0 */
	uint64_t held_at;	/* QF_HELD: since when (unix s) */
	uint64_t held_s;	/* seconds spent held before (expiry is that much later) */
	const char *sender, *envid, *client_name, *client_addr, *helo;
	/* version 3: the SMTP AUTH identity the message came with (RFC 4954:
	 * mechanism and user name, "" when it came unauthenticated) and why
	 * it is held ("" when not held or held with no reason given) */
	const char *auth_method, *auth_user, *hold_reason;
	/* version 4: the history a message brought from another box
	 * (sluicectl transfer, XSLUICE): its delivery attempts there and
	 * its last error text (at most QREC_PRIOR_ERR_MAX octets; "" none).
	 * Its next try there is the record's due time. 0 and "" for a
	 * message that came from a client. */
	uint32_t prior_attempts;
	const char *prior_error;
	struct qrec_rcpt *rcpt;
};

/* Encoded size of a record (strings longer than 65535 are not allowed). */
size_t qrec_size(const struct qrec *r);
/* Encode into buf; returns the length, or 0 if cap is too small. */
size_t qrec_encode(const struct qrec *r, uint8_t *buf, size_t cap);
/*
 * Decode buf (which must outlive r). rcpt must have room for rcpt_cap
 * entries. Returns 0, or -1 on a malformed or too large record.
 */
int qrec_decode(struct qrec *r, const uint8_t *buf, size_t len,
		struct qrec_rcpt *rcpt, size_t rcpt_cap);

/* Flags and shard set of an encoded record without decoding it (0 if too short). */
uint8_t qrec_peek_flags(const uint8_t *buf, size_t len);
uint64_t qrec_peek_shards(const uint8_t *buf, size_t len);

/* Key time of the due index for this record, and whether it belongs there. */
int qrec_in_due(const struct qrec *r);
uint64_t qrec_due_key_time(const struct qrec *r);

/* A history record. */
struct qhist {
	uint64_t time;
	uint16_t rcpt;
	uint8_t state;
	const char *reply;	/* decode: points into buf, NUL-terminated */
};
size_t qhist_encode(const struct qhist *h, uint8_t *buf, size_t cap);
int qhist_decode(struct qhist *h, const uint8_t *buf, size_t len);

/* Summary value. */
struct qsum { uint32_t active, deferred, held; };
void qsum_encode(const struct qsum *s, uint8_t out[QSUM_LEN]);
void qsum_decode(struct qsum *s, const uint8_t *in);

#endif
