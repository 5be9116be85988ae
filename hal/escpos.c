#include "hal/escpos.h"

#include <errno.h>
#include <string.h>

#define ESC 0x1B
#define GS  0x1D
#define DLE 0x10
#define EOT 0x04
#define LF  0x0A

static const pos_escpos_model_t models[] = {
    /* Epson TM-T20 family and most current clones: GS V 66 and QR. */
    {"generic", POS_ESCPOS_CUT_GS_V66, 0, true},
    {"tm-t20", POS_ESCPOS_CUT_GS_V66, 0, true},
    /* TM-T88V and later (QR appeared with the TM-T88V firmware). */
    {"tm-t88", POS_ESCPOS_CUT_GS_V66, 0, true},
    /* Older firmware without function B of GS V: feed, then GS V 1. */
    {"legacy", POS_ESCPOS_CUT_GS_V1, 4, false},
    /* Printers that only know the obsolete ESC i partial cut. */
    {"esc-i", POS_ESCPOS_CUT_ESC_I, 4, false},
    /* No cutter: feed past the tear bar. */
    {"no-cut", POS_ESCPOS_CUT_NONE, 4, true},
};

const pos_escpos_model_t *pos_escpos_model_find(const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return &models[0];
    }
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        if (strcmp(models[i].name, name) == 0) {
            return &models[i];
        }
    }
    return NULL;
}

static int put2(pos_buf_t *b, uint8_t a, uint8_t c)
{
    const uint8_t s[2] = {a, c};
    return pos_buf_append(b, s, sizeof(s));
}

static int put3(pos_buf_t *b, uint8_t a, uint8_t c, uint8_t d)
{
    const uint8_t s[3] = {a, c, d};
    return pos_buf_append(b, s, sizeof(s));
}

int pos_escpos_init(pos_buf_t *b)
{
    return put2(b, ESC, '@');
}

int pos_escpos_codepage(pos_buf_t *b, pos_codepage_t cp)
{
    int n = pos_charset_escpos_table(cp);
    if (n < 0) {
        return n;
    }
    return put3(b, ESC, 't', (uint8_t)n);
}

int pos_escpos_align(pos_buf_t *b, pos_charset_align_t align)
{
    if (align > POS_ALIGN_RIGHT) {
        return -EINVAL;
    }
    return put3(b, ESC, 'a', (uint8_t)align);
}

int pos_escpos_bold(pos_buf_t *b, bool on)
{
    return put3(b, ESC, 'E', on ? 1 : 0);
}

int pos_escpos_size(pos_buf_t *b, bool double_width, bool double_height)
{
    uint8_t n = (uint8_t)((double_width ? 0x10 : 0) | (double_height ? 0x01 : 0));
    return put3(b, GS, '!', n);
}

int pos_escpos_text(pos_buf_t *b, pos_codepage_t cp, const char *utf8, size_t len)
{
    uint8_t chunk[64];

    if (utf8 == NULL && len) {
        return -EINVAL;
    }
    while (len) {
        /* Transcode at most sizeof(chunk) units of input per round: a unit
         * is at most 4 bytes and always yields exactly one output byte. */
        size_t in = pos_charset_prefix(utf8, len, sizeof(chunk));
        size_t out = 0;
        int rc = pos_charset_transcode(cp, utf8, in, POS_CHARSET_REPLACEMENT, chunk, sizeof(chunk),
                                       &out);
        if (rc < 0) {
            return rc;
        }
        rc = pos_buf_append(b, chunk, out);
        if (rc < 0) {
            return rc;
        }
        utf8 += in;
        len -= in;
    }
    return b->error;
}

int pos_escpos_lf(pos_buf_t *b)
{
    return pos_buf_put(b, LF);
}

int pos_escpos_feed(pos_buf_t *b, uint8_t lines)
{
    return put3(b, ESC, 'd', lines);
}

int pos_escpos_cut(pos_buf_t *b, const pos_escpos_model_t *m)
{
    if (m == NULL) {
        m = &models[0];
    }
    switch (m->cut) {
    case POS_ESCPOS_CUT_GS_V66: {
        const uint8_t s[4] = {GS, 'V', 66, 0};
        return pos_buf_append(b, s, sizeof(s));
    }
    case POS_ESCPOS_CUT_GS_V1:
        pos_escpos_feed(b, m->feed_lines);
        return put3(b, GS, 'V', 1);
    case POS_ESCPOS_CUT_ESC_I:
        pos_escpos_feed(b, m->feed_lines);
        return put2(b, ESC, 'i');
    case POS_ESCPOS_CUT_NONE:
        return pos_escpos_feed(b, m->feed_lines);
    }
    return -EINVAL;
}

