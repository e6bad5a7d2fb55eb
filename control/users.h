/*
 * users.h - the submission users' credentials: a file of "name:hash" lines
 * ([auth] users = /etc/sluice/users), and the check of a password against
 * it.
 *
 * The hash is scrypt (RFC 7914) from OpenSSL's libcrypto, with a random
 * per-user salt, written with its parameters so they can be raised later
 * without invalidating old lines:
 *
 *     alice:$scrypt$N=16384,r=8,p=1$<salt, base64>$<key, base64>
 *
 * N (a power of two, 2^10..2^20), r (1..32) and p (1..16) are scrypt's cost,
 * block size and parallelism, with 128*N*r*p at most USERS_SCRYPT_MEM_MAX
 * bytes; the salt is 8..64 bytes and the derived key 16..64 (the tool writes
 * 16 and 32). The defaults (N=16384, r=8, p=1: 16 MiB, tens of
 * milliseconds) are OWASP's minimum for scrypt. A password check costs that
 * much, which is why the SMTP lcores never do it themselves (auth_worker.h).
 *
 * The file: one user per line, '#' comments and blank lines ignored; names
 * are 1..USERS_NAME_MAX octets of printable ASCII other than ':' (an e-mail
 * address is fine); a name at most once; lines at most USERS_LINE_MAX, the
 * file at most USERS_FILE_MAX octets and USERS_MAX users. Anything else is
 * an error naming the file and line. Passwords are compared in constant time
 * (CRYPTO_memcmp), and an unknown name costs a full scrypt too, so timing
 * does not tell which names exist.
 */
#ifndef SLUICE_USERS_H
#define SLUICE_USERS_H

#include <stddef.h>
#include <stdint.h>

#define USERS_NAME_MAX 64
#define USERS_PASS_MAX 128		/* longer passwords are refused */
#define USERS_LINE_MAX 512
#define USERS_FILE_MAX (16u << 20)
#define USERS_MAX 200000u
#define USERS_SALT_MAX 64
#define USERS_KEY_MAX 64
#define USERS_SCRYPT_MEM_MAX (256ull << 20)
#define USERS_HASH_TEXT_MAX 256

/* One user: its name and its hash, decoded. */
struct users_hash {
	uint64_t N;
	uint32_t r, p;
	uint8_t salt_len, key_len;
	uint8_t salt[USERS_SALT_MAX];
	uint8_t key[USERS_KEY_MAX];
};

struct users_entry {
	char name[USERS_NAME_MAX + 1];
	struct users_hash h;
	unsigned line;		/* in the file, for messages */
};

/* The table: sorted by name (binary search). */
struct users {
	unsigned n;
	struct users_entry *e;	/* heap, n entries */
};

/* Parse "$scrypt$N=..,r=..,p=..$salt$key". 0, or -1 with err. */
int users_hash_parse(const char *text, struct users_hash *h, char *err, size_t n);

/* Make the hash text of a password with a fresh random salt (RAND_bytes)
 * and the given cost (N, r, p; 0 for the defaults). 0, or -1 with err. */
int users_hash_make(const char *pass, size_t pass_len, uint64_t N, uint32_t r, uint32_t p,
		    char *out, size_t cap, char *err, size_t n);

/* Parse a whole file's text (named `name` in errors) into u (which it
 * initialises). 0, or -1 with err "name:line: why" and u empty. */
int users_parse(struct users *u, const char *text, const char *name, char *err, size_t n);

/* Read and parse a file (bounded by USERS_FILE_MAX). 0, or -1 with err. */
int users_load(struct users *u, const char *path, char *err, size_t n);

void users_free(struct users *u);

const struct users_entry *users_find(const struct users *u, const char *name);

/* Edit the file at path: add "name:hash" (hash given; refused when name is
 * there already) or remove name's line (hash NULL; refused when it is not
 * there). Comments and other lines are kept; the whole new text must parse
 * (users_parse) before it is written with atomic_file_write (beside the
 * file, synced, renamed over it, the directory synced) with the old file's
 * mode and owner (so a reader sees the old or the new file, never half of
 * one). 0 with the user count in *users, or -1 with
 * err. For `sluicectl user add/remove`. */
int users_file_set(const char *path, const char *name, const char *hash, unsigned *users,
		   char *err, size_t n);

/* Check name/password: 1 good, 0 wrong (or no such user), -1 the hash could
 * not be computed (no memory). Costs one scrypt whatever the outcome. */
int users_verify(const struct users *u, const char *name, const char *pass, size_t pass_len);

#endif
