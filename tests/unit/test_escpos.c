/* Unit tests for hal/escpos: golden bytes of each command, status parsing, a whole receipt. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hal/buf.h"
#include "hal/escpos.h"
#include "hal/receipt.h"

#define GOLDEN(buf, ...)                                                                           \
    do {                                                                                           \
        static const uint8_t want_[] = {__VA_ARGS__};                                              \
        assert_int_equal((buf)->len, sizeof(want_));                                               \
        assert_memory_equal((buf)->data, want_, sizeof(want_));                                    \
    } while (0)

static int setup(void **state)
{
    static pos_buf_t b;
    pos_buf_init(&b, 0);
    *state = &b;
    return 0;
}

static int teardown(void **state)
{
    pos_buf_free(*state);
    return 0;
}

static void test_simple_commands(void **state)
{
    pos_buf_t *b = *state;

    assert_int_equal(pos_escpos_init(b), 0);
    GOLDEN(b, 0x1B, 0x40);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_codepage(b, POS_CP_858), 0);
    GOLDEN(b, 0x1B, 0x74, 19);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_codepage(b, POS_CP_437), 0);
    GOLDEN(b, 0x1B, 0x74, 0);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_codepage(b, (pos_codepage_t)9), -EINVAL);
    assert_int_equal(b->len, 0);
    assert_int_equal(pos_escpos_align(b, POS_ALIGN_CENTER), 0);
    GOLDEN(b, 0x1B, 0x61, 1);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_align(b, POS_ALIGN_RIGHT), 0);
    GOLDEN(b, 0x1B, 0x61, 2);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_bold(b, true), 0);
    assert_int_equal(pos_escpos_bold(b, false), 0);
    GOLDEN(b, 0x1B, 0x45, 1, 0x1B, 0x45, 0);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_size(b, true, true), 0);
    assert_int_equal(pos_escpos_size(b, true, false), 0);
    assert_int_equal(pos_escpos_size(b, false, true), 0);
    assert_int_equal(pos_escpos_size(b, false, false), 0);
    GOLDEN(b, 0x1D, 0x21, 0x11, 0x1D, 0x21, 0x10, 0x1D, 0x21, 0x01, 0x1D, 0x21, 0x00);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_lf(b), 0);
    assert_int_equal(pos_escpos_feed(b, 3), 0);
    GOLDEN(b, 0x0A, 0x1B, 0x64, 3);
}

static void test_text_is_transcoded_and_defanged(void **state)
{
    pos_buf_t *b = *state;
    const char *s = "5\xe2\x82\xac \x1dV\x42\x00";

    /* GS V inside text must not cut the paper: GS becomes '?'. */
    assert_int_equal(pos_escpos_text(b, POS_CP_858, s, 9), 0);
    GOLDEN(b, '5', 0xD5, ' ', '?', 'V', 'B', '?');
}

static void test_long_text_chunks(void **state)
{
    pos_buf_t *b = *state;
    char s[301];

    /* 150 two-byte characters: more than one internal chunk. */
    for (int i = 0; i < 150; i++) {
        s[2 * i] = (char)0xC3;
        s[2 * i + 1] = (char)0xA9;
    }
    s[300] = '\0';
    assert_int_equal(pos_escpos_text(b, POS_CP_437, s, 300), 0);
    assert_int_equal(b->len, 150);
    for (size_t i = 0; i < b->len; i++) {
        assert_int_equal(b->data[i], 0x82);
    }
}

static void test_cut_per_model(void **state)
{
    pos_buf_t *b = *state;

    assert_int_equal(pos_escpos_cut(b, pos_escpos_model_find("tm-t20")), 0);
    GOLDEN(b, 0x1D, 0x56, 66, 0);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_cut(b, pos_escpos_model_find("tm-t88")), 0);
    GOLDEN(b, 0x1D, 0x56, 66, 0);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_cut(b, NULL), 0);
    GOLDEN(b, 0x1D, 0x56, 66, 0);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_cut(b, pos_escpos_model_find("legacy")), 0);
    GOLDEN(b, 0x1B, 0x64, 4, 0x1D, 0x56, 1);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_cut(b, pos_escpos_model_find("esc-i")), 0);
    GOLDEN(b, 0x1B, 0x64, 4, 0x1B, 0x69);
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_cut(b, pos_escpos_model_find("no-cut")), 0);
    GOLDEN(b, 0x1B, 0x64, 4);
    assert_null(pos_escpos_model_find("tm-x9000"));
    assert_string_equal(pos_escpos_model_find("")->name, "generic");
}

