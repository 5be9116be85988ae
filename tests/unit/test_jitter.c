#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "platform/jitter.h"

/* Marsaglia's xorshift32 (13, 17, 5) from 1: the first values on paper. */
static void test_known_sequence(void **state)
{
    (void)state;
    uint32_t s = 1;
    assert_int_equal(pos_jitter_next(&s), 270369u);
    assert_int_equal(s, 270369u);
    assert_int_equal(pos_jitter_next(&s), 67634689u);
    assert_int_equal(pos_jitter_next(&s), 2647435461u);
}

/* The state is the caller's: two states advance independently, and the
 * same seed draws the same values. */
static void test_caller_owned_state(void **state)
{
    (void)state;
    uint32_t a = 12345, b = 12345, c = 54321;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = pos_jitter_next(&a);
        assert_int_equal(pos_jitter_next(&b), x);
        assert_int_not_equal(pos_jitter_next(&c), x);
    }
}

/* Zero is xorshift's fixed point: it must not stick there (a delay of 0
 * forever would be a tight reconnect loop). */
static void test_zero_state_moves(void **state)
{
    (void)state;
    uint32_t s = 0;
    uint32_t x = pos_jitter_next(&s);
    assert_int_equal(x, 0x510c4619u);
    assert_int_equal(s, x);
    for (int i = 0; i < 100000; i++) {
        assert_int_not_equal(pos_jitter_next(&s), 0);
    }
}

/* Spread: the low bits (what a modulo keeps) take every value. */
static void test_low_bits_spread(void **state)
{
    (void)state;
    unsigned seen[16] = {0};
    uint32_t s = 0x2545f491u;
    for (int i = 0; i < 1600; i++) {
        seen[pos_jitter_next(&s) % 16]++;
    }
    for (int i = 0; i < 16; i++) {
        assert_in_range(seen[i], 50, 150);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_sequence),
        cmocka_unit_test(test_caller_owned_state),
        cmocka_unit_test(test_zero_state_moves),
        cmocka_unit_test(test_low_bits_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
