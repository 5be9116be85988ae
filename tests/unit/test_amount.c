/* Unit tests for agent/amount: exact decimal <-> minor units, currencies. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/msg/amount.h"

#define NO_MAX INT64_MAX

/* Parses a NUL-terminated text; *out is preset to a sentinel to catch writes. */
static int parse(const char *text, unsigned digits, int64_t max, unsigned flags, int64_t *out)
{
    *out = -777;
    return pos_amount_parse(text, strlen(text), digits, max, flags, out);
}

static void test_currency_table(void **state)
{
    static const struct {
        const char *alpha;
        uint16_t numeric;
        uint8_t digits;
    } want[] = {
        {"EUR", 978, 2}, {"USD", 840, 2}, {"GBP", 826, 2}, {"CHF", 756, 2}, {"SEK", 752, 2},
        {"NOK", 578, 2}, {"DKK", 208, 2}, {"PLN", 985, 2}, {"CZK", 203, 2}, {"JPY", 392, 0},
        {"KWD", 414, 3}, {"BHD", 48, 3},  {"CAD", 124, 2}, {"AUD", 36, 2},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        pos_currency_t c;
        memset(&c, 0xAA, sizeof(c));
        assert_int_equal(pos_amount_currency(want[i].alpha, &c), 0);
        assert_string_equal(c.alpha, want[i].alpha);
        assert_int_equal(c.numeric, want[i].numeric);
        assert_int_equal(c.digits, want[i].digits);
    }
}

static void test_currency_unknown(void **state)
{
    static const char *const bad[] = {"XXX", "eur", "Eur", "EURO", "EU", "", " EUR", "EUR "};
    pos_currency_t c;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pos_amount_currency(bad[i], &c), -EINVAL);
    }
    assert_int_equal(pos_amount_currency(NULL, &c), -EINVAL);
}

static void test_parse_accepts(void **state)
{
    static const struct {
        const char *text;
        unsigned digits;
        int64_t minor;
    } ok[] = {
        {"12", 2, 1200},     {"12.3", 2, 1230},     {"12.30", 2, 1230},  {"0.01", 2, 1},
        {"0.1", 2, 10},      {"12.34", 2, 1234},    {"999999.99", 2, 99999999},
        {"12", 0, 12},       {"1.234", 3, 1234},    {"0.001", 3, 1},     {"10", 2, 1000},
        {"100000", 0, 100000},
        /* The largest int64: 92233720368547758.07 in cents. */
        {"92233720368547758.07", 2, INT64_MAX},
        {"9223372036854775807", 0, INT64_MAX},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v;
        assert_int_equal(parse(ok[i].text, ok[i].digits, NO_MAX, 0, &v), 0);
        assert_true(v == ok[i].minor);
    }
}

static void test_parse_rejects_syntax(void **state)
{
    static const struct {
        const char *text;
        unsigned digits;
    } bad[] = {
        {"", 2},       {"-1", 2},     {"-0.01", 2},  {"+1", 2},     {"1e2", 2},    {"1E2", 2},
        {"1.5e1", 2},  {"1,00", 2},   {"1 000", 2},  {" 1", 2},     {"1 ", 2},     {"\t1", 2},
        {"1\n", 2},    {"1.2.3", 2},  {"1..2", 2},   {"1.", 2},     {".5", 2},     {".", 2},
        {"abc", 2},    {"12a", 2},    {"0x10", 2},   {"012", 2},    {"00.5", 2},   {"1.234", 2},
        {"1.5", 0},    {"12.0", 0},   {"1.2345", 3}, {"NaN", 2},    {"Infinity", 2}, {"١٢", 2},
        {"1.0\xC2\xA0", 2},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        assert_int_equal(parse(bad[i].text, bad[i].digits, NO_MAX, 0, &v), -EINVAL);
        assert_true(v == -777); /* untouched */
    }
}

