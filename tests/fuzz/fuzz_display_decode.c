/*
 * Fuzz target: customer display decoders, and the encoder round trip.
 * Byte 0 picks the command set; the rest is fed to the decoder in two
 * pieces. Invariants: the cursor stays on the glass, and an update built
 * by the framebuffer from (the same bytes read as) two UTF-8 lines always
 * decodes to exactly the framebuffer's glass, whatever came before.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hal/buf.h"
#include "hal/display_proto.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_display_decoder_t d;
    pos_display_fb_t fb;
    pos_buf_t b;
    char line[2][64];

    if (size < 1) {
        return 0;
    }
    pos_display_cmdset_t set = (data[0] & 1) ? POS_DISPLAY_CD5220 : POS_DISPLAY_EPSON_DMD;
    pos_codepage_t cp = (pos_codepage_t)((data[0] >> 1) % 3);
    data++;
    size--;

    pos_display_decoder_init(&d, set);
    size_t half = size / 2;
    pos_display_decode(&d, data, half);
    pos_display_decode(&d, data + half, size - half);
    if (d.row >= POS_DISPLAY_ROWS || d.col >= POS_DISPLAY_COLS || d.mode < 1 || d.mode > 3) {
        abort();
    }

    /* Round trip: whatever state the junk left, a framebuffer update after
     * its reset must bring the glass to exactly the framebuffer's view. The
     * decoder may be mid-command, so the fb starts with a reset that the
     * decoder can only read correctly from its ground state: start fresh. */
    for (int r = 0; r < 2; r++) {
        size_t n = size > (size_t)r * 40 ? size - (size_t)r * 40 : 0;
        n = n > 40 ? 40 : n;
        memcpy(line[r], data + (size_t)r * 40 * (n > 0), n);
        line[r][n] = '\0';
    }
    pos_display_decoder_init(&d, set);
    pos_buf_init(&b, 4096);
    if (pos_display_fb_init(&fb, set, cp) != 0 ||
        pos_display_fb_update(&fb, line[0], line[1], &b) != 0 ||
        pos_display_fb_update(&fb, line[1], line[0], &b) != 0) {
        abort();
    }
    pos_display_decode(&d, b.data, b.len);
    if (memcmp(d.text, fb.glass, sizeof(fb.glass)) != 0 || d.unknown != 0) {
        abort();
    }
    pos_buf_free(&b);
    return 0;
}
