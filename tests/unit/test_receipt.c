/* Unit tests for hal/receipt: amounts, time, PAN guard, layout, both renderers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hal/buf.h"
#include "hal/receipt.h"

static pos_receipt_doc_t doc;

/* memmem() is a GNU extension; the tests stay in strict C11 + POSIX. */
static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static const pos_receipt_item_t items[] = {
    {"Espresso", 2, 500},
    {"Croissant", 1, 234},
};

static pos_receipt_input_t base_input(void)
{
    pos_receipt_input_t in = {
        .store_id = "S-042",
        .terminal_id = "T-0001",
        .transaction_id = "tx-1001",
        .items = items,
        .n_items = 2,
        .total_minor = 734,
        .currency = "EUR",
        .minor_digits = 2,
        .masked_pan = "497010XXXXXX1234",
        .card_brand = "VISA",
        .auth_code = "123456",
        .time_s = 1764412800,
        .width = 32,
    };
    return in;
}

static void check_amount(int64_t v, unsigned digits, const char *want)
{
    char out[32];
    int n = pos_receipt_format_amount(v, digits, out, sizeof(out));
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_format_amount(void **state)
{
    char small[4];
    (void)state;
    check_amount(1234, 2, "12.34");
    check_amount(5, 2, "0.05");
    check_amount(0, 2, "0.00");
    check_amount(-5, 2, "-0.05");
    check_amount(-1234, 2, "-12.34");
    check_amount(1234, 0, "1234");
    check_amount(1234, 3, "1.234");
    check_amount(100, 2, "1.00");
    check_amount(INT64_MAX, 2, "92233720368547758.07");
    check_amount(INT64_MIN, 2, "-92233720368547758.08");
    assert_int_equal(pos_receipt_format_amount(1234, 2, small, sizeof(small)), -ENOSPC);
    assert_int_equal(pos_receipt_format_amount(1, 19, small, sizeof(small)), -EINVAL);
}

static void check_time(int64_t t, const char *want)
{
    char out[24];
    assert_int_equal(pos_receipt_format_time(t, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_format_time(void **state)
{
    char out[24];
    (void)state;
    check_time(0, "1970-01-01 00:00:00");
    check_time(1764412800, "2025-11-29 10:40:00");
    check_time(951782400, "2000-02-29 00:00:00");  /* leap day of a /400 year */
    check_time(4107542399, "2100-02-28 23:59:59"); /* 2100 is not leap */
    check_time(4107542400, "2100-03-01 00:00:00");
    check_time(-1, "1969-12-31 23:59:59");
    check_time(2147483648, "2038-01-19 03:14:08"); /* past 32-bit time_t */
    check_time(253402300799, "9999-12-31 23:59:59");
    assert_int_equal(pos_receipt_format_time(253402300800, out, sizeof(out)), -ERANGE);
    assert_int_equal(pos_receipt_format_time(INT64_MIN, out, sizeof(out)), -ERANGE);
    assert_int_equal(pos_receipt_format_time(0, out, 19), -ENOSPC);
}

static void test_check_pan(void **state)
{
    (void)state;
    assert_int_equal(pos_receipt_check_pan(NULL), 0);
    assert_int_equal(pos_receipt_check_pan(""), 0);
    assert_int_equal(pos_receipt_check_pan("497010XXXXXX1234"), 0);
    assert_int_equal(pos_receipt_check_pan("**** **** **** 1234"), 0);
    assert_int_equal(pos_receipt_check_pan("4970101234567890"), -EINVAL);
    assert_int_equal(pos_receipt_check_pan("497010X234561234"), -EINVAL); /* 15 digits */
    assert_int_equal(pos_receipt_check_pan("4970101XXXXX1234"), -EINVAL); /* 11 digits */
    assert_int_equal(pos_receipt_check_pan("4970-10XX-XXXX-1234"), -EINVAL);
}

static void test_layout_refuses_full_pan(void **state)
{
    pos_receipt_input_t in = base_input();
    (void)state;
    in.masked_pan = "4970101234561234";
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    assert_int_equal(doc.n_lines, 0);
    in.masked_pan = "4970 1012 3456 1234";
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in.masked_pan = "497010XXXXXX1234";
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
}

static void test_layout_refuses_bad_input(void **state)
{
    pos_receipt_input_t in;
    (void)state;
    in = base_input();
    in.width = 19;
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in = base_input();
    in.width = 49;
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in = base_input();
    in.currency = "euro";
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in = base_input();
    in.minor_digits = 5;
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in = base_input();
    in.transaction_id = "";
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
    in = base_input();
    in.items = NULL;
    assert_int_equal(pos_receipt_layout(&in, &doc), -EINVAL);
}

static char *render_text(const pos_receipt_doc_t *d)
{
    static char text[16384];
    pos_buf_t b;
    pos_buf_init_fixed(&b, (uint8_t *)text, sizeof(text) - 1);
    assert_int_equal(pos_receipt_render_text(d, &b), 0);
    text[b.len] = '\0';
    return text;
}

static void test_text_32(void **state)
{
    pos_receipt_input_t in = base_input();
    (void)state;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    const char *want = "          S-042\n"
                       "Terminal                  T-0001\n"
                       "Transaction              tx-1001\n"
                       "Date     2025-11-29 10:40:00 UTC\n"
                       "--------------------------------\n"
                       "2 x Espresso                5.00\n"
                       "1 x Croissant               2.34\n"
                       "--------------------------------\n"
                       "TOTAL   EUR 7.34\n"
                       "--------------------------------\n"
                       "Card                        VISA\n"
                       "PAN             497010XXXXXX1234\n"
                       "Auth code                 123456\n"
                       "            APPROVED\n"
                       "           Thank you\n";
    assert_string_equal(render_text(&doc), want);
    assert_string_equal(doc.qr, "tx-1001");
}

static void test_text_48_jpy_long_names(void **state)
{
    const pos_receipt_item_t jp[] = {
        {"A very long article name that cannot possibly fit on one line", 3, 1500000},
        {"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65", 1, 800},
    };
    pos_receipt_input_t in = base_input();
    (void)state;
    in.items = jp;
    in.n_items = 2;
    in.currency = "JPY";
    in.minor_digits = 0;
    in.total_minor = 1500800;
    in.width = 48;
    in.masked_pan = NULL;
    in.card_brand = NULL;
    in.auth_code = NULL;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    const char *t = render_text(&doc);
    /* Name shortened, amount kept whole at the right edge. */
    assert_non_null(strstr(t, "\n3 x A very long article name that cannot 1500000\n"));
    assert_non_null(
        strstr(t, "\n1 x Cr\303\250me br\303\273l\303\251e                             800\n"));
    assert_non_null(strstr(t, "\nTOTAL        JPY 1500800\n"));
    assert_null(strstr(t, "PAN"));
    assert_null(strstr(t, "Card"));
    /* Every line fits the paper. */
    for (size_t i = 0; i < doc.n_lines; i++) {
        size_t cols = pos_charset_columns(doc.lines[i].text, strlen(doc.lines[i].text));
        assert_true(cols <= (doc.lines[i].double_size ? 24u : 48u));
    }
}

static void test_big_total_not_double(void **state)
{
    pos_receipt_input_t in = base_input();
    (void)state;
    in.total_minor = 123456789012;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    assert_non_null(strstr(render_text(&doc), "\nTOTAL          EUR 1234567890.12\n"));
}

static void test_controls_sanitised(void **state)
{
    const pos_receipt_item_t bad[] = {{"Evil\033d\005\035V", 1, 100}};
    pos_receipt_input_t in = base_input();
    pos_buf_t b;
    (void)state;
    in.items = bad;
    in.n_items = 1;
    in.auth_code = "12\n34";
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    for (size_t i = 0; i < doc.n_lines; i++) {
        for (const char *p = doc.lines[i].text; *p; p++) {
            assert_true((unsigned char)*p >= 0x20);
        }
    }
    assert_non_null(strstr(render_text(&doc), "1 x Evil?d??V"));
    assert_non_null(strstr(render_text(&doc), "12?34\n"));
    /* In the ESC/POS output, no ESC d or GS V comes from the text. */
    pos_buf_init(&b, 0);
    assert_int_equal(pos_receipt_render_escpos(&doc, NULL, POS_CP_437, false, &b), 0);
    const uint8_t *hit = find(b.data, b.len, "Evil", 4);
    assert_non_null(hit);
    assert_memory_equal(hit, "Evil?d??V", 9);
    pos_buf_free(&b);
}

static void test_long_transaction_id_two_lines(void **state)
{
    pos_receipt_input_t in = base_input();
    (void)state;
    in.transaction_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    assert_non_null(strstr(render_text(&doc), "\nTransaction\n0f8fad5b-d9cb-469f-a165-70867728\n"));
    assert_string_equal(doc.qr, "0f8fad5b-d9cb-469f-a165-70867728950e");
}

static void test_too_many_items(void **state)
{
    static pos_receipt_item_t many[POS_RECEIPT_MAX_LINES];
    pos_receipt_input_t in = base_input();
    (void)state;
    for (size_t i = 0; i < POS_RECEIPT_MAX_LINES; i++) {
        many[i].name = "x";
        many[i].qty = 1;
        many[i].amount_minor = 1;
    }
    in.items = many;
    in.n_items = POS_RECEIPT_MAX_LINES;
    assert_int_equal(pos_receipt_layout(&in, &doc), -E2BIG);
    assert_int_equal(doc.n_lines, 0);
    in.n_items = POS_RECEIPT_MAX_LINES - 20;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
}

static void test_escpos_qr_only_when_supported(void **state)
{
    pos_receipt_input_t in = base_input();
    pos_buf_t b;
    static const uint8_t qr_store[] = {0x1D, 0x28, 0x6B, 10, 0, 49, 80, 48};
    (void)state;
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    pos_buf_init(&b, 0);
    assert_int_equal(
        pos_receipt_render_escpos(&doc, pos_escpos_model_find("generic"), POS_CP_858, true, &b), 0);
    assert_non_null(find(b.data, b.len, qr_store, sizeof(qr_store)));
    /* Ends with the cut; starts with init and code page. */
    assert_memory_equal(b.data + b.len - 4, "\x1dV\x42\x00", 4);
    assert_memory_equal(b.data, "\x1b@\x1bt\x13", 5);
    pos_buf_reset(&b);
    assert_int_equal(
        pos_receipt_render_escpos(&doc, pos_escpos_model_find("legacy"), POS_CP_437, true, &b), 0);
    assert_null(find(b.data, b.len, qr_store, sizeof(qr_store)));
    assert_memory_equal(b.data + b.len - 6, "\033d\004\035V\001", 6);
    pos_buf_reset(&b);
    assert_int_equal(pos_receipt_render_escpos(&doc, NULL, POS_CP_437, false, &b), 0);
    assert_null(find(b.data, b.len, qr_store, sizeof(qr_store)));
    pos_buf_free(&b);
}

static void test_doc_never_holds_full_pan(void **state)
{
    pos_receipt_input_t in = base_input();
    (void)state;
    /* Whatever is accepted, no run of more than 10 digits ever reaches a line. */
    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    for (size_t i = 0; i < doc.n_lines; i++) {
        int run = 0, max = 0;
        for (const char *p = doc.lines[i].text; *p; p++) {
            run = (*p >= '0' && *p <= '9') ? run + 1 : 0;
            max = run > max ? run : max;
        }
        assert_true(max <= 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_amount),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_check_pan),
        cmocka_unit_test(test_layout_refuses_full_pan),
        cmocka_unit_test(test_layout_refuses_bad_input),
        cmocka_unit_test(test_text_32),
        cmocka_unit_test(test_text_48_jpy_long_names),
        cmocka_unit_test(test_big_total_not_double),
        cmocka_unit_test(test_controls_sanitised),
        cmocka_unit_test(test_long_transaction_id_two_lines),
        cmocka_unit_test(test_too_many_items),
        cmocka_unit_test(test_escpos_qr_only_when_supported),
        cmocka_unit_test(test_doc_never_holds_full_pan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
