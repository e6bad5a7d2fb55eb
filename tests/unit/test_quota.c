/*
 * test_quota.c - the daily quotas and suspensions of control/quota.c over a
 * real LMDB store in a temporary directory, with the time injected: a
 * user's and a client's counts, the limit (messages and recipients), the
 * day boundary at 00:00 UTC, the overrides map, messages spanning shards
 * counted once, suspension, and all of it kept across a close and reopen.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/quota.h"

#define DAY 86400ull
#define T0 (20000 * DAY)	/* 00:00 UTC of some day */

static char dir[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-quota-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static struct quota *open_with(struct quota_limit user, struct quota_limit client,
			       const char *map_text)
{
	char err[256] = "";
	struct quota *q = quota_open(dir, err, sizeof(err));
	struct quota_map m = { 0, NULL };

	cr_assert_not_null(q, "%s", err);
	if (map_text)
		cr_assert_eq(quota_map_parse(&m, map_text, "map", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(quota_policy_set(q, &user, &client, "198.18.0.0/24", &m, err, sizeof(err)),
		     0, "%s", err);
	return q;
}

/* One message, in a batch of its own. */
static enum quota_verdict one(struct quota *q, uint64_t now, uint64_t id, const char *user,
			      const char *client, unsigned nrcpt, char *why)
{
	enum quota_verdict v;

	cr_assert_eq(quota_batch_begin(q), 0);
	v = quota_account(q, now, id, false, user, client, nrcpt, why);
	cr_assert_eq(quota_batch_commit(q), 0);
	return v;
}

Test(quota, user_over_its_messages_is_held_then_a_new_day_starts, .init = setup,
     .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 3, 0 }, (struct quota_limit){ 0, 0 },
				    NULL);
	char why[QUOTA_WHY_MAX + 1];
	struct quota_usage u;
	struct quota_stats st;

	for (int i = 1; i <= 3; i++) {
		cr_assert_eq(one(q, T0 + 10 + i, (uint64_t)i, "alice", "203.0.113.9", 1, why),
			     QUOTA_PASS, "message %d of 3", i);
		cr_assert_str_eq(why, "");
	}
	cr_assert_eq(one(q, T0 + 100, 4, "alice", "203.0.113.9", 1, why), QUOTA_HOLD);
	cr_assert_str_eq(why, "daily quota: user alice, message 4 of 3 a day");
	/* another user is not touched */
	cr_assert_eq(one(q, T0 + 101, 5, "bob", "203.0.113.9", 1, why), QUOTA_PASS);
	/* the last second of the day still counts against it ... */
	cr_assert_eq(one(q, T0 + DAY - 1, 6, "alice", NULL, 1, why), QUOTA_HOLD);
	cr_assert_eq(quota_usage_get(q, T0 + DAY - 1, "alice", NULL, &u), 0);
	cr_assert_eq(u.messages, 5);
	cr_assert_eq(u.lim.messages, 3);
	/* ... and at 00:00 UTC the count starts again */
	cr_assert_eq(one(q, T0 + DAY, 7, "alice", NULL, 1, why), QUOTA_PASS);
	cr_assert_eq(quota_usage_get(q, T0 + DAY, "alice", NULL, &u), 0);
	cr_assert_eq(u.messages, 1);
	quota_stats_get(q, &st);
	cr_assert_eq(st.counted, 7);
	cr_assert_eq(st.held_quota, 2);
	quota_close(q);
}

Test(quota, recipients_count_too, .init = setup, .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 0, 10 }, (struct quota_limit){ 0, 0 },
				    NULL);
	char why[QUOTA_WHY_MAX + 1];

	cr_assert_eq(one(q, T0, 1, "carol", NULL, 6, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 2, "carol", NULL, 4, why), QUOTA_PASS, "10 of 10 is allowed");
	cr_assert_eq(one(q, T0, 3, "carol", NULL, 1, why), QUOTA_HOLD);
	cr_assert_str_eq(why, "daily quota: user carol, recipient 11 of 10 a day");
	quota_close(q);
}

