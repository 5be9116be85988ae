#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "platform/backoff.h"

static void test_first_delay_bounds(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 100, 3000);
    assert_int_equal(pos_backoff_ceiling(&b), 100);
    assert_int_equal(pos_backoff_next(&b, 0), 0);
    pos_backoff_reset(&b);
    assert_int_equal(pos_backoff_next(&b, 100), 100);
    pos_backoff_reset(&b);
    assert_int_equal(pos_backoff_next(&b, 101), 0); /* wraps: range is [0, 100] */
    pos_backoff_reset(&b);
    assert_int_equal(pos_backoff_next(&b, 250), 250 % 101);
}

static void test_growth_and_cap(void **state)
{
    (void)state;
    pos_backoff_t b;
    const uint32_t expect[] = {100, 200, 400, 800, 1600, 3000, 3000, 3000};
    pos_backoff_init(&b, 100, 3000);
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        assert_int_equal(pos_backoff_ceiling(&b), expect[i]);
        /* the largest possible draw equals the ceiling */
        assert_int_equal(pos_backoff_next(&b, expect[i]), expect[i]);
        assert_int_equal(b.attempts, i + 1);
    }
}

static void test_every_draw_within_bounds(void **state)
{
    (void)state;
    pos_backoff_t b;
    uint32_t x = 12345;
    pos_backoff_init(&b, 100, 3000);
    for (int i = 0; i < 10000; i++) {
        uint32_t ceiling = pos_backoff_ceiling(&b);
        x = x * 1103515245u + 12345u;
        uint32_t d = pos_backoff_next(&b, x);
        assert_true(d <= ceiling);
        assert_true(d <= 3000);
        if (i % 17 == 0) {
            pos_backoff_reset(&b);
        }
    }
}

static void test_reset(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 100, 3000);
    for (int i = 0; i < 10; i++) {
        pos_backoff_next(&b, 7);
    }
    assert_int_equal(pos_backoff_ceiling(&b), 3000);
    pos_backoff_reset(&b);
    assert_int_equal(b.attempts, 0);
    assert_int_equal(pos_backoff_ceiling(&b), 100);
}

static void test_no_overflow(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 1000, UINT32_MAX);
    b.attempts = 1000000; /* a very long outage */
    assert_int_equal(pos_backoff_ceiling(&b), UINT32_MAX);
    assert_int_equal(pos_backoff_next(&b, 123456789u), 123456789u);
    b.attempts = UINT32_MAX;
    pos_backoff_next(&b, 1);
    assert_int_equal(b.attempts, UINT32_MAX); /* saturates, does not wrap to 0 */
    pos_backoff_at_cap(&b);
    assert_int_equal(b.attempts, UINT32_MAX);

    pos_backoff_init(&b, 0x80000000u, 0xF0000000u);
    b.attempts = 40; /* base << 40 would overflow 64 bits without the stop */
    assert_int_equal(pos_backoff_ceiling(&b), 0xF0000000u);
}

static void test_cap_below_base(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 5000, 3000);
    assert_int_equal(pos_backoff_ceiling(&b), 3000);
    assert_int_equal(pos_backoff_next(&b, 3000), 3000);
    assert_true(pos_backoff_next(&b, 999999) <= 3000);
}

static void test_zero_base(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 0, 3000);
    assert_int_equal(pos_backoff_ceiling(&b), 1);
    assert_int_equal(pos_backoff_next(&b, 0), 0);
    assert_int_equal(pos_backoff_ceiling(&b), 2);
}

static void test_at_cap(void **state)
{
    (void)state;
    pos_backoff_t b;
    pos_backoff_init(&b, 100, 3000);
    assert_int_equal(pos_backoff_at_cap(&b), 3000);
    assert_int_equal(pos_backoff_at_cap(&b), 3000);
    assert_int_equal(b.attempts, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_delay_bounds), cmocka_unit_test(test_growth_and_cap),
        cmocka_unit_test(test_every_draw_within_bounds), cmocka_unit_test(test_reset),
        cmocka_unit_test(test_no_overflow),        cmocka_unit_test(test_cap_below_base),
        cmocka_unit_test(test_zero_base),          cmocka_unit_test(test_at_cap),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