static void test_parse_rejects_range(void **state)
{
    int64_t v;
    (void)state;
    /* Zero is not a payment. */
    assert_int_equal(parse("0", 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(parse("0.00", 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(parse("0.0", 2, NO_MAX, 0, &v), -ERANGE);
    /* The configured limit, inclusive. */
    assert_int_equal(parse("1000.00", 2, 100000, 0, &v), 0);
    assert_true(v == 100000);
    assert_int_equal(parse("1000.01", 2, 100000, 0, &v), -ERANGE);
    assert_true(v == -777);
    /* int64 overflow: fits as an integer but not once scaled to cents. */
    assert_int_equal(parse("9223372036854775807", 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(parse("92233720368547758.08", 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(parse("9223372036854775808", 0, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(parse("99999999999999999999999999999", 2, NO_MAX, 0, &v), -ERANGE);
    assert_true(v == -777);
    /* Syntax is judged before size. */
    assert_int_equal(parse("99999999999999999999999999999x", 2, NO_MAX, 0, &v), -EINVAL);
}

static void test_parse_zero_ok_and_len(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(parse("0", 2, NO_MAX, POS_AMOUNT_ZERO_OK, &v), 0);
    assert_true(v == 0);
    assert_int_equal(parse("0.00", 2, NO_MAX, POS_AMOUNT_ZERO_OK, &v), 0);
    assert_true(v == 0);
    assert_int_equal(parse("-0", 2, NO_MAX, POS_AMOUNT_ZERO_OK, &v), -EINVAL);
    /* Only len bytes are read: no NUL needed, and none tolerated inside. */
    assert_int_equal(pos_amount_parse("12.34xyz", 5, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 1234);
    assert_int_equal(pos_amount_parse("1\0", 2, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_parse("12", 0, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_parse(NULL, 2, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_parse("12", 2, POS_AMOUNT_MAX_DIGITS + 1, NO_MAX, 0, &v),
                     -EINVAL);
}

static void test_from_double(void **state)
{
    int64_t v;
    volatile double a = 0.1, b = 0.2; /* volatile: computed at run time */
    (void)state;

    assert_int_equal(pos_amount_from_double(12.34, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 1234);
    assert_int_equal(pos_amount_from_double(12.3, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 1230);
    assert_int_equal(pos_amount_from_double(0.01, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 1);
    /* 0.1 + 0.2 is 0.30000000000000004: one ulp off 0.30, still 30 cents. */
    assert_true(a + b != 0.3);
    assert_int_equal(pos_amount_from_double(a + b, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 30);
    /* The double of 1e2 is 100: the exponent is only visible in text. */
    assert_int_equal(pos_amount_from_double(1e2, 2, NO_MAX, 0, &v), 0);
    assert_true(v == 10000);
    assert_int_equal(pos_amount_from_double(12.0, 0, NO_MAX, 0, &v), 0);
    assert_true(v == 12);
    assert_int_equal(pos_amount_from_double(1.234, 3, NO_MAX, 0, &v), 0);
    assert_true(v == 1234);

    v = -777;
    assert_int_equal(pos_amount_from_double(12.345, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(12.5, 0, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(0.001, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(0.301, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(NAN, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(INFINITY, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(-INFINITY, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(-1.0, 2, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(-0.0, 2, NO_MAX, POS_AMOUNT_ZERO_OK, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(1.0, 5, NO_MAX, 0, &v), -EINVAL);
    assert_int_equal(pos_amount_from_double(0.0, 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(pos_amount_from_double(1e300, 2, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(pos_amount_from_double(9223372036854775807.0, 0, NO_MAX, 0, &v), -ERANGE);
    assert_int_equal(pos_amount_from_double(1000.01, 2, 100000, 0, &v), -ERANGE);
    assert_true(v == -777);

    assert_int_equal(pos_amount_from_double(0.0, 2, NO_MAX, POS_AMOUNT_ZERO_OK, &v), 0);
    assert_true(v == 0);
    assert_int_equal(pos_amount_from_double(1000.00, 2, 100000, 0, &v), 0);
    assert_true(v == 100000);
}

static void test_from_double_every_cent(void **state)
{
    (void)state;
    /* k / 100.0 is never exact in binary, yet each must come back as k. */
    for (int64_t k = 1; k <= 200000; k++) {
        int64_t v = -1;
        assert_int_equal(pos_amount_from_double((double)k / 100.0, 2, NO_MAX, 0, &v), 0);
        assert_true(v == k);
    }
}

static void test_format(void **state)
{
    static const struct {
        int64_t minor;
        unsigned digits;
        const char *text;
    } cases[] = {
        {1234, 2, "12.34"},
        {1230, 2, "12.30"},
        {1, 2, "0.01"},
        {0, 2, "0.00"},
        {12, 0, "12"},
        {0, 0, "0"},
        {1234, 3, "1.234"},
        {5, 3, "0.005"},
        {-5, 2, "-0.05"},
        {INT64_MAX, 2, "92233720368547758.07"},
        {INT64_MIN, 0, "-9223372036854775808"},
        {INT64_MIN, 4, "-922337203685477.5808"},
    };
    char buf[POS_AMOUNT_TEXT_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = pos_amount_format(cases[i].minor, cases[i].digits, buf, sizeof(buf));
        assert_int_equal(n, (int)strlen(cases[i].text));
        assert_string_equal(buf, cases[i].text);
    }
}

static void test_format_errors(void **state)
{
    char buf[8];
    (void)state;
    assert_int_equal(pos_amount_format(1234, 2, buf, 6), 5); /* "12.34" + NUL fits */
    assert_int_equal(pos_amount_format(1234, 2, buf, 5), -ENOSPC);
    assert_string_equal(buf, "");
    assert_int_equal(pos_amount_format(1234, 2, NULL, 0), -ENOSPC);
    assert_int_equal(pos_amount_format(1, POS_AMOUNT_MAX_DIGITS + 1, buf, sizeof(buf)), -EINVAL);
}

static void test_round_trip(void **state)
{
    static const unsigned digits[] = {0, 2, 3};
    (void)state;
    for (size_t d = 0; d < sizeof(digits) / sizeof(digits[0]); d++) {
        for (int64_t k = 1; k < 5000000; k = k * 3 + 1) {
            char buf[POS_AMOUNT_TEXT_MAX];
            int64_t v = 0;
            int n = pos_amount_format(k, digits[d], buf, sizeof(buf));
            assert_true(n > 0);
            assert_int_equal(pos_amount_parse(buf, (size_t)n, digits[d], NO_MAX, 0, &v), 0);
            assert_true(v == k);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_currency_table),
        cmocka_unit_test(test_currency_unknown),
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_rejects_syntax),
        cmocka_unit_test(test_parse_rejects_range),
        cmocka_unit_test(test_parse_zero_ok_and_len),
        cmocka_unit_test(test_from_double),
        cmocka_unit_test(test_from_double_every_cent),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_errors),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
