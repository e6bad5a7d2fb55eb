/*
 * users.c - the credentials file and scrypt password checks. See users.h.
 */
#include "control/users.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/atomic_file.h"

#define DEF_N 16384
#define DEF_R 8
#define DEF_P 1
#define DEF_SALT 16
#define DEF_KEY 32

/* Strict standard base64 (with padding) of at most cap decoded octets.
 * Returns the decoded length, or -1. */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	uint8_t tmp[((USERS_SALT_MAX > USERS_KEY_MAX ? USERS_SALT_MAX : USERS_KEY_MAX) + 2) / 3 * 3];
	unsigned char in[(sizeof(tmp) / 3) * 4 + 1];
	size_t pad = 0, i;
	int n;

	if (len == 0 || len % 4 || len >= sizeof(in))
		return -1;
	for (i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/';
		if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (!ok || pad)
			return -1;
	}
	memcpy(in, s, len);
	in[len] = '\0';
	n = EVP_DecodeBlock(tmp, in, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -1;
	n -= (int)pad;
	if ((size_t)n > cap)
		return -1;
	memcpy(out, tmp, (size_t)n);
	return n;
}

static bool cost_ok(uint64_t N, uint32_t r, uint32_t p, char *err, size_t n)
{
	if (N < 1024 || N > (1u << 20) || (N & (N - 1))) {
		snprintf(err, n, "scrypt N=%" PRIu64 " is not a power of two in 1024..1048576", N);
		return false;
	}
	if (r < 1 || r > 32 || p < 1 || p > 16) {
		snprintf(err, n, "scrypt r=%u, p=%u out of range (r 1..32, p 1..16)", r, p);
		return false;
	}
	if (128ull * N * r * p > USERS_SCRYPT_MEM_MAX) {
		snprintf(err, n, "scrypt N=%" PRIu64 ",r=%u,p=%u needs more than %llu MiB",
			 N, r, p, USERS_SCRYPT_MEM_MAX >> 20);
		return false;
	}
	return true;
}

/* A decimal number of at most 7 digits at *s, moving *s past it. */
static bool number(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	int digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 8) {
		x = x * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || digits > 7)
		return false;
	*s = p;
	*v = x;
	return true;
}

int users_hash_parse(const char *text, struct users_hash *h, char *err, size_t n)
{
	const char *p = text, *salt, *key, *end;
	uint64_t N, r, par;
	int len;

	memset(h, 0, sizeof(*h));
	if (strncmp(p, "$scrypt$N=", 10) != 0) {
		snprintf(err, n, "not a \"$scrypt$N=..,r=..,p=..$salt$key\" hash");
		return -1;
	}
	p += 10;
	if (!number(&p, &N) || strncmp(p, ",r=", 3) != 0 || (p += 3, !number(&p, &r)) ||
	    strncmp(p, ",p=", 3) != 0 || (p += 3, !number(&p, &par)) || *p != '$') {
		snprintf(err, n, "scrypt parameters are not \"N=..,r=..,p=..\"");
		return -1;
	}
	if (!cost_ok(N, (uint32_t)r, (uint32_t)par, err, n))
		return -1;
	salt = p + 1;
	key = strchr(salt, '$');
	if (!key) {
		snprintf(err, n, "no '$' between the salt and the key");
		return -1;
	}
	len = b64_decode(salt, (size_t)(key - salt), h->salt, USERS_SALT_MAX);
	if (len < 8) {
		snprintf(err, n, "the salt is not base64 of 8..%d octets", USERS_SALT_MAX);
		return -1;
	}
	h->salt_len = (uint8_t)len;
	key++;
	end = key + strlen(key);
	len = b64_decode(key, (size_t)(end - key), h->key, USERS_KEY_MAX);
	if (len < 16) {
		snprintf(err, n, "the key is not base64 of 16..%d octets", USERS_KEY_MAX);
		return -1;
	}
	h->key_len = (uint8_t)len;
	h->N = N;
	h->r = (uint32_t)r;
	h->p = (uint32_t)par;
	return 0;
}

static int derive(const struct users_hash *h, const char *pass, size_t pass_len, uint8_t *out)
{
	/* maxmem: scrypt's V and B arrays, plus slack for its bookkeeping */
	uint64_t mem = 128ull * h->N * h->r * h->p + 128ull * h->r * 2 + (1u << 16);

	if (EVP_PBE_scrypt(pass, pass_len, h->salt, h->salt_len, h->N, h->r, h->p, mem, out,
			   h->key_len) != 1)
		return -1;
	return 0;
}

