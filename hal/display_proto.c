#include "hal/display_proto.h"

#include <errno.h>
#include <string.h>

#define ESC 0x1B
#define US  0x1F
#define CLR 0x0C
#define CAN 0x18
#define CR  0x0D

enum {
    ST_GROUND = 0,
    ST_ESC,     /* after ESC */
    ST_US,      /* after US (DM-D) */
    ST_BRACKET, /* after ESC [ (CD5220) */
    ST_ARGS,    /* collecting "need" parameter bytes of "cmd" */
    ST_QSEL,    /* after ESC Q: line selector (CD5220) */
    ST_STRING,  /* ESC Q x string up to CR (CD5220) */
};

/* Commands with parameters, keyed by prefix and final byte. */
#define CMD(prefix, c) ((uint8_t)(((prefix) == US ? 0x80 : 0) | ((c)&0x7F)))

int pos_display_cmdset_parse(const char *name)
{
    if (name == NULL) {
        return -EINVAL;
    }
    if (strcmp(name, "dm-d") == 0 || strcmp(name, "dmd") == 0 || strcmp(name, "epson") == 0) {
        return POS_DISPLAY_EPSON_DMD;
    }
    if (strcmp(name, "cd5220") == 0) {
        return POS_DISPLAY_CD5220;
    }
    return -EINVAL;
}

int pos_display_fb_init(pos_display_fb_t *fb, pos_display_cmdset_t cmdset, pos_codepage_t cp)
{
    if (fb == NULL || cmdset > POS_DISPLAY_CD5220 || pos_charset_escpos_table(cp) < 0) {
        return -EINVAL;
    }
    fb->cmdset = cmdset;
    fb->cp = cp;
    fb->known = false;
    memset(fb->glass, ' ', sizeof(fb->glass));
    return 0;
}

void pos_display_fb_invalidate(pos_display_fb_t *fb)
{
    fb->known = false;
}

int pos_display_fb_reset(pos_display_fb_t *fb, pos_buf_t *out)
{
    int rc;

    if (fb == NULL || out == NULL) {
        return -EINVAL;
    }
    if (fb->cmdset == POS_DISPLAY_EPSON_DMD) {
        /* ESC @ restores the memory-switch mode, which may be vertical
         * scroll: force overwrite so writing 20 characters never scrolls. */
        const uint8_t seq[] = {ESC, '@', US,  0x01, US,
                               'C', 0,   ESC, 't',  (uint8_t)pos_charset_escpos_table(fb->cp),
                               CLR};
        rc = pos_buf_append(out, seq, sizeof(seq));
    } else {
        const uint8_t seq[] = {ESC, '@', CLR};
        rc = pos_buf_append(out, seq, sizeof(seq));
    }
    if (rc < 0) {
        fb->known = false;
        return rc;
    }
    memset(fb->glass, ' ', sizeof(fb->glass));
    fb->known = true;
    return 0;
}

int pos_display_fit_line(pos_codepage_t cp, const char *utf8, uint8_t out[POS_DISPLAY_COLS])
{
    size_t n = 0;
    const char *s = utf8 ? utf8 : "";

    int rc =
        pos_charset_transcode(cp, s, strlen(s), POS_CHARSET_REPLACEMENT, out, POS_DISPLAY_COLS, &n);
    if (rc < 0 && rc != -ENOSPC) {
        return rc;
    }
    memset(out + n, ' ', POS_DISPLAY_COLS - n);
    return 0;
}

static int write_line(const pos_display_fb_t *fb, unsigned row, const uint8_t *bytes,
                      pos_buf_t *out)
{
    if (fb->cmdset == POS_DISPLAY_EPSON_DMD) {
        const uint8_t head[4] = {US, '$', 1, (uint8_t)(row + 1)};
        pos_buf_append(out, head, sizeof(head));
        return pos_buf_append(out, bytes, POS_DISPLAY_COLS);
    }
    const uint8_t head[3] = {ESC, 'Q', row == 0 ? 'A' : 'B'};
    pos_buf_append(out, head, sizeof(head));
    pos_buf_append(out, bytes, POS_DISPLAY_COLS);
    return pos_buf_put(out, CR);
}

