/* The token bucket (platform/bucket.c): burst, refill, the wait it
 * reports, and no overflow after a long pause or with a clock that goes
 * back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "platform/bucket.h"

static void test_burst_then_empty(void **state)
{
    pos_bucket_t b;

    (void)state;
    pos_bucket_init(&b, 10, 5, 1000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pos_bucket_take(&b, 1000), 0);
    }
    /* 10 a second: the next token is 100 ms away. */
    assert_int_equal(pos_bucket_take(&b, 1000), 100);
    assert_int_equal(pos_bucket_take(&b, 1040), 60);
    assert_int_equal(pos_bucket_take(&b, 1100), 0);
    assert_int_equal(pos_bucket_take(&b, 1100), 100);
}

static void test_refill_is_smooth_and_capped(void **state)
{
    pos_bucket_t b;
    int taken = 0;

    (void)state;
    pos_bucket_init(&b, 3, 2, 0);
    assert_int_equal(pos_bucket_take(&b, 0), 0);
    assert_int_equal(pos_bucket_take(&b, 0), 0);
    /* 3 a second is a token every 333.3 ms: the wait rounds up. */
    assert_int_equal(pos_bucket_take(&b, 0), 334);
    assert_int_equal(pos_bucket_take(&b, 333), 1);
    assert_int_equal(pos_bucket_take(&b, 334), 0);
    /* A long pause fills it to the burst, no more. */
    for (int i = 0; i < 10; i++) {
        taken += pos_bucket_take(&b, 60000) == 0;
    }
    assert_int_equal(taken, 2);
    /* Over 10 s at a steady pace: rate x time, within one token. */
    taken = 0;
    for (uint64_t t = 60000; t < 70000; t++) {
        taken += pos_bucket_take(&b, t) == 0;
    }
    assert_true(taken >= 29 && taken <= 31);
}

static void test_defaults_and_extremes(void **state)
{
    pos_bucket_t b;

    (void)state;
    /* rate 0 counts as 1, burst 0 as one second's worth. */
    pos_bucket_init(&b, 0, 0, 5);
    assert_int_equal(b.rate, 1);
    assert_int_equal(b.burst, 1);
    assert_int_equal(pos_bucket_take(&b, 5), 0);
    assert_int_equal(pos_bucket_take(&b, 5), 1000);
    /* A clock that goes back adds nothing, and breaks nothing. */
    assert_int_equal(pos_bucket_take(&b, 0), 1000);
    assert_int_equal(pos_bucket_take(&b, 1005), 0);
    /* The largest rate and burst after the longest pause: full, no wrap. */
    pos_bucket_init(&b, UINT32_MAX, UINT32_MAX, 0);
    b.milli = 0;
    assert_int_equal(pos_bucket_take(&b, UINT64_MAX), 0);
    assert_true(b.milli == (uint64_t)UINT32_MAX * 1000u - 1000u);
    pos_bucket_init(&b, 1000, 0, 0);
    assert_int_equal(b.burst, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_empty),
        cmocka_unit_test(test_refill_is_smooth_and_capped),
        cmocka_unit_test(test_defaults_and_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