/* GS ( k pL pH cn fn [params]: cn = 49 selects the QR code symbol. */
static int qr_cmd(pos_buf_t *b, uint8_t fn, const uint8_t *params, size_t n)
{
    const uint8_t head[7] = {GS, '(', 'k', (uint8_t)((n + 2) & 0xFF), (uint8_t)((n + 2) >> 8),
                             49, fn};
    pos_buf_append(b, head, sizeof(head));
    return pos_buf_append(b, params, n);
}

int pos_escpos_qr(pos_buf_t *b, const uint8_t *data, size_t len, uint8_t module_size)
{
    static const uint8_t model2[2] = {50, 0};
    static const uint8_t level_m[1] = {49};
    static const uint8_t print[1] = {48};
    const uint8_t size[1] = {module_size};
    const uint8_t store_head[1] = {48};

    if (data == NULL || len == 0 || len > POS_ESCPOS_QR_MAX || module_size < 1 ||
        module_size > 16) {
        return -EINVAL;
    }
    qr_cmd(b, 65, model2, sizeof(model2));   /* fn 165: model 2 */
    qr_cmd(b, 67, size, sizeof(size));       /* fn 167: module size */
    qr_cmd(b, 69, level_m, sizeof(level_m)); /* fn 169: error correction M */
    /* fn 180: store; pL pH count "cn fn m" plus the data. */
    size_t k = len + 3;
    const uint8_t head[8] = {GS, '(', 'k',          (uint8_t)(k & 0xFF), (uint8_t)(k >> 8),
                             49, 80,  store_head[0]};
    pos_buf_append(b, head, sizeof(head));
    pos_buf_append(b, data, len);
    return qr_cmd(b, 81, print, sizeof(print)); /* fn 181: print */
}

int pos_escpos_status_query(pos_buf_t *b, uint8_t n)
{
    if (n < 1 || n > 4) {
        return -EINVAL;
    }
    return put3(b, DLE, EOT, n);
}

void pos_escpos_status_clear(pos_printer_status_t *st)
{
    memset(st, 0, sizeof(*st));
}

bool pos_escpos_status_is_reply(uint8_t byte)
{
    /* Every DLE EOT reply has bits 0 and 7 at 0 and bits 1 and 4 at 1;
     * anything else is noise or another reply (e.g. ASB), never a guess. */
    return (byte & 0x93) == 0x12;
}

int pos_escpos_status_parse(uint8_t n, uint8_t byte, pos_printer_status_t *st)
{
    if (n < 1 || n > 4 || st == NULL) {
        return -EINVAL;
    }
    if (!pos_escpos_status_is_reply(byte)) {
        return -EBADMSG;
    }
    switch (n) {
    case 1:
        st->drawer_pin3_high = (byte & 0x04) != 0;
        st->online = (byte & 0x08) == 0;
        st->waiting_recovery = (byte & 0x20) != 0;
        st->feed_button = (byte & 0x40) != 0;
        break;
    case 2:
        st->cover_open = (byte & 0x04) != 0;
        st->feeding_by_button = (byte & 0x08) != 0;
        st->paper_end_stop = (byte & 0x20) != 0;
        st->error = (byte & 0x40) != 0;
        break;
    case 3:
        st->mechanical_error = (byte & 0x04) != 0;
        st->autocutter_error = (byte & 0x08) != 0;
        st->unrecoverable_error = (byte & 0x20) != 0;
        st->auto_recoverable_err = (byte & 0x40) != 0;
        break;
    default:
        /* Each sensor reports on two bits (both set on Epson); either one
         * counts, so a model that sets only one is not missed. */
        st->paper_near_end = (byte & 0x0C) != 0;
        st->paper_end = (byte & 0x60) != 0;
        break;
    }
    st->have |= (uint8_t)(1u << n);
    return 0;
}

const char *pos_escpos_status_state(const pos_printer_status_t *st)
{
    if (st == NULL || st->have == 0) {
        return "offline";
    }
    if (st->cover_open) {
        return "cover_open";
    }
    if (st->paper_end || st->paper_end_stop) {
        return "paper_out";
    }
    if (st->error || st->mechanical_error || st->autocutter_error || st->unrecoverable_error ||
        st->auto_recoverable_err) {
        return "error";
    }
    if ((st->have & (1u << 1)) && !st->online) {
        return "offline";
    }
    if (st->paper_near_end) {
        return "paper_low";
    }
    return "ready";
}