int pos_display_fb_update(pos_display_fb_t *fb, const char *line1, const char *line2,
                          pos_buf_t *out)
{
    uint8_t next[POS_DISPLAY_ROWS][POS_DISPLAY_COLS];
    int rc;

    if (fb == NULL || out == NULL) {
        return -EINVAL;
    }
    if ((rc = pos_display_fit_line(fb->cp, line1, next[0])) < 0 ||
        (rc = pos_display_fit_line(fb->cp, line2, next[1])) < 0) {
        return rc;
    }
    if (!fb->known && (rc = pos_display_fb_reset(fb, out)) < 0) {
        return rc;
    }
    for (unsigned r = 0; r < POS_DISPLAY_ROWS; r++) {
        if (memcmp(fb->glass[r], next[r], POS_DISPLAY_COLS) == 0) {
            continue;
        }
        rc = write_line(fb, r, next[r], out);
        if (rc < 0) {
            /* Part of a line may have gone out: the glass is now unknown. */
            fb->known = false;
            return rc;
        }
        memcpy(fb->glass[r], next[r], POS_DISPLAY_COLS);
    }
    return 0;
}

/* ---- decoders ---- */

void pos_display_decoder_init(pos_display_decoder_t *d, pos_display_cmdset_t cmdset)
{
    memset(d, 0, sizeof(*d));
    d->cmdset = cmdset;
    memset(d->text, ' ', sizeof(d->text));
    d->mode = 1;
    d->cursor_on = true;
    d->state = ST_GROUND;
}

static void clear_all(pos_display_decoder_t *d)
{
    memset(d->text, ' ', sizeof(d->text));
    d->row = 0;
    d->col = 0;
}

static void scroll_up(pos_display_decoder_t *d)
{
    memcpy(d->text[0], d->text[1], POS_DISPLAY_COLS);
    memset(d->text[1], ' ', POS_DISPLAY_COLS);
}

/* Cursor one line down, scrolling in vertical scroll mode (mode 2). */
static void line_down(pos_display_decoder_t *d)
{
    if (d->row == 0) {
        d->row = 1;
    } else if (d->mode == 2) {
        scroll_up(d);
    } else {
        d->row = 0;
    }
}

/* Cursor one step right, wrapping per display mode (no writing). */
static void step_right(pos_display_decoder_t *d)
{
    if (d->col + 1 < POS_DISPLAY_COLS) {
        d->col++;
        return;
    }
    if (d->mode == 3) {
        /* Horizontal scroll: the line moves left, the cursor stays. */
        memmove(d->text[d->row], d->text[d->row] + 1, POS_DISPLAY_COLS - 1);
        d->text[d->row][POS_DISPLAY_COLS - 1] = ' ';
        return;
    }
    d->col = 0;
    line_down(d);
}

static void step_left(pos_display_decoder_t *d)
{
    if (d->col > 0) {
        d->col--;
        return;
    }
    d->col = POS_DISPLAY_COLS - 1;
    d->row ^= 1;
}

static void put_char(pos_display_decoder_t *d, uint8_t c)
{
    d->text[d->row][d->col] = c;
    step_right(d);
}

static void move_to(pos_display_decoder_t *d, uint8_t col1, uint8_t row1)
{
    if (col1 >= 1 && col1 <= POS_DISPLAY_COLS && row1 >= 1 && row1 <= POS_DISPLAY_ROWS) {
        d->col = (uint8_t)(col1 - 1);
        d->row = (uint8_t)(row1 - 1);
    } else {
        d->unknown++;
    }
}

static void want_args(pos_display_decoder_t *d, uint8_t cmd, uint8_t need)
{
    d->cmd = cmd;
    d->need = need;
    d->nargs = 0;
    d->state = ST_ARGS;
}