static void test_qr(void **state)
{
    pos_buf_t *b = *state;

    assert_int_equal(pos_escpos_qr(b, (const uint8_t *)"tx-1", 4, 6), 0);
    /* clang-format off */
    GOLDEN(b,
           /* model 2 */ 0x1D, 0x28, 0x6B, 4, 0, 49, 65, 50, 0,
           /* size 6 */ 0x1D, 0x28, 0x6B, 3, 0, 49, 67, 6,
           /* level M */ 0x1D, 0x28, 0x6B, 3, 0, 49, 69, 49,
           /* store */ 0x1D, 0x28, 0x6B, 7, 0, 49, 80, 48, 't', 'x', '-', '1',
           /* print */ 0x1D, 0x28, 0x6B, 3, 0, 49, 81, 48);
    /* clang-format on */
    pos_buf_reset(b);
    assert_int_equal(pos_escpos_qr(b, (const uint8_t *)"x", 1, 0), -EINVAL);
    assert_int_equal(pos_escpos_qr(b, (const uint8_t *)"x", 1, 17), -EINVAL);
    assert_int_equal(pos_escpos_qr(b, (const uint8_t *)"x", 0, 3), -EINVAL);
    assert_int_equal(b->len, 0);
}

static void test_qr_long_payload_length_bytes(void **state)
{
    pos_buf_t *b = *state;
    uint8_t data[300];

    memset(data, 'A', sizeof(data));
    assert_int_equal(pos_escpos_qr(b, data, sizeof(data), 3), 0);
    /* Store header at offset 9 + 8 + 8: pL pH = 303 = 0x012F. */
    assert_int_equal(b->data[25 + 3], 0x2F);
    assert_int_equal(b->data[25 + 4], 0x01);
    assert_int_equal(b->len, 9 + 8 + 8 + 8 + 300 + 8);
}

static void test_status_query(void **state)
{
    pos_buf_t *b = *state;

    for (uint8_t n = 1; n <= 4; n++) {
        assert_int_equal(pos_escpos_status_query(b, n), 0);
    }
    GOLDEN(b, 0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 3, 0x10, 0x04, 4);
    assert_int_equal(pos_escpos_status_query(b, 0), -EINVAL);
    assert_int_equal(pos_escpos_status_query(b, 5), -EINVAL);
}

static void test_status_parse_ready(void **state)
{
    pos_printer_status_t st;
    (void)state;

    pos_escpos_status_clear(&st);
    assert_string_equal(pos_escpos_status_state(&st), "offline");
    assert_int_equal(pos_escpos_status_parse(1, 0x12, &st), 0);
    assert_int_equal(pos_escpos_status_parse(2, 0x12, &st), 0);
    assert_int_equal(pos_escpos_status_parse(3, 0x12, &st), 0);
    assert_int_equal(pos_escpos_status_parse(4, 0x12, &st), 0);
    assert_true(st.online);
    assert_false(st.cover_open);
    assert_false(st.paper_end);
    assert_int_equal(st.have, 0x1E);
    assert_string_equal(pos_escpos_status_state(&st), "ready");
}

