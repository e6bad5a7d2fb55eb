/*
 * tls_pump.h - the bytes between one TCP connection and one SMTP engine,
 * in the clear or through a TLS session: what the SMTP server
 * (smtp_service.c), delivery (delivery.c) and sluice-gen's client and sink
 * all do the same way.
 *
 * Three buffers, each a window [start, end):
 *
 *   in   octets TCP delivered that nobody has consumed yet: plaintext, or
 *        ciphertext under TLS. The owner appends to it (its on_data) and
 *        owns its size; TCP's window opens (tcp_recved) only as octets
 *        leave it, so it never holds more than the window allowed.
 *   pt   under TLS: TLS_PUMP_PT_MAX octets decrypted and not yet consumed by
 *        the engine. Ciphertext goes to OpenSSL only when it needs more, at
 *        most TLS_PUMP_FEED_MAX at a time, so its own buffers stay small.
 *   co   under TLS: ciphertext OpenSSL produced that TCP had no room for.
 *
 * The engine is reached through two calls: tls_pump_readable /
 * tls_pump_consumed for its input (the window of pt under TLS, of in
 * otherwise), and a peek/consume pair (struct tls_pump_out) for its output.
 * What a failure means (abort, close, tell the engine) is the owner's
 * business: the calls report it and leave the session alone. Nothing here
 * allocates, blocks or logs: it runs on the lcore's packet path.
 */
#ifndef SLUICE_TLS_PUMP_H
#define SLUICE_TLS_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct tcp_conn;
struct tls_conn;

#define TLS_PUMP_PT_MAX   (16 * 1024)	/* decrypted octets waiting for the engine */
#define TLS_PUMP_FEED_MAX 4096		/* ciphertext handed to OpenSSL at a time */
#define TLS_PUMP_STAGE    4096		/* ciphertext waiting for room in TCP */

struct tls_pump {
	struct tls_conn *tls;	/* NULL: plaintext */
	bool up;		/* the TLS handshake is done */
	uint8_t *in;		/* the owner's; see above */
	uint32_t in_start, in_end;
	uint8_t *pt;		/* the owner's, TLS_PUMP_PT_MAX octets, under TLS */
	uint32_t pt_start, pt_end;
	uint32_t co_start, co_end;
	uint8_t co[TLS_PUMP_STAGE];
};

/* The engine's output: peek at what it has to send, consume what went. */
struct tls_pump_out {
	size_t (*peek)(void *eng, const char **p);
	void (*consume)(void *eng, size_t n);
	void *eng;
};

/* Forget every window (a slot reused for a new connection). The buffers
 * and tls stay as they are. */
void tls_pump_reset(struct tls_pump *tp);

/* Append what TCP delivered (a chain) to `in`, of cap octets, moving the
 * window to the front first when that makes room. False, and nothing
 * appended, when it does not fit: more than the window we offered, which
 * a TCP we can trust never sends. The chain stays the caller's. */
bool tls_pump_append(struct tls_pump *tp, uint32_t cap, const struct rte_mbuf *m);

/* Is anything waiting to go to TCP: engine output, or ciphertext? */
bool tls_pump_output_pending(const struct tls_pump *tp, const struct tls_pump_out *o);

/* Nothing received is waiting, neither raw nor decrypted. */
bool tls_pump_input_empty(const struct tls_pump *tp);

/* Drop what TCP delivered and nobody consumed (plaintext sent before our
 * "220 Ready to start TLS", RFC 3207 5, CVE-2011-0411), opening TCP's
 * window for it. */
void tls_pump_drop_input(struct tls_pump *tp, struct tcp_conn *tcp);

/* Move the engine's output to TCP: as it is, or through TLS once it is up
 * (until then only handshake records go). 1 something moved, 0 nothing
 * could, -1 TLS refused to encrypt (the session is unusable). */
int tls_pump_flush(struct tls_pump *tp, struct tcp_conn *tcp, const struct tls_pump_out *o);

enum tls_pump_event {
	TLS_PUMP_IDLE,		/* nothing more can move now */
	TLS_PUMP_UP,		/* the handshake just completed */
	TLS_PUMP_HS_FAILED,	/* the handshake failed; input dropped */
	TLS_PUMP_ENDED,		/* close_notify or a bad record; input dropped */
	TLS_PUMP_FEED_FAILED,	/* OpenSSL refused ciphertext; input dropped */
};

/* Under TLS: drive the handshake (only when handshake is true: a client
 * starts it once the server said 220 to STARTTLS), then decrypt what `in`
 * holds into pt while there is room. Returns at the first event; the owner
 * acts on it and calls again after TLS_PUMP_UP. *moved is set when any
 * octet moved. */
enum tls_pump_event tls_pump_input(struct tls_pump *tp, struct tcp_conn *tcp, bool handshake,
				   bool *moved);

/* The engine's input window: its octets in *p, their count returned. */
size_t tls_pump_readable(const struct tls_pump *tp, const uint8_t **p);

/* The engine consumed n octets of that window (TCP's window opens for
 * plaintext; under TLS it opened as ciphertext went to OpenSSL). */
void tls_pump_consumed(struct tls_pump *tp, struct tcp_conn *tcp, size_t n);

#endif
