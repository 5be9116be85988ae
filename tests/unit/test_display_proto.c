/* Unit tests for hal/display_proto: minimal rewrites, both command sets, decode(encode(x)). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hal/buf.h"
#include "hal/display_proto.h"

#define GOLDEN(buf, ...)                                                                           \
    do {                                                                                           \
        static const uint8_t want_[] = {__VA_ARGS__};                                              \
        assert_int_equal((buf)->len, sizeof(want_));                                               \
        assert_memory_equal((buf)->data, want_, sizeof(want_));                                    \
    } while (0)

static void assert_line(const pos_display_decoder_t *d, int row, const char *want20)
{
    assert_int_equal(strlen(want20), POS_DISPLAY_COLS);
    assert_memory_equal(d->text[row], want20, POS_DISPLAY_COLS);
}

static void test_cmdset_parse(void **state)
{
    (void)state;
    assert_int_equal(pos_display_cmdset_parse("cd5220"), POS_DISPLAY_CD5220);
    assert_int_equal(pos_display_cmdset_parse("dm-d"), POS_DISPLAY_EPSON_DMD);
    assert_int_equal(pos_display_cmdset_parse("epson"), POS_DISPLAY_EPSON_DMD);
    assert_int_equal(pos_display_cmdset_parse("vfd"), -EINVAL);
}

static void test_fit_line(void **state)
{
    uint8_t out[POS_DISPLAY_COLS];
    (void)state;
    assert_int_equal(pos_display_fit_line(POS_CP_858, "Total 5\xe2\x82\xac", out), 0);
    assert_memory_equal(out, "Total 5\xd5            ", 20);
    assert_int_equal(pos_display_fit_line(POS_CP_437, "123456789012345678901234", out), 0);
    assert_memory_equal(out, "12345678901234567890", 20);
    assert_int_equal(pos_display_fit_line(POS_CP_437, NULL, out), 0);
    assert_memory_equal(out, "                    ", 20);
    assert_int_equal(pos_display_fit_line(POS_CP_437, "a\fb", out), 0);
    assert_memory_equal(out, "a?b                 ", 20);
}

static void test_dmd_golden_and_minimal(void **state)
{
    pos_display_fb_t fb;
    pos_buf_t b;
    (void)state;
    pos_buf_init(&b, 0);
    assert_int_equal(pos_display_fb_init(&fb, POS_DISPLAY_EPSON_DMD, POS_CP_858), 0);
    /* First update: reset (glass unknown), then only line 1 (line 2 is blank). */
    assert_int_equal(pos_display_fb_update(&fb, "Welcome", "", &b), 0);
    GOLDEN(&b, 0x1B, 0x40, 0x1F, 0x01, 0x1F, 0x43, 0, 0x1B, 0x74, 19, 0x0C, 0x1F, 0x24, 1, 1, 'W',
           'e', 'l', 'c', 'o', 'm', 'e', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ');
    /* Same content: nothing at all. */
    pos_buf_reset(&b);
    assert_int_equal(pos_display_fb_update(&fb, "Welcome", NULL, &b), 0);
    assert_int_equal(b.len, 0);
    /* Only the lower line changes: only it is sent. */
    assert_int_equal(pos_display_fb_update(&fb, "Welcome", "Total 12.34", &b), 0);
    GOLDEN(&b, 0x1F, 0x24, 1, 2, 'T', 'o', 't', 'a', 'l', ' ', '1', '2', '.', '3', '4', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ');
    /* Text beyond 20 columns that changes nothing visible: nothing sent. */
    pos_buf_reset(&b);
    assert_int_equal(pos_display_fb_update(&fb, "Welcome", "Total 12.34         hidden", &b), 0);
    assert_int_equal(b.len, 0);
    /* Both change: both sent, upper first. */
    assert_int_equal(pos_display_fb_update(&fb, "A", "B", &b), 0);
    assert_int_equal(b.len, 2 * 24);
    assert_memory_equal(b.data, "\037$\001\001A", 5);
    assert_memory_equal(b.data + 24, "\037$\001\002B", 5);
    pos_buf_free(&b);
}

static void test_cd5220_golden_and_minimal(void **state)
{
    pos_display_fb_t fb;
    pos_buf_t b;
    (void)state;
    pos_buf_init(&b, 0);
    assert_int_equal(pos_display_fb_init(&fb, POS_DISPLAY_CD5220, POS_CP_437), 0);
    assert_int_equal(pos_display_fb_update(&fb, "", "Next customer", &b), 0);
    GOLDEN(&b, 0x1B, 0x40, 0x0C, 0x1B, 0x51, 0x42, 'N', 'e', 'x', 't', ' ', 'c', 'u', 's', 't', 'o',
           'm', 'e', 'r', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 0x0D);
    pos_buf_reset(&b);
    assert_int_equal(pos_display_fb_update(&fb, "Caf\xc3\xa9", "Next customer", &b), 0);
    GOLDEN(&b, 0x1B, 0x51, 0x41, 'C', 'a', 'f', 0x82, ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', 0x0D);
    /* After invalidate (device replugged) everything is rewritten. */
    pos_buf_reset(&b);
    pos_display_fb_invalidate(&fb);
    assert_int_equal(pos_display_fb_update(&fb, "Caf\xc3\xa9", "Next customer", &b), 0);
    assert_int_equal(b.len, 3 + 2 * 24);
    pos_buf_free(&b);
}

static void test_update_error_marks_unknown(void **state)
{
    pos_display_fb_t fb;
    pos_buf_t b;
    uint8_t small[20];
    (void)state;
    pos_buf_init_fixed(&b, small, sizeof(small));
    assert_int_equal(pos_display_fb_init(&fb, POS_DISPLAY_CD5220, POS_CP_437), 0);
    assert_int_equal(pos_display_fb_update(&fb, "hello", "", &b), -ENOSPC);
    assert_false(fb.known);
}

/* Random-ish sequences of screens: the decoder always shows what the fb thinks. */
static void roundtrip(pos_display_cmdset_t set, pos_codepage_t cp)
{
    static const char *const screens[][2] = {
        {"Welcome", "Next customer please"},
        {"Welcome", "Total 12.34 \xe2\x82\xac"},
        {"Espresso      2.50", "Total 12.34 \xe2\x82\xac"},
        {"A line that is much too long for the glass", ""},
        {"", ""},
        {"\xc3\x89t\xc3\xa9 \xc3\xa0 Paris", "Na\xc3\xafve \x01\x1b@ ctrl"},
        {"12345678901234567890", "abcdefghijklmnopqrst"},
        {"12345678901234567890", "abcdefghijklmnopqrsT"},
    };
    pos_display_fb_t fb;
    pos_display_decoder_t d;
    pos_buf_t b;

    pos_buf_init(&b, 0);
    assert_int_equal(pos_display_fb_init(&fb, set, cp), 0);
    pos_display_decoder_init(&d, set);
    for (size_t i = 0; i < sizeof(screens) / sizeof(screens[0]); i++) {
        pos_buf_reset(&b);
        assert_int_equal(pos_display_fb_update(&fb, screens[i][0], screens[i][1], &b), 0);
        /* Feed in two pieces split at every possible place in turn. */
        size_t cut = b.len ? i % b.len : 0;
        assert_int_equal(pos_display_decode(&d, b.data, cut), 0);
        assert_int_equal(pos_display_decode(&d, b.data + cut, b.len - cut), 0);
        assert_memory_equal(d.text, fb.glass, sizeof(fb.glass));
        uint8_t want[2][POS_DISPLAY_COLS];
        pos_display_fit_line(cp, screens[i][0], want[0]);
        pos_display_fit_line(cp, screens[i][1], want[1]);
        assert_memory_equal(d.text, want, sizeof(want));
        assert_int_equal(d.unknown, 0);
    }
    if (set == POS_DISPLAY_EPSON_DMD) {
        assert_int_equal(d.table, pos_charset_escpos_table(cp));
        assert_false(d.cursor_on);
        assert_int_equal(d.mode, 1);
    }
    pos_buf_free(&b);
}

static void test_roundtrip_dmd(void **state)
{
    (void)state;
    roundtrip(POS_DISPLAY_EPSON_DMD, POS_CP_858);
    roundtrip(POS_DISPLAY_EPSON_DMD, POS_CP_437);
}

static void test_roundtrip_cd5220(void **state)
{
    (void)state;
    roundtrip(POS_DISPLAY_CD5220, POS_CP_437);
    roundtrip(POS_DISPLAY_CD5220, POS_CP_ASCII);
}

static void test_decode_dmd_commands(void **state)
{
    pos_display_decoder_t d;
    (void)state;
    pos_display_decoder_init(&d, POS_DISPLAY_EPSON_DMD);
    /* Overwrite mode: 21 characters wrap from the upper to the lower line. */
    const uint8_t a[] = "\x1b@abcdefghijklmnopqrstU";
    assert_int_equal(pos_display_decode_dmd(&d, a, sizeof(a) - 1), 0);
    assert_line(&d, 0, "abcdefghijklmnopqrst");
    assert_line(&d, 1, "U                   ");
    /* US $ 5 2 then text; CAN clears the line holding the cursor. */
    const uint8_t b[] = "\x1f$\x05\x02XY\x0b\x18";
    assert_int_equal(pos_display_decode_dmd(&d, b, sizeof(b) - 1), 0);
    assert_line(&d, 0, "                    ");
    assert_line(&d, 1, "U   XY              ");
    /* Vertical scroll mode: writing past the lower line scrolls up. */
    const uint8_t c[] = "\x0c\x1f\x02"
                        "12345678901234567890abcdefghijklmnopqrstZ";
    assert_int_equal(pos_display_decode_dmd(&d, c, sizeof(c) - 1), 0);
    assert_line(&d, 0, "abcdefghijklmnopqrst");
    assert_line(&d, 1, "Z                   ");
    assert_int_equal(d.unknown, 0);
    /* Out-of-range cursor move and unknown sequences are counted, skipped. */
    const uint8_t e[] = "\x1f$\x15\x01\x1f\x7e\x1b\x7e\x01";
    assert_int_equal(pos_display_decode_dmd(&d, e, sizeof(e) - 1), 0);
    assert_int_equal(d.unknown, 4);
    assert_int_equal(pos_display_decode_cd5220(&d, e, 1), -EINVAL);
}

static void test_decode_cd5220_commands(void **state)
{
    pos_display_decoder_t d;
    (void)state;
    pos_display_decoder_init(&d, POS_DISPLAY_CD5220);
    /* A short string clears the rest of its line. */
    const uint8_t a[] = "\x1bQAhello world       \r\x1bQBbye\r\x1bQAhi\r";
    assert_int_equal(pos_display_decode_cd5220(&d, a, sizeof(a) - 1), 0);
    assert_line(&d, 0, "hi                  ");
    assert_line(&d, 1, "bye                 ");
    /* ESC l x y positions; plain text writes at the cursor. */
    const uint8_t b[] = "\x1bl\x03\x02ZZ";
    assert_int_equal(pos_display_decode_cd5220(&d, b, sizeof(b) - 1), 0);
    assert_line(&d, 1, "byZZ                ");
    /* CLR clears everything. */
    assert_int_equal(pos_display_decode_cd5220(&d, (const uint8_t *)"\x0c", 1), 0);
    assert_line(&d, 0, "                    ");
    assert_line(&d, 1, "                    ");
    assert_int_equal(d.unknown, 0);
    /* Too long a string: first 20 shown, the overflow counted once. */
    const uint8_t c[] = "\x1bQB0123456789012345678901234\r";
    assert_int_equal(pos_display_decode_cd5220(&d, c, sizeof(c) - 1), 0);
    assert_line(&d, 1, "01234567890123456789");
    assert_int_equal(d.unknown, 1);
    /* A control byte inside a string cuts it short and still acts. */
    const uint8_t e[] = "\x1bQAab\x0c";
    assert_int_equal(pos_display_decode_cd5220(&d, e, sizeof(e) - 1), 0);
    assert_line(&d, 0, "                    ");
    assert_int_equal(d.unknown, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmdset_parse),
        cmocka_unit_test(test_fit_line),
        cmocka_unit_test(test_dmd_golden_and_minimal),
        cmocka_unit_test(test_cd5220_golden_and_minimal),
        cmocka_unit_test(test_update_error_marks_unknown),
        cmocka_unit_test(test_roundtrip_dmd),
        cmocka_unit_test(test_roundtrip_cd5220),
        cmocka_unit_test(test_decode_dmd_commands),
        cmocka_unit_test(test_decode_cd5220_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