Test(quota, trusted_clients_count_by_address_others_not, .init = setup, .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 0, 0 }, (struct quota_limit){ 2, 0 },
				    NULL);
	char why[QUOTA_WHY_MAX + 1];
	struct quota_stats st;
	struct quota_usage u;

	cr_assert_eq(one(q, T0, 1, "", "198.18.0.1", 1, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 2, NULL, "198.18.0.1", 1, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 3, "", "198.18.0.1", 1, why), QUOTA_HOLD);
	cr_assert_str_eq(why, "daily quota: client [198.18.0.1], message 3 of 2 a day");
	/* another trusted address has its own count */
	cr_assert_eq(one(q, T0, 4, "", "198.18.0.2", 1, why), QUOTA_PASS);
	/* the world sending to our relay_domains: not outbound, not counted */
	for (uint64_t i = 5; i < 10; i++)
		cr_assert_eq(one(q, T0, i, "", "203.0.113.7", 1, why), QUOTA_PASS);
	/* an authenticated user from a trusted address counts as the user
	 * (who has no limit here: not counted, nothing written) */
	cr_assert_eq(one(q, T0, 10, "dave", "198.18.0.1", 1, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 11, "dave", "198.18.0.1", 1, why), QUOTA_PASS);
	quota_stats_get(q, &st);
	cr_assert_eq(st.uncounted, 7);
	cr_assert_eq(st.counted, 4);
	cr_assert_eq(quota_usage_get(q, T0, "dave", NULL, &u), 0);
	cr_assert_eq(u.messages, 0, "a user without a limit is not counted");
	cr_assert_eq(quota_usage_get(q, T0, NULL, "198.18.0.1", &u), 0);
	cr_assert_eq(u.messages, 3);
	quota_close(q);
}

Test(quota, overrides_map_per_user_and_client, .init = setup, .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 1, 0 }, (struct quota_limit){ 1, 0 },
				    "# bulk senders\nnewsletter 3 0\n[198.18.0.5] 0 0  # no limit\n");
	char why[QUOTA_WHY_MAX + 1];

	for (uint64_t i = 1; i <= 3; i++)
		cr_assert_eq(one(q, T0, i, "newsletter", NULL, 1, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 4, "newsletter", NULL, 1, why), QUOTA_HOLD);
	for (uint64_t i = 5; i < 20; i++)
		cr_assert_eq(one(q, T0, i, "", "198.18.0.5", 50, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 20, "erin", NULL, 1, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0, 21, "erin", NULL, 1, why), QUOTA_HOLD, "default: 1");
	quota_close(q);
}

Test(quota, map_errors_name_the_line)
{
	struct quota_map m;
	char err[256];

	cr_assert_eq(quota_map_parse(&m, "a 1 2\nb 1\n", "f", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "f:2: want NAME MESSAGES RECIPIENTS");
	cr_assert_eq(quota_map_parse(&m, "a 1 -2\n", "f", err, sizeof(err)), -1);
	cr_assert(strstr(err, "f:1:"), "%s", err);
	cr_assert_eq(quota_map_parse(&m, "[198.18.0.300] 1 2\n", "f", err, sizeof(err)), -1);
	cr_assert_eq(quota_map_parse(&m, "a 1 2\na 3 4\n", "f", err, sizeof(err)), -1);
	cr_assert(strstr(err, "twice"), "%s", err);
	cr_assert_eq(quota_map_parse(&m, "\n# x\n  b 4294967295 0\n", "f", err, sizeof(err)), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_eq(m.e[0].lim.messages, 4294967295u);
	quota_map_free(&m);
}

Test(quota, a_message_spanning_shards_counts_once, .init = setup, .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 1, 0 }, (struct quota_limit){ 0, 0 },
				    NULL);
	char why[QUOTA_WHY_MAX + 1];
	struct quota_usage u;

	cr_assert_eq(quota_batch_begin(q), 0);
	/* its first part decides, the second follows, uncounted */
	cr_assert_eq(quota_account(q, T0, 77, true, "frank", NULL, 2, why), QUOTA_PASS);
	cr_assert_eq(quota_account(q, T0, 77, true, "frank", NULL, 2, why), QUOTA_PASS);
	cr_assert_eq(quota_batch_commit(q), 0);
	cr_assert_eq(quota_usage_get(q, T0, "frank", NULL, &u), 0);
	cr_assert_eq(u.messages, 1, "counted twice");
	cr_assert_eq(u.recipients, 2);
	/* a held one: its later part is held too, with the same reason */
	cr_assert_eq(quota_batch_begin(q), 0);
	cr_assert_eq(quota_account(q, T0 + 5, 78, true, "frank", NULL, 1, why), QUOTA_HOLD);
	cr_assert_eq(quota_batch_commit(q), 0);
	cr_assert_eq(quota_batch_begin(q), 0);
	cr_assert_eq(quota_account(q, T0 + 6, 78, true, "frank", NULL, 1, why), QUOTA_HOLD);
	cr_assert_str_eq(why, "daily quota: user frank, message 2 of 1 a day");
	cr_assert_eq(quota_batch_commit(q), 0);
	quota_close(q);
}

