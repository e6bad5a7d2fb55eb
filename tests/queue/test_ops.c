/*
 * test_ops.c - the queue's operations against a real spool: submit and
 * completion (one and several shards), lookup and body, due-index order,
 * claims and leases, per-recipient results and history, reschedule,
 * complete, hold/release/delete (and the time held not counting toward
 * expiry), a message stored held, the enhanced status kept with a result,
 * the delay-warning mark, the operator's forced claim, list by domain,
 * per-domain summary, the totals and summary in memory rebuilt alike at
 * reopen, references by domain and shard, the paged walk of a shard,
 * recovery of unfinished claims, queue-ID uniqueness across restarts.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtest.h"
#include "queue/queue.h"

#define T0 1700000000ull

static char *dir;
static struct queue *q;
static struct rte_ring *done;

static void open_q(unsigned shards)
{
	struct queue_conf c;
	int st;
	qt_conf(&c, dir, shards);
	q = queue_open(&c, &st);
	cr_assert_not_null(q, "queue_open: %s", queue_status_str(st));
}

static void setup(void)
{
	dir = qt_tmpdir();
	done = queue_done_ring_create(1024);
	cr_assert_not_null(done);
	open_q(1);
}

static void teardown(void)
{
	queue_close(q);
	queue_done_ring_free(done);
	qt_rmtree(dir);
	free(dir);
}

/* Submit one message and wait; returns its ID. */
static uint64_t put1(const char *rcpts, size_t size, uint64_t seed, uint64_t arrival)
{
	struct qt_msg m, *mp = &m;
	uint64_t id;
	qt_msg_init(&m, rcpts, size, seed, arrival);
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK, "status %s", queue_status_str(m.sub.status));
	id = m.sub.id;
	qt_msg_free(&m);
	return id;
}

static void check_body(unsigned shard, uint64_t id, size_t size, uint64_t seed)
{
	uint8_t *want = malloc(size + 1), *got = malloc(size + 16);
	size_t len;
	qt_body(want, size, seed);
	cr_assert_eq(queue_read_body(q, shard, id, got, size + 16, &len), QUEUE_OK);
	cr_assert_eq(len, size);
	cr_assert_eq(memcmp(want, got, size), 0, "body differs");
	free(want);
	free(got);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 60);

Test(ops, submit_lookup_body)
{
	struct qt_msg m, *mp = &m;
	struct queue_msg *msg;

	qt_msg_init(&m, "alice@example.com,bob@example.com", 10240, 42, T0);
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	cr_assert_eq(strlen(m.sub.id_str), 13);
	cr_assert_eq(m.sub.size, 10240);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id, &msg), QUEUE_OK);
	cr_assert_eq(msg->id, m.sub.id);
	cr_assert_eq(msg->arrival, T0);
	cr_assert_eq(msg->expiry, T0 + 5 * 86400);
	cr_assert_eq(msg->size, 10240);
	cr_assert_eq(msg->ret, QUEUE_RET_HDRS);
	cr_assert_str_eq(msg->sender, "sender@example.net");
	cr_assert_str_eq(msg->envid, "ENV123");
	cr_assert_str_eq(msg->client_addr, "192.0.2.7");
	cr_assert_eq(msg->nrcpt, 2);
	cr_assert_str_eq(msg->rcpt[0].addr, "alice@example.com");
	cr_assert_str_eq(msg->rcpt[1].orcpt, "rfc822;orig@example.org");
	cr_assert_eq(msg->rcpt[0].notify, QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY);
	cr_assert_eq(msg->rcpt[0].state, QUEUE_RCPT_PENDING);
	cr_assert(!msg->held && !msg->claimed);
	free(msg);
	check_body(0, m.sub.id, 10240, 42);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id + 1, &msg), QUEUE_NOTFOUND);
	qt_msg_free(&m);

	/* mbuf-like body: several segments */
	struct qt_msg s, *sp = &s;
	struct iovec seg[3];
	qt_msg_init(&s, "x@example.com", 3000, 9, T0);
	seg[0] = (struct iovec){ s.body, 1000 };
	seg[1] = (struct iovec){ s.body + 1000, 1 };
	seg[2] = (struct iovec){ s.body + 1001, 1999 };
	s.sub.iov = seg;
	s.sub.iovcnt = 3;
	qt_submit_wait(q, done, &sp, 1);
	cr_assert_eq(s.sub.status, QUEUE_OK);
	check_body(0, s.sub.id, 3000, 9);
	qt_msg_free(&s);
}

Test(ops, submit_rejects_bad_input)
{
	struct qt_msg m;
	qt_msg_init(&m, "a@example.com", 10, 1, T0);
	m.sub.done = NULL;
	cr_assert_eq(queue_submit(q, &m.sub), QUEUE_INVALID, "no completion ring");
	m.sub.done = done;
	m.sub.env.nrcpt = 0;
	cr_assert_eq(queue_submit(q, &m.sub), QUEUE_INVALID, "no recipients");
	m.sub.env.nrcpt = 1;
	char longaddr[400];
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = 0;
	m.rcpt[0].addr = longaddr;
	cr_assert_eq(queue_submit(q, &m.sub), QUEUE_INVALID, "address over 256");
	struct queue_submission *out;
	cr_assert_eq(queue_done_poll(done, &out, 1), 0, "refused at once: no completion");
	qt_msg_free(&m);
}

Test(ops, due_index_order_and_scan)
{
	uint64_t arrivals[] = { T0 + 50, T0 + 10, T0 + 30, T0 + 20, T0 + 40, T0 + 1000 };
	uint64_t ids[6];
	struct queue_due due[16];
	size_t n;

	for (int i = 0; i < 6; i++)
		ids[i] = put1("u@due.example", 100, (uint64_t)i, arrivals[i]);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 45, due, 16, &n), QUEUE_OK);
	cr_assert_eq(n, 4, "only the due ones");
	uint64_t want[] = { ids[1], ids[3], ids[2], ids[4] };
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(due[i].id, want[i], "position %d", i);
		if (i)
			cr_assert_leq(due[i - 1].due, due[i].due);
	}
	cr_assert_eq(queue_scan_due(q, 0, T0 + 45, due, 2, &n), QUEUE_OK);
	cr_assert_eq(n, 2, "max respected");
	cr_assert_eq(queue_scan_due(q, 0, T0, due, 16, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 5000, due, 16, &n), QUEUE_OK);
	cr_assert_eq(n, 6);
	cr_assert_eq(due[5].id, ids[5]);
	cr_assert_eq(queue_scan_due(q, 3, T0, due, 16, &n), QUEUE_INVALID);
}

