/*
 * tls.h - TLS for SMTP sessions: OpenSSL over memory BIOs.
 *
 * The TCP stack is ours, not the kernel's, so OpenSSL never sees a socket:
 * each connection's SSL reads ciphertext from one memory BIO that we fill
 * with what TCP received (tls_feed) and writes ciphertext to another that
 * we drain into TCP (tls_take). Plaintext goes in with tls_write and comes
 * out with tls_read. TLS 1.2 and 1.3 only.
 *
 * A server context is built from a certificate and key in PEM files. When
 * none is configured, tls_selfsigned_ensure() makes a self-signed one on
 * first start (as Debian does for Postfix with ssl-cert's snakeoil pair):
 * EC P-256, ten years, CN and subjectAltName set to the hostname.
 *
 * The server's policy (tls_ctx_policy, [tls] ciphers/ciphersuites/groups):
 * TLS 1.2 and 1.3 only, no renegotiation, no compression, no session
 * tickets (TLS 1.2 tickets would void forward secrecy), the server's
 * cipher order; TLS 1.2 ciphers ECDHE with an AEAD only (a list that selects
 * anything else is refused, so a typo cannot weaken it); TLS 1.3 suites
 * OpenSSL's defaults; key exchange over X25519 or P-256.
 *
 * The client side (delivery) has one context for every policy: the CA file
 * (a bundle, loaded into memory when the context is made, so verification
 * never reads files on an lcore) serves the connections that verify; each
 * connection says, before its handshake, which host it expects and whether
 * to verify (tls_conn_client_setup): `verify` checks the chain against the
 * CA file and the certificate against the host name (RFC 6125 via
 * SSL_set1_host, no partial wildcards) and fails the handshake otherwise;
 * `may`/`encrypt` do not verify, but the outcome of the same checks is
 * still recorded for the logs (tls_verify_result).
 *
 * OpenSSL allocates per connection when STARTTLS begins; that is the one
 * heap use on a session's path, bounded by the number of TLS sessions.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;
struct tls_conn;

/* Server context from PEM files. NULL with err filled on failure. */
struct tls_ctx *tls_ctx_server(const char *cert_file, const char *key_file,
			       char *err, size_t errlen);
/* The defaults of [tls] ciphers, ciphersuites and groups (OpenSSL syntax). */
#define TLS_POLICY_CIPHERS \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS_POLICY_CIPHERSUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_POLICY_GROUPS "X25519:P-256"

/* A server's cipher policy; NULL or "" fields take the defaults above. */
struct tls_policy {
	const char *ciphers;		/* TLS 1.2 cipher list */
	const char *ciphersuites;	/* TLS 1.3 suites */
	const char *groups;		/* ECDH groups */
};

/* Apply p (NULL: the defaults) to a server context; tls_ctx_server already
 * applied the defaults. 0, or -1 with err (a name OpenSSL does not know, a
 * list that selects nothing, or a TLS 1.2 cipher without ECDHE and AEAD). */
int tls_ctx_policy(struct tls_ctx *ctx, const struct tls_policy *p, char *err, size_t errlen);

/* Client context (the delivery side). ca_file: PEM bundle of trusted CAs,
 * or NULL/"" for none (then no certificate ever verifies). Connections do
 * not verify unless tls_conn_client_setup() asks for it. */
struct tls_ctx *tls_ctx_client(const char *ca_file, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);
/* Cap the protocol version: 12 for TLS 1.2, 13 for TLS 1.3. 0 or -1. */
int tls_ctx_max_version(struct tls_ctx *ctx, int version);

/* Make cert_file/key_file for hostname unless both exist. 0, or -1 with err. */
int tls_selfsigned_ensure(const char *cert_file, const char *key_file,
			  const char *hostname, char *err, size_t errlen);

struct tls_conn *tls_conn_new(struct tls_ctx *ctx);
void tls_conn_free(struct tls_conn *c);

/*
 * Client connection, before its handshake: host is the next hop's name
 * (the MX host; a trailing dot is dropped). It goes out as SNI (RFC 6066;
 * not for an IP address) and is the name the certificate must carry.
 * verify: the handshake fails unless the chain leads to the CA file and
 * the name matches. Returns 0, or -1 (a server connection, the handshake
 * already started, a name that is too long, out of memory).
 */
int tls_conn_client_setup(struct tls_conn *c, const char *host, bool verify);

/*
 * The peer certificate's verification (chain and host name), after the
 * handshake (or its failure): 1 when it verified, 0 when not. buf gets the
 * reason, e.g. "verified (subject CN=mx.example.net)", "hostname mismatch",
 * "unable to get local issuer certificate", "no peer certificate".
 */
int tls_verify_result(const struct tls_conn *c, char *buf, size_t len);

/* Server side: the name the client asked for with SNI, NULL if none. */
const char *tls_servername(const struct tls_conn *c);

/* Network side. tls_feed: ciphertext received (returns bytes taken, -1 on
 * error); tls_take: ciphertext to send (bytes copied out, 0 when none). */
ssize_t tls_feed(struct tls_conn *c, const void *buf, size_t len);
size_t tls_take(struct tls_conn *c, void *buf, size_t len);
size_t tls_pending_out(const struct tls_conn *c);

/*
 * Application side. Both drive the handshake as needed.
 * tls_read: plaintext bytes read, 0 when none is available yet, -1 on a
 * fatal error (alert, bad record) or when the peer closed.
 * tls_write: plaintext bytes accepted, 0 when the handshake is not done
 * yet, -1 on a fatal error.
 */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t len);
ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len);

/* Advance the handshake without application data (call after tls_feed). */
int tls_handshake(struct tls_conn *c);	/* 1 done, 0 in progress, -1 failed */
bool tls_established(const struct tls_conn *c);

/* For the Received: header, e.g. "version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256". */
void tls_describe(const struct tls_conn *c, char *buf, size_t len);
/* The last error on this connection, for logs. */
const char *tls_error(const struct tls_conn *c);

#endif
