/* The per-user-id wait between password checks of the local API
 * (agent/api/authdelay.c): doubling to the cap, cleared by a right
 * password, one user id's guesses never delaying another's, forgotten
 * after a long quiet, and the table's fixed size. User ids are injected:
 * no process runs as them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/api/authdelay.h"

#define GUESSER 1000u
#define POS_APP 2000u

static void test_delay_doubles_to_the_cap(void **state)
{
    (void)state;
    assert_int_equal(pos_authdelay_delay(0), 0);
    assert_int_equal(pos_authdelay_delay(1), POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_delay(2), 2 * POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_delay(3), 4 * POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_delay(40), POS_AUTHDELAY_MAX_MS);
    assert_int_equal(pos_authdelay_delay(UINT32_MAX), POS_AUTHDELAY_MAX_MS);
    for (uint32_t n = 1; n < 64; n++) {
        assert_true(pos_authdelay_delay(n + 1) >= pos_authdelay_delay(n));
    }
}

static void test_wait_per_uid(void **state)
{
    pos_authdelay_t d;
    uint64_t now = 5000;

    (void)state;
    memset(&d, 0, sizeof(d));
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, now), 0);
    /* The first wrong password is answered at once; the next waits. */
    assert_int_equal(pos_authdelay_fail(&d, GUESSER, now), POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, now), POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, now + 40), POS_AUTHDELAY_BASE_MS - 40);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, now + POS_AUTHDELAY_BASE_MS), 0);
    /* The POS application, another user id, never waits for it. */
    assert_int_equal(pos_authdelay_wait(&d, POS_APP, now), 0);
    /* Guessing as fast as allowed: the cap is reached and kept. */
    uint64_t t = now;
    uint32_t guesses = 1;
    while (t < now + 60000) {
        t += pos_authdelay_wait(&d, GUESSER, t);
        pos_authdelay_fail(&d, GUESSER, t);
        guesses++;
        assert_int_equal(pos_authdelay_wait(&d, POS_APP, t), 0);
    }
    /* 100 + 200 + ... + 3200 ms, then one every 5 s. */
    assert_true(guesses <= 6 + 60000 / POS_AUTHDELAY_MAX_MS + 1);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, t), POS_AUTHDELAY_MAX_MS);
    /* A right password clears it. */
    pos_authdelay_ok(&d, GUESSER);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, t), 0);
    assert_int_equal(pos_authdelay_fail(&d, GUESSER, t), POS_AUTHDELAY_BASE_MS);
    /* Another's right password does not. */
    pos_authdelay_ok(&d, POS_APP);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, t), POS_AUTHDELAY_BASE_MS);
}

static void test_forgotten_after_a_long_quiet(void **state)
{
    pos_authdelay_t d;

    (void)state;
    memset(&d, 0, sizeof(d));
    pos_authdelay_fail(&d, GUESSER, 1000);
    pos_authdelay_fail(&d, GUESSER, 1100);
    assert_int_equal(pos_authdelay_fail(&d, GUESSER, 1300), 4 * POS_AUTHDELAY_BASE_MS);
    /* Not yet: the next one doubles. */
    assert_int_equal(pos_authdelay_fail(&d, GUESSER, 1700 + POS_AUTHDELAY_FORGET_MS - 1),
                     8 * POS_AUTHDELAY_BASE_MS);
    /* Long after its wait ended: the count starts over. */
    uint64_t later = 1700 + POS_AUTHDELAY_FORGET_MS - 1 + 800 + POS_AUTHDELAY_FORGET_MS;
    assert_int_equal(pos_authdelay_fail(&d, GUESSER, later), POS_AUTHDELAY_BASE_MS);
}

static void test_table_is_bounded(void **state)
{
    pos_authdelay_t d;

    (void)state;
    memset(&d, 0, sizeof(d));
    /* The guesser at its cap; then more user ids than the table holds,
     * each failing later (and waiting until later) than the one before. */
    for (int i = 0; i < 10; i++) {
        pos_authdelay_fail(&d, GUESSER, 0);
    }
    for (uint32_t i = 0; i < POS_AUTHDELAY_UIDS - 1; i++) {
        pos_authdelay_fail(&d, 3000 + i, 1000 + i);
    }
    assert_int_equal(d.evicted, 0);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, 1000), POS_AUTHDELAY_MAX_MS - 1000);
    /* Full: the entry whose wait ends first goes (3000's, at 1100). */
    pos_authdelay_fail(&d, 9999, 1050);
    assert_int_equal(d.evicted, 1);
    assert_int_equal(pos_authdelay_wait(&d, 3000, 1050), 0);
    assert_int_equal(pos_authdelay_wait(&d, 3001, 1050), 1101 - 1050);
    assert_int_equal(pos_authdelay_wait(&d, 9999, 1050), POS_AUTHDELAY_BASE_MS);
    assert_int_equal(pos_authdelay_wait(&d, GUESSER, 1050), POS_AUTHDELAY_MAX_MS - 1050);
    /* A user id that never failed never has an entry, full table or not. */
    assert_int_equal(pos_authdelay_wait(&d, POS_APP, 1050), 0);
    pos_authdelay_ok(&d, POS_APP);
    assert_int_equal(d.evicted, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_doubles_to_the_cap),
        cmocka_unit_test(test_wait_per_uid),
        cmocka_unit_test(test_forgotten_after_a_long_quiet),
        cmocka_unit_test(test_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
