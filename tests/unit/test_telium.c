/* Unit tests for hal/telium: LRC, framing, decoder, request/reply codecs, PAN masking and wipe. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/msg/messages.h"
#include "hal/telium.h"

/* The worked example of docs/telium-protocol.md: 12.34 EUR, register 01. */
static const uint8_t doc_frame[] = {
    0x02, 0x30, 0x31, 0x30, 0x30, 0x30, 0x30, 0x31, 0x32, 0x33, 0x34, 0x31, 0x31,
    0x30, 0x39, 0x37, 0x38, 0x54, 0x58, 0x30, 0x30, 0x30, 0x30, 0x31, 0x30, 0x30,
    0x31, 0x41, 0x30, 0x31, 0x30, 0x42, 0x30, 0x31, 0x30, 0x03, 0x0F,
};

static const char test_pan[] = "4970101234561234"; /* test-card style number, not a real card */

static pos_telium_event_t feed_all(pos_telium_decoder_t *d, const uint8_t *p, size_t n,
                                   size_t *frames)
{
    pos_telium_event_t last = POS_TELIUM_EV_NONE;
    for (size_t i = 0; i < n; i++) {
        last = pos_telium_decoder_feed(d, p[i]);
        if (last == POS_TELIUM_EV_FRAME && frames) {
            (*frames)++;
        }
    }
    return last;
}

static void test_lrc(void **state)
{
    (void)state;
    assert_int_equal(pos_telium_lrc(NULL, 0), 0);
    assert_int_equal(pos_telium_lrc((const uint8_t *)"\x03", 1), 0x03);
    assert_int_equal(pos_telium_lrc((const uint8_t *)"AB\x03", 3), 'A' ^ 'B' ^ 0x03);
    assert_int_equal(pos_telium_lrc(doc_frame + 1, sizeof(doc_frame) - 2), 0x0F);
}

static void test_worked_example(void **state)
{
    pos_telium_request_t req;
    uint8_t payload[POS_TELIUM_REQUEST_LEN], frame[64];
    size_t n = 0;
    (void)state;

    pos_telium_request_defaults(&req);
    req.pos_number = 1;
    req.amount_minor = 1234;
    memcpy(req.private_data, "TX00001001", 10);
    assert_int_equal(pos_telium_encode_request(&req, payload), 0);
    assert_memory_equal(payload, "0100001234110978TX00001001A010B010", 34);
    assert_int_equal(pos_telium_frame(payload, sizeof(payload), frame, sizeof(frame), &n), 0);
    assert_int_equal(n, sizeof(doc_frame));
    assert_memory_equal(frame, doc_frame, sizeof(doc_frame));
}

static void test_request_fields(void **state)
{
    pos_telium_request_t req, back;
    uint8_t p[POS_TELIUM_REQUEST_LEN];
    (void)state;

    pos_telium_request_defaults(&req);
    req.pos_number = 42;
    req.amount_minor = 99999999;
    req.want_report = false;
    req.currency_numeric = 840;
    req.reply_immediately = true;
    req.force_authorisation = true;
    memcpy(req.private_data, "ab", 3);
    assert_int_equal(pos_telium_encode_request(&req, p), 0);
    assert_memory_equal(p, "4299999999010840ab        A011B011", 34);
    assert_int_equal(pos_telium_parse_request(p, sizeof(p), &back), 0);
    assert_int_equal(back.pos_number, 42);
    assert_int_equal(back.amount_minor, 99999999);
    assert_false(back.want_report);
    assert_int_equal(back.currency_numeric, 840);
    assert_true(back.reply_immediately);
    assert_true(back.force_authorisation);
    assert_string_equal(back.private_data, "ab        ");

    req.amount_minor = 100000000;
    assert_int_equal(pos_telium_encode_request(&req, p), -EINVAL);
    req.amount_minor = 0;
    assert_int_equal(pos_telium_encode_request(&req, p), -EINVAL);
    req.amount_minor = 1;
    req.pos_number = 100;
    assert_int_equal(pos_telium_encode_request(&req, p), -EINVAL);
    req.pos_number = 1;
    req.currency_numeric = 1000;
    assert_int_equal(pos_telium_encode_request(&req, p), -EINVAL);
    req.currency_numeric = 978;
    req.private_data[0] = '\x03';
    assert_int_equal(pos_telium_encode_request(&req, p), -EINVAL);
    assert_int_equal(pos_telium_parse_request(p, 33, &back), -EBADMSG);
}

