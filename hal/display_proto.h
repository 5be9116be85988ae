#ifndef HAL_DISPLAY_PROTO_H
#define HAL_DISPLAY_PROTO_H

/*
 * Customer display protocols for 2 x 20 character displays (pure).
 *
 * The framebuffer remembers what is on the glass and, given two new UTF-8
 * lines, emits only the commands that rewrite the lines that changed.
 * Lines are transcoded to the display's code page first, then cut or
 * padded with spaces to 20 columns.
 *
 * Command sets (hex):
 *   Epson DM-D (ESC/POS for displays):
 *     ESC @ 1B 40 initialise; US MD1 1F 01 overwrite mode; US C n 1F 43 n
 *     cursor off/on; ESC t n 1B 74 n code page; CLR 0C clear;
 *     US $ n m 1F 24 n m cursor to column n (1..20), line m (1..2);
 *     a line is rewritten as US $ 1 m + 20 characters.
 *   CD5220 (standard mode):
 *     ESC @ 1B 40 initialise; CLR 0C clear; ESC Q A 1B 51 41 + 20 chars + CR
 *     upper line; ESC Q B 1B 51 42 + 20 chars + CR lower line.
 *
 * The decoders do the reverse for both sets (plus the cursor, mode and
 * clear commands of each), for tests and for the device emulator.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/buf.h"
#include "hal/charset.h"

#define POS_DISPLAY_COLS 20
#define POS_DISPLAY_ROWS 2

typedef enum pos_display_cmdset {
    POS_DISPLAY_EPSON_DMD = 0,
    POS_DISPLAY_CD5220 = 1,
} pos_display_cmdset_t;

/* Parses "dm-d" (also "epson", "dmd") or "cd5220". Returns the set or -EINVAL. */
int pos_display_cmdset_parse(const char *name);

typedef struct pos_display_fb {
    pos_display_cmdset_t cmdset;
    pos_codepage_t cp;
    bool known; /* false until a reset: the glass content is unknown */
    uint8_t glass[POS_DISPLAY_ROWS][POS_DISPLAY_COLS]; /* device bytes on the glass */
} pos_display_fb_t;

/* Initialises a framebuffer whose glass is unknown. Returns 0 or -EINVAL. */
int pos_display_fb_init(pos_display_fb_t *fb, pos_display_cmdset_t cmdset, pos_codepage_t cp);

/* Forgets the glass (e.g. after the device was unplugged): the next update resets it. */
void pos_display_fb_invalidate(pos_display_fb_t *fb);

/* Appends the initialise-and-clear sequence; the glass is then known blank. */
int pos_display_fb_reset(pos_display_fb_t *fb, pos_buf_t *out);

/*
 * Shows two UTF-8 lines (NULL = empty): appends a reset if the glass is
 * unknown, then the rewrite of each line whose 20 device bytes differ from
 * the glass. Appends nothing when nothing changed. Returns 0, -EINVAL or
 * the buffer's errno (on error the glass is marked unknown).
 */
int pos_display_fb_update(pos_display_fb_t *fb, const char *line1, const char *line2,
                          pos_buf_t *out);

/* Transcodes a UTF-8 line to exactly 20 device bytes (cut or space-padded). */
int pos_display_fit_line(pos_codepage_t cp, const char *utf8, uint8_t out[POS_DISPLAY_COLS]);

/* What a 2 x 20 display shows after receiving a byte stream (emulator state). */
typedef struct pos_display_decoder {
    pos_display_cmdset_t cmdset;
    uint8_t text[POS_DISPLAY_ROWS][POS_DISPLAY_COLS]; /* bytes on the glass */
    uint8_t row, col;                                 /* cursor, 0-based */
    uint8_t mode;     /* 1 overwrite, 2 vertical scroll, 3 horizontal scroll */
    uint8_t table;    /* last ESC t n */
    bool cursor_on;   /* last cursor on/off command */
    uint32_t unknown; /* unknown or malformed commands seen (and skipped) */
    /* Parser state, carried across calls so input may be split anywhere. */
    uint8_t state;
    uint8_t cmd;
    uint8_t need, nargs;
    uint8_t args[4];
    uint8_t str_row, str_len;
    bool str_over, str_scroll;
    uint8_t str[POS_DISPLAY_COLS];
} pos_display_decoder_t;

/* Initialises a decoder to the power-on state: blank, cursor home, overwrite. */
void pos_display_decoder_init(pos_display_decoder_t *d, pos_display_cmdset_t cmdset);

/* Feeds Epson DM-D bytes. Returns 0, or -EINVAL when d is not a DM-D decoder. */
int pos_display_decode_dmd(pos_display_decoder_t *d, const uint8_t *data, size_t len);

/* Feeds CD5220 bytes. Returns 0, or -EINVAL when d is not a CD5220 decoder. */
int pos_display_decode_cd5220(pos_display_decoder_t *d, const uint8_t *data, size_t len);

/* Feeds bytes to the decoder of d's command set. Returns as above. */
int pos_display_decode(pos_display_decoder_t *d, const uint8_t *data, size_t len);

#endif /* HAL_DISPLAY_PROTO_H */
