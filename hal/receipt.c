#include "hal/receipt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define RECEIPT_MIN_WIDTH 20

int pos_receipt_format_amount(int64_t amount_minor, unsigned digits, char *out, size_t cap)
{
    char tmp[48];
    size_t n = 0;
    /* Magnitude in unsigned arithmetic: -INT64_MIN does not fit int64_t. */
    uint64_t mag = amount_minor < 0 ? (uint64_t)0 - (uint64_t)amount_minor : (uint64_t)amount_minor;

    if (digits > 18 || out == NULL) {
        return -EINVAL;
    }
    /* Digits are produced least significant first into tmp, reversed below;
     * at least digits + 1 of them so that 5 with 2 digits gives "0.05". */
    for (unsigned i = 0; i < digits; i++) {
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
    }
    if (digits) {
        tmp[n++] = '.';
    }
    do {
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (amount_minor < 0) {
        tmp[n++] = '-';
    }
    if (n >= cap) {
        if (cap) {
            out[0] = '\0';
        }
        return -ENOSPC;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
    return (int)n;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (era-based method:
 * a 400-year era has exactly 146097 days, and counting years from March
 * puts the leap day at the end of the year). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468; /* days from 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] from March */
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

int pos_receipt_format_time(int64_t time_s, char *out, size_t cap)
{
    /* Limit to years 0..9999 before any arithmetic that could overflow. */
    const int64_t lo = -62167219200; /* 0000-01-01 00:00:00 */
    const int64_t hi = 253402300799; /* 9999-12-31 23:59:59 */
    int64_t days, secs, y;
    unsigned mo, d;

    if (out == NULL || cap < 20) {
        return -ENOSPC;
    }
    if (time_s < lo || time_s > hi) {
        return -ERANGE;
    }
    days = time_s / 86400;
    secs = time_s % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    civil_from_days(days, &y, &mo, &d);
    snprintf(out, cap, "%04" PRId64 "-%02u-%02u %02u:%02u:%02u", y, mo, d, (unsigned)(secs / 3600),
             (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
    return 0;
}

int pos_receipt_check_pan(const char *masked_pan)
{
    unsigned digits = 0;

    if (masked_pan == NULL) {
        return 0;
    }
    for (const char *p = masked_pan; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (*p != 'X' && *p != 'x' && *p != '*' && *p != ' ') {
            return -EINVAL;
        }
    }
    return digits > 10 ? -EINVAL : 0;
}

/* Appends one line: text sanitised and cut to the columns of its size. */
static int add_line(pos_receipt_doc_t *doc, const char *text, pos_charset_align_t align, bool bold,
                    bool dbl)
{
    char clean[POS_RECEIPT_TEXT_MAX];
    size_t clean_len = 0;
    size_t cols = dbl ? doc->width / 2 : doc->width;

    if (doc->n_lines >= POS_RECEIPT_MAX_LINES) {
        return -E2BIG;
    }
    /* -ENOSPC only means "cut": a unit is at most 4 bytes, so the buffer
     * still holds more than POS_RECEIPT_MAX_WIDTH columns. */
    int rc = pos_charset_sanitize(text ? text : "", text ? strlen(text) : 0,
                                  POS_CHARSET_REPLACEMENT, clean, sizeof(clean), &clean_len);
    if (rc < 0 && rc != -ENOSPC) {
        return rc;
    }
    pos_receipt_line_t *l = &doc->lines[doc->n_lines++];
    size_t keep = pos_charset_prefix(clean, clean_len, cols);
    memcpy(l->text, clean, keep);
    l->text[keep] = '\0';
    l->align = align;
    l->bold = bold;
    l->double_size = dbl;
    return 0;
}

/*
 * Appends "left ... right" on one line of the given size; when both do not
 * fit, shortens the left part if shorten_left, else puts the right part on
 * a line of its own, right-aligned.
 */
static int add_pair(pos_receipt_doc_t *doc, const char *left, const char *right, bool bold,
                    bool dbl, bool shorten_left)
{
    char line[POS_RECEIPT_TEXT_MAX * 2 + POS_RECEIPT_MAX_WIDTH];
    char l[POS_RECEIPT_TEXT_MAX], r[POS_RECEIPT_TEXT_MAX];
    size_t llen = 0, rlen = 0;
    size_t cols = dbl ? doc->width / 2 : doc->width;

    int rc = pos_charset_sanitize(left, strlen(left), POS_CHARSET_REPLACEMENT, l, sizeof(l), &llen);
    if (rc < 0 && rc != -ENOSPC) {
        return rc;
    }
    rc = pos_charset_sanitize(right, strlen(right), POS_CHARSET_REPLACEMENT, r, sizeof(r), &rlen);
    if (rc < 0 && rc != -ENOSPC) {
        return rc;
    }
    size_t lcols = pos_charset_columns(l, llen);
    size_t rcols = pos_charset_columns(r, rlen);
    if (rcols + 1 < cols && (lcols + 1 + rcols <= cols || shorten_left)) {
        size_t lkeep = pos_charset_prefix(l, llen, cols - 1 - rcols);
        size_t gap = cols - pos_charset_columns(l, lkeep) - rcols;
        memcpy(line, l, lkeep);
        memset(line + lkeep, ' ', gap);
        memcpy(line + lkeep + gap, r, rlen);
        line[lkeep + gap + rlen] = '\0';
        return add_line(doc, line, POS_ALIGN_LEFT, bold, dbl);
    }
    rc = add_line(doc, l, POS_ALIGN_LEFT, bold, dbl);
    if (rc < 0) {
        return rc;
    }
    return add_line(doc, r, POS_ALIGN_RIGHT, bold, dbl);
}

static int add_rule(pos_receipt_doc_t *doc)
{
    char rule[POS_RECEIPT_MAX_WIDTH + 1];

    memset(rule, '-', doc->width);
    rule[doc->width] = '\0';
    return add_line(doc, rule, POS_ALIGN_LEFT, false, false);
}

static int check_currency(const char *cur)
{
    if (cur == NULL || strlen(cur) != 3) {
        return -EINVAL;
    }
    for (int i = 0; i < 3; i++) {
        if (cur[i] < 'A' || cur[i] > 'Z') {
            return -EINVAL;
        }
    }
    return 0;
}

static bool nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int pos_receipt_layout(const pos_receipt_input_t *in, pos_receipt_doc_t *doc)
{
    char amount[32], left[POS_RECEIPT_TEXT_MAX], right[48], when[24];
    int rc = 0;

    if (in == NULL || doc == NULL) {
        return -EINVAL;
    }
    doc->n_lines = 0;
    doc->qr[0] = '\0';
    doc->width = 0;
    if (!nonempty(in->store_id) || !nonempty(in->terminal_id) || !nonempty(in->transaction_id) ||
        in->width < RECEIPT_MIN_WIDTH || in->width > POS_RECEIPT_MAX_WIDTH ||
        in->minor_digits > 4 || check_currency(in->currency) < 0 ||
        (in->n_items && in->items == NULL)) {
        return -EINVAL;
    }
    /* Defence in depth: the PAN must arrive masked; refuse rather than
     * print (or keep in memory) anything that could be a full number. */
    if (pos_receipt_check_pan(in->masked_pan) < 0) {
        return -EINVAL;
    }
    if (pos_receipt_format_time(in->time_s, when, sizeof(when)) < 0) {
        return -EINVAL;
    }
    doc->width = in->width;

    rc = add_line(doc, in->store_id, POS_ALIGN_CENTER, true, true);
    if (rc == 0) {
        rc = add_pair(doc, "Terminal", in->terminal_id, false, false, false);
    }
    if (rc == 0) {
        rc = add_pair(doc, "Transaction", in->transaction_id, false, false, false);
    }
    if (rc == 0) {
        snprintf(right, sizeof(right), "%s UTC", when);
        rc = add_pair(doc, "Date", right, false, false, false);
    }
    if (rc == 0) {
        rc = add_rule(doc);
    }
    for (size_t i = 0; rc == 0 && i < in->n_items; i++) {
        const pos_receipt_item_t *it = &in->items[i];
        if (pos_receipt_format_amount(it->amount_minor, in->minor_digits, amount, sizeof(amount)) <
            0) {
            return -EINVAL;
        }
        snprintf(left, sizeof(left), "%" PRId32 " x %s", it->qty, it->name ? it->name : "");
        rc = add_pair(doc, left, amount, false, false, true);
    }
    if (rc == 0) {
        rc = add_rule(doc);
    }
    if (rc == 0) {
        if (pos_receipt_format_amount(in->total_minor, in->minor_digits, amount, sizeof(amount)) <
            0) {
            return -EINVAL;
        }
        snprintf(right, sizeof(right), "%s %s", in->currency, amount);
        /* Double size when "TOTAL <amount>" fits half the width. */
        bool dbl = strlen("TOTAL") + 1 + strlen(right) <= in->width / 2;
        rc = add_pair(doc, "TOTAL", right, true, dbl, false);
    }
    if (rc == 0) {
        rc = add_rule(doc);
    }
    if (rc == 0 && nonempty(in->card_brand)) {
        rc = add_pair(doc, "Card", in->card_brand, false, false, false);
    }
    if (rc == 0 && nonempty(in->masked_pan)) {
        rc = add_pair(doc, "PAN", in->masked_pan, false, false, false);
    }
    if (rc == 0 && nonempty(in->auth_code)) {
        rc = add_pair(doc, "Auth code", in->auth_code, false, false, false);
    }
    if (rc == 0) {
        rc = add_line(doc, "APPROVED", POS_ALIGN_CENTER, true, false);
    }
    if (rc == 0) {
        rc = add_line(doc, "Thank you", POS_ALIGN_CENTER, false, false);
    }
    if (rc < 0) {
        doc->n_lines = 0;
        return rc;
    }
    /* The QR carries the transaction id only if it fits and is plain
     * printable ASCII (what a scanner at the service desk expects). */
    size_t idlen = strlen(in->transaction_id);
    bool ascii = idlen < sizeof(doc->qr);
    for (size_t i = 0; ascii && i < idlen; i++) {
        ascii = in->transaction_id[i] > 0x20 && in->transaction_id[i] < 0x7F;
    }
    if (ascii) {
        memcpy(doc->qr, in->transaction_id, idlen + 1);
    }
    return 0;
}

int pos_receipt_render_escpos(const pos_receipt_doc_t *doc, const pos_escpos_model_t *m,
                              pos_codepage_t cp, bool want_qr, pos_buf_t *out)
{
    pos_charset_align_t align = POS_ALIGN_LEFT;
    bool bold = false, dbl = false;

    if (doc == NULL || out == NULL || doc->n_lines > POS_RECEIPT_MAX_LINES ||
        pos_charset_escpos_table(cp) < 0) {
        return -EINVAL;
    }
    if (m == NULL) {
        m = pos_escpos_model_find(NULL);
    }
    pos_escpos_init(out);
    pos_escpos_codepage(out, cp);
    /* After ESC @ the printer is left-aligned, not bold, normal size: only
     * changes are sent, which keeps receipts short on slow serial links. */
    for (size_t i = 0; i < doc->n_lines; i++) {
        const pos_receipt_line_t *l = &doc->lines[i];
        if (l->align != align) {
            pos_escpos_align(out, l->align);
            align = l->align;
        }
        if (l->bold != bold) {
            pos_escpos_bold(out, l->bold);
            bold = l->bold;
        }
        if (l->double_size != dbl) {
            pos_escpos_size(out, l->double_size, l->double_size);
            dbl = l->double_size;
        }
        pos_escpos_text(out, cp, l->text, strlen(l->text));
        pos_escpos_lf(out);
    }
    if (bold) {
        pos_escpos_bold(out, false);
    }
    if (dbl) {
        pos_escpos_size(out, false, false);
    }
    if (want_qr && m->has_qr && doc->qr[0] != '\0') {
        if (align != POS_ALIGN_CENTER) {
            pos_escpos_align(out, POS_ALIGN_CENTER);
        }
        pos_escpos_feed(out, 1);
        pos_escpos_qr(out, (const uint8_t *)doc->qr, strlen(doc->qr), 6);
        pos_escpos_lf(out);
        align = POS_ALIGN_CENTER;
    }
    if (align != POS_ALIGN_LEFT) {
        pos_escpos_align(out, POS_ALIGN_LEFT);
    }
    return pos_escpos_cut(out, m);
}

int pos_receipt_render_text(const pos_receipt_doc_t *doc, pos_buf_t *out)
{
    if (doc == NULL || out == NULL || doc->n_lines > POS_RECEIPT_MAX_LINES) {
        return -EINVAL;
    }
    for (size_t i = 0; i < doc->n_lines; i++) {
        const pos_receipt_line_t *l = &doc->lines[i];
        size_t len = strlen(l->text);
        size_t cols = l->double_size ? doc->width / 2 : doc->width;
        size_t tcols = pos_charset_columns(l->text, len);
        size_t pad = tcols < cols ? cols - tcols : 0;
        size_t left = l->align == POS_ALIGN_RIGHT    ? pad
                      : l->align == POS_ALIGN_CENTER ? pad / 2
                                                     : 0;

        /* Trailing spaces are not ink: drop them so tests compare text. */
        while (len && l->text[len - 1] == ' ') {
            len--;
        }
        pos_buf_fill(out, ' ', l->double_size ? left * 2 : left);
        pos_buf_append(out, l->text, len);
        pos_buf_put(out, '\n');
    }
    return out->error;
}
