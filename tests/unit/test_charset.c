/* Unit tests for hal/charset: UTF-8 decoding, code page mapping, column fitting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hal/charset.h"

static size_t tc(pos_codepage_t cp, const char *s, uint8_t *out, size_t cap)
{
    size_t n = 999;
    assert_int_equal(pos_charset_transcode(cp, s, strlen(s), '?', out, cap, &n), 0);
    return n;
}

static void test_parse_and_tables(void **state)
{
    (void)state;
    assert_int_equal(pos_charset_parse("ascii"), POS_CP_ASCII);
    assert_int_equal(pos_charset_parse("cp437"), POS_CP_437);
    assert_int_equal(pos_charset_parse("858"), POS_CP_858);
    assert_int_equal(pos_charset_parse("latin1"), -EINVAL);
    assert_int_equal(pos_charset_parse(NULL), -EINVAL);
    assert_int_equal(pos_charset_escpos_table(POS_CP_437), 0);
    assert_int_equal(pos_charset_escpos_table(POS_CP_858), 19);
    assert_int_equal(pos_charset_escpos_table((pos_codepage_t)7), -EINVAL);
}

static void test_map_known_glyphs(void **state)
{
    (void)state;
    assert_int_equal(pos_charset_map(POS_CP_437, 'A'), 'A');
    assert_int_equal(pos_charset_map(POS_CP_437, 0x00E9), 0x82); /* e acute */
    assert_int_equal(pos_charset_map(POS_CP_858, 0x00E9), 0x82);
    assert_int_equal(pos_charset_map(POS_CP_437, 0x00C7), 0x80); /* C cedilla */
    assert_int_equal(pos_charset_map(POS_CP_437, 0x00DF), 0xE1); /* sharp s */
    assert_int_equal(pos_charset_map(POS_CP_858, 0x20AC), 0xD5); /* euro, the CP858 change */
    assert_int_equal(pos_charset_map(POS_CP_437, 0x20AC), -ENOENT);
    assert_int_equal(pos_charset_map(POS_CP_858, 0x00D8), 0x9D); /* O slash */
    assert_int_equal(pos_charset_map(POS_CP_437, 0x00D8), -ENOENT);
    assert_int_equal(pos_charset_map(POS_CP_ASCII, 0x00E9), -ENOENT);
    assert_int_equal(pos_charset_map(POS_CP_437, 0x4E2D), -ENOENT);
}

