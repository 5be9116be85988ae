/* The ring of the agent's own messages (agent/sync/echo.c): an echo is
 * known once, byte for byte; a copy, an altered message, an old entry or
 * one overwritten by a full ring is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/sync/echo.h"
#include "platform/hash.h"

#define MSG "{\"type\":\"PAYMENT_APPROVED\",\"transactionId\":\"tx-1\",\"outboxId\":7}"

static void test_echo_taken_once(void **state)
{
    pos_echo_t e;

    (void)state;
    pos_echo_init(&e, 0x5eed);
    assert_false(pos_echo_take(&e, MSG, strlen(MSG), 0));
    pos_echo_note(&e, MSG, strlen(MSG), 1000);
    assert_true(pos_echo_take(&e, MSG, strlen(MSG), 1001));
    /* A copy published again by anyone is an ordinary message. */
    assert_false(pos_echo_take(&e, MSG, strlen(MSG), 1002));
    assert_int_equal(e.used, 0);
}

static void test_only_the_same_bytes(void **state)
{
    pos_echo_t e;
    char other[] = MSG;

    (void)state;
    pos_echo_init(&e, 0x5eed);
    pos_echo_note(&e, MSG, strlen(MSG), 0);
    other[strlen(other) - 2] = '8';
    assert_false(pos_echo_take(&e, other, strlen(other), 1));
    assert_false(pos_echo_take(&e, MSG, strlen(MSG) - 1, 1)); /* a prefix */
    assert_true(pos_echo_take(&e, MSG, strlen(MSG), 1));
}

/* The same bytes sent twice (a resend) come back twice: each echo takes
 * one entry. */
static void test_twice_sent_twice_taken(void **state)
{
    pos_echo_t e;

    (void)state;
    pos_echo_init(&e, 0x5eed);
    pos_echo_note(&e, MSG, strlen(MSG), 0);
    pos_echo_note(&e, MSG, strlen(MSG), 5);
    assert_true(pos_echo_take(&e, MSG, strlen(MSG), 10));
    assert_true(pos_echo_take(&e, MSG, strlen(MSG), 10));
    assert_false(pos_echo_take(&e, MSG, strlen(MSG), 10));
}

/* Many in flight before their echoes: all known while they fit; past the
 * ring, the oldest are forgotten (their echoes cost a token, as before). */
static void test_pipelined_and_full_ring(void **state)
{
    pos_echo_t e;
    char m[64];
    const int n = POS_ECHO_SLOTS + 10;

    (void)state;
    pos_echo_init(&e, 0x5eed);
    for (int i = 0; i < n; i++) {
        snprintf(m, sizeof(m), "{\"outboxId\":%d}", i);
        pos_echo_note(&e, m, strlen(m), (uint64_t)i);
    }
    assert_int_equal(e.used, POS_ECHO_SLOTS);
    for (int i = 0; i < n; i++) {
        snprintf(m, sizeof(m), "{\"outboxId\":%d}", i);
        assert_int_equal(pos_echo_take(&e, m, strlen(m), 200), i >= 10);
    }
    assert_int_equal(e.used, 0);
}

/* An echo lost with a connection leaves no way in for a later copy. */
static void test_old_entries_expire(void **state)
{
    pos_echo_t e;

    (void)state;
    pos_echo_init(&e, 0x5eed);
    pos_echo_note(&e, MSG, strlen(MSG), 1000);
    assert_false(pos_echo_take(&e, MSG, strlen(MSG), 1001 + POS_ECHO_MAX_AGE_MS));
    assert_int_equal(e.used, 0);
    pos_echo_note(&e, MSG, strlen(MSG), 1000);
    assert_true(pos_echo_take(&e, MSG, strlen(MSG), 1000 + POS_ECHO_MAX_AGE_MS));
}

/* The hash starts from the ring's key: with key 0 it is plain FNV-1a, with
 * any other a different value for every message, so a collision worked
 * out against plain FNV-1a or another till's key says nothing about this
 * ring's. A ring still knows its own messages whatever its key. */
static void test_keyed_hash(void **state)
{
    pos_echo_t plain, a, b;
    char m[64];

    (void)state;
    pos_echo_init(&plain, 0);
    pos_echo_init(&a, 0x0123456789abcdefull);
    pos_echo_init(&b, 0xfedcba9876543210ull);
    assert_true(pos_echo_hash(&plain, MSG, strlen(MSG)) == pos_fnv1a64(MSG, strlen(MSG)));
    for (int i = 0; i < 1000; i++) {
        snprintf(m, sizeof(m), "{\"outboxId\":%d}", i);
        uint64_t hp = pos_echo_hash(&plain, m, strlen(m));
        uint64_t ha = pos_echo_hash(&a, m, strlen(m));
        uint64_t hb = pos_echo_hash(&b, m, strlen(m));
        assert_true(hp != ha && hp != hb && ha != hb);
    }
    pos_echo_note(&a, MSG, strlen(MSG), 0);
    pos_echo_note(&b, MSG, strlen(MSG), 0);
    assert_true(pos_echo_take(&a, MSG, strlen(MSG), 1));
    assert_true(pos_echo_take(&b, MSG, strlen(MSG), 1));
    /* An entry whose hash was worked out for another key is no match. */
    pos_echo_note(&a, MSG, strlen(MSG), 2);
    a.slot[(a.next + POS_ECHO_SLOTS - 1) % POS_ECHO_SLOTS].hash =
        pos_echo_hash(&b, MSG, strlen(MSG));
    assert_false(pos_echo_take(&a, MSG, strlen(MSG), 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_taken_once),
        cmocka_unit_test(test_keyed_hash),
        cmocka_unit_test(test_only_the_same_bytes),
        cmocka_unit_test(test_twice_sent_twice_taken),
        cmocka_unit_test(test_pipelined_and_full_ring),
        cmocka_unit_test(test_old_entries_expire),
    };
    return cmocka_run_group_tests_name("echo", tests, NULL, NULL);
}