int users_hash_make(const char *pass, size_t pass_len, uint64_t N, uint32_t r, uint32_t p,
		    char *out, size_t cap, char *err, size_t n)
{
	struct users_hash h = { .N = N ? N : DEF_N, .r = r ? r : DEF_R, .p = p ? p : DEF_P,
				.salt_len = DEF_SALT, .key_len = DEF_KEY };
	char salt64[(USERS_SALT_MAX + 2) / 3 * 4 + 1], key64[(USERS_KEY_MAX + 2) / 3 * 4 + 1];
	int w;

	if (pass_len > USERS_PASS_MAX) {
		snprintf(err, n, "a password is at most %d octets", USERS_PASS_MAX);
		return -1;
	}
	if (!cost_ok(h.N, h.r, h.p, err, n))
		return -1;
	if (RAND_bytes(h.salt, h.salt_len) != 1) {
		snprintf(err, n, "RAND_bytes failed");
		return -1;
	}
	if (derive(&h, pass, pass_len, h.key) < 0) {
		snprintf(err, n, "scrypt failed (memory?)");
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)salt64, h.salt, h.salt_len);
	EVP_EncodeBlock((unsigned char *)key64, h.key, h.key_len);
	OPENSSL_cleanse(h.key, sizeof(h.key));
	w = snprintf(out, cap, "$scrypt$N=%" PRIu64 ",r=%u,p=%u$%s$%s", h.N, h.r, h.p, salt64,
		     key64);
	if (w < 0 || (size_t)w >= cap) {
		snprintf(err, n, "output buffer too small");
		return -1;
	}
	return 0;
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > USERS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ':')
			return false;
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct users_entry *)a)->name, ((const struct users_entry *)b)->name);
}

/* Count the lines that may hold a user (an upper bound for the table). */
static size_t count_lines(const char *text)
{
	size_t k = 1;

	for (const char *p = text; (p = strchr(p, '\n')); p++)
		k++;
	return k;
}

static int fail(struct users *u, char *err, size_t n, const char *name, unsigned line,
		const char *why)
{
	free(u->e);
	u->e = NULL;
	u->n = 0;
	snprintf(err, n, "%s:%u: %s", name, line, why);
	return -1;
}

int users_parse(struct users *u, const char *text, const char *name, char *err, size_t n)
{
	size_t cap = count_lines(text), tlen = strlen(text);
	unsigned line = 0;
	char why[200], buf[USERS_LINE_MAX + 1];
	const char *p = text;

	u->n = 0;
	u->e = NULL;
	if (tlen > USERS_FILE_MAX)
		return fail(u, err, n, name, 0, "file larger than 16 MiB");
	if (cap > USERS_MAX)
		cap = USERS_MAX;
	u->e = calloc(cap ? cap : 1, sizeof(*u->e));
	if (!u->e)
		return fail(u, err, n, name, 0, "no memory");
	while (*p) {
		size_t len = strcspn(p, "\n"), nlen;
		const char *colon;
		struct users_entry *e;

		line++;
		memcpy(buf, p, len > USERS_LINE_MAX ? USERS_LINE_MAX : len);
		buf[len > USERS_LINE_MAX ? USERS_LINE_MAX : len] = '\0';
		p += len + (p[len] == '\n');
		if (len > USERS_LINE_MAX)
			return fail(u, err, n, name, line, "line longer than 512 octets");
		if (len && buf[len - 1] == '\r')
			buf[--len] = '\0';
		if (buf[strspn(buf, " \t")] == '\0' || buf[strspn(buf, " \t")] == '#')
			continue;
		colon = strchr(buf, ':');
		if (!colon)
			return fail(u, err, n, name, line, "not \"name:hash\"");
		nlen = (size_t)(colon - buf);
		if (!name_ok(buf, nlen))
			return fail(u, err, n, name, line, "a name is 1..64 printable octets, "
				    "no spaces or ':'");
		if (u->n >= USERS_MAX)
			return fail(u, err, n, name, line, "more than 200000 users");
		e = &u->e[u->n];
		memcpy(e->name, buf, nlen);
		e->name[nlen] = '\0';
		if (users_hash_parse(colon + 1, &e->h, why, sizeof(why)) < 0)
			return fail(u, err, n, name, line, why);
		e->line = line;
		u->n++;
	}
	qsort(u->e, u->n, sizeof(*u->e), cmp_entry);
	for (unsigned i = 1; i < u->n; i++)
		if (strcmp(u->e[i - 1].name, u->e[i].name) == 0) {
			unsigned l1 = u->e[i - 1].line, l2 = u->e[i].line;
			snprintf(why, sizeof(why), "user '%s' is listed twice (also on line %u)",
				 u->e[i].name, l1 < l2 ? l1 : l2);
			return fail(u, err, n, name, l1 > l2 ? l1 : l2, why);
		}
	return 0;
}