Test(quota, suspension_holds_and_resume_ends_it, .init = setup, .fini = teardown)
{
	struct quota *q = open_with((struct quota_limit){ 0, 0 }, (struct quota_limit){ 0, 0 },
				    NULL);
	char why[QUOTA_WHY_MAX + 1], err[128];
	uint64_t since = 0;

	cr_assert_eq(quota_suspend(q, "mallory", true, T0 + 7, err, sizeof(err)), 1);
	cr_assert_eq(quota_suspend(q, "mallory", true, T0 + 8, err, sizeof(err)), 0,
		     "already suspended");
	cr_assert(quota_is_suspended(q, "mallory", &since));
	cr_assert_eq(since, T0 + 7);
	cr_assert_not(quota_is_suspended(q, "alice", NULL));
	cr_assert_eq(one(q, T0 + 9, 1, "mallory", NULL, 1, why), QUOTA_HOLD);
	cr_assert_str_eq(why, QUOTA_SUSPENDED_PREFIX " user mallory suspended by the operator");
	cr_assert_eq(one(q, T0 + 9, 2, "alice", NULL, 1, why), QUOTA_PASS);
	cr_assert_eq(quota_suspend(q, "mallory", false, T0 + 10, err, sizeof(err)), 1);
	cr_assert_eq(quota_suspend(q, "mallory", false, T0 + 10, err, sizeof(err)), 0);
	cr_assert_eq(one(q, T0 + 11, 3, "mallory", NULL, 1, why), QUOTA_PASS);
	cr_assert_eq(quota_suspend(q, "bad name", true, T0, err, sizeof(err)), -1);
	quota_close(q);
}

Test(quota, counts_and_suspensions_survive_a_reopen, .init = setup, .fini = teardown)
{
	struct quota_limit two = { 2, 0 }, none = { 0, 0 };
	struct quota *q = open_with(two, none, NULL);
	char why[QUOTA_WHY_MAX + 1], err[128];
	struct quota_usage u;

	cr_assert_eq(one(q, T0 + 1, 1, "alice", NULL, 3, why), QUOTA_PASS);
	cr_assert_eq(one(q, T0 + 2, 2, "alice", NULL, 3, why), QUOTA_PASS);
	cr_assert_eq(quota_suspend(q, "mallory", true, T0 + 3, err, sizeof(err)), 1);
	quota_close(q);

	q = open_with(two, none, NULL);
	cr_assert_eq(quota_usage_get(q, T0 + 4, "alice", NULL, &u), 0);
	cr_assert_eq(u.messages, 2);
	cr_assert_eq(u.recipients, 6);
	cr_assert_not(u.suspended);
	cr_assert_eq(one(q, T0 + 5, 3, "alice", NULL, 1, why), QUOTA_HOLD,
		     "the count before the restart was lost");
	cr_assert(quota_is_suspended(q, "mallory", NULL));
	cr_assert_eq(quota_usage_get(q, T0 + 5, "mallory", NULL, &u), 0);
	cr_assert(u.suspended);
	quota_close(q);
}
