/*
 * test_tls.c - TLS over memory BIOs: the self-signed fallback, handshakes at
 * TLS 1.2 and 1.3 between two in-memory endpoints, data both ways in pieces
 * of every size, and clean failure on garbage and on bad files.
 */
#include <criterion/criterion.h>

#include <openssl/ssl.h>
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