/* Single-byte controls common to both sets. Returns false if not one. */
static bool common_control(pos_display_decoder_t *d, uint8_t c)
{
    switch (c) {
    case 0x08:
        step_left(d);
        return true;
    case 0x09:
        step_right(d);
        return true;
    case 0x0A:
        line_down(d);
        return true;
    case 0x0B:
        d->row = 0;
        d->col = 0;
        return true;
    case CLR:
        clear_all(d);
        return true;
    case CR:
        d->col = 0;
        return true;
    case CAN:
        memset(d->text[d->row], ' ', POS_DISPLAY_COLS);
        d->col = 0;
        return true;
    default:
        return false;
    }
}

static void reset_device(pos_display_decoder_t *d)
{
    clear_all(d);
    d->mode = 1;
    d->table = 0;
    d->cursor_on = true;
}

/* ESC sequences common to both sets (the byte after ESC). Returns false if not one. */
static bool common_escape(pos_display_decoder_t *d, uint8_t c)
{
    switch (c) {
    case '@':
        reset_device(d);
        return true;
    case 't': /* character table */
    case '=': /* peripheral select */
        want_args(d, CMD(ESC, c), 1);
        return true;
    default:
        return false;
    }
}

/* A byte outside any sequence: ESC, a printable character or a control. */
static void ground_byte(pos_display_decoder_t *d, uint8_t c)
{
    if (c == ESC) {
        d->state = ST_ESC;
    } else if (c >= 0x20) {
        put_char(d, c);
    } else if (!common_control(d, c)) {
        d->unknown++;
    }
}

static void run_args(pos_display_decoder_t *d)
{
    const uint8_t *a = d->args;

    d->state = ST_GROUND;
    switch (d->cmd) {
    case CMD(ESC, 't'):
        d->table = a[0];
        break;
    case CMD(US, '$'):  /* US $ n m: column n, line m */
    case CMD(ESC, 'l'): /* ESC l x y: column x, line y */
        move_to(d, a[0], a[1]);
        break;
    case CMD(US, 'C'):
    case CMD(ESC, '_'):
        d->cursor_on = (a[0] & 1) != 0;
        break;
    default:
        /* Parameters of commands that do not change the text (brightness,
         * blink, peripheral select, fonts, windows): consumed, ignored. */
        break;
    }
}

static void feed_dmd(pos_display_decoder_t *d, uint8_t c)
{
    switch (d->state) {
    case ST_ESC:
        d->state = ST_GROUND;
        if (!common_escape(d, c)) {
            d->unknown++;
        }
        return;
    case ST_US:
        d->state = ST_GROUND;
        switch (c) {
        case 0x01:
        case 0x02:
        case 0x03:
            d->mode = c;
            break;
        case '$':
            want_args(d, CMD(US, '$'), 2);
            break;
        case 'C':
        case 'X':
        case 'E':
        case 'r':
        case 'v':
            want_args(d, CMD(US, c), 1);
            break;
        case 0x0A: /* up one line */
            d->row = d->row == 0 && d->mode == 2 ? 0 : (uint8_t)(d->row ^ 1);
            break;
        case 0x0D: /* right-most position */
            d->col = POS_DISPLAY_COLS - 1;
            break;
        case 'B': /* bottom-left position */
            d->row = 1;
            d->col = 0;
            break;
        default:
            d->unknown++;
            break;
        }
        return;
    default:
        break;
    }
    if (c == US) {
        d->state = ST_US;
    } else {
        ground_byte(d, c);
    }
}

static void end_string(pos_display_decoder_t *d)
{
    /* The string replaces the whole line; a short one leaves blanks. */
    memset(d->text[d->str_row], ' ', POS_DISPLAY_COLS);
    memcpy(d->text[d->str_row], d->str, d->str_len);
    d->state = ST_GROUND;
}