Test(ops, claims_and_leases)
{
	uint64_t id = put1("u@claim.example", 100, 1, T0);
	uint32_t tok, tok2;
	struct queue_due due[4];
	size_t n;
	struct queue_msg *m;

	cr_assert_eq(queue_claim(q, 0, id, T0 - 1, 60, &tok), QUEUE_STATE, "not due yet");
	cr_assert_eq(queue_claim(q, 0, id, T0, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_claim(q, 0, id, T0 + 1, 60, &tok2), QUEUE_STALE, "claimed twice");
	cr_assert_eq(queue_scan_due(q, 0, T0 + 59, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "a claimed message is not due while its lease runs");
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_assert(m->claimed);
	cr_assert_eq(m->claim_until, T0 + 60);
	cr_assert_eq(m->token, tok);
	free(m);
	/* lease runs out: due again, and can be claimed anew */
	cr_assert_eq(queue_scan_due(q, 0, T0 + 60, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(due[0].id, id);
	cr_assert_eq(queue_claim(q, 0, id, T0 + 60, 60, &tok2), QUEUE_OK);
	cr_assert_neq(tok, tok2);
	/* the first agent's token is now stale */
	cr_assert_eq(queue_result(q, 0, id, tok, 0, QUEUE_RCPT_SENT, "250 ok", T0 + 61), QUEUE_STALE);
	cr_assert_eq(queue_reschedule(q, 0, id, tok, T0 + 100), QUEUE_STALE);
	cr_assert_eq(queue_complete(q, 0, id, tok), QUEUE_STALE);
	cr_assert_eq(queue_reschedule(q, 0, id, tok2, T0 + 300), QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 299, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 300, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(queue_claim(q, 0, id + 77, T0, 60, &tok), QUEUE_NOTFOUND);
}

Test(ops, results_history_complete)
{
	uint64_t id = put1("a@r.example,b@r.example,c@r.example", 500, 3, T0);
	uint32_t tok;
	struct queue_msg *m;
	struct queue_attempt hist[8];
	size_t n;

	cr_assert_eq(queue_claim(q, 0, id, T0, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 0, QUEUE_RCPT_SENT, "250 2.0.0 ok", T0 + 1), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 1, QUEUE_RCPT_DEFERRED, "451 4.3.0 later", T0 + 2), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 2, QUEUE_RCPT_BOUNCED, "550 5.1.1 unknown", T0 + 3), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 0, QUEUE_RCPT_SENT, "250 again", T0 + 4), QUEUE_STATE,
		     "a final recipient stays final");
	cr_assert_eq(queue_result(q, 0, id, tok, 3, QUEUE_RCPT_SENT, "x", T0 + 4), QUEUE_INVALID);
	cr_assert_eq(queue_result(q, 0, id, tok, 1, QUEUE_RCPT_PENDING, "x", T0 + 4), QUEUE_INVALID);
	cr_assert_eq(queue_complete(q, 0, id, tok), QUEUE_STATE, "b is still deferred");
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_OK);
	cr_assert_eq(m->rcpt[0].state, QUEUE_RCPT_SENT);
	cr_assert_eq(m->rcpt[1].state, QUEUE_RCPT_DEFERRED);
	cr_assert_eq(m->rcpt[2].state, QUEUE_RCPT_BOUNCED);
	cr_assert_eq(m->rcpt[1].attempts, 1);
	cr_assert_eq(m->rcpt[1].last_attempt, T0 + 2);
	cr_assert_str_eq(m->rcpt[1].reply, "451 4.3.0 later");
	free(m);
	cr_assert_eq(queue_reschedule(q, 0, id, tok, T0 + 600), QUEUE_OK);
	cr_assert_eq(queue_claim(q, 0, id, T0 + 600, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, id, tok, 1, QUEUE_RCPT_SENT, "250 2.0.0 at last", T0 + 601), QUEUE_OK);
	cr_assert_eq(queue_history(q, 0, id, hist, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 4);
	cr_assert_eq(hist[0].rcpt, 0);
	cr_assert_eq(hist[1].state, QUEUE_RCPT_DEFERRED);
	cr_assert_str_eq(hist[2].reply, "550 5.1.1 unknown");
	cr_assert_eq(hist[3].time, T0 + 601);
	cr_assert_eq(hist[3].rcpt, 1);
	cr_assert_eq(queue_complete(q, 0, id, tok), QUEUE_OK);
	cr_assert_eq(queue_lookup(q, 0, id, &m), QUEUE_NOTFOUND);
	size_t len;
	uint8_t b[8];
	cr_assert_eq(queue_read_body(q, 0, id, b, sizeof(b), &len), QUEUE_NOTFOUND);
	cr_assert_eq(queue_history(q, 0, id, hist, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "history goes with the message");
	struct queue_due due[4];
	cr_assert_eq(queue_scan_due(q, 0, T0 + 99999, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
}

Test(ops, hold_release_delete)
{
	uint64_t a = put1("u@h.example", 100, 1, T0);
	uint64_t b = put1("u@h.example", 100, 2, T0 + 1);
	struct queue_due due[4];
	struct queue_msg *m;
	uint32_t tok;
	size_t n;

	cr_assert_eq(queue_hold(q, a), QUEUE_OK);
	cr_assert_eq(queue_hold(q, a), QUEUE_OK, "hold is idempotent");
	cr_assert_eq(queue_scan_due(q, 0, T0 + 100, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1, "held mail is not due");
	cr_assert_eq(due[0].id, b);
	cr_assert_eq(queue_claim(q, 0, a, T0 + 100, 60, &tok), QUEUE_STATE, "held mail is not claimed");
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert(m->held);
	free(m);
	cr_assert_eq(queue_release(q, a, T0 + 200), QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 200, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(due[0].id, b, "b was due at T0+1, a at the release time");
	cr_assert_eq(due[1].id, a);
	cr_assert_eq(due[1].due, T0 + 200);
	cr_assert_eq(queue_delete(q, b), QUEUE_OK);
	cr_assert_eq(queue_delete(q, b), QUEUE_NOTFOUND);
	cr_assert_eq(queue_hold(q, b), QUEUE_NOTFOUND);
	cr_assert_eq(queue_lookup(q, 0, b, &m), QUEUE_NOTFOUND);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 200, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	/* a claimed message can be deleted by the operator */
	cr_assert_eq(queue_claim(q, 0, a, T0 + 200, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_delete(q, a), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, a, tok, 0, QUEUE_RCPT_SENT, "250", T0 + 201), QUEUE_NOTFOUND);
}

/* One op through queue_apply (the scheduler's way: with its own clock). */
static int op1(struct queue_op o)
{
	queue_apply(q, &o, 1);
	return o.status;
}

Test(ops, held_time_status_warn_and_forced_claim)
{
	struct qt_msg mm, *mp = &mm;
	struct queue_due due[4];
	struct queue_msg *m;
	uint32_t tok;
	size_t n;

	/* stored held (a mail loop kept for the operator): not due, not claimed */
	qt_msg_init(&mm, "u@l.example,v@l.example", 100, 1, T0);
	mm.sub.env.held = 1;
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(mm.sub.status, QUEUE_OK);
	uint64_t a = mm.sub.id;
	qt_msg_free(&mm);
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert(m->held, "stored held");
	cr_assert_eq(m->held_at, T0, "held since its arrival");
	cr_assert_eq(m->held_s, 0);
	cr_assert_eq(m->shards, 1, "one shard: bit 0");
	free(m);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 9999, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "held mail is never due");
	cr_assert_eq(queue_claim(q, 0, a, T0 + 10, 60, &tok), QUEUE_STATE);

	/* released at T0+500: 500 s held; held again 1000..1600: 1100 s in all */
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_RELEASE, .id = a, .now = T0 + 500 }),
		     QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_HOLD, .id = a, .now = T0 + 1000 }),
		     QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_HOLD, .id = a, .now = T0 + 1200 }),
		     QUEUE_OK, "held twice: the first time counts");
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert_eq(m->held_at, T0 + 1000);
	cr_assert_eq(m->held_s, 500);
	free(m);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_RELEASE, .id = a, .now = T0 + 1600 }),
		     QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_RELEASE, .id = a, .now = T0 + 1700 }),
		     QUEUE_OK, "released twice: nothing more counts");
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert_not(m->held);
	cr_assert_eq(m->held_at, 0);
	cr_assert_eq(m->held_s, 1100, "the expiry moves by the time spent held");
	cr_assert_not(m->warned);
	free(m);

	/* a result keeps its enhanced status; a malformed one is not kept */
	cr_assert_eq(queue_claim(q, 0, a, T0 + 1700, 60, &tok), QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_RESULT, .id = a, .token = tok,
					    .rcpt = 0, .state = QUEUE_RCPT_DEFERRED,
					    .reply = "connect to x: refused", .dsn = "4.4.1",
					    .now = T0 + 1700 }), QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_RESULT, .id = a, .token = tok,
					    .rcpt = 1, .state = QUEUE_RCPT_DEFERRED,
					    .reply = "451 later", .dsn = "4.x\r\n",
					    .now = T0 + 1700 }), QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_WARN, .id = a, .now = T0 + 1700 }),
		     QUEUE_OK, "the delay warning mark needs no claim");
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert_str_eq(m->rcpt[0].dsn, "4.4.1");
	cr_assert_str_eq(m->rcpt[0].reply, "connect to x: refused");
	cr_assert_str_eq(m->rcpt[1].dsn, "");
	cr_assert(m->warned);
	free(m);
	cr_assert_eq(queue_reschedule(q, 0, a, tok, T0 + 9000), QUEUE_OK);

	/* the operator's bounce: a forced claim takes mail not due, and held
	 * mail, but not mail whose claim has not lapsed */
	cr_assert_eq(queue_claim(q, 0, a, T0 + 1800, 60, &tok), QUEUE_STATE, "not due");
	struct queue_op fc = { .op = QUEUE_OP_CLAIM, .id = a, .now = T0 + 1800, .lease_s = 60,
			       .flags = QUEUE_CLAIM_FORCE };
	cr_assert_eq(op1(fc), QUEUE_OK, "forced: taken");
	cr_assert_eq(op1(fc), QUEUE_STALE, "claimed by someone: never taken from them");
	queue_apply(q, &fc, 1);
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert(m->claimed);
	free(m);
	cr_assert_eq(queue_hold(q, a), QUEUE_OK);
	fc.now = T0 + 2000;	/* the lease ran out, and it is held */
	cr_assert_eq(op1(fc), QUEUE_OK, "forced: held mail too");
	cr_assert_eq(queue_claim(q, 0, a, T0 + 3000, 60, &tok), QUEUE_STATE,
		     "an ordinary claim of held mail is still refused");
}

