#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/link/slot.h"

static uint16_t slot(const char *key)
{
    return pos_slot_of(key, strlen(key));
}

/* The reference value of CRC16-CCITT (XMODEM), as in the Redis Cluster
 * specification. */
static void test_crc16_reference(void **state)
{
    (void)state;
    assert_int_equal(pos_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(pos_slot_crc16("", 0), 0);
}

/* Slots Redis itself gives (CLUSTER KEYSLOT on redis-server 7.0). */
static void test_known_slots(void **state)
{
    (void)state;
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("terminal:T-0001:status"), 15905);
    assert_int_equal(slot("payment:T-0001"), 6617);
    assert_int_equal(slot("inventory:S-042"), 682);
    assert_int_equal(slot("index:products"), 10779);
}

/* The first {...} with something inside decides; "{}" does not. */
static void test_hash_tags(void **state)
{
    (void)state;
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_equal(slot("{user1000}.followers"), slot("{user1000}.following"));
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("foo{}{bar}"), 8363); /* "{}": the whole key */
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("{bar"), 4015);
    assert_int_equal(slot("foo{bar"), 15278); /* no closing brace */
    assert_int_equal(slot("posagent:probe:{payment:T-0001}"), slot("payment:T-0001"));
}

/* Binary keys: NUL bytes count, nothing is read past len. */
static void test_binary(void **state)
{
    (void)state;
    const char k[] = {'a', '\0', 'b'};
    assert_int_not_equal(pos_slot_of(k, 3), pos_slot_of(k, 1));
    assert_int_equal(pos_slot_of("{a}bc", 3), pos_slot_of("a", 1));
    assert_true(pos_slot_of("x", 0) < POS_SLOT_COUNT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_reference),
        cmocka_unit_test(test_known_slots),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
