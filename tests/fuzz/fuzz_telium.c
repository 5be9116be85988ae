/*
 * Fuzz target: the Telium frame decoder and the payload parsers. Every byte
 * goes through the decoder; each good frame is parsed as a reply and as a
 * request. Invariants: payloads never exceed the maximum, a good frame's
 * LRC checks out, a masked PAN keeps at most 10 digits, and after parsing
 * the report field holds no digit (it was wiped).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hal/telium.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_telium_decoder_t d;

    pos_telium_decoder_init(&d);
    for (size_t i = 0; i < size; i++) {
        pos_telium_event_t ev = pos_telium_decoder_feed(&d, data[i]);
        if (pos_telium_event_name(ev)[0] == 'u') { /* "unknown" */
            abort();
        }
        if (ev != POS_TELIUM_EV_FRAME) {
            continue;
        }
        size_t len = 0;
        uint8_t *p = pos_telium_decoder_payload(&d, &len);
        uint8_t frame[POS_TELIUM_MAX_PAYLOAD + POS_TELIUM_FRAME_OVERHEAD];
        size_t flen = 0;
        if (len > POS_TELIUM_MAX_PAYLOAD) {
            abort();
        }
        /* A frame the decoder accepted re-frames to the same LRC. */
        if (pos_telium_frame(p, len, frame, sizeof(frame), &flen) == 0 &&
            frame[flen - 1] != data[i]) {
            abort();
        }
        pos_telium_request_t req;
        if (pos_telium_parse_request(p, len, &req) == 0) {
            uint8_t again[POS_TELIUM_REQUEST_LEN];
            if (req.amount_minor > 0 && req.currency_numeric > 0 &&
                pos_telium_encode_request(&req, again) == 0 &&
                (len != sizeof(again) || memcmp(again, p, len) != 0)) {
                abort();
            }
        }
        pos_telium_reply_t r;
        int rc = pos_telium_parse_reply(p, len, &r);
        int digits = 0;
        for (const char *m = r.masked_pan; *m; m++) {
            digits += *m >= '0' && *m <= '9';
        }
        if (digits > 10) {
            abort();
        }
        if (len == POS_TELIUM_REPLY_FULL_LEN) {
            for (size_t k = 12; k < 12 + POS_TELIUM_REPORT_LEN; k++) {
                if (p[k] != 0) {
                    abort();
                }
            }
        } else if (len != POS_TELIUM_REPLY_LEN && rc == 0) {
            abort();
        }
    }
    return 0;
}