Test(ops, flush_makes_due_now)
{
	uint64_t a = put1("u@f.example", 100, 1, T0);
	uint64_t b = put1("u@f.example", 100, 2, T0);
	uint64_t c = put1("u@f.example,v@f.example", 100, 3, T0);
	struct queue_due due[4];
	struct queue_msg *m;
	uint32_t tok;
	size_t n;

	/* a deferred to T0+5000, b held, c claimed */
	cr_assert_eq(queue_claim(q, 0, a, T0, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, a, tok, 0, QUEUE_RCPT_DEFERRED, "451 later", T0), QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, 0, a, tok, T0 + 5000), QUEUE_OK);
	cr_assert_eq(queue_hold(q, b), QUEUE_OK);
	cr_assert_eq(queue_claim(q, 0, c, T0, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 10, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 0);

	cr_assert_eq(queue_flush(q, a, T0 + 10), QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 10, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1, "flushed: due now");
	cr_assert_eq(due[0].id, a);
	cr_assert_eq(due[0].due, T0 + 10);
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert_eq(m->due, T0 + 10);
	cr_assert_eq(m->rcpt[0].attempts, 1, "the attempt history stays");
	free(m);
	cr_assert_eq(queue_flush(q, a, T0 + 20), QUEUE_OK, "due already: fine");
	cr_assert_eq(queue_scan_due(q, 0, T0 + 10, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1, "an earlier due time is kept");
	cr_assert_eq(queue_flush(q, b, T0 + 10), QUEUE_STATE, "held mail stays held");
	cr_assert_eq(queue_flush(q, c, T0 + 10), QUEUE_STATE, "mail in delivery is left alone");
	cr_assert_eq(queue_lookup(q, 0, c, &m), QUEUE_OK);
	cr_assert(m->claimed);
	cr_assert_eq(m->claim_until, T0 + 60);
	free(m);
	cr_assert_eq(queue_flush(q, a + 999, T0), QUEUE_NOTFOUND);
	/* nothing left to try: nothing to flush */
	cr_assert_eq(queue_result(q, 0, c, tok, 0, QUEUE_RCPT_SENT, "250", T0 + 1), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, c, tok, 1, QUEUE_RCPT_BOUNCED, "550", T0 + 1), QUEUE_OK);
	cr_assert_eq(queue_flush(q, c, T0 + 10), QUEUE_STATE);
}

