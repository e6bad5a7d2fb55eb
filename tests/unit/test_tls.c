/*
 * test_tls.c - TLS over memory BIOs: the self-signed fallback, handshakes at
 * TLS 1.2 and 1.3 between two in-memory endpoints, data both ways in pieces
 * of every size, and clean failure on garbage and on bad files. The client
 * side (delivery) against a real server context with a certificate from a
 * CA made here: SNI, `may` (no verification, outcome reported), `verify`
 * passing with the right CA and name, failing on a wrong name, an unknown
 * CA, or an address that is not in the certificate. The server's policy
 * against a raw OpenSSL client: weak TLS 1.2 ciphers and other groups
 * refused, the server's cipher order, [tls] lists applied and checked.
 */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/smtp/tls.h"

static char dir[64], cert[128], key[128];

static void make_pair(void)
{
	char err[200];
	strcpy(dir, "/tmp/sluice-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	cr_assert_eq(tls_selfsigned_ensure(cert, key, "mx.sluice.test", err, sizeof(err)), 0, "%s", err);
}

static void cleanup(void)
{
	unlink(cert);
	unlink(key);
	rmdir(dir);
}

/* Move ciphertext between the two ends until neither has anything to send. */
static void pump(struct tls_conn *a, struct tls_conn *b)
{
	char buf[4096];
	for (int round = 0; round < 100; round++) {
		size_t moved = 0, n;
		while ((n = tls_take(a, buf, sizeof(buf))) > 0) {
			cr_assert_eq(tls_feed(b, buf, n), (ssize_t)n);
			moved += n;
		}
		while ((n = tls_take(b, buf, sizeof(buf))) > 0) {
			cr_assert_eq(tls_feed(a, buf, n), (ssize_t)n);
			moved += n;
		}
		tls_handshake(a);
		tls_handshake(b);
		if (!moved && tls_pending_out(a) == 0 && tls_pending_out(b) == 0)
			return;
	}
	cr_assert_fail("pump did not settle");
}

static void handshake_and_talk(int client_max, const char *want_version)
{
	char err[200], desc[160];
	struct tls_ctx *sctx = tls_ctx_server(cert, key, err, sizeof(err));
	struct tls_ctx *cctx = tls_ctx_client(NULL, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	cr_assert_not_null(cctx, "%s", err);
	if (client_max)
		cr_assert_eq(tls_ctx_max_version(cctx, client_max), 0);
	struct tls_conn *s = tls_conn_new(sctx), *c = tls_conn_new(cctx);
	cr_assert(s && c);
	cr_assert_eq(tls_handshake(c), 0, "client must wait for the server");
	pump(c, s);
	cr_assert(tls_established(s), "server: %s", tls_error(s));
	cr_assert(tls_established(c), "client: %s", tls_error(c));
	tls_describe(s, desc, sizeof(desc));
	cr_assert_not_null(strstr(desc, want_version), "%s", desc);

	/* 200 KB each way, written in odd-sized pieces, read back exactly. */
	static unsigned char out[200000], in[200000];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (unsigned char)(i * 31 + 7);
	size_t sent = 0, got = 0, piece = 1;
	while (got < sizeof(out)) {
		if (sent < sizeof(out)) {
			size_t n = sizeof(out) - sent < piece ? sizeof(out) - sent : piece;
			ssize_t w = tls_write(c, out + sent, n);
			cr_assert_geq(w, 0, "%s", tls_error(c));
			sent += (size_t)w;
			piece = piece * 3 % 20011 + 1;
		}
		pump(c, s);
		ssize_t r;
		while ((r = tls_read(s, in + got, sizeof(in) - got)) > 0)
			got += (size_t)r;
		cr_assert_geq(r, 0, "%s", tls_error(s));
	}
	cr_assert_eq(memcmp(in, out, sizeof(out)), 0);
	/* And back. */
	cr_assert_eq(tls_write(s, "250 OK\r\n", 8), 8);
	pump(s, c);
	char line[16] = { 0 };
	cr_assert_eq(tls_read(c, line, sizeof(line)), 8);
	cr_assert_str_eq(line, "250 OK\r\n");
	cr_assert_eq(tls_read(c, line, sizeof(line)), 0, "nothing more yet");

	tls_conn_free(s);
	tls_conn_free(c);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

Test(tls, selfsigned_is_made_once_with_a_private_key, .init = make_pair, .fini = cleanup)
{
	struct stat st;
	char err[200];
	cr_assert_eq(stat(key, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "key mode %o", st.st_mode & 0777);
	time_t before = st.st_mtime;
	cr_assert_eq(tls_selfsigned_ensure(cert, key, "other.name", err, sizeof(err)), 0);
	cr_assert_eq(stat(key, &st), 0);
	cr_assert_eq(st.st_mtime, before, "an existing pair is kept");
}

Test(tls, tls13_handshake_and_data, .init = make_pair, .fini = cleanup)
{
	handshake_and_talk(0, "TLSv1.3");
}

Test(tls, tls12_handshake_and_data, .init = make_pair, .fini = cleanup)
{
	handshake_and_talk(12, "TLSv1.2");
}

Test(tls, garbage_fails_cleanly, .init = make_pair, .fini = cleanup)
{
	char err[200], buf[64];
	struct tls_ctx *sctx = tls_ctx_server(cert, key, err, sizeof(err));
	struct tls_conn *s = tls_conn_new(sctx);
	/* A plaintext SMTP command where a ClientHello belongs. */
	cr_assert_eq(tls_feed(s, "EHLO evil.example\r\n", 19), 19);
	cr_assert_eq(tls_read(s, buf, sizeof(buf)), -1);
	cr_assert_neq(strcmp(tls_error(s), "no error"), 0);
	cr_assert_eq(tls_feed(s, "x", 1), -1, "a failed connection takes no more input");
	tls_conn_free(s);
	tls_ctx_free(sctx);
}

Test(tls, bad_files_are_reported, .init = make_pair, .fini = cleanup)
{
	char err[200];
	cr_assert_null(tls_ctx_server("/nonexistent/cert.pem", key, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "/nonexistent/cert.pem"), "%s", err);
	cr_assert_null(tls_ctx_server(cert, cert, err, sizeof(err)), "a cert is no key");
	cr_assert_eq(tls_selfsigned_ensure("/nonexistent/dir/c.pem", "/nonexistent/dir/k.pem",
					   "h", err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "/nonexistent/dir/"), "%s", err);
}

/* ---- the server's policy, against a raw OpenSSL client ------------------- */

/*
 * A client made with OpenSSL directly (so it can offer what sluiced must
 * refuse), over memory BIOs, against a server tls_conn. Returns 1 when the
 * handshake completed on both ends, 0 when it failed; the negotiated cipher
 * and group go to cipher/group.
 */
static int raw_ticket;	/* the last raw_handshake got a session ticket */

static int raw_handshake(struct tls_conn *s, int maxv, const char *ciphers, const char *suites,
			 const char *groups, char *cipher, size_t clen, char *group, size_t glen)
{
	SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
	cr_assert_not_null(cc);
	SSL_CTX_set_security_level(cc, 0);	/* let the client offer anything */
	SSL_CTX_set_min_proto_version(cc, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(cc, maxv);
	if (ciphers)
		cr_assert_eq(SSL_CTX_set_cipher_list(cc, ciphers), 1, "%s", ciphers);
	if (suites)
		cr_assert_eq(SSL_CTX_set_ciphersuites(cc, suites), 1, "%s", suites);
	if (groups)
		cr_assert_eq(SSL_CTX_set1_groups_list(cc, groups), 1, "%s", groups);
	SSL *c = SSL_new(cc);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	cr_assert(c && in && out);
	SSL_set_bio(c, in, out);
	SSL_set_connect_state(c);
	int done = 0;
	char buf[4096];
	for (int round = 0; round < 50; round++) {
		int r = SSL_do_handshake(c);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c, r);	/* before BIO_write */
		int n;
		while ((n = BIO_read(out, buf, sizeof(buf))) > 0)
			if (tls_feed(s, buf, (size_t)n) < 0)
				break;
		tls_handshake(s);
		size_t m;
		while ((m = tls_take(s, buf, sizeof(buf))) > 0)
			BIO_write(in, buf, (int)m);
		if (r == 1 && tls_established(s)) {
			done = 1;
			break;
		}
		if (r <= 0 && e != SSL_ERROR_WANT_READ)
			break;
	}
	if (done)
		raw_ticket = SSL_SESSION_has_ticket(SSL_get0_session(c));
	snprintf(cipher, clen, "%s", done ? SSL_get_cipher_name(c) : "");
	snprintf(group, glen, "%s", done ? SSL_group_to_name(c, SSL_get_negotiated_group(c)) : "");
	SSL_free(c);
	SSL_CTX_free(cc);
	return done;
}

/* One handshake against a fresh server context with the default policy. */
static int against_default(int maxv, const char *ciphers, const char *suites, const char *groups,
			   char *cipher, char *group)
{
	char err[200];
	struct tls_ctx *sctx = tls_ctx_server(cert, key, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	struct tls_conn *s = tls_conn_new(sctx);
	int ok = raw_handshake(s, maxv, ciphers, suites, groups, cipher, 64, group, 64);
	tls_conn_free(s);
	tls_ctx_free(sctx);
	return ok;
}

Test(tls, policy_refuses_weak_tls12_ciphers, .init = make_pair, .fini = cleanup)
{
	char cipher[64], group[64];
	/* CBC with SHA-1 MACs, and no forward secrecy: OpenSSL's defaults take
	 * the first two; the policy takes none. */
	cr_assert_eq(against_default(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA", NULL, NULL,
				     cipher, group), 0, "CBC accepted: %s", cipher);
	cr_assert_eq(against_default(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-SHA384", NULL, NULL,
				     cipher, group), 0, "CBC accepted: %s", cipher);
	cr_assert_eq(against_default(TLS1_2_VERSION, "AES128-GCM-SHA256", NULL, NULL,
				     cipher, group), 0, "static RSA accepted: %s", cipher);
	/* and an ECDHE AEAD cipher is fine */
	cr_assert_eq(against_default(TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, NULL,
				     cipher, group), 1);
	cr_assert_str_eq(cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

Test(tls, policy_server_picks_its_order, .init = make_pair, .fini = cleanup)
{
	char cipher[64], group[64];
	/* the client prefers AES-128; the server's list puts AES-256 first */
	cr_assert_eq(against_default(TLS1_2_VERSION,
				     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
				     NULL, NULL, cipher, group), 1);
	cr_assert_str_eq(cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
	cr_assert_eq(against_default(TLS1_3_VERSION, NULL,
				     "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
				     NULL, cipher, group), 1);
	cr_assert_str_eq(cipher, "TLS_AES_256_GCM_SHA384");
}

Test(tls, policy_issues_no_session_ticket, .init = make_pair, .fini = cleanup)
{
	char cipher[64], group[64];
	cr_assert_eq(against_default(TLS1_2_VERSION, NULL, NULL, NULL, cipher, group), 1);
	cr_assert_eq(raw_ticket, 0, "a TLS 1.2 session ticket was issued");
}

Test(tls, policy_groups_are_x25519_and_p256, .init = make_pair, .fini = cleanup)
{
	char cipher[64], group[64];
	cr_assert_eq(against_default(TLS1_3_VERSION, NULL, NULL, "P-384:P-521:ffdhe2048",
				     cipher, group), 0, "group accepted: %s", group);
	cr_assert_eq(against_default(TLS1_2_VERSION, NULL, NULL, "P-384", cipher, group), 0,
		     "group accepted: %s", group);
	cr_assert_eq(against_default(TLS1_3_VERSION, NULL, NULL, "P-256", cipher, group), 1);
	cr_assert_str_eq(group, "secp256r1");
	/* TLS 1.2 picks the curve by the server's order (TLS 1.3 takes the
	 * client's key share when it is acceptable, saving a round trip) */
	cr_assert_eq(against_default(TLS1_2_VERSION, NULL, NULL, "P-256:X25519", cipher, group), 1);
	cr_assert_str_eq(group, "x25519", "the server's group order");
}

Test(tls, policy_is_configurable_and_checked, .init = make_pair, .fini = cleanup)
{
	char err[200], cipher[64], group[64];
	struct tls_ctx *sctx = tls_ctx_server(cert, key, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	struct tls_policy bad[] = {
		{ .ciphers = "ECDHE-ECDSA-AES128-SHA" },
		{ .ciphers = "HIGH" },
		{ .ciphers = "no-such-cipher" },
		{ .ciphersuites = "TLS_NO_SUCH_SUITE" },
		{ .groups = "X25519:no-such-group" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(tls_ctx_policy(sctx, &bad[i], err, sizeof(err)), -1, "bad[%zu]", i);
		cr_assert_neq(err[0], '\0');
	}
	cr_assert_not_null(strstr(err, "groups"), "%s", err);
	/* a narrower good policy applies */
	struct tls_policy p = { .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256",
				.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256", .groups = "P-256" };
	cr_assert_eq(tls_ctx_policy(sctx, &p, err, sizeof(err)), 0, "%s", err);
	struct tls_conn *s = tls_conn_new(sctx);
	cr_assert_eq(raw_handshake(s, TLS1_3_VERSION, NULL, NULL, NULL, cipher, 64, group, 64), 1);
	cr_assert_str_eq(cipher, "TLS_CHACHA20_POLY1305_SHA256");
	cr_assert_str_eq(group, "secp256r1");
	tls_conn_free(s);
	tls_ctx_free(sctx);
}

/* ---- the client side: a small PKI made for the test ---------------------- */

static char pki[64], ca_pem[128], other_ca_pem[128], leaf_pem[128], leaf_key[128];

static int add_ext_to(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for key, named cn, signed by ikey (issuer NULL: itself). */
static X509 *make_cert(EVP_PKEY *k, const char *cn, X509 *issuer, EVP_PKEY *ikey,
		       bool ca, const char *san, long serial)
{
	X509 *x = X509_new();
	cr_assert_not_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *is = issuer ? issuer : x;
	cr_assert(add_ext_to(x, is, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE"));
	cr_assert(add_ext_to(x, is, NID_key_usage,
			     ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"));
	cr_assert(add_ext_to(x, is, NID_subject_key_identifier, "hash"));
	if (issuer)
		cr_assert(add_ext_to(x, is, NID_authority_key_identifier, "keyid"));
	if (san)
		cr_assert(add_ext_to(x, is, NID_subject_alt_name, san));
	if (!ca)
		cr_assert(add_ext_to(x, is, NID_ext_key_usage, "serverAuth"));
	cr_assert_neq(X509_sign(x, ikey ? ikey : k, EVP_sha256()), 0);
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(PEM_write_X509(f, x), 1);
	fclose(f);
}

static void make_pki(void)
{
	strcpy(pki, "/tmp/sluice-pki-XXXXXX");
	cr_assert_not_null(mkdtemp(pki));
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", pki);
	snprintf(other_ca_pem, sizeof(other_ca_pem), "%s/other-ca.pem", pki);
	snprintf(leaf_pem, sizeof(leaf_pem), "%s/leaf.pem", pki);
	snprintf(leaf_key, sizeof(leaf_key), "%s/leaf.key", pki);
	EVP_PKEY *cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ok = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *lk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	cr_assert(cak && ok && lk);
	X509 *ca = make_cert(cak, "Sluice Test CA", NULL, NULL, true, NULL, 1);
	X509 *other = make_cert(ok, "Some Other CA", NULL, NULL, true, NULL, 2);
	X509 *leaf = make_cert(lk, "mx.example.test", ca, cak, false,
			       "DNS:mx.example.test,IP:192.0.2.25", 3);
	write_cert(ca_pem, ca);
	write_cert(other_ca_pem, other);
	write_cert(leaf_pem, leaf);
	FILE *f = fopen(leaf_key, "w");
	cr_assert_not_null(f);
	cr_assert_eq(PEM_write_PrivateKey(f, lk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(ca);
	X509_free(other);
	X509_free(leaf);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ok);
	EVP_PKEY_free(lk);
}

static void drop_pki(void)
{
	unlink(ca_pem);
	unlink(other_ca_pem);
	unlink(leaf_pem);
	unlink(leaf_key);
	rmdir(pki);
}

/* Like pump(), but a side may fail: its input is then thrown away. */
static void pump_any(struct tls_conn *a, struct tls_conn *b)
{
	char buf[4096];
	for (int round = 0; round < 100; round++) {
		size_t moved = 0, n;
		while ((n = tls_take(a, buf, sizeof(buf))) > 0) {
			(void)tls_feed(b, buf, n);
			moved += n;
		}
		while ((n = tls_take(b, buf, sizeof(buf))) > 0) {
			(void)tls_feed(a, buf, n);
			moved += n;
		}
		tls_handshake(a);
		tls_handshake(b);
		if (!moved)
			return;
	}
	cr_assert_fail("pump did not settle");
}

struct hs {
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *s, *c;
	int setup;		/* tls_conn_client_setup's return */
	int verified;		/* tls_verify_result's */
	char why[200];
};

/* One client handshake against the leaf certificate's server. */
static struct hs client_handshake(const char *ca, const char *host, bool verify)
{
	struct hs h = { 0 };
	char err[200];
	h.sctx = tls_ctx_server(leaf_pem, leaf_key, err, sizeof(err));
	cr_assert_not_null(h.sctx, "%s", err);
	h.cctx = tls_ctx_client(ca, err, sizeof(err));
	cr_assert_not_null(h.cctx, "%s", err);
	h.s = tls_conn_new(h.sctx);
	h.c = tls_conn_new(h.cctx);
	cr_assert(h.s && h.c);
	h.setup = tls_conn_client_setup(h.c, host, verify);
	cr_assert_eq(tls_handshake(h.c), 0, "the client waits for the server");
	pump_any(h.c, h.s);
	h.verified = tls_verify_result(h.c, h.why, sizeof(h.why));
	return h;
}

static void hs_free(struct hs *h)
{
	tls_conn_free(h->s);
	tls_conn_free(h->c);
	tls_ctx_free(h->sctx);
	tls_ctx_free(h->cctx);
}

/* After a good handshake the two ends talk. */
static void talks(struct hs *h)
{
	char buf[16] = { 0 };
	cr_assert_eq(tls_write(h->c, "EHLO x\r\n", 8), 8);
	pump(h->c, h->s);
	cr_assert_eq(tls_read(h->s, buf, sizeof(buf)), 8);
	cr_assert_str_eq(buf, "EHLO x\r\n");
}

TestSuite(tls_client, .init = make_pki, .fini = drop_pki);

Test(tls_client, may_encrypts_without_verifying_and_sends_sni)
{
	struct hs h = client_handshake(NULL, "mx.example.test", false);
	cr_assert_eq(h.setup, 0);
	cr_assert(tls_established(h.c), "client: %s", tls_error(h.c));
	cr_assert(tls_established(h.s), "server: %s", tls_error(h.s));
	cr_assert_str_eq(tls_servername(h.s), "mx.example.test");
	cr_assert_eq(h.verified, 0, "nothing to verify against");
	cr_assert_str_eq(h.why, "unable to get local issuer certificate");
	talks(&h);
	hs_free(&h);
}

Test(tls_client, may_reports_a_name_mismatch_for_the_logs)
{
	struct hs h = client_handshake(ca_pem, "other.example.test", false);
	cr_assert(tls_established(h.c), "%s", tls_error(h.c));
	cr_assert_eq(h.verified, 0);
	cr_assert_str_eq(h.why, "hostname mismatch");
	hs_free(&h);
}

Test(tls_client, verify_passes_with_the_right_ca_and_name)
{
	struct hs h = client_handshake(ca_pem, "mx.example.test.", true);	/* DNS's dot */
	cr_assert_eq(h.setup, 0);
	cr_assert(tls_established(h.c), "client: %s", tls_error(h.c));
	cr_assert(tls_established(h.s), "server: %s", tls_error(h.s));
	cr_assert_eq(h.verified, 1, "%s", h.why);
	cr_assert_str_eq(h.why, "verified (subject CN=mx.example.test)");
	cr_assert_str_eq(tls_servername(h.s), "mx.example.test");
	talks(&h);
	hs_free(&h);
}

Test(tls_client, verify_fails_on_a_wrong_host_name)
{
	struct hs h = client_handshake(ca_pem, "mx.example.org", true);
	cr_assert_not(tls_established(h.c));
	cr_assert_eq(tls_handshake(h.c), -1);
	cr_assert_not(tls_established(h.s), "the server saw the alert");
	cr_assert_eq(h.verified, 0);
	cr_assert_str_eq(h.why, "hostname mismatch");
	cr_assert_not_null(strstr(tls_error(h.c), "certificate verify failed"), "%s", tls_error(h.c));
	hs_free(&h);
}

Test(tls_client, verify_fails_on_an_unknown_ca)
{
	struct hs h = client_handshake(other_ca_pem, "mx.example.test", true);
	cr_assert_not(tls_established(h.c));
	cr_assert_eq(h.verified, 0);
	cr_assert_str_eq(h.why, "unable to get local issuer certificate");
	hs_free(&h);
}

Test(tls_client, verify_fails_without_any_ca)
{
	struct hs h = client_handshake(NULL, "mx.example.test", true);
	cr_assert_not(tls_established(h.c));
	cr_assert_eq(h.verified, 0);
	hs_free(&h);
}

Test(tls_client, address_literal_no_sni_and_ip_checked)
{
	struct hs h = client_handshake(ca_pem, "[192.0.2.25]", true);
	cr_assert_eq(h.setup, 0);
	cr_assert(tls_established(h.c), "%s", tls_error(h.c));
	cr_assert_null(tls_servername(h.s), "RFC 6066: no SNI for an address");
	cr_assert_eq(h.verified, 1, "%s", h.why);
	hs_free(&h);
	h = client_handshake(ca_pem, "192.0.2.26", true);
	cr_assert_not(tls_established(h.c));
	cr_assert_str_eq(h.why, "IP address mismatch");
	hs_free(&h);
}

Test(tls_client, setup_only_on_a_fresh_client_connection)
{
	struct hs h = client_handshake(ca_pem, "mx.example.test", true);
	cr_assert(tls_established(h.c));
	cr_assert_eq(tls_conn_client_setup(h.c, "mx.example.test", true), -1, "too late");
	cr_assert_eq(tls_conn_client_setup(h.s, "mx.example.test", true), -1, "a server");
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct tls_conn *c = tls_conn_new(h.cctx);
	cr_assert_eq(tls_conn_client_setup(c, longname, true), -1);
	tls_conn_free(c);
	hs_free(&h);
}
