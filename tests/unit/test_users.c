/*
 * test_users.c - the submission users' file and its scrypt checks: a hash
 * built from RFC 7914's own test vector verifies (so the check is real
 * scrypt with the parameters written in the line); made hashes verify with
 * their password only, differ by salt, and carry their cost; unknown users
 * and over-long passwords fail; every malformed line is refused with its
 * line number; config_check names a bad users file.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "control/config.h"
#include "control/config_check.h"
#include "control/users.h"
#include "dataplane/cpus.h"

/* RFC 7914 section 12, the third vector. */
static const char rfc_pass[] = "pleaseletmein";
static const char rfc_salt[] = "SodiumChloride";
static const unsigned char rfc_key[64] = {
	0x70, 0x23, 0xbd, 0xcb, 0x3a, 0xfd, 0x73, 0x48, 0x46, 0x1c, 0x06, 0xcd, 0x81, 0xfd, 0x38, 0xeb,
	0xfd, 0xa8, 0xfb, 0xba, 0x90, 0x4f, 0x8e, 0x3e, 0xa9, 0xb5, 0x43, 0xf6, 0x54, 0x5d, 0xa1, 0xf2,
	0xd5, 0x43, 0x29, 0x55, 0x61, 0x3f, 0x0f, 0xcf, 0x62, 0xd4, 0x97, 0x05, 0x24, 0x2a, 0x9a, 0xf9,
	0xe6, 0x1e, 0x85, 0xdc, 0x0d, 0x65, 0x1e, 0x40, 0xdf, 0xcf, 0x01, 0x7b, 0x45, 0x57, 0x58, 0x87,
};

static void rfc_line(char *out, size_t cap, const char *name)
{
	char s64[64], k64[100];

	EVP_EncodeBlock((unsigned char *)s64, (const unsigned char *)rfc_salt, strlen(rfc_salt));
	EVP_EncodeBlock((unsigned char *)k64, rfc_key, sizeof(rfc_key));
	snprintf(out, cap, "%s:$scrypt$N=16384,r=8,p=1$%s$%s\n", name, s64, k64);
}

Test(users, rfc7914_vector_verifies)
{
	char text[400], err[300];
	struct users u;

	rfc_line(text, sizeof(text), "alice@example.com");
	cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.n, 1);
	cr_assert_eq(u.e[0].h.salt_len, 14);
	cr_assert_eq(u.e[0].h.key_len, 64);
	cr_assert_eq(users_verify(&u, "alice@example.com", rfc_pass, strlen(rfc_pass)), 1);
	cr_assert_eq(users_verify(&u, "alice@example.com", "pleaseletmeIn", 13), 0);
	cr_assert_eq(users_verify(&u, "alice@example.com", rfc_pass, strlen(rfc_pass) - 1), 0);
	cr_assert_eq(users_verify(&u, "bob", rfc_pass, strlen(rfc_pass)), 0);
	users_free(&u);
}

