/* The local sliding window of RATELIMIT (agent/api/ratelimit.c): exact
 * counts, requests stop counting no earlier than windowMs after they were
 * made and at most one bucket later, argument checks, and the table's
 * fixed size with least-recently-used replacement. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/api/ratelimit.h"

#define ID(s) (s), strlen(s)

static void test_admits_max_then_refuses_until_reset(void **state)
{
    pos_ratelimit_t rl;
    pos_rl_result_t r;

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 0), 0);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(pos_ratelimit_check(&rl, ID("user:1"), 1000, 3, 10000 + i, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 2 - i);
    }
    assert_int_equal(pos_ratelimit_check(&rl, ID("user:1"), 1000, 3, 10010, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    /* The oldest request resets no earlier than a window after it was made,
     * and at most one bucket (1000 / 32 ms) later. */
    assert_true(r.reset_ms >= 11000);
    assert_true(r.reset_ms <= 11000 + 32);
    uint64_t reset = r.reset_ms;
    assert_int_equal(pos_ratelimit_check(&rl, ID("user:1"), 1000, 3, reset - 1, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(pos_ratelimit_check(&rl, ID("user:1"), 1000, 3, reset, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 2); /* the three were in one bucket: they left together */
    pos_ratelimit_free(&rl);
}

/* Deterministic requests at irregular times: never more than max admitted
 * within any window, and never refused while fewer than max were admitted
 * in the window plus one bucket before. */
static void test_never_more_than_max_in_any_window(void **state)
{
    enum { N = 4000, WINDOW = 640, MAX = 7 };
    static uint64_t admitted[N];
    size_t na = 0;
    pos_ratelimit_t rl;
    pos_rl_result_t r;
    uint32_t x = 12345;
    uint64_t t = 5000;

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 0), 0);
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        t += (x >> 16) % 97;
        assert_int_equal(pos_ratelimit_check(&rl, ID("ip:10.0.0.1"), WINDOW, MAX, t, &r), 0);
        size_t in_window = 0, in_wide = 0;
        for (size_t k = 0; k < na; k++) {
            in_window += admitted[k] + WINDOW > t;
            in_wide += admitted[k] + WINDOW + WINDOW / 32 > t;
        }
        if (r.allowed) {
            assert_true(in_window + 1 <= MAX);
            admitted[na++] = t;
        } else {
            assert_true(in_wide >= MAX);
            assert_true(r.reset_ms > t);
        }
    }
    assert_true(na > N / 20); /* it did admit, not only refuse */
    pos_ratelimit_free(&rl);
}

static void test_identifiers_and_windows_are_separate(void **state)
{
    pos_ratelimit_t rl;
    pos_rl_result_t r;

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 0), 0);
    assert_int_equal(pos_ratelimit_check(&rl, ID("a"), 1000, 1, 100, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(pos_ratelimit_check(&rl, ID("a"), 1000, 1, 100, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(pos_ratelimit_check(&rl, ID("b"), 1000, 1, 100, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(pos_ratelimit_check(&rl, ID("a"), 2000, 1, 100, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(rl.used, 3);
    pos_ratelimit_free(&rl);
}

static void test_record_counts_what_redis_admitted(void **state)
{
    pos_ratelimit_t rl;
    pos_rl_result_t r;

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 0), 0);
    assert_int_equal(pos_ratelimit_record(&rl, ID("u"), 60000, 1000), 0);
    assert_int_equal(pos_ratelimit_record(&rl, ID("u"), 60000, 1001), 0);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 60000, 3, 1002, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 60000, 3, 1003, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(pos_ratelimit_record(&rl, ID("bad id"), 60000, 1000), -EINVAL);
    pos_ratelimit_free(&rl);
}

static void test_arguments_are_checked(void **state)
{
    pos_ratelimit_t rl;
    pos_rl_result_t r;
    char longid[POS_RL_IDENT_MAX + 2];

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 4), 0);
    memset(longid, 'a', sizeof(longid));
    assert_true(pos_ratelimit_valid_id(longid, POS_RL_IDENT_MAX));
    assert_false(pos_ratelimit_valid_id(longid, POS_RL_IDENT_MAX + 1));
    assert_false(pos_ratelimit_valid_id("", 0));
    assert_false(pos_ratelimit_valid_id("a b", 3));
    assert_false(pos_ratelimit_valid_id("a*", 2));
    assert_false(pos_ratelimit_valid_id("a?", 2));
    assert_false(pos_ratelimit_valid_id("a[1]", 4));
    assert_false(pos_ratelimit_valid_id("a\0b", 3));
    assert_false(pos_ratelimit_valid_id("a\r\n", 3));
    assert_false(pos_ratelimit_valid_id("caf\xc3\xa9", 5));
    assert_true(pos_ratelimit_valid_id(ID("user@shop.example:login/2+x=y_z-1")));
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 0, 1, 1, &r), -EINVAL);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), POS_RL_WINDOW_MAX + 1, 1, 1, &r), -EINVAL);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 1000, 0, 1, &r), -EINVAL);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 1000, POS_RL_MAX_MAX + 1, 1, &r), -EINVAL);
    assert_int_equal(rl.used, 0); /* nothing was made for refused arguments */
    /* The extremes are taken. */
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 1, 1, 0, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(r.reset_ms, 1);
    assert_int_equal(pos_ratelimit_check(&rl, ID("u"), 1, 1, 1, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(
        pos_ratelimit_check(&rl, ID("v"), POS_RL_WINDOW_MAX, POS_RL_MAX_MAX, UINT64_MAX / 2, &r),
        0);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, POS_RL_MAX_MAX - 1);
    pos_ratelimit_free(&rl);
}

/* A flood of distinct identifiers: the table never grows, the least
 * recently used entry goes, a busy one keeps its count. */
static void test_table_is_bounded_lru(void **state)
{
    pos_ratelimit_t rl;
    pos_rl_result_t r;
    char id[32];

    (void)state;
    assert_int_equal(pos_ratelimit_init(&rl, 4), 0);
    assert_int_equal(pos_ratelimit_check(&rl, ID("busy"), 60000, 2, 1, &r), 0);
    assert_int_equal(pos_ratelimit_check(&rl, ID("busy"), 60000, 2, 1, &r), 0);
    assert_true(r.allowed);
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(id, sizeof(id), "flood-%d", i);
        assert_int_equal(pos_ratelimit_check(&rl, id, (size_t)n, 60000, 2, 2 + (uint64_t)i, &r), 0);
        assert_true(r.allowed);
        if (i % 2 == 0) {
            /* The till's own identifier stays in use. */
            assert_int_equal(pos_ratelimit_check(&rl, ID("busy"), 60000, 2, 2 + (uint64_t)i, &r),
                             0);
            assert_false(r.allowed);
        }
        assert_true(rl.used <= 4);
    }
    assert_true(rl.evicted >= 9990);
    pos_ratelimit_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admits_max_then_refuses_until_reset),
        cmocka_unit_test(test_never_more_than_max_in_any_window),
        cmocka_unit_test(test_identifiers_and_windows_are_separate),
        cmocka_unit_test(test_record_counts_what_redis_admitted),
        cmocka_unit_test(test_arguments_are_checked),
        cmocka_unit_test(test_table_is_bounded_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