static void feed_cd5220(pos_display_decoder_t *d, uint8_t c)
{
    switch (d->state) {
    case ST_ESC:
        d->state = ST_GROUND;
        if (common_escape(d, c)) {
            return;
        }
        switch (c) {
        case 0x11:
        case 0x12:
        case 0x13:
            d->mode = (uint8_t)(c - 0x10);
            break;
        case 'Q':
            d->state = ST_QSEL;
            break;
        case '[':
            d->state = ST_BRACKET;
            break;
        case 'l':
            want_args(d, CMD(ESC, 'l'), 2);
            break;
        case 'W':
            want_args(d, CMD(ESC, 'W'), 4);
            break;
        case '*':
        case '_':
        case 'f':
        case 'c':
        case '%':
        case '?':
            want_args(d, CMD(ESC, c), 1);
            break;
        default:
            d->unknown++;
            break;
        }
        return;
    case ST_QSEL:
        if (c == 'A' || c == 'B' || c == 'D') {
            /* ESC Q D (marquee) is shown statically on the upper line. */
            d->str_row = c == 'B' ? 1 : 0;
            d->str_len = 0;
            d->str_over = false;
            d->str_scroll = c == 'D';
            d->state = ST_STRING;
        } else {
            d->unknown++;
            d->state = ST_GROUND;
        }
        return;
    case ST_STRING:
        if (c == CR) {
            end_string(d);
        } else if (c < 0x20) {
            /* A control inside the string: the string was cut short. Show
             * what came, then let the control act on its own. */
            d->unknown++;
            end_string(d);
            feed_cd5220(d, c);
        } else if (d->str_len < POS_DISPLAY_COLS) {
            d->str[d->str_len++] = c;
        } else if (!d->str_over && d->str_row == 0 && d->str_scroll) {
            /* A marquee text may be up to 40 bytes; the glass shows 20. */
        } else if (!d->str_over) {
            d->unknown++; /* too long: the extra is dropped, counted once */
            d->str_over = true;
        }
        return;
    case ST_BRACKET:
        d->state = ST_GROUND;
        switch (c) {
        case 'D':
            step_left(d);
            break;
        case 'C':
            step_right(d);
            break;
        case 'A':
            d->row ^= 1;
            break;
        case 'B':
            line_down(d);
            break;
        case 'H':
            d->row = 0;
            d->col = 0;
            break;
        case 'L':
            d->col = 0;
            break;
        case 'R':
            d->col = POS_DISPLAY_COLS - 1;
            break;
        case 'K':
            d->row = 1;
            break;
        default:
            d->unknown++;
            break;
        }
        return;
    default:
        break;
    }
    ground_byte(d, c);
}

static int decode(pos_display_decoder_t *d, const uint8_t *data, size_t len,
                  void (*feed)(pos_display_decoder_t *, uint8_t))
{
    if (data == NULL && len) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (d->state == ST_ARGS) {
            d->args[d->nargs++] = data[i];
            if (d->nargs == d->need) {
                run_args(d);
            }
            continue;
        }
        feed(d, data[i]);
    }
    return 0;
}

int pos_display_decode_dmd(pos_display_decoder_t *d, const uint8_t *data, size_t len)
{
    if (d == NULL || d->cmdset != POS_DISPLAY_EPSON_DMD) {
        return -EINVAL;
    }
    return decode(d, data, len, feed_dmd);
}

int pos_display_decode_cd5220(pos_display_decoder_t *d, const uint8_t *data, size_t len)
{
    if (d == NULL || d->cmdset != POS_DISPLAY_CD5220) {
        return -EINVAL;
    }
    return decode(d, data, len, feed_cd5220);
}

int pos_display_decode(pos_display_decoder_t *d, const uint8_t *data, size_t len)
{
    if (d == NULL) {
        return -EINVAL;
    }
    if (d->cmdset == POS_DISPLAY_EPSON_DMD) {
        return pos_display_decode_dmd(d, data, len);
    }
    return pos_display_decode_cd5220(d, data, len);
}