Test(users, made_hashes_verify_with_their_password_only)
{
	char h1[USERS_HASH_TEXT_MAX], h2[USERS_HASH_TEXT_MAX], text[700], err[300];
	struct users u;
	struct users_hash h;

	cr_assert_eq(users_hash_make("s3cret", 6, 1024, 8, 1, h1, sizeof(h1), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(users_hash_make("s3cret", 6, 1024, 8, 1, h2, sizeof(h2), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert(strncmp(h1, "$scrypt$N=1024,r=8,p=1$", 23) == 0, "%s", h1);
	cr_assert_str_neq(h1, h2, "two hashes of one password share a salt");
	cr_assert_eq(users_hash_parse(h1, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(h.N, 1024);
	cr_assert_eq(h.salt_len, 16);
	cr_assert_eq(h.key_len, 32);

	snprintf(text, sizeof(text), "# users\n\nbob:%s\r\n  # indented comment\ncarol:%s", h1, h2);
	cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(u.n, 2);
	cr_assert_not_null(users_find(&u, "bob"));
	cr_assert_not_null(users_find(&u, "carol"));
	cr_assert_null(users_find(&u, "dave"));
	cr_assert_eq(users_verify(&u, "bob", "s3cret", 6), 1);
	cr_assert_eq(users_verify(&u, "carol", "s3cret", 6), 1);
	cr_assert_eq(users_verify(&u, "bob", "s3cre", 5), 0);
	cr_assert_eq(users_verify(&u, "bob", "", 0), 0);
	cr_assert_eq(users_verify(&u, "dave", "s3cret", 6), 0);
	users_free(&u);

	/* the defaults: N=16384, r=8, p=1 */
	cr_assert_eq(users_hash_make("x", 1, 0, 0, 0, h1, sizeof(h1), err, sizeof(err)), 0);
	cr_assert(strncmp(h1, "$scrypt$N=16384,r=8,p=1$", 24) == 0, "%s", h1);
}

Test(users, overlong_passwords_are_refused)
{
	char pass[USERS_PASS_MAX + 2], h[USERS_HASH_TEXT_MAX], text[400], err[300];
	struct users u;

	memset(pass, 'a', sizeof(pass));
	cr_assert_eq(users_hash_make(pass, USERS_PASS_MAX + 1, 1024, 1, 1, h, sizeof(h), err,
				     sizeof(err)), -1);
	cr_assert_eq(users_hash_make(pass, USERS_PASS_MAX, 1024, 1, 1, h, sizeof(h), err,
				     sizeof(err)), 0, "%s", err);
	snprintf(text, sizeof(text), "u:%s\n", h);
	cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(users_verify(&u, "u", pass, USERS_PASS_MAX), 1);
	cr_assert_eq(users_verify(&u, "u", pass, USERS_PASS_MAX + 1), 0);
	users_free(&u);
}

Test(users, bad_lines_are_refused_with_their_number)
{
	char good[400], text[2000], err[300];
	struct users u;
	const char *g;
	static const struct {
		const char *fmt;	/* %s: a good hash */
		const char *want;
	} cases[] = {
		{ "a:%s\nno colon here\n", "users:2: not \"name:hash\"" },
		{ "a:%s\n\n:%s\n", "users:3: a name is" },
		{ "# x\na b:%s\n", "users:2: a name is" },
		{ "a:%s\nb:$pbkdf2$x\n", "users:2: not a \"$scrypt$" },
		{ "a:$scrypt$N=1000,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: scrypt N=1000 is not a power of two" },
		{ "a:$scrypt$N=2097152,r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: scrypt N=2097152 is not a power of two in" },
		{ "a:$scrypt$N=1048576,r=32,p=16$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: scrypt N=1048576,r=32,p=16 needs more than 256 MiB" },
		{ "a:$scrypt$N=1024,r=0,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: scrypt r=0, p=1 out of range" },
		{ "a:$scrypt$N=1024;r=8,p=1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: scrypt parameters are not" },
		{ "a:$scrypt$N=1024,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: the salt is not base64 of 8..64 octets" },
		{ "a:$scrypt$N=1024,r=8,p=1$AAAAAAAAAA*=$AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: the salt is not base64" },
		{ "a:$scrypt$N=1024,r=8,p=1$AAAAAAAAAAA=$AAAA\n",
		  "users:1: the key is not base64 of 16..64 octets" },
		{ "a:$scrypt$N=1024,r=8,p=1$AAAAAAAAAAA=AAAAAAAAAAAAAAAAAAAAAA==\n",
		  "users:1: no '$' between the salt and the key" },
		{ "a:%s\nb:%s\n# c\na:%s\n", "users:4: user 'a' is listed twice (also on line 1)" },
	};

	rfc_line(good, sizeof(good), "x");
	g = strchr(good, ':') + 1;
	good[strlen(good) - 1] = '\0';
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), cases[i].fmt, g, g, g);
		cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), -1, "case %u accepted",
			     i);
		cr_assert_eq(u.n, 0);
		cr_assert_null(u.e);
		cr_assert(strstr(err, cases[i].want), "case %u: '%s' lacks '%s'", i, err,
			  cases[i].want);
	}

	/* a line over 512 octets */
	memset(text, 'a', 600);
	text[600] = '\0';
	cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), -1);
	cr_assert(strstr(err, "users:1: line longer than 512"), "%s", err);
	/* a name over 64 */
	snprintf(text, sizeof(text), "%.65s:%s\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", g);
	cr_assert_eq(users_parse(&u, text, "users", err, sizeof(err)), -1);
	cr_assert(strstr(err, "users:1: a name is 1..64"), "%s", err);
}

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/sluice-users-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