Test(ops, body_read_into_pieces)
{
	uint64_t id = put1("u@b.example", 70000, 9, T0);
	uint8_t *want = malloc(70000), *buf = malloc(70100);
	struct iovec iov[5];
	size_t len, cuts[] = { 1, 4095, 0, 30000, 35904 + 100 };
	size_t off = 0;

	qt_body(want, 70000, 9);
	memset(buf, 0xee, 70100);
	for (unsigned i = 0; i < 5; i++) {
		iov[i].iov_base = buf + off;
		iov[i].iov_len = cuts[i];
		off += cuts[i];
	}
	cr_assert_eq(queue_read_body_iov(q, 0, id, iov, 5, &len), QUEUE_OK);
	cr_assert_eq(len, 70000);
	cr_assert_eq(memcmp(buf, want, 70000), 0, "pieces filled in order");
	cr_assert_eq(buf[70000], 0xee, "nothing past the body");
	/* too little room: what fits, and the full size */
	memset(buf, 0, 70100);
	iov[0] = (struct iovec){ buf, 10 };
	iov[1] = (struct iovec){ buf + 10, 5000 };
	cr_assert_eq(queue_read_body_iov(q, 0, id, iov, 2, &len), QUEUE_OK);
	cr_assert_eq(len, 70000);
	cr_assert_eq(memcmp(buf, want, 5010), 0);
	cr_assert_eq(buf[5010], 0);
	cr_assert_eq(queue_read_body_iov(q, 0, id + 5, iov, 2, &len), QUEUE_NOTFOUND);
	free(want);
	free(buf);
}

static const struct queue_domain_sum *find_dom(const struct queue_domain_sum *s, size_t n,
					       const char *d)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].domain, d) == 0)
			return &s[i];
	return NULL;
}