static void test_controls_never_pass(void **state)
{
    (void)state;
    /* Every C0 control, DEL and every C1 control is refused by every page. */
    for (int cp = POS_CP_ASCII; cp <= POS_CP_858; cp++) {
        for (uint32_t c = 0; c < 0x20; c++) {
            assert_int_equal(pos_charset_map((pos_codepage_t)cp, c), -ENOENT);
        }
        for (uint32_t c = 0x7F; c < 0xA0; c++) {
            assert_int_equal(pos_charset_map((pos_codepage_t)cp, c), -ENOENT);
        }
    }
    uint8_t out[16];
    const char in[] = "a\x1b@b\x1dV\x7f\n\xc2\x9b";
    size_t n = 0;
    assert_int_equal(
        pos_charset_transcode(POS_CP_437, in, sizeof(in) - 1, '?', out, sizeof(out), &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(out, "a?@b?V???", 9);
}

static void test_output_bytes_are_printable(void **state)
{
    (void)state;
    /* Whatever the code point, the byte produced is 0x20..0x7E or >= 0x80. */
    for (int cp = POS_CP_ASCII; cp <= POS_CP_858; cp++) {
        for (uint32_t c = 0; c < 0x3000; c++) {
            int b = pos_charset_map((pos_codepage_t)cp, c);
            if (b >= 0) {
                assert_true((b >= 0x20 && b < 0x7F) || b >= 0x80);
            }
        }
    }
}

static void test_transcode_examples(void **state)
{
    uint8_t out[32];
    (void)state;
    size_t n = tc(POS_CP_858, "Caf\xc3\xa9 5\xe2\x82\xac", out, sizeof(out));
    assert_int_equal(n, 7);
    assert_memory_equal(out, "Caf\x82 5\xd5", 7);
    n = tc(POS_CP_437, "Caf\xc3\xa9 5\xe2\x82\xac", out, sizeof(out));
    assert_memory_equal(out, "Caf\x82 5?", 7);
    n = tc(POS_CP_ASCII, "Stra\303\237e", out, sizeof(out));
    assert_int_equal(n, 6);
    assert_memory_equal(out, "Stra?e", 6);
}

static void test_invalid_utf8(void **state)
{
    uint8_t out[32];
    size_t n;
    uint32_t c;
    (void)state;
    /* Overlong "/", surrogate, beyond U+10FFFF, stray continuation, F5. */
    n = tc(POS_CP_437, "\xc0\xaf", out, sizeof(out));
    assert_int_equal(n, 2);
    n = tc(POS_CP_437, "\xed\xa0\x80", out, sizeof(out));
    assert_int_equal(n, 3);
    assert_memory_equal(out, "???", 3);
    n = tc(POS_CP_437, "\xf4\x90\x80\x80", out, sizeof(out));
    assert_int_equal(n, 4);
    n = tc(POS_CP_437, "a\x80z", out, sizeof(out));
    assert_memory_equal(out, "a?z", 3);
    /* A truncated 3-byte sequence is one unit (maximal prefix), then 'x'. */
    n = tc(POS_CP_858, "\xe2\x82x", out, sizeof(out));
    assert_int_equal(n, 2);
    assert_memory_equal(out, "?x", 2);
    assert_int_equal(pos_charset_utf8_next("\xe2\x82", 2, &c), 2);
    assert_int_equal(c, UINT32_MAX);
    assert_int_equal(pos_charset_utf8_next("\xf0\x9f\x98\x80", 4, &c), 4);
    assert_int_equal(c, 0x1F600);
    assert_int_equal(pos_charset_utf8_next("", 0, &c), 0);
}

static void test_replacement_and_space(void **state)
{
    uint8_t out[4];
    size_t n = 0;
    (void)state;
    assert_int_equal(pos_charset_transcode(POS_CP_437, "\x01", 1, '_', out, sizeof(out), &n), 0);
    assert_int_equal(out[0], '_');
    /* A control as replacement would defeat the purpose. */
    assert_int_equal(pos_charset_transcode(POS_CP_437, "a", 1, 0x1b, out, sizeof(out), &n),
                     -EINVAL);
    assert_int_equal(pos_charset_transcode(POS_CP_437, "abcdef", 6, '?', out, sizeof(out), &n),
                     -ENOSPC);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "abcd", 4);
}

static void test_columns_and_prefix(void **state)
{
    (void)state;
    const char *s = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac"; /* "été €" */
    assert_int_equal(pos_charset_columns(s, strlen(s)), 5);
    assert_int_equal(pos_charset_prefix(s, strlen(s), 1), 2);
    assert_int_equal(pos_charset_prefix(s, strlen(s), 3), 5);
    assert_int_equal(pos_charset_prefix(s, strlen(s), 99), strlen(s));
    assert_int_equal(pos_charset_columns("a\377b", 3), 3);
}

static void test_fit(void **state)
{
    char out[64];
    size_t n = 0;
    (void)state;
    assert_int_equal(pos_charset_fit("abc", 3, 6, POS_ALIGN_LEFT, out, sizeof(out), &n), 0);
    assert_string_equal(out, "abc   ");
    assert_int_equal(n, 6);
    assert_int_equal(pos_charset_fit("abc", 3, 6, POS_ALIGN_RIGHT, out, sizeof(out), &n), 0);
    assert_string_equal(out, "   abc");
    assert_int_equal(pos_charset_fit("abc", 3, 6, POS_ALIGN_CENTER, out, sizeof(out), &n), 0);
    assert_string_equal(out, " abc  ");
    /* Truncation never splits the two-byte e-acute. */
    assert_int_equal(pos_charset_fit("ab\303\251cd", 6, 3, POS_ALIGN_LEFT, out, sizeof(out), &n),
                     0);
    assert_string_equal(out, "ab\xc3\xa9");
    assert_int_equal(n, 4);
    assert_int_equal(pos_charset_fit("abc", 3, 6, POS_ALIGN_LEFT, out, 6, &n), -ENOSPC);
    assert_int_equal(pos_charset_fit("abc", 3, 0, POS_ALIGN_LEFT, out, sizeof(out), &n), 0);
    assert_string_equal(out, "");
}

static void test_sanitize(void **state)
{
    char out[16];
    size_t n = 0;
    (void)state;
    assert_int_equal(pos_charset_sanitize("a\x1b\xc3\xa9\xff\n", 6, '?', out, sizeof(out), &n), 0);
    assert_string_equal(out, "a?\xc3\xa9??");
    assert_int_equal(n, 6);
    assert_int_equal(pos_charset_sanitize("abcdef", 6, '?', out, 4, &n), -ENOSPC);
    assert_string_equal(out, "abc");
}

/* UTF-8 of a code point below U+10000 (the invisible ones all are). */
static size_t utf8_of(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/*
 * Issue 13 item 9: U+202E (RIGHT-TO-LEFT OVERRIDE) and U+200B (ZERO WIDTH
 * SPACE) reached the display and the receipt, so a line could read
 * differently from what it holds ("Total 12.00" reversed after the
 * override, or two look-alike texts). Every such character is removed
 * before anything reaches a device: transcoded, sanitized, fitted.
 */
static void test_invisible_removed(void **state)
{
    static const uint32_t invisible[] = {
        0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E,
        0x200F, 0x061C, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x2028, 0x2029,
    };
    (void)state;
    for (size_t i = 0; i < sizeof(invisible) / sizeof(invisible[0]); i++) {
        char text[16], out[16];
        uint8_t bytes[16];
        size_t n = 0, k = 0;
        assert_true(pos_charset_invisible(invisible[i]));
        /* "a<X>b<X>": the characters around it stay, it goes. */
        text[k++] = 'a';
        k += utf8_of(invisible[i], text + k);
        text[k++] = 'b';
        k += utf8_of(invisible[i], text + k);
        text[k] = '\0';
        for (int cp = POS_CP_ASCII; cp <= POS_CP_858; cp++) {
            assert_int_equal(
                pos_charset_transcode((pos_codepage_t)cp, text, k, '?', bytes, sizeof(bytes), &n),
                0);
            assert_int_equal(n, 2);
            assert_memory_equal(bytes, "ab", 2);
        }
        assert_int_equal(pos_charset_sanitize(text, k, '?', out, sizeof(out), &n), 0);
        assert_string_equal(out, "ab");
        assert_int_equal(pos_charset_columns(text, k), 2);
        assert_int_equal(pos_charset_fit(text, k, 3, POS_ALIGN_LEFT, out, sizeof(out), &n), 0);
        assert_int_equal(pos_charset_columns(out, n), 3);
        assert_int_equal(pos_charset_sanitize(out, n, '?', out, sizeof(out), &n), 0);
        assert_string_equal(out, "ab ");
    }
    /* Their neighbours are ordinary text. */
    static const uint32_t visible[] = {0x2027, 0x202F, 0x2065, 0x206A, 0x2061, 0x200A,
                                       0x2010, 0x00AD, 0xFEFE, 0x0620, 0x061D};
    for (size_t i = 0; i < sizeof(visible) / sizeof(visible[0]); i++) {
        assert_false(pos_charset_invisible(visible[i]));
    }
    /* The attack as sent: an override in the middle of an item name. */
    const char *line = "Coffee \xe2\x80\xae"
                       "00.21 RUE\xe2\x80\x8b";
    char out[64];
    size_t n = 0;
    assert_int_equal(pos_charset_sanitize(line, strlen(line), '?', out, sizeof(out), &n), 0);
    assert_string_equal(out, "Coffee 00.21 RUE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_tables),
        cmocka_unit_test(test_map_known_glyphs),
        cmocka_unit_test(test_controls_never_pass),
        cmocka_unit_test(test_output_bytes_are_printable),
        cmocka_unit_test(test_transcode_examples),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_replacement_and_space),
        cmocka_unit_test(test_columns_and_prefix),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_invisible_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