static void test_frame_rejects_controls(void **state)
{
    uint8_t out[16];
    size_t n = 0;
    (void)state;
    assert_int_equal(pos_telium_frame((const uint8_t *)"a\003b", 3, out, sizeof(out), &n), -EINVAL);
    assert_int_equal(pos_telium_frame((const uint8_t *)"abc", 3, out, 5, &n), -ENOSPC);
    assert_int_equal(pos_telium_frame((const uint8_t *)"abc", 3, out, 6, &n), 0);
    assert_memory_equal(out, "\002abc\003\143", 6); /* a^b^c^ETX = 0x63 */
}

static void test_decoder_controls_and_frame(void **state)
{
    pos_telium_decoder_t d;
    size_t len = 99;
    (void)state;
    pos_telium_decoder_init(&d);
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_ENQ), POS_TELIUM_EV_ENQ);
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_ACK), POS_TELIUM_EV_ACK);
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_NAK), POS_TELIUM_EV_NAK);
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_EOT), POS_TELIUM_EV_EOT);
    assert_int_equal(pos_telium_decoder_feed(&d, 'x'), POS_TELIUM_EV_GARBAGE);
    assert_int_equal(d.garbage, 1);
    for (size_t i = 0; i + 1 < sizeof(doc_frame); i++) {
        assert_int_equal(pos_telium_decoder_feed(&d, doc_frame[i]), POS_TELIUM_EV_NONE);
        pos_telium_decoder_payload(&d, &len);
        assert_int_equal(len, 0);
    }
    assert_int_equal(pos_telium_decoder_feed(&d, doc_frame[sizeof(doc_frame) - 1]),
                     POS_TELIUM_EV_FRAME);
    const uint8_t *p = pos_telium_decoder_payload(&d, &len);
    assert_int_equal(len, 34);
    assert_memory_equal(p, doc_frame + 1, 34);
    /* The next byte releases (and wipes) the frame. */
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_EOT), POS_TELIUM_EV_EOT);
    pos_telium_decoder_payload(&d, &len);
    assert_int_equal(len, 0);
    assert_int_equal(d.payload[0], 0);
}

static void test_decoder_split_input_and_lrc_like_controls(void **state)
{
    pos_telium_decoder_t d;
    pos_telium_reply_spec_t spec = {1, '0', 1234, '1', 978, "TX00001001", test_pan};
    uint8_t payload[96], frame[128];
    size_t plen = 0, flen = 0, frames = 0;
    (void)state;
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(plen, 80);
    assert_int_equal(pos_telium_frame(payload, plen, frame, sizeof(frame), &flen), 0);
    /* This reply's LRC is 0x15, the NAK byte: after ETX it must be taken as LRC. */
    assert_int_equal(frame[flen - 1], POS_TELIUM_NAK);
    /* Fed one byte at a time, and again after garbage and a torn frame. */
    pos_telium_decoder_init(&d);
    assert_int_equal(feed_all(&d, frame, flen, &frames), POS_TELIUM_EV_FRAME);
    assert_int_equal(frames, 1);
    const uint8_t noise[] = {'z', 0xFF, POS_TELIUM_STX, '1', '2'};
    feed_all(&d, noise, sizeof(noise), &frames);
    assert_int_equal(feed_all(&d, frame, flen, &frames), POS_TELIUM_EV_FRAME);
    assert_int_equal(frames, 2);
    size_t len = 0;
    pos_telium_decoder_payload(&d, &len);
    assert_int_equal(len, 80);
}