static void test_status_parse_bits(void **state)
{
    pos_printer_status_t st;
    (void)state;

    pos_escpos_status_clear(&st);
    /* n=1: offline (bit 3), drawer pin high (bit 2), feed button (bit 6). */
    assert_int_equal(pos_escpos_status_parse(1, 0x12 | 0x08 | 0x04 | 0x40, &st), 0);
    assert_false(st.online);
    assert_true(st.drawer_pin3_high);
    assert_true(st.feed_button);
    assert_string_equal(pos_escpos_status_state(&st), "offline");
    /* n=2: cover open (bit 2) wins over plain offline. */
    assert_int_equal(pos_escpos_status_parse(2, 0x12 | 0x04, &st), 0);
    assert_true(st.cover_open);
    assert_string_equal(pos_escpos_status_state(&st), "cover_open");
    assert_int_equal(pos_escpos_status_parse(2, 0x12, &st), 0);
    assert_false(st.cover_open);
    /* n=4: near end (0x0C) then end (0x60). */
    assert_int_equal(pos_escpos_status_parse(1, 0x12, &st), 0);
    assert_int_equal(pos_escpos_status_parse(4, 0x12 | 0x0C, &st), 0);
    assert_true(st.paper_near_end);
    assert_false(st.paper_end);
    assert_string_equal(pos_escpos_status_state(&st), "paper_low");
    assert_int_equal(pos_escpos_status_parse(4, 0x12 | 0x0C | 0x60, &st), 0);
    assert_true(st.paper_end);
    assert_string_equal(pos_escpos_status_state(&st), "paper_out");
    /* n=3: autocutter error. */
    pos_escpos_status_clear(&st);
    assert_int_equal(pos_escpos_status_parse(3, 0x12 | 0x08, &st), 0);
    assert_true(st.autocutter_error);
    assert_string_equal(pos_escpos_status_state(&st), "error");
    assert_int_equal(pos_escpos_status_parse(3, 0x12 | 0x20, &st), 0);
    assert_true(st.unrecoverable_error);
    assert_false(st.autocutter_error);
}

static void test_status_rejects_bad_fixed_bits(void **state)
{
    pos_printer_status_t st, before;
    (void)state;

    pos_escpos_status_clear(&st);
    assert_int_equal(pos_escpos_status_parse(1, 0x12, &st), 0);
    before = st;
    /* Exactly the bytes with bits 0,7 = 0 and 1,4 = 1 pass: 16 of 256. */
    int accepted = 0;
    for (int byte = 0; byte < 256; byte++) {
        int rc = pos_escpos_status_parse(2, (uint8_t)byte, &st);
        assert_int_equal(pos_escpos_status_is_reply((uint8_t)byte), rc == 0);
        if (rc == 0) {
            accepted++;
            assert_int_equal(byte & 0x93, 0x12);
        } else {
            assert_int_equal(rc, -EBADMSG);
            assert_int_not_equal(byte & 0x93, 0x12);
        }
    }
    assert_int_equal(accepted, 16);
    /* A rejected byte leaves the status untouched. */
    pos_escpos_status_clear(&st);
    st = before;
    assert_int_equal(pos_escpos_status_parse(4, 0x00, &st), -EBADMSG);
    assert_int_equal(pos_escpos_status_parse(4, 0xFF, &st), -EBADMSG);
    assert_int_equal(pos_escpos_status_parse(4, 0x13, &st), -EBADMSG);
    assert_int_equal(pos_escpos_status_parse(4, 0x92, &st), -EBADMSG);
    assert_memory_equal(&st, &before, sizeof(st));
    assert_int_equal(pos_escpos_status_parse(5, 0x12, &st), -EINVAL);
    assert_int_equal(pos_escpos_status_parse(0, 0x12, &st), -EINVAL);
}

static void test_fixed_buffer_overflow_is_sticky(void **state)
{
    uint8_t storage[5];
    pos_buf_t b;
    (void)state;

    pos_buf_init_fixed(&b, storage, sizeof(storage));
    assert_int_equal(pos_escpos_init(&b), 0);
    assert_int_equal(pos_escpos_bold(&b, true), 0);
    assert_int_equal(pos_escpos_lf(&b), -ENOSPC);
    assert_int_equal(pos_escpos_init(&b), -ENOSPC);
    assert_int_equal(b.len, 5);
    assert_int_equal(b.error, -ENOSPC);
}

