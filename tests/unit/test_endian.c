/*
 * The byte-order helpers (platform/endian.h): fixed layouts whatever the
 * host's, and big-endian keys that sort numerically under memcmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "platform/endian.h"

static void test_byte_order(void **state)
{
    (void)state;
    unsigned char b[8];
    pos_endian_put_be64(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_true(pos_endian_get_be64(b) == 0x0102030405060708ull);
    pos_endian_put_le64(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 8);
    assert_true(pos_endian_get_le64(b) == 0x0102030405060708ull);
    pos_endian_put_le32(b, 0xa1b2c3d4u);
    assert_int_equal(b[0], 0xd4);
    assert_int_equal(pos_endian_get_le32(b), 0xa1b2c3d4u);
    pos_endian_put_le16(b, 0x03d2u); /* 978, EUR */
    assert_int_equal(b[0], 0xd2);
    assert_int_equal(b[1], 0x03);
    assert_int_equal(pos_endian_get_le16(b), 978);
    /* be64 keys sort numerically under memcmp. */
    unsigned char x[8], y[8];
    pos_endian_put_be64(x, 255);
    pos_endian_put_be64(y, 256);
    assert_true(memcmp(x, y, 8) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