int users_load(struct users *u, const char *path, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t got;
	int r;

	u->n = 0;
	u->e = NULL;
	if (!f) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -1;
	}
	text = malloc(USERS_FILE_MAX + 2);
	if (!text) {
		fclose(f);
		snprintf(err, n, "%s: no memory", path);
		return -1;
	}
	got = fread(text, 1, USERS_FILE_MAX + 1, f);
	if (ferror(f)) {
		snprintf(err, n, "%s: read failed", path);
		r = -1;
	} else if (got > USERS_FILE_MAX) {
		snprintf(err, n, "%s: larger than 16 MiB", path);
		r = -1;
	} else if (memchr(text, '\0', got)) {
		snprintf(err, n, "%s: contains a NUL byte", path);
		r = -1;
	} else {
		text[got] = '\0';
		r = users_parse(u, text, path, err, n);
	}
	fclose(f);
	free(text);
	return r;
}

/* The whole file, NUL-terminated (heap), or NULL with err. */
static char *read_all(const char *path, size_t *len, char *err, size_t n)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t got;

	if (!f) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(USERS_FILE_MAX + 2);
	if (!text) {
		fclose(f);
		snprintf(err, n, "%s: no memory", path);
		return NULL;
	}
	got = fread(text, 1, USERS_FILE_MAX + 1, f);
	if (ferror(f) || got > USERS_FILE_MAX || memchr(text, '\0', got)) {
		snprintf(err, n, "%s: unreadable, larger than 16 MiB or with a NUL byte", path);
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	text[got] = '\0';
	*len = got;
	return text;
}

/* Does line (len octets) belong to name? */
static bool line_is(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);

	return len > nl && line[nl] == ':' && memcmp(line, name, nl) == 0;
}

int users_file_set(const char *path, const char *name, const char *hash, unsigned *users,
		   char *err, size_t n)
{
	char why[300];
	char *text, *out = NULL;
	size_t len, olen = 0;
	bool found = false;
	struct users u;
	struct atomic_file_attr attr;
	struct stat st;
	int r = -1;

	if (!name_ok(name, strlen(name))) {
		snprintf(err, n, "'%s': a name is 1..64 printable octets, no spaces or ':'", name);
		return -1;
	}
	if (strlen(path) > ATOMIC_FILE_PATH_MAX) {
		snprintf(err, n, "%s: path too long", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return -1;
	}
	attr = (struct atomic_file_attr){ .mode = st.st_mode & 07777, .chown = true,
					  .uid = st.st_uid, .gid = st.st_gid };
	text = read_all(path, &len, err, n);
	if (!text)
		return -1;
	out = malloc(len + USERS_LINE_MAX + 4);
	if (!out) {
		snprintf(err, n, "no memory");
		goto done;
	}
	for (const char *p = text; *p;) {
		size_t l = strcspn(p, "\n");

		if (line_is(p, l, name))
			found = true;
		else {
			memcpy(out + olen, p, l);
			olen += l;
			out[olen++] = '\n';
		}
		p += l + (p[l] == '\n');
	}
	if (hash && found) {
		snprintf(err, n, "user '%s' exists already (remove it first)", name);
		goto done;
	}
	if (!hash && !found) {
		snprintf(err, n, "no user '%s'", name);
		goto done;
	}
	if (hash) {
		int w = snprintf(out + olen, USERS_LINE_MAX + 2, "%s:%s\n", name, hash);
		if (w < 0 || w > USERS_LINE_MAX + 1) {
			snprintf(err, n, "the line is longer than 512 octets");
			goto done;
		}
		olen += (size_t)w;
	}
	out[olen] = '\0';
	if (users_parse(&u, out, path, why, sizeof(why)) < 0) {
		snprintf(err, n, "%s", why);
		goto done;
	}
	*users = u.n;
	users_free(&u);
	if (atomic_file_write(path, out, olen, &attr, err, n) < 0)
		goto done;
	r = 0;
done:
	free(text);
	free(out);
	return r;
}

void users_free(struct users *u)
{
	if (!u)
		return;
	free(u->e);
	u->e = NULL;
	u->n = 0;
}

const struct users_entry *users_find(const struct users *u, const char *name)
{
	struct users_entry key;

	if (!u || !u->n || strlen(name) > USERS_NAME_MAX)
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, u->e, u->n, sizeof(*u->e), cmp_entry);
}

int users_verify(const struct users *u, const char *name, const char *pass, size_t pass_len)
{
	/* An unknown user is checked against this, so it costs the same. */
	static const struct users_hash dummy = { .N = DEF_N, .r = DEF_R, .p = DEF_P,
						 .salt_len = DEF_SALT, .key_len = DEF_KEY };
	const struct users_entry *e = users_find(u, name);
	const struct users_hash *h = e ? &e->h : &dummy;
	uint8_t out[USERS_KEY_MAX];
	int good;

	if (pass_len > USERS_PASS_MAX)
		pass_len = USERS_PASS_MAX + 1;	/* refused below, after the same work */
	if (derive(h, pass, pass_len > USERS_PASS_MAX ? 0 : pass_len, out) < 0)
		return -1;
	good = CRYPTO_memcmp(out, h->key, h->key_len) == 0;
	OPENSSL_cleanse(out, sizeof(out));
	return e && good && pass_len <= USERS_PASS_MAX ? 1 : 0;
}