static void test_complete_receipt(void **state)
{
    pos_buf_t *b = *state;
    static pos_receipt_doc_t doc;
    const pos_receipt_item_t items[] = {{"Caf\xc3\xa9", 2, 500}};
    pos_receipt_input_t in = {
        .store_id = "S-042",
        .terminal_id = "T-0001",
        .transaction_id = "tx-1",
        .items = items,
        .n_items = 1,
        .total_minor = 500,
        .currency = "EUR",
        .minor_digits = 2,
        .masked_pan = "497010XXXXXX1234",
        .card_brand = "VISA",
        .auth_code = "A1B2C3",
        .time_s = 1764412800, /* 2025-11-29 10:40:00 UTC */
        .width = 32,
    };

    assert_int_equal(pos_receipt_layout(&in, &doc), 0);
    assert_int_equal(
        pos_receipt_render_escpos(&doc, pos_escpos_model_find("tm-t20"), POS_CP_858, true, b), 0);
    /* One printed line per source line: */
    /* clang-format off */
    GOLDEN(b,
           0x1B, 0x40, 0x1B, 0x74, 19,
           /* store id: centred, bold, double */
           0x1B, 0x61, 1, 0x1B, 0x45, 1, 0x1D, 0x21, 0x11, 'S', '-', '0', '4', '2', 0x0A,
           0x1B, 0x61, 0, 0x1B, 0x45, 0, 0x1D, 0x21, 0x00,
           'T', 'e', 'r', 'm', 'i', 'n', 'a', 'l', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'T', '-', '0', '0', '0', '1', 0x0A,
           'T', 'r', 'a', 'n', 's', 'a', 'c', 't', 'i', 'o', 'n', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 't', 'x', '-', '1', 0x0A,
           'D', 'a', 't', 'e', ' ', ' ', ' ', ' ', ' ', '2', '0', '2', '5', '-', '1', '1',
           '-', '2', '9', ' ', '1', '0', ':', '4', '0', ':', '0', '0', ' ', 'U', 'T', 'C', 0x0A,
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-',
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 0x0A,
           '2', ' ', 'x', ' ', 'C', 'a', 'f', 0x82, ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '5', '.', '0', '0', 0x0A,
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-',
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 0x0A,
           /* total: bold, double (16 columns) */
           0x1B, 0x45, 1, 0x1D, 0x21, 0x11,
           'T', 'O', 'T', 'A', 'L', ' ', ' ', ' ', 'E', 'U', 'R', ' ', '5', '.', '0', '0', 0x0A,
           0x1B, 0x45, 0, 0x1D, 0x21, 0x00,
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-',
           '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 0x0A,
           'C', 'a', 'r', 'd', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'V', 'I', 'S', 'A', 0x0A,
           'P', 'A', 'N', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           '4', '9', '7', '0', '1', '0', 'X', 'X', 'X', 'X', 'X', 'X', '1', '2', '3', '4', 0x0A,
           'A', 'u', 't', 'h', ' ', 'c', 'o', 'd', 'e', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
           ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', 'A', '1', 'B', '2', 'C', '3', 0x0A,
           0x1B, 0x61, 1, 0x1B, 0x45, 1, 'A', 'P', 'P', 'R', 'O', 'V', 'E', 'D', 0x0A,
           0x1B, 0x45, 0, 'T', 'h', 'a', 'n', 'k', ' ', 'y', 'o', 'u', 0x0A,
           /* QR of the transaction id, centred after one line of feed */
           0x1B, 0x64, 1,
           0x1D, 0x28, 0x6B, 4, 0, 49, 65, 50, 0,
           0x1D, 0x28, 0x6B, 3, 0, 49, 67, 6,
           0x1D, 0x28, 0x6B, 3, 0, 49, 69, 49,
           0x1D, 0x28, 0x6B, 7, 0, 49, 80, 48, 't', 'x', '-', '1',
           0x1D, 0x28, 0x6B, 3, 0, 49, 81, 48, 0x0A,
           0x1B, 0x61, 0,
           0x1D, 0x56, 66, 0);
    /* clang-format on */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simple_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_is_transcoded_and_defanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_text_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_per_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qr_long_payload_length_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_query, setup, teardown),
        cmocka_unit_test(test_status_parse_ready),
        cmocka_unit_test(test_status_parse_bits),
        cmocka_unit_test(test_status_rejects_bad_fixed_bits),
        cmocka_unit_test(test_fixed_buffer_overflow_is_sticky),
        cmocka_unit_test_setup_teardown(test_complete_receipt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