static void test_decoder_bad_lrc_oversize_and_abort(void **state)
{
    pos_telium_decoder_t d;
    uint8_t bad[sizeof(doc_frame)];
    (void)state;
    pos_telium_decoder_init(&d);
    memcpy(bad, doc_frame, sizeof(bad));
    bad[sizeof(bad) - 1] ^= 0x01;
    assert_int_equal(feed_all(&d, bad, sizeof(bad), NULL), POS_TELIUM_EV_BAD_LRC);
    /* A corrupted payload byte also shows up as a bad LRC. */
    memcpy(bad, doc_frame, sizeof(bad));
    bad[5] = '9';
    assert_int_equal(feed_all(&d, bad, sizeof(bad), NULL), POS_TELIUM_EV_BAD_LRC);
    /* Oversize: reported once the frame ends (when the NAK is due). */
    pos_telium_decoder_feed(&d, POS_TELIUM_STX);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pos_telium_decoder_feed(&d, 'A'), POS_TELIUM_EV_NONE);
    }
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_ETX), POS_TELIUM_EV_NONE);
    assert_int_equal(pos_telium_decoder_feed(&d, 0x42), POS_TELIUM_EV_OVERSIZE);
    /* Then back in sync. */
    assert_int_equal(feed_all(&d, doc_frame, sizeof(doc_frame), NULL), POS_TELIUM_EV_FRAME);
    /* EOT inside a frame aborts it and is reported. */
    pos_telium_decoder_feed(&d, POS_TELIUM_STX);
    pos_telium_decoder_feed(&d, '0');
    assert_int_equal(pos_telium_decoder_feed(&d, POS_TELIUM_EOT), POS_TELIUM_EV_EOT);
    /* STX inside a frame restarts it. */
    pos_telium_decoder_feed(&d, POS_TELIUM_STX);
    pos_telium_decoder_feed(&d, '9');
    assert_int_equal(feed_all(&d, doc_frame, sizeof(doc_frame), NULL), POS_TELIUM_EV_FRAME);
    assert_string_equal(pos_telium_event_name(POS_TELIUM_EV_BAD_LRC), "bad_lrc");
}

