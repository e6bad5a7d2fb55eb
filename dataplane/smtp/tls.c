/*
 * tls.c - OpenSSL over memory BIOs, and the self-signed fallback. See tls.h.
 */
#include "dataplane/smtp/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/atomic_file.h"

#define TLS_SELFSIGNED_DAYS 3650

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	bool server;
};

struct tls_conn {
	SSL *ssl;
	bool server;
	BIO *rbio;	/* ciphertext from the network, read by OpenSSL */
	BIO *wbio;	/* ciphertext written by OpenSSL, for the network */
	bool failed;
	char err[160];
};

/* The first queued OpenSSL error as text (and clear the queue). */
static void take_ssl_error(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char txt[120];

	if (e)
		ERR_error_string_n(e, txt, sizeof(txt));
	else
		snprintf(txt, sizeof(txt), "%s", errno ? strerror(errno) : "unknown error");
	snprintf(buf, len, "%s: %s", what, txt);
	ERR_clear_error();
}

static SSL_CTX *ctx_common(const SSL_METHOD *m, char *err, size_t errlen)
{
	SSL_CTX *c = SSL_CTX_new(m);

	if (!c) {
		take_ssl_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
	/* Memory BIOs deliver whatever arrived: partial writes are normal. */
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
			    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return c;
}

struct tls_ctx *tls_ctx_server(const char *cert_file, const char *key_file,
			       char *err, size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->server = true;
	t->ssl_ctx = ctx_common(TLS_server_method(), err, errlen);
	if (!t->ssl_ctx)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cert_file) != 1) {
		take_ssl_error(err, errlen, cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		take_ssl_error(err, errlen, key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ssl_ctx) != 1) {
		take_ssl_error(err, errlen, "key does not match certificate");
		goto fail;
	}
	/* One context serves every lcore: sessions are not cached across them. */
	SSL_CTX_set_session_cache_mode(t->ssl_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(t->ssl_ctx, 0);
	/* Nor TLS 1.2 tickets: their key lives as long as the context, so
	 * whoever got it could read every recorded session that used one
	 * (forward secrecy lost); SMTP clients seldom resume anyway. */
	SSL_CTX_set_options(t->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	if (tls_ctx_policy(t, NULL, err, errlen) < 0)
		goto fail;
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

struct tls_ctx *tls_ctx_client(const char *ca_file, char *err, size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->ssl_ctx = ctx_common(TLS_client_method(), err, errlen);
	if (!t->ssl_ctx)
		goto fail;
	/* a file, not a directory: read whole now, never during a handshake */
	if (ca_file && *ca_file &&
	    SSL_CTX_load_verify_locations(t->ssl_ctx, ca_file, NULL) != 1) {
		take_ssl_error(err, errlen, ca_file);
		goto fail;
	}
	/* Opportunistic TLS between MTAs (RFC 7435) unless a connection asks
	 * to verify (tls_conn_client_setup). */
	SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_NONE, NULL);
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

int tls_ctx_max_version(struct tls_ctx *ctx, int version)
{
	int v = version == 12 ? TLS1_2_VERSION : version == 13 ? TLS1_3_VERSION : 0;
	return v && SSL_CTX_set_max_proto_version(ctx->ssl_ctx, v) == 1 ? 0 : -1;
}

/* ---- cipher policy ---- */

/* Every TLS 1.2 cipher the list selects must have forward secrecy (ECDHE)
 * and an AEAD: a list that lets in anything else is refused. */
static int check_tls12_ciphers(SSL_CTX *c, char *err, size_t errlen)
{
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(c);
	int n12 = 0;

	for (int i = 0; sk && i < sk_SSL_CIPHER_num(sk); i++) {
		const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
		if (SSL_CIPHER_get_kx_nid(ci) == NID_kx_any)
			continue;	/* a TLS 1.3 suite: set by ciphersuites */
		if (SSL_CIPHER_get_kx_nid(ci) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(ci)) {
			snprintf(err, errlen, "ciphers: %s is not ECDHE with an AEAD",
				 SSL_CIPHER_get_name(ci));
			return -1;
		}
		n12++;
	}
	if (n12 == 0) {
		snprintf(err, errlen, "ciphers: the list selects no TLS 1.2 cipher");
		return -1;
	}
	return 0;
}

int tls_ctx_policy(struct tls_ctx *ctx, const struct tls_policy *p, char *err, size_t errlen)
{
	const char *ciphers = p && p->ciphers && *p->ciphers ? p->ciphers : TLS_POLICY_CIPHERS;
	const char *suites = p && p->ciphersuites && *p->ciphersuites ? p->ciphersuites
								   : TLS_POLICY_CIPHERSUITES;
	const char *groups = p && p->groups && *p->groups ? p->groups : TLS_POLICY_GROUPS;

	if (SSL_CTX_set_cipher_list(ctx->ssl_ctx, ciphers) != 1) {
		take_ssl_error(err, errlen, "ciphers");
		return -1;
	}
	if (SSL_CTX_set_ciphersuites(ctx->ssl_ctx, suites) != 1) {
		take_ssl_error(err, errlen, "ciphersuites");
		return -1;
	}
	if (SSL_CTX_set1_groups_list(ctx->ssl_ctx, groups) != 1) {
		take_ssl_error(err, errlen, "groups");
		return -1;
	}
	ERR_clear_error();
	return check_tls12_ciphers(ctx->ssl_ctx, err, errlen);
}

/* ---- self-signed certificate ---- */

/* Renders obj as PEM in memory (a secure-heap BIO: its buffer is cleared
 * when freed, since it may hold the private key) and replaces path by it
 * with atomic_file_write. */
static int write_pem(const char *path, mode_t mode, int (*emit)(BIO *, void *), void *obj,
		     char *err, size_t errlen)
{
	const struct atomic_file_attr attr = { .mode = mode };
	BIO *b = BIO_new(BIO_s_secmem());
	char *data;
	long len;
	int r;

	if (!b) {
		take_ssl_error(err, errlen, path);
		return -1;
	}
	if (!emit(b, obj) || (len = BIO_get_mem_data(b, &data)) <= 0) {
		take_ssl_error(err, errlen, path);
		BIO_free(b);
		return -1;
	}
	r = atomic_file_write(path, data, (size_t)len, &attr, err, errlen);
	BIO_free(b);
	return r;
}

static int emit_key(BIO *b, void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int emit_cert(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

int tls_selfsigned_ensure(const char *cert_file, const char *key_file,
			  const char *hostname, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	char san[300];
	int r = -1;

	if (access(cert_file, R_OK) == 0 && access(key_file, R_OK) == 0)
		return 0;
	if (strlen(hostname) > 255) {
		snprintf(err, errlen, "hostname too long for a certificate");
		return -1;
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	x = X509_new();
	if (!key || !x) {
		take_ssl_error(err, errlen, "key generation");
		goto out;
	}
	X509_set_version(x, 2);
	{
		unsigned char serial[16];
		BIGNUM *bn;
		if (RAND_bytes(serial, sizeof(serial)) != 1 ||
		    !(bn = BN_bin2bn(serial, sizeof(serial), NULL))) {
			take_ssl_error(err, errlen, "serial");
			goto out;
		}
		BN_set_negative(bn, 0);
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)60 * 60 * 24 * TLS_SELFSIGNED_DAYS);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	snprintf(san, sizeof(san), "DNS:%s", hostname);
	if (!add_ext(x, NID_subject_alt_name, san) ||
	    !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    X509_sign(x, key, EVP_sha256()) == 0) {
		take_ssl_error(err, errlen, "certificate");
		goto out;
	}
	if (write_pem(key_file, 0600, emit_key, key, err, errlen) < 0 ||
	    write_pem(cert_file, 0644, emit_cert, x, err, errlen) < 0)
		goto out;
	r = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

/* ---- connections ---- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
	struct tls_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ssl = SSL_new(ctx->ssl_ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		free(c);
		return NULL;
	}
	/* An empty read BIO means "no data yet", not end of file. */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);	/* SSL owns both now */
	c->server = ctx->server;
	if (ctx->server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	return c;
}

/* An address literal: "1.2.3.4", "[1.2.3.4]", "[IPv6:...]" or a bare IPv6. */
static bool ip_literal(const char *h, char *ip, size_t cap)
{
	unsigned char tmp[16];
	size_t n = strlen(h);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
		if (n >= 5 && strncasecmp(h, "IPv6:", 5) == 0) {
			h += 5;
			n -= 5;
		}
	}
	if (n == 0 || n >= cap)
		return false;
	memcpy(ip, h, n);
	ip[n] = '\0';
	return inet_pton(AF_INET, ip, tmp) == 1 || inet_pton(AF_INET6, ip, tmp) == 1;
}

int tls_conn_client_setup(struct tls_conn *c, const char *host, bool verify)
{
	char name[256], ip[64];
	size_t n = host ? strlen(host) : 0;

	if (c->server || !SSL_in_before(c->ssl) || n >= sizeof(name))
		return -1;
	memcpy(name, host ? host : "", n + 1);
	if (n > 0 && name[n - 1] == '.')
		name[--n] = '\0';	/* "mx.example.net." from DNS */
	if (n > 0) {
		if (ip_literal(name, ip, sizeof(ip))) {
			/* RFC 6066 3: no SNI for an address; check the IP SAN */
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ip) != 1)
				return -1;
		} else {
			if (SSL_set_tlsext_host_name(c->ssl, name) != 1)
				return -1;
			SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(c->ssl, name) != 1)
				return -1;
		}
	}
	SSL_set_verify(c->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return 0;
}

int tls_verify_result(const struct tls_conn *c, char *buf, size_t len)
{
	long v = SSL_get_verify_result(c->ssl);
	X509 *peer = SSL_get0_peer_certificate(c->ssl);

	if (v != X509_V_OK) {
		snprintf(buf, len, "%s", X509_verify_cert_error_string(v));
		return 0;
	}
	if (peer == NULL) {
		snprintf(buf, len, "no peer certificate");
		return 0;
	}
	char subj[200];
	X509_NAME_oneline(X509_get_subject_name(peer), subj, sizeof(subj));
	snprintf(buf, len, "verified (subject %s)", subj[0] == '/' ? subj + 1 : subj);
	return 1;
}

const char *tls_servername(const struct tls_conn *c)
{
	return c->server ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	free(c);
}

ssize_t tls_feed(struct tls_conn *c, const void *buf, size_t len)
{
	int n;

	if (c->failed)
		return -1;
	if (len == 0)
		return 0;
	n = BIO_write(c->rbio, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n <= 0) {
		c->failed = true;
		take_ssl_error(c->err, sizeof(c->err), "feed");
		return -1;
	}
	return n;
}

size_t tls_pending_out(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->wbio);
}

size_t tls_take(struct tls_conn *c, void *buf, size_t len)
{
	int n;

	if (len == 0 || BIO_ctrl_pending(c->wbio) == 0)
		return 0;
	n = BIO_read(c->wbio, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? (size_t)n : 0;
}

/* Classify an SSL_* result: 0 would block, -1 fatal. */
static int classify(struct tls_conn *c, int ret, const char *what)
{
	int e = SSL_get_error(c->ssl, ret);

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	c->failed = true;
	if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(c->err, sizeof(c->err), "%s: peer closed the TLS session", what);
	else
		take_ssl_error(c->err, sizeof(c->err), what);
	return -1;
}

int tls_handshake(struct tls_conn *c)
{
	int r;

	if (c->failed)
		return -1;
	if (SSL_is_init_finished(c->ssl))
		return 1;
	r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return 1;
	return classify(c, r, "handshake");
}

bool tls_established(const struct tls_conn *c)
{
	return !c->failed && SSL_is_init_finished(c->ssl);
}

ssize_t tls_read(struct tls_conn *c, void *buf, size_t len)
{
	size_t got = 0;
	int r;

	if (c->failed)
		return -1;
	if (len == 0)
		return 0;
	r = SSL_read_ex(c->ssl, buf, len, &got);
	if (r == 1)
		return (ssize_t)got;
	return classify(c, r, "read");
}

ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	size_t put = 0;
	int r;

	if (c->failed)
		return -1;
	if (len == 0)
		return 0;
	if (!SSL_is_init_finished(c->ssl) && tls_handshake(c) != 1)
		return c->failed ? -1 : 0;
	r = SSL_write_ex(c->ssl, buf, len, &put);
	if (r == 1)
		return (ssize_t)put;
	return classify(c, r, "write");
}

void tls_describe(const struct tls_conn *c, char *buf, size_t len)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
	int bits = 0;

	if (!ci) {
		snprintf(buf, len, "no TLS");
		return;
	}
	SSL_CIPHER_get_bits(ci, &bits);
	snprintf(buf, len, "version=%s cipher=%s bits=%d", SSL_get_version(c->ssl),
		 SSL_CIPHER_get_name(ci), bits);
}

const char *tls_error(const struct tls_conn *c)
{
	return c->err[0] ? c->err : "no error";
}
