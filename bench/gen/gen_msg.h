/*
 * gen_msg.h - the messages sluice-gen sends, and the digests that prove at
 * the sink that each arrived exactly once, byte for byte.
 *
 * A message is a short header section, unique per message, whose first
 * line is the marker "X-Sluice-Gen: <lcore>-<seq> <run>", then a body cut
 * from a shared template of fixed-length CRLF lines (some starting with a
 * dot, so dot-stuffing is exercised) to make the requested size exactly.
 * The client computes the SHA-256 of the whole message when it builds it
 * (when it keeps a digest log: --client-digests).
 *
 * A relay prepends its own trace fields (Received:) and may add others
 * above ours, never below: the sink (gen_digest_*) hashes from the start
 * of the first line that begins with the marker to the end of the body, so
 * the client's digest and the sink's match exactly when the message went
 * through unchanged. A body without the marker is hashed whole (and
 * counted as such).
 *
 * Pure apart from OpenSSL's EVP digests (one context per message or
 * connection slot, made at start-up: nothing is allocated per message).
 */
#ifndef SLUICE_GEN_MSG_H
#define SLUICE_GEN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MARKER "X-Sluice-Gen: "
#define GEN_MARKER_LEN 14
#define GEN_LINE 78			/* template line, CRLF included */
#define GEN_TEMPLATE_LINES 840
#define GEN_TEMPLATE_LEN (GEN_LINE * GEN_TEMPLATE_LINES)
#define GEN_HDR_MAX 1024
#define GEN_SHA_LEN 32

typedef struct evp_md_ctx_st EVP_MD_CTX;

/* Fill the template (GEN_TEMPLATE_LEN octets) from a seed. */
void gen_template_init(char *tpl, uint64_t seed);

struct gen_msg {
	char hdr[GEN_HDR_MAX];
	uint32_t hdr_len;
	uint64_t size;			/* octets in all (header + body) */
	uint64_t pos;			/* octets handed out by gen_msg_next */
	uint64_t full_lines;		/* template lines in the body */
	uint32_t first_line;		/* template line the body starts at */
	char tail[GEN_LINE + 2];	/* the last, shorter line */
	uint32_t tail_len;
	uint8_t sha[GEN_SHA_LEN];
};

/*
 * Build message `id` ("W-SEQ") of `size` octets for the header fields
 * given (addresses without angle brackets), its body starting at template
 * line `line`, and compute its digest with ctx (ctx NULL: no digest, sha
 * all zero; hashing 10 KiB is ~11% of the client's CPU per message, spent
 * for nothing when no digest log is kept). The size is raised to the
 * smallest that holds the header section. 0, or -1 when the header does
 * not fit GEN_HDR_MAX.
 */
int gen_msg_build(struct gen_msg *m, const char *tpl, EVP_MD_CTX *ctx, const char *id,
		  const char *run, const char *date, const char *from, const char *to,
		  const char *subject_extra, uint64_t size, uint32_t line);

/* The next contiguous piece of the message (0 at the end); advance with
 * gen_msg_consume(). */
size_t gen_msg_next(const struct gen_msg *m, const char *tpl, const char **p);
void gen_msg_consume(struct gen_msg *m, size_t n);
static inline bool gen_msg_done(const struct gen_msg *m) { return m->pos >= m->size; }

/* The sink's side: hash a body as it streams in, from the marker line. */
struct gen_digest {
	EVP_MD_CTX *ctx;		/* owned by the caller's slot */
	bool found;			/* marker line seen: hashing */
	bool in_header;			/* still above the first empty line */
	bool bol;			/* at the start of a line */
	bool cr;			/* last octet was CR */
	uint8_t plen;			/* octets of this line's start held in pre */
	uint32_t linelen;		/* octets of the current line so far */
	char pre[GEN_MARKER_LEN];
	uint64_t hashed;		/* octets hashed */
};
void gen_digest_begin(struct gen_digest *d, EVP_MD_CTX *ctx);
void gen_digest_feed(struct gen_digest *d, const void *data, size_t len);
/* Final digest; *marked says whether the marker was found (else the whole
 * body was hashed). */
void gen_digest_end(struct gen_digest *d, uint8_t out[GEN_SHA_LEN], bool *marked);

/* Whole-buffer digest (tests, the marker-less fallback). */
void gen_sha256(const void *data, size_t len, uint8_t out[GEN_SHA_LEN]);
void gen_hex(const uint8_t *b, size_t n, char *out);	/* out: 2n+1 */

#endif
