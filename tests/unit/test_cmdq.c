#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/link/cmdq.h"

typedef struct seen {
    int calls;
    int errors;
    int last_err;
    long long last_int;
    int order[64];
    int n;
} seen_t;

static seen_t log_;

static void record(void *ctx, const redisReply *r, int err)
{
    int id = (int)(intptr_t)ctx;
    log_.calls++;
    if (err != 0) {
        log_.errors++;
        log_.last_err = err;
        assert_null(r);
    } else {
        assert_non_null(r);
        log_.last_int = r->integer;
    }
    if (log_.n < 64) {
        log_.order[log_.n++] = id;
    }
}

static redisReply int_reply(long long v)
{
    redisReply r;
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_INTEGER;
    r.integer = v;
    return r;
}

static int reset(void **state)
{
    (void)state;
    memset(&log_, 0, sizeof(log_));
    return 0;
}

static void test_in_order_matching(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 100);
    for (int i = 0; i < 20; i++) { /* forces growth and ring wrap */
        assert_int_equal(pos_cmdq_push(&q, record, (void *)(intptr_t)i, 1000 + i, 1), 0);
        if (i % 3 == 2) {
            redisReply r = int_reply(i);
            assert_int_equal(pos_cmdq_deliver(&q, &r), 0);
        }
    }
    while (pos_cmdq_pending(&q) > 0) {
        redisReply r = int_reply(0);
        assert_int_equal(pos_cmdq_deliver(&q, &r), 0);
    }
    assert_int_equal(log_.calls, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(log_.order[i], i); /* oldest first, always */
    }
    pos_cmdq_free(&q);
}

static void test_unsolicited_reply(void **state)
{
    (void)state;
    pos_cmdq_t q;
    redisReply r = int_reply(1);
    pos_cmdq_init(&q, 4);
    assert_int_equal(pos_cmdq_deliver(&q, &r), -EPROTO);
    assert_int_equal(log_.calls, 0);
    pos_cmdq_free(&q);
}

static void test_multi_reply(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 4);
    assert_int_equal(pos_cmdq_push(&q, record, (void *)1, 10, 3), 0);
    assert_int_equal(pos_cmdq_push(&q, record, (void *)2, 20, 1), 0);
    for (int i = 0; i < 3; i++) {
        redisReply r = int_reply(i);
        pos_cmdq_deliver(&q, &r);
        assert_int_equal(pos_cmdq_pending(&q), i < 2 ? 2 : 1);
    }
    assert_int_equal(log_.calls, 3);
    assert_int_equal(pos_cmdq_next_deadline(&q), 20);
    pos_cmdq_fail_all_head(&q, -ECONNRESET, -ECONNRESET);
    pos_cmdq_free(&q);
}

static void test_deadlines(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 4);
    assert_int_equal(pos_cmdq_next_deadline(&q), UINT64_MAX);
    assert_false(pos_cmdq_expired(&q, UINT64_MAX - 1));
    pos_cmdq_push(&q, record, (void *)1, 500, 1);
    pos_cmdq_push(&q, record, (void *)2, 700, 1);
    assert_int_equal(pos_cmdq_next_deadline(&q), 500);
    assert_false(pos_cmdq_expired(&q, 499));
    assert_true(pos_cmdq_expired(&q, 500));
    redisReply r = int_reply(1);
    pos_cmdq_deliver(&q, &r);
    assert_false(pos_cmdq_expired(&q, 600));
    assert_true(pos_cmdq_expired(&q, 700));
    pos_cmdq_fail_all_head(&q, -ETIMEDOUT, -ETIMEDOUT);
    assert_int_equal(log_.errors, 1);
    assert_int_equal(log_.last_err, -ETIMEDOUT);
    pos_cmdq_free(&q);
}

/* Every pending callback fails exactly once, even a multi-reply one that
 * has had some of its replies. */