Test(ops, list_and_summary)
{
	uint64_t now = T0 + 3 * 3600;
	uint64_t a = put1("x@one.example,y@two.example", 100, 1, T0);		/* 180 min old */
	uint64_t b = put1("z@ONE.example", 100, 2, now - 7 * 60);		/* 7 min */
	uint64_t c = put1("w@one.example", 100, 3, now - 60);			/* 1 min */
	uint64_t d = put1("v@two.example", 100, 4, now - 30 * 60);		/* 30 min */
	uint64_t ids[8];
	size_t n;
	uint32_t tok;
	struct queue_domain_sum *s;

	cr_assert_eq(queue_list_domain(q, "one.example", 0, ids, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 3);
	cr_assert(ids[0] == a && ids[1] == b && ids[2] == c, "arrival (ID) order");
	cr_assert_eq(queue_list_domain(q, "One.Example", a, ids, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 2, "paging after an ID, case-insensitive");
	cr_assert_eq(ids[0], b);
	cr_assert_eq(queue_list_domain(q, "one.exampl", 0, ids, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "no prefix matches");

	/* a: x deferred (one.example becomes deferred for a), y still pending */
	cr_assert_eq(queue_claim(q, 0, a, now, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, a, tok, 0, QUEUE_RCPT_DEFERRED, "421", now), QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, 0, a, tok, now + 300), QUEUE_OK);
	cr_assert_eq(queue_hold(q, d), QUEUE_OK);

	cr_assert_eq(queue_summary(q, now, &s, &n), QUEUE_OK);
	cr_assert_eq(n, 2);
	const struct queue_domain_sum *one = find_dom(s, n, "one.example");
	const struct queue_domain_sum *two = find_dom(s, n, "two.example");
	cr_assert_not_null(one);
	cr_assert_not_null(two);
	cr_assert_eq(one->incoming, 2, "b and c wait for their first try");
	cr_assert_eq(one->active, 0);
	cr_assert_eq(one->deferred, 1);
	cr_assert_eq(one->held, 0);
	cr_assert_eq(one->bytes, 300);
	cr_assert_eq(one->oldest, T0);
	cr_assert_eq(two->incoming, 1);
	cr_assert_eq(two->held, 1);
	cr_assert_eq(two->bytes, 200);
	cr_assert_eq(two->oldest, T0);
	/* age buckets: <5, 5-10, 10-20, 20-40, 40-80, 80-160, 160-320 min ... */
	uint32_t tot = 0;
	for (int i = 0; i < QUEUE_AGE_BUCKETS; i++)
		tot += one->age[i];
	cr_assert_eq(tot, 3);
	cr_assert_eq(one->age[6], 1, "180 minutes");
	cr_assert_eq(one->age[0] + one->age[1] + one->age[2], 2, "the 1 and 7 minute ones");
	cr_assert_eq(two->age[6], 1);
	cr_assert_eq(two->age[2] + two->age[3], 1, "30 minutes, 5-minute resolution");
	free(s);

	/* finish one.example's recipient of a: one.example no longer counts a */
	cr_assert_eq(queue_claim(q, 0, a, now + 300, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, 0, a, tok, 0, QUEUE_RCPT_SENT, "250", now + 300), QUEUE_OK);
	cr_assert_eq(queue_delete(q, c), QUEUE_OK);
	cr_assert_eq(queue_summary(q, now, &s, &n), QUEUE_OK);
	one = find_dom(s, n, "one.example");
	cr_assert_not_null(one);
	cr_assert_eq(one->incoming + one->active + one->deferred + one->held, 1);
	cr_assert_eq(one->oldest, now - 7 * 60);
	free(s);
	/* b claimed: active (in delivery) until its claim ends */
	cr_assert_eq(queue_claim(q, 0, b, now, 60, &tok), QUEUE_OK);
	cr_assert_eq(queue_summary(q, now, &s, &n), QUEUE_OK);
	one = find_dom(s, n, "one.example");
	cr_assert_not_null(one);
	cr_assert(one->active == 1 && one->incoming == 0, "active %u incoming %u", one->active,
		  one->incoming);
	free(s);
	cr_assert_eq(queue_reschedule(q, 0, b, tok, now), QUEUE_OK);
	cr_assert_eq(queue_list_domain(q, "one.example", 0, ids, 8, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(ids[0], b);
	/* empty everything: the summary is empty */
	cr_assert_eq(queue_delete(q, a), QUEUE_OK);
	cr_assert_eq(queue_delete(q, b), QUEUE_OK);
	cr_assert_eq(queue_delete(q, d), QUEUE_OK);
	cr_assert_eq(queue_summary(q, now, &s, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
	free(s);
}

Test(ops, batch_apply)
{
	enum { N = 300 };
	struct qt_msg *m = calloc(N, sizeof(*m));
	struct qt_msg **mp = calloc(N, sizeof(*mp));
	struct queue_op *ops = calloc(N, sizeof(*ops));
	struct queue_due due[N];
	size_t n;

	for (int i = 0; i < N; i++) {
		qt_msg_init(&m[i], "r@batch.example", 200 + i, (uint64_t)i, T0);
		mp[i] = &m[i];
	}
	qt_submit_wait(q, done, mp, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(m[i].sub.status, QUEUE_OK);
		ops[i] = (struct queue_op){ .op = QUEUE_OP_CLAIM, .id = m[i].sub.id, .now = T0 };
	}
	cr_assert_eq(queue_apply(q, ops, N), QUEUE_OK);
	for (int i = 0; i < N; i++)
		ops[i] = (struct queue_op){ .op = QUEUE_OP_RESULT, .id = m[i].sub.id,
					    .token = ops[i].out_token, .rcpt = 0,
					    .state = QUEUE_RCPT_SENT, .reply = "250", .now = T0 };
	cr_assert_eq(queue_apply(q, ops, N), QUEUE_OK);
	for (int i = 0; i < N; i++) {
		ops[i].op = QUEUE_OP_COMPLETE;
		ops[i].status = -1;
	}
	ops[7].id = 12345;	/* one bad op does not spoil the rest */
	cr_assert_eq(queue_apply(q, ops, N), QUEUE_NOTFOUND);
	for (int i = 0; i < N; i++)
		cr_assert_eq(ops[i].status, i == 7 ? QUEUE_NOTFOUND : QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 999999, due, N, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "only the unfinished one is left");
	struct queue_msg *left;
	cr_assert_eq(queue_lookup(q, 0, m[7].sub.id, &left), QUEUE_OK);
	cr_assert(left->claimed);
	free(left);
	for (int i = 0; i < N; i++)
		qt_msg_free(&m[i]);
	free(m);
	free(mp);
	free(ops);
}

Test(ops, recovery_makes_claims_due)
{
	uint64_t a = put1("u@rec.example", 100, 1, T0);
	uint64_t b = put1("u@rec.example", 100, 2, T0);
	uint32_t tok;
	struct queue_due due[4];
	size_t n;
	struct queue_msg *m;

	cr_assert_eq(queue_claim(q, 0, a, T0, 3600, &tok), QUEUE_OK);
	cr_assert_eq(queue_scan_due(q, 0, T0 + 10, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 1);
	queue_close(q);
	open_q(1);
	cr_assert_eq(queue_lookup(q, 0, a, &m), QUEUE_OK);
	cr_assert(!m->claimed, "claim cleared at start-up");
	uint64_t recovered_due = m->due;
	free(m);
	cr_assert_geq(recovered_due, T0);
	cr_assert_eq(queue_scan_due(q, 0, recovered_due, due, 4, &n), QUEUE_OK);
	cr_assert_eq(n, 2, "the unfinished claim is due again, long before its lease would end");
	cr_assert(due[0].id == b || due[1].id == b);
	cr_assert(due[0].id == a || due[1].id == a);
	cr_assert_eq(queue_result(q, 0, a, tok, 0, QUEUE_RCPT_SENT, "250", T0), QUEUE_STALE,
		     "the dead agent's token is void");
}

Test(ops, multi_shard_message)
{
	const char *doms[] = { "d0.example", "d1.example", "d2.example", "d3.example",
			       "d4.example", "d5.example", "d6.example", "d7.example" };
	char rcpts[512] = "";
	struct qt_msg m, *mp = &m;
	unsigned seen[4] = { 0 }, shards = 0;

	queue_close(q);
	open_q(4);
	for (int i = 0; i < 8; i++) {
		snprintf(rcpts + strlen(rcpts), sizeof(rcpts) - strlen(rcpts), "%su%d@%s",
			 i ? "," : "", i, doms[i]);
		seen[queue_shard_of(q, doms[i])]++;
	}
	for (int i = 0; i < 4; i++)
		shards += seen[i] > 0;
	cr_assert_geq(shards, 2, "the test needs domains in several shards");
	qt_msg_init(&m, rcpts, 5000, 77, T0);
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	struct queue_submission *extra;
	cr_assert_eq(queue_done_poll(done, &extra, 1), 0, "exactly one completion");
	for (unsigned s = 0; s < 4; s++) {
		struct queue_msg *msg;
		int st = queue_lookup(q, s, m.sub.id, &msg);
		if (!seen[s]) {
			cr_assert_eq(st, QUEUE_NOTFOUND);
			continue;
		}
		cr_assert_eq(st, QUEUE_OK);
		cr_assert_eq(msg->nrcpt, seen[s], "shard %u has its own recipients only", s);
		for (unsigned r = 0; r < msg->nrcpt; r++) {
			const char *d = strchr(msg->rcpt[r].addr, '@') + 1;
			cr_assert_eq(queue_shard_of(q, d), s);
		}
		free(msg);
		check_body(s, m.sub.id, 5000, 77);
	}
	cr_assert_eq(queue_delete(q, m.sub.id), QUEUE_OK);
	for (unsigned s = 0; s < 4; s++) {
		struct queue_msg *msg;
		cr_assert_eq(queue_lookup(q, s, m.sub.id, &msg), QUEUE_NOTFOUND);
	}
	qt_msg_free(&m);
}

/* The summary and totals in memory agree with the records, and come back
 * the same when the queue is opened again (built from the records). */
static void same_sums(const struct queue_domain_sum *x, size_t nx, const struct queue_domain_sum *y,
		      size_t ny)
{
	cr_assert_eq(nx, ny);
	for (size_t i = 0; i < nx; i++) {
		const struct queue_domain_sum *o = NULL;
		for (size_t k = 0; k < ny; k++)
			if (strcmp(x[i].domain, y[k].domain) == 0)
				o = &y[k];
		cr_assert_not_null(o, "%s is gone after the reopen", x[i].domain);
		cr_assert_eq(memcmp(&x[i], o, sizeof(*o)), 0, "%s differs after the reopen",
			     x[i].domain);
	}
}

Test(ops, totals_and_summary_survive_reopen)
{
	const char *doms[] = { "d0.example", "d1.example", "d2.example", "d3.example" };
	struct queue_domain_sum *s1, *s2;
	struct queue_totals t1, t2;
	char rcpts[256];
	uint64_t ids[6];
	size_t n1, n2;
	uint32_t tok;
	struct queue_msg *m;

	queue_close(q);
	open_q(4);
	/* one message to all four domains (several shards), five to one each */
	snprintf(rcpts, sizeof(rcpts), "a@%s,b@%s,c@%s,d@%s", doms[0], doms[1], doms[2], doms[3]);
	ids[0] = put1(rcpts, 1000, 1, T0);
	for (int i = 1; i < 6; i++) {
		snprintf(rcpts, sizeof(rcpts), "x%d@%s", i, doms[i % 4]);
		ids[i] = put1(rcpts, 100 * (size_t)i, (uint64_t)i, T0 + (uint64_t)i * 600);
	}
	queue_totals_get(q, &t1);
	cr_assert_eq(t1.messages, 6, "the message to four domains counts once (%llu)",
		     (unsigned long long)t1.messages);
	cr_assert_eq(t1.untried, 6);
	cr_assert_eq(t1.bytes, 1000 + 100 + 200 + 300 + 400 + 500);
	cr_assert_eq(t1.domains, 4);
	cr_assert_geq(t1.parts, 7, "its parts in several shards");
	/* one held, one claimed (tried), one tried and deferred */
	cr_assert_eq(queue_hold(q, ids[1]), QUEUE_OK);
	unsigned sh = queue_shard_of(q, doms[2]);
	cr_assert_eq(queue_claim(q, sh, ids[2], T0 + 7200, 600, &tok), QUEUE_OK);
	sh = queue_shard_of(q, doms[3]);
	cr_assert_eq(queue_claim(q, sh, ids[3], T0 + 7200, 600, &tok), QUEUE_OK);
	cr_assert_eq(queue_result(q, sh, ids[3], tok, 0, QUEUE_RCPT_DEFERRED, "451", T0 + 7200),
		     QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, sh, ids[3], tok, T0 + 9000), QUEUE_OK);
	queue_totals_get(q, &t1);
	cr_assert_eq(t1.held, 1);
	cr_assert_eq(t1.untried, 4, "ids 2 and 3 were claimed");
	cr_assert_eq(queue_summary(q, T0 + 7200, &s1, &n1), QUEUE_OK);
	cr_assert_eq(n1, 4);
	for (size_t i = 0; i < n1; i++) {
		const struct queue_domain_sum *d = &s1[i];
		if (strcmp(d->domain, doms[1]) == 0)
			cr_assert(d->held == 1 && d->incoming == 2, "%s", d->domain);
		else if (strcmp(d->domain, doms[2]) == 0)
			cr_assert(d->active == 1 && d->incoming == 1, "%s", d->domain);
		else if (strcmp(d->domain, doms[3]) == 0)
			cr_assert(d->deferred == 1 && d->incoming == 1, "%s", d->domain);
	}
	/* its claim ended (a reopen would make it due: recovery), then a reopen */
	cr_assert_eq(queue_lookup(q, queue_shard_of(q, doms[2]), ids[2], &m), QUEUE_OK);
	cr_assert_eq(queue_reschedule(q, m->shard, ids[2], m->token, T0), QUEUE_OK);
	free(m);
	free(s1);
	cr_assert_eq(queue_summary(q, T0 + 7200, &s1, &n1), QUEUE_OK);
	queue_totals_get(q, &t1);
	queue_close(q);
	open_q(4);
	cr_assert_eq(queue_summary(q, T0 + 7200, &s2, &n2), QUEUE_OK);
	queue_totals_get(q, &t2);
	same_sums(s1, n1, s2, n2);
	cr_assert_eq(memcmp(&t1, &t2, sizeof(t1)), 0, "totals differ after the reopen");
	free(s1);
	free(s2);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(queue_delete(q, ids[i]), QUEUE_OK);
	queue_totals_get(q, &t2);
	cr_assert(t2.messages == 0 && t2.parts == 0 && t2.bytes == 0 && t2.domains == 0);
	cr_assert_eq(queue_summary(q, T0, &s2, &n2), QUEUE_OK);
	cr_assert_eq(n2, 0);
	free(s2);
}

static int count_parts(void *user, const struct queue_msg *m)
{
	uint64_t *v = user;
	cr_assert_gt(m->id, v[1], "ID order");
	v[1] = m->id;
	v[0]++;
	return v[0] == v[2];	/* stop after v[2] */
}

Test(ops, refs_and_paged_walk)
{
	enum { N = 25 };
	uint64_t ids[N], after = 0, v[3];
	struct queue_ref refs[N + 1];
	size_t n, got = 0;
	uint64_t last;
	int end;

	for (int i = 0; i < N; i++)
		ids[i] = put1(i % 5 ? "u@ref.example" : "u@ref.example,w@other.example", 100,
			      (uint64_t)i, T0);
	cr_assert_eq(queue_refs_domain(q, "REF.example.", 0, refs, N + 1, &n), QUEUE_OK);
	cr_assert_eq(n, N);
	for (int i = 0; i < N; i++)
		cr_assert(refs[i].id == ids[i] && refs[i].shards == 1, "ref %d", i);
	cr_assert_eq(queue_refs_domain(q, "other.example", ids[4], refs, N, &n), QUEUE_OK);
	cr_assert_eq(n, 4, "after an ID");
	do {
		cr_assert_eq(queue_refs_shard(q, 0, after, refs, 7, &n), QUEUE_OK);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(refs[i].id, ids[got + i]);
		got += n;
		if (n)
			after = refs[n - 1].id;
	} while (n == 7);
	cr_assert_eq(got, N);
	/* the walk: a budget of 10, then a stop asked by the callback */
	v[0] = 0; v[1] = 0; v[2] = 1000;
	cr_assert_eq(queue_scan_msgs(q, 0, 0, 10, count_parts, v, &last, &end), QUEUE_OK);
	cr_assert(v[0] == 10 && last == ids[9] && !end, "budget: %llu seen", (unsigned long long)v[0]);
	v[0] = 0; v[2] = 3;
	cr_assert_eq(queue_scan_msgs(q, 0, last, 100, count_parts, v, &last, &end), QUEUE_OK);
	cr_assert(v[0] == 3 && last == ids[12] && !end);
	v[0] = 0; v[2] = 1000;
	cr_assert_eq(queue_scan_msgs(q, 0, last, 100, count_parts, v, &last, &end), QUEUE_OK);
	cr_assert(v[0] == N - 13 && last == ids[N - 1] && end, "the rest, and the end");
}

/*
 * One domain, however it is spelt: ASCII case and one trailing dot ("the
 * root") do not make another domain. Every spelling lands in the same shard,
 * and list and summary group them under the lower-case form without the dot;
 * the addresses themselves (local part and domain) are stored as given.
 */
Test(ops, domain_spellings_are_one_domain)
{
	const char *spell[] = { "example.com", "EXAMPLE.com", "example.com.", "Example.COM." };
	enum { NS = sizeof(spell) / sizeof(spell[0]) };
	uint64_t ids[NS + 1], got[16];
	char rcpt[128];
	size_t n;
	unsigned home;
	struct queue_domain_sum *s;
	struct queue_msg *m;

	queue_close(q);
	open_q(4);
	home = queue_shard_of(q, "example.com");
	for (unsigned i = 0; i < NS; i++) {
		cr_assert_eq(queue_shard_of(q, spell[i]), home, "%s: shard %u, example.com: %u",
			     spell[i], queue_shard_of(q, spell[i]), home);
		snprintf(rcpt, sizeof(rcpt), "MiXeD.Local%u@%s", i, spell[i]);
		ids[i] = put1(rcpt, 100, i, T0 + i);
	}
	/* two spellings in one message: one domain, counted once */
	ids[NS] = put1("a@example.com,B@EXAMPLE.COM.", 100, 9, T0 + 9);

	for (unsigned i = 0; i < NS; i++) {
		cr_assert_eq(queue_lookup(q, home, ids[i], &m), QUEUE_OK, "%s: not in shard %u",
			     spell[i], home);
		snprintf(rcpt, sizeof(rcpt), "MiXeD.Local%u@%s", i, spell[i]);
		cr_assert_str_eq(m->rcpt[0].addr, rcpt, "the address is stored as given");
		free(m);
		cr_assert_eq(queue_list_domain(q, spell[i], 0, got, 16, &n), QUEUE_OK);
		cr_assert_eq(n, NS + 1, "list by %s: %zu messages, want %u", spell[i], n, NS + 1);
		for (unsigned k = 0; k <= NS; k++)
			cr_assert_eq(got[k], ids[k], "arrival order");
	}
	cr_assert_eq(queue_lookup(q, home, ids[NS], &m), QUEUE_OK);
	cr_assert_eq(m->nrcpt, 2, "both recipients in one shard");
	free(m);
	cr_assert_eq(queue_summary(q, T0 + 60, &s, &n), QUEUE_OK);
	cr_assert_eq(n, 1, "one summary row, not one per spelling (%zu rows)", n);
	cr_assert_str_eq(s[0].domain, "example.com");
	cr_assert_eq(s[0].incoming, NS + 1, "%u incoming, want %u", s[0].incoming, NS + 1);
	cr_assert_eq(s[0].oldest, T0);
	free(s);
	/* deleting takes every spelling's entries away again */
	for (unsigned k = 0; k <= NS; k++)
		cr_assert_eq(queue_delete(q, ids[k]), QUEUE_OK);
	cr_assert_eq(queue_summary(q, T0 + 60, &s, &n), QUEUE_OK);
	cr_assert_eq(n, 0, "summary empty after the deletes");
	free(s);
	cr_assert_eq(queue_list_domain(q, "EXAMPLE.COM.", 0, got, 16, &n), QUEUE_OK);
	cr_assert_eq(n, 0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(ops, ids_unique_across_restarts)
{
	enum { ROUNDS = 5, PER = 40 };
	uint64_t ids[ROUNDS * PER];
	size_t k = 0;

	for (int r = 0; r < ROUNDS; r++) {
		uint64_t last = 0;
		for (int i = 0; i < PER; i++) {
			struct qt_msg m;
			qt_msg_init(&m, "u@id.example", 10, 1, T0);
			m.sub.done = done;
			cr_assert_eq(queue_submit(q, &m.sub), QUEUE_OK);
			/* IDs printed sort the same way as the numbers */
			char s[QUEUE_ID_STR];
			queue_id_format(last, s);
			cr_assert_gt(m.sub.id, last);
			cr_assert_gt(strcmp(m.sub.id_str, s), 0);
			last = m.sub.id;
			ids[k++] = m.sub.id;
			struct queue_submission *out;
			while (queue_done_poll(done, &out, 1) == 0)
				;
			cr_assert_eq(out, &m.sub);
			qt_msg_free(&m);
		}
		/* restart: within seconds, so the persisted reservation (about 4 s of
		 * clock ahead) decides the first ID, not the clock */
		queue_close(q);
		open_q(1);
	}
	for (size_t i = 1; i < k; i++)
		cr_assert_gt(ids[i], ids[i - 1], "IDs increase across restarts");
	qsort(ids, k, sizeof(ids[0]), cmp_u64);
	for (size_t i = 1; i < k; i++)
		cr_assert_neq(ids[i], ids[i - 1], "no ID reused");
}

Test(ops, stats_are_counted)
{
	struct queue_shard_stats st;
	put1("u@stats.example", 1000, 1, T0);
	put1("u@stats.example", 1000, 2, T0);
	queue_stats(q, 0, &st);
	cr_assert_eq(st.messages, 2);
	cr_assert_eq(st.bytes, 2000);
	cr_assert_geq(st.commits, 1);
	cr_assert_geq(st.fsyncs, st.commits);
	cr_assert_eq(st.completions, 2);
	cr_assert_eq(st.nospace_rejects, 0);
	cr_assert_str_eq(queue_shard_stat_names[0], "batches");
}

/*
 * fsyncs counts the syncs LMDB really makes on the shard's file, not a
 * guess per commit: a commit that changed nothing (deletes of IDs nobody
 * has) makes none and counts none; one that stores a message makes some.
 * (That the count equals what really happens is measured against an
 * LD_PRELOAD shim by tests/integration/durability.sh.)
 */
Test(ops, fsyncs_are_real_syncs)
{
	struct queue_shard_stats a, b, c;
	put1("u@sync.example", 1000, 1, T0);	/* settles the ID reservation */
	queue_stats(q, 0, &a);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(queue_delete(q, 999999 + (uint64_t)i), QUEUE_NOTFOUND);
	queue_stats(q, 0, &b);
	cr_assert_geq(b.commits, a.commits + 5, "each delete was a commit");
	cr_assert_eq(b.fsyncs, a.fsyncs, "commits that wrote nothing synced nothing, yet %llu counted",
		     (unsigned long long)(b.fsyncs - a.fsyncs));
	put1("u@sync.example", 1000, 2, T0);
	queue_stats(q, 0, &c);
	cr_assert_gt(c.fsyncs, b.fsyncs, "a stored message was synced");
}

Test(ops, busy_when_rings_full)
{
	enum { N = 64 };
	struct queue_conf c;
	struct qt_msg *m = calloc(N, sizeof(*m));
	struct rte_ring *small = queue_done_ring_create(2);
	struct queue_submission *out[N];
	int st, accepted = 0, busy = 0;
	unsigned got = 0;

	queue_close(q);
	qt_conf(&c, dir, 1);
	c.ring_size = 2;
	q = queue_open(&c, &st);
	cr_assert_not_null(q);
	/*
	 * Nobody polls the 2-slot completion ring, so the writer stalls posting
	 * completions, stops taking submissions, and the 2-slot shard ring fills:
	 * the producer must be told BUSY at once, never blocked.
	 */
	for (int i = 0; i < N; i++) {
		qt_msg_init(&m[i], "u@busy.example", 100, (uint64_t)i, T0);
		m[i].sub.done = small;
		st = queue_submit(q, &m[i].sub);
		if (st == QUEUE_OK)
			accepted++;
		else {
			cr_assert_eq(st, QUEUE_BUSY);
			busy++;
			m[i].sub.id = 0;
		}
		if (accepted > 6)
			break;
	}
	cr_assert_gt(busy, 0, "a full shard ring must answer BUSY");
	cr_assert_leq(accepted, 6, "2 in the ring, 2 on the completion ring, 1-2 in the writer");
	while (got < (unsigned)accepted) {
		unsigned k = queue_done_poll(small, out + got, N - got);
		for (unsigned i = 0; i < k; i++)
			cr_assert_eq(out[got + i]->status, QUEUE_OK);
		got += k;
	}
	/* only accepted submissions ever come back */
	for (unsigned i = 0; i < got; i++)
		cr_assert_neq(out[i]->id, 0);
	struct timespec ts = { 0, 20 * 1000000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(queue_done_poll(small, out, N), 0);
	for (int i = 0; i < N; i++)
		qt_msg_free(&m[i]);
	free(m);
	queue_done_ring_free(small);
}

struct reader_arg {
	uint64_t id;
	atomic_int stop;
	int errors, reads;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t *buf = malloc(10240);
	while (!atomic_load(&a->stop)) {
		struct queue_msg *m;
		size_t len;
		if (queue_lookup(q, 0, a->id, &m) != QUEUE_OK)
			a->errors++;
		else
			free(m);
		if (queue_read_body(q, 0, a->id, buf, 10240, &len) != QUEUE_OK || len != 10240)
			a->errors++;
		a->reads++;
	}
	free(buf);
	return NULL;
}

/* The map grows (munmap/mmap) while another thread keeps reading: no crash, no error. */
Test(ops, map_grows_under_readers)
{
	enum { N = 1500 };
	struct reader_arg a = { 0 };
	struct qt_msg *m = calloc(N, sizeof(*m));
	struct qt_msg **mp = calloc(N, sizeof(*mp));
	struct queue_shard_stats st;
	pthread_t t;

	a.id = put1("u@grow.example", 10240, 5, T0);
	pthread_create(&t, NULL, reader, &a);
	for (int i = 0; i < N; i++) {
		qt_msg_init(&m[i], "u@grow.example", 10240, (uint64_t)i, T0);
		mp[i] = &m[i];
	}
	qt_submit_wait(q, done, mp, N);
	atomic_store(&a.stop, 1);
	pthread_join(t, NULL);
	queue_stats(q, 0, &st);
	cr_assert_gt(st.map_grows, 0, "15 MB through a 1 MiB map must grow it");
	cr_assert_gt(a.reads, 0);
	cr_assert_eq(a.errors, 0);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(m[i].sub.status, QUEUE_OK);
		qt_msg_free(&m[i]);
	}
	check_body(0, m[N - 1].sub.id, 10240, N - 1);
	free(m);
	free(mp);
}

/* The AUTH identity goes from the submission into the record; a hold keeps
 * its first reason, a release clears it. */
Test(ops, auth_identity_and_hold_reason)
{
	struct qt_msg m, *mp = &m;
	struct queue_msg *msg;
	uint64_t plain;

	qt_msg_init(&m, "x@example.com", 500, 3, T0);
	m.sub.env.auth_method = "PLAIN";
	m.sub.env.auth_user = "alice@isp.example";
	qt_submit_wait(q, done, &mp, 1);
	cr_assert_eq(m.sub.status, QUEUE_OK);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id, &msg), QUEUE_OK);
	cr_assert_str_eq(msg->auth_method, "PLAIN");
	cr_assert_str_eq(msg->auth_user, "alice@isp.example");
	cr_assert_str_eq(msg->hold_reason, "");
	free(msg);
	plain = put1("y@example.com", 100, 4, T0);
	cr_assert_eq(queue_lookup(q, 0, plain, &msg), QUEUE_OK);
	cr_assert_str_eq(msg->auth_user, "", "no AUTH, no identity");
	free(msg);

	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_HOLD, .id = m.sub.id, .now = T0 + 5,
					    .reply = "daily quota: user alice" }), QUEUE_OK);
	cr_assert_eq(op1((struct queue_op){ .op = QUEUE_OP_HOLD, .id = m.sub.id, .now = T0 + 6,
					    .reply = "held by the operator" }), QUEUE_OK);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id, &msg), QUEUE_OK);
	cr_assert(msg->held);
	cr_assert_str_eq(msg->hold_reason, "daily quota: user alice", "the first reason stays");
	cr_assert_str_eq(msg->auth_user, "alice@isp.example", "kept through a change");
	free(msg);
	cr_assert_eq(queue_release(q, m.sub.id, T0 + 10), QUEUE_OK);
	cr_assert_eq(queue_lookup(q, 0, m.sub.id, &msg), QUEUE_OK);
	cr_assert(!msg->held);
	cr_assert_str_eq(msg->hold_reason, "");
	cr_assert_str_eq(msg->auth_method, "PLAIN");
	free(msg);
	qt_msg_free(&m);
}
