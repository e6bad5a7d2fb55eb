/*
 * queue_id.c - queue ID formatting, parsing and the start value after open.
 * See queue_id.h for the scheme.
 */
#include "queue/queue_id.h"
#include "queue/queue.h"

#include <ctype.h>

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";	/* Crockford */

void queue_id_format(uint64_t id, char out[QUEUE_ID_STR])
{
	for (int i = QUEUE_ID_STR - 2; i >= 0; i--) {
		out[i] = b32[id & 31];
		id >>= 5;
	}
	out[QUEUE_ID_STR - 1] = 0;
}

static int b32_val(int c)
{
	c = toupper(c);
	if (c == 'O')
		c = '0';
	if (c == 'I' || c == 'L')
		c = '1';
	for (int i = 0; i < 32; i++)
		if (b32[i] == c)
			return i;
	return -1;
}

int queue_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < QUEUE_ID_STR - 1; i++) {
		int d = s[i] ? b32_val((unsigned char)s[i]) : -1;
		if (d < 0)
			return -1;
		if (i == 0 && d > 15)	/* 13 * 5 = 65 bits: the top one must be 0 */
			return -1;
		v = v << 5 | (uint64_t)d;
	}
	if (s[i] != 0)
		return -1;
	*id = v;
	return 0;
}

uint64_t qid_first(uint64_t reserved_max, uint64_t now_us)
{
	return now_us > reserved_max ? now_us : reserved_max + 1;
}