static void test_fail_all_exactly_once(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 16);
    pos_cmdq_push(&q, record, (void *)1, 1, 2);
    pos_cmdq_push(&q, record, (void *)2, 1, 1);
    pos_cmdq_push(&q, NULL, NULL, 1, 1); /* fire-and-forget */
    pos_cmdq_push(&q, record, (void *)3, 1, 1);
    redisReply r = int_reply(1);
    pos_cmdq_deliver(&q, &r); /* first of two replies for #1 */
    pos_cmdq_fail_all_head(&q, -ECONNRESET, -ECONNRESET);
    assert_int_equal(log_.errors, 3);
    assert_int_equal(log_.calls, 4);
    assert_int_equal(pos_cmdq_pending(&q), 0);
    pos_cmdq_fail_all_head(&q, -ECONNRESET, -ECONNRESET); /* nothing left: nobody called twice */
    assert_int_equal(log_.calls, 4);
    pos_cmdq_free(&q);
}

/* The oldest command alone gets the head error (the reply being read was
 * its own); the others get the other one, in order. */
static int errs[8];

static void record_err(void *ctx, const redisReply *r, int err)
{
    (void)r;
    errs[(intptr_t)ctx] = err;
    log_.order[log_.n++] = (int)(intptr_t)ctx;
}

static void test_fail_all_head(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 16);
    memset(errs, 0, sizeof(errs));
    for (intptr_t i = 1; i <= 3; i++) {
        pos_cmdq_push(&q, record_err, (void *)i, 1, 1);
    }
    redisReply r = int_reply(1);
    pos_cmdq_deliver(&q, &r); /* #1 answered: #2 is the oldest now */
    pos_cmdq_fail_all_head(&q, -EMSGSIZE, -ECONNRESET);
    assert_int_equal(errs[1], 0);
    assert_int_equal(errs[2], -EMSGSIZE);
    assert_int_equal(errs[3], -ECONNRESET);
    assert_int_equal(log_.n, 3);
    assert_int_equal(log_.order[1], 2);
    assert_int_equal(log_.order[2], 3);
    assert_int_equal(pos_cmdq_pending(&q), 0);
    pos_cmdq_fail_all_head(&q, -EMSGSIZE, -ECONNRESET); /* empty: nothing */
    assert_int_equal(log_.n, 3);
    pos_cmdq_free(&q);
}

static pos_cmdq_t *reentrant_q;

static void push_again(void *ctx, const redisReply *r, int err)
{
    (void)ctx;
    (void)r;
    log_.calls++;
    if (err != 0) {
        /* A callback that retries: it lands on the fresh queue. */
        assert_int_equal(pos_cmdq_push(reentrant_q, record, (void *)9, 5, 1), 0);
    }
}

static void test_fail_all_reentrant(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 16);
    reentrant_q = &q;
    pos_cmdq_push(&q, push_again, NULL, 1, 1);
    pos_cmdq_push(&q, push_again, NULL, 1, 1);
    pos_cmdq_fail_all_head(&q, -ECANCELED, -ECANCELED);
    assert_int_equal(log_.calls, 2);
    assert_int_equal(pos_cmdq_pending(&q), 2);
    pos_cmdq_fail_all_head(&q, -ECANCELED, -ECANCELED);
    assert_int_equal(log_.errors, 2);
    pos_cmdq_free(&q);
}

static void test_limit(void **state)
{
    (void)state;
    pos_cmdq_t q;
    pos_cmdq_init(&q, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pos_cmdq_push(&q, record, NULL, 1, 1), 0);
    }
    assert_int_equal(pos_cmdq_push(&q, record, NULL, 1, 1), -ENOBUFS);
    pos_cmdq_fail_all_head(&q, -ECANCELED, -ECANCELED);
    assert_int_equal(log_.errors, 3);
    pos_cmdq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_in_order_matching, reset),
        cmocka_unit_test_setup(test_unsolicited_reply, reset),
        cmocka_unit_test_setup(test_multi_reply, reset),
        cmocka_unit_test_setup(test_deadlines, reset),
        cmocka_unit_test_setup(test_fail_all_exactly_once, reset),
        cmocka_unit_test_setup(test_fail_all_head, reset),
        cmocka_unit_test_setup(test_fail_all_reentrant, reset),
        cmocka_unit_test_setup(test_limit, reset),
    };
    return cmocka_run_group_tests_name("cmdq", tests, NULL, NULL);
}