Test(users, load_reads_a_file)
{
	char text[400], err[300], *path;
	struct users u;

	rfc_line(text, sizeof(text), "alice");
	path = write_tmp(text);
	cr_assert_eq(users_load(&u, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(users_verify(&u, "alice", rfc_pass, strlen(rfc_pass)), 1);
	users_free(&u);
	unlink(path);
	cr_assert_eq(users_load(&u, "/nonexistent/users", err, sizeof(err)), -1);
	cr_assert(strstr(err, "/nonexistent/users: No such file"), "%s", err);
}

Test(users, config_check_names_a_bad_users_file)
{
	struct config_machine m;
	char conf[300], text[400], want[200], *upath;
	static char users_path[64];
	struct sluice_config c;
	struct config_errors e = { 0 };

	char err[128];

	cr_assert_eq(cpus_parse_list("0-7", &m.online, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cpus_parse_list("0-1", &m.allowed, err, sizeof(err)), 0, "%s", err);

	rfc_line(text, sizeof(text), "alice");
	strcat(text, "alice-no-hash\n");
	upath = write_tmp(text);
	snprintf(users_path, sizeof(users_path), "%s", upath);
	snprintf(conf, sizeof(conf), "[auth]\nusers = %s\n", users_path);
	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(config_parse_string(&c, conf, "conf", &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	snprintf(want, sizeof(want), "conf:2: auth.users: %s:2: not \"name:hash\"", users_path);
	cr_assert(strstr(e.msg[0], want), "'%s' lacks '%s'", e.msg[0], want);

	/* fixed: clean */
	rfc_line(text, sizeof(text), "alice");
	upath = write_tmp(text);
	snprintf(users_path, sizeof(users_path), "%s", upath);
	snprintf(conf, sizeof(conf), "[auth]\nusers = %s\n", users_path);
	e.count = 0;
	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(config_parse_string(&c, conf, "conf", &e), 0, "%s", e.msg[0]);
	cr_assert_eq(config_check(&c, &m, &e), 0, "%s", e.msg[0]);

	e.count = 0;
	cr_assert_eq(config_load_default(&c, &e), 0);
	cr_assert_eq(config_parse_string(&c, "[auth]\nusers = users.txt\n", "conf", &e), 0);
	cr_assert_eq(config_check(&c, &m, &e), -1);
	cr_assert(strstr(e.msg[0], "conf:2: auth.users: 'users.txt' is not an absolute path"),
		  "%s", e.msg[0]);
}

Test(users, file_set_adds_and_removes_keeping_the_rest)
{
	char line[400], text[1200], err[300], *path, h[USERS_HASH_TEXT_MAX], got[1200];
	unsigned n = 99;
	struct users u;
	struct stat st;
	FILE *f;
	size_t len;

	rfc_line(line, sizeof(line), "alice");
	snprintf(text, sizeof(text), "# our users\n%s\n# end\n", line);
	path = write_tmp(text);
	cr_assert_eq(chmod(path, 0640), 0);
	cr_assert_eq(users_hash_make("pw", 2, 1024, 8, 1, h, sizeof(h), err, sizeof(err)), 0);

	cr_assert_eq(users_file_set(path, "bob", h, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_eq(users_load(&u, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(users_verify(&u, "bob", "pw", 2), 1);
	cr_assert_eq(users_verify(&u, "alice", rfc_pass, strlen(rfc_pass)), 1);
	users_free(&u);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);

	cr_assert_eq(users_file_set(path, "bob", h, &n, err, sizeof(err)), -1);
	cr_assert(strstr(err, "user 'bob' exists already"), "%s", err);
	cr_assert_eq(users_file_set(path, "carol", NULL, &n, err, sizeof(err)), -1);
	cr_assert(strstr(err, "no user 'carol'"), "%s", err);
	cr_assert_eq(users_file_set(path, "bad name", h, &n, err, sizeof(err)), -1);
	cr_assert_eq(users_file_set(path, "carol", "$scrypt$N=3", &n, err, sizeof(err)), -1);
	cr_assert(strstr(err, ":6: scrypt parameters"), "%s", err);	/* line 3 is blank */

	cr_assert_eq(users_file_set(path, "alice", NULL, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 1);
	f = fopen(path, "r");
	len = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	got[len] = '\0';
	snprintf(text, sizeof(text), "# our users\n\n# end\nbob:%s\n", h);
	cr_assert_str_eq(got, text, "comments kept, alice gone, bob last");
	unlink(path);
}
