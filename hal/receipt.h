#ifndef HAL_RECEIPT_H
#define HAL_RECEIPT_H

/*
 * Receipt layout (pure): a payment becomes a document model (lines of text
 * with alignment and style), which two renderers turn into ESC/POS bytes or
 * into the plain text that would be on the paper. No allocation: the
 * document is a fixed-size struct owned by the caller.
 *
 * The document never holds a full card number: the masked PAN field is
 * refused (-EINVAL) when it carries more than 10 digits (first 6 + last 4).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/buf.h"
#include "hal/charset.h"
#include "hal/escpos.h"

#define POS_RECEIPT_MAX_LINES 128
#define POS_RECEIPT_MAX_WIDTH 48
/* A line holds up to 48 columns of UTF-8 (at most 4 bytes each) plus NUL. */
#define POS_RECEIPT_TEXT_MAX (POS_RECEIPT_MAX_WIDTH * 4 + 1)
#define POS_RECEIPT_QR_MAX   64

typedef struct pos_receipt_item {
    const char *name;     /* UTF-8 article name */
    int32_t qty;          /* quantity, units (may be negative for a return) */
    int64_t amount_minor; /* line amount, minor units of the currency */
} pos_receipt_item_t;

typedef struct pos_receipt_input {
    const char *store_id;            /* e.g. "S-042" */
    const char *terminal_id;         /* e.g. "T-0001" */
    const char *transaction_id;      /* e.g. "tx-1001" */
    const pos_receipt_item_t *items; /* may be NULL when n_items is 0 */
    size_t n_items;
    int64_t total_minor;    /* total, minor units */
    const char *currency;   /* ISO 4217 alphabetic code, e.g. "EUR" */
    unsigned minor_digits;  /* digits after the decimal point, 0..4 (EUR 2, JPY 0) */
    const char *masked_pan; /* already masked, at most 10 digits; NULL or "" if none */
    const char *card_brand; /* e.g. "VISA"; NULL if unknown */
    const char *auth_code;  /* authorisation code; NULL if none */
    int64_t time_s;         /* transaction time, Unix epoch seconds (rendered UTC) */
    unsigned width;         /* paper width, columns: 20..48 (usually 32, 42 or 48) */
} pos_receipt_input_t;

typedef struct pos_receipt_line {
    char text[POS_RECEIPT_TEXT_MAX]; /* UTF-8, no control characters, fits the line */
    pos_charset_align_t align;
    bool bold;
    bool double_size; /* double width and height: half as many columns */
} pos_receipt_line_t;

typedef struct pos_receipt_doc {
    unsigned width; /* columns at normal size */
    size_t n_lines;
    pos_receipt_line_t lines[POS_RECEIPT_MAX_LINES];
    char qr[POS_RECEIPT_QR_MAX]; /* QR payload (the transaction id), "" if none */
} pos_receipt_doc_t;

/*
 * Formats amount_minor with "digits" decimals as plain digits with a '.'
 * (1234, 2 -> "12.34"; -5, 2 -> "-0.05"; 1234, 0 -> "1234"), exact integer
 * arithmetic. Writes a NUL-terminated string into out (cap bytes).
 * Returns the length, -EINVAL (digits > 18), or -ENOSPC.
 */
int pos_receipt_format_amount(int64_t amount_minor, unsigned digits, char *out, size_t cap);

/*
 * Formats epoch seconds as "YYYY-MM-DD HH:MM:SS" in UTC (proleptic
 * Gregorian, any int64 whose year fits 4 digits: 0000..9999). out needs 20
 * bytes. Returns 0, -ERANGE (year outside 0..9999) or -ENOSPC.
 */
int pos_receipt_format_time(int64_t time_s, char *out, size_t cap);

/*
 * Counts the digits of a masked PAN and checks that at most 10 are left
 * (first 6 + last 4) and that every other character is a mask ('X', 'x',
 * '*') or a space. Returns 0 or -EINVAL.
 */
int pos_receipt_check_pan(const char *masked_pan);

/*
 * Lays out a payment receipt into *doc (overwritten). Text fields are
 * sanitised (control characters and invalid UTF-8 become '?') and cut to
 * the paper width; item names are shortened so the amount always fits.
 * Returns 0, -EINVAL (missing ids, bad width, minor_digits > 4, or a PAN
 * with more than 10 digits) or -E2BIG (more lines than the document holds).
 */
int pos_receipt_layout(const pos_receipt_input_t *in, pos_receipt_doc_t *doc);

/*
 * Renders doc as ESC/POS for printer model m (NULL = generic) and code page
 * cp: init, code page, the lines with their alignment and style (commands
 * sent only on change), a feed, the QR code of the transaction id when
 * want_qr and the model supports it, and the cut. Returns 0, -EINVAL, or
 * the buffer's errno.
 */
int pos_receipt_render_escpos(const pos_receipt_doc_t *doc, const pos_escpos_model_t *m,
                              pos_codepage_t cp, bool want_qr, pos_buf_t *out);

/*
 * Renders doc as the UTF-8 text on the paper: one '\n'-terminated line per
 * document line, placed by its alignment within the line's columns (width,
 * or width / 2 for double-size lines), without trailing spaces. Returns 0,
 * -EINVAL, or the buffer's errno.
 */
int pos_receipt_render_text(const pos_receipt_doc_t *doc, pos_buf_t *out);

#endif /* HAL_RECEIPT_H */