static void test_pan_mask(void **state)
{
    char out[POS_PAN_MASKED_MAX];
    (void)state;
    assert_int_equal(pos_pan_mask(test_pan, 16, out, sizeof(out)), 0);
    assert_string_equal(out, "497010XXXXXX1234");
    assert_int_equal(pos_pan_mask("123456789012", 12, out, sizeof(out)), 0);
    assert_string_equal(out, "12XXXXXX9012");
    assert_true(pos_msg_pan_is_masked(out));
    /* AMEX: 15 digits. Five hidden was refused downstream (placeholder,
     * last four lost); six hidden now, the last four kept. */
    assert_int_equal(pos_pan_mask("371449635398431", 15, out, sizeof(out)), 0);
    assert_string_equal(out, "37144XXXXXX8431");
    assert_true(pos_msg_pan_is_masked(out));
    assert_int_equal(pos_pan_mask("4970101234561234", 16, out, sizeof(out)), 0);
    assert_true(pos_msg_pan_is_masked(out));
    assert_int_equal(pos_pan_mask("1234567890123456789", 19, out, sizeof(out)), 0);
    assert_string_equal(out, "123456XXXXXXXXX6789");
    assert_int_equal(pos_pan_mask("12345678901", 11, out, sizeof(out)), -EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(pos_pan_mask("12345678901234567890", 20, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_pan_mask("4970 10123456123", 16, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_pan_mask("497010123456123X", 16, out, sizeof(out)), -EINVAL);
    assert_int_equal(pos_pan_mask(test_pan, 16, out, 16), -ENOSPC);
    assert_string_equal(out, "");
}

static bool has_digit_run(const uint8_t *p, size_t n, size_t run)
{
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        r = (p[i] >= '0' && p[i] <= '9') ? r + 1 : 0;
        if (r >= run) {
            return true;
        }
    }
    return false;
}

/* True if the hidden middle digits of the test PAN appear anywhere. */
static bool has_pan_middle(const uint8_t *p, size_t n)
{
    const char *mid = test_pan + 6; /* "123456", the part a mask hides */
    for (size_t i = 0; i + 6 <= n; i++) {
        if (memcmp(p + i, mid, 6) == 0) {
            return true;
        }
    }
    return false;
}

static void test_reply_approved_masks_and_wipes(void **state)
{
    pos_telium_decoder_t d;
    pos_telium_reply_spec_t spec = {1, '0', 1234, '1', 978, "TX00001001", test_pan};
    pos_telium_reply_t r;
    uint8_t payload[96], frame[128];
    size_t plen = 0, flen = 0, len = 0;
    (void)state;
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(pos_telium_frame(payload, plen, frame, sizeof(frame), &flen), 0);
    pos_telium_decoder_init(&d);
    assert_int_equal(feed_all(&d, frame, flen, NULL), POS_TELIUM_EV_FRAME);
    uint8_t *p = pos_telium_decoder_payload(&d, &len);
    assert_true(has_digit_run(p, len, 16)); /* the PAN is there before parsing */
    assert_int_equal(pos_telium_parse_reply(p, len, &r), 0);
    assert_true(r.approved);
    assert_int_equal(r.status, '0');
    assert_int_equal(r.pos_number, 1);
    assert_int_equal(r.amount_minor, 1234);
    assert_int_equal(r.currency_numeric, 978);
    assert_int_equal(r.payment_mode, '1');
    assert_string_equal(r.private_data, "TX00001001");
    assert_true(r.has_report);
    assert_string_equal(r.masked_pan, "497010XXXXXX1234");
    /* The report field is zeroed in place: the decoder's buffer no longer
     * holds the card number, and the rest of the payload is intact. */
    for (size_t i = 12; i < 12 + POS_TELIUM_REPORT_LEN; i++) {
        assert_int_equal(p[i], 0);
    }
    assert_false(has_pan_middle(p, len));
    assert_memory_equal(p + 67, "978TX00001001", 13);
    assert_memory_equal(d.payload + 12, (const uint8_t[8]){0}, 8);
    /* The caller's own copy too (encode buffer wiped separately). */
    memset(payload, 0, sizeof(payload));
}

static void test_reply_declined_short(void **state)
{
    pos_telium_reply_spec_t spec = {1, '7', 1234, '1', 978, NULL, NULL};
    pos_telium_reply_t r;
    uint8_t payload[96];
    size_t plen = 0;
    (void)state;
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(plen, 25);
    assert_memory_equal(payload, "017000012341978          ", 25);
    assert_int_equal(pos_telium_parse_reply(payload, plen, &r), 0);
    assert_false(r.approved);
    assert_int_equal(r.status, '7');
    assert_false(r.has_report);
    assert_string_equal(r.masked_pan, "");
}

static void test_reply_malformed_still_wiped(void **state)
{
    pos_telium_reply_spec_t spec = {1, '0', 1234, '1', 978, "x", test_pan};
    pos_telium_reply_t r;
    uint8_t payload[96];
    size_t plen = 0;
    (void)state;
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    payload[67] = 'E'; /* currency not numeric */
    assert_true(has_pan_middle(payload, plen));
    assert_int_equal(pos_telium_parse_reply(payload, plen, &r), -EBADMSG);
    assert_false(has_pan_middle(payload, plen));
    assert_string_equal(r.masked_pan, "");
    /* Unknown length: everything is wiped, since it may hold a PAN. */
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(pos_telium_parse_reply(payload, 79, &r), -EBADMSG);
    for (size_t i = 0; i < 79; i++) {
        assert_int_equal(payload[i], 0);
    }
}

static void test_reply_report_without_pan(void **state)
{
    pos_telium_reply_spec_t spec = {1, '0', 500, '1', 978, NULL, "   no card number here"};
    pos_telium_reply_t r;
    uint8_t payload[96];
    size_t plen = 0;
    (void)state;
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(pos_telium_parse_reply(payload, plen, &r), 0);
    assert_true(r.has_report);
    assert_string_equal(r.masked_pan, "");
    /* 25 digits in a row is not a PAN: nothing is kept, all is wiped. */
    spec.pan = "1234567890123456789012345";
    assert_int_equal(pos_telium_encode_reply(&spec, payload, sizeof(payload), &plen), 0);
    assert_int_equal(pos_telium_parse_reply(payload, plen, &r), 0);
    assert_string_equal(r.masked_pan, "");
    assert_false(has_digit_run(payload + 12, POS_TELIUM_REPORT_LEN, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrc),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_frame_rejects_controls),
        cmocka_unit_test(test_decoder_controls_and_frame),
        cmocka_unit_test(test_decoder_split_input_and_lrc_like_controls),
        cmocka_unit_test(test_decoder_bad_lrc_oversize_and_abort),
        cmocka_unit_test(test_pan_mask),
        cmocka_unit_test(test_reply_approved_masks_and_wipes),
        cmocka_unit_test(test_reply_declined_short),
        cmocka_unit_test(test_reply_malformed_still_wiped),
        cmocka_unit_test(test_reply_report_without_pan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
