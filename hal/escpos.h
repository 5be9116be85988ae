#ifndef HAL_ESCPOS_H
#define HAL_ESCPOS_H

/*
 * ESC/POS receipt printer encoder and real-time status parser (pure: bytes
 * in, bytes out, no I/O). Every encoder appends to a caller-owned pos_buf_t
 * and returns 0 or the buffer's sticky negative errno.
 *
 * Commands emitted (hex):
 *   init           ESC @              1B 40
 *   code page      ESC t n            1B 74 n     (n from pos_charset_escpos_table)
 *   alignment      ESC a n            1B 61 n     (0 left, 1 centre, 2 right)
 *   bold           ESC E n            1B 45 n     (0 off, 1 on)
 *   size           GS ! n             1D 21 n     (0x10 double width, 0x01 double height)
 *   line feed      LF                 0A
 *   feed n lines   ESC d n            1B 64 n
 *   cut            GS V 66 0          1D 56 42 00 (feed to the cutter, partial cut)
 *                  or ESC d 4 + GS V 1 (1D 56 01), ESC d 4 + ESC i (1B 69), per model
 *   QR code        GS ( k             1D 28 6B ... (model 2, size, EC level M, store, print)
 *   status query   DLE EOT n          10 04 n     (n = 1..4)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/buf.h"
#include "hal/charset.h"

typedef enum pos_escpos_cut {
    POS_ESCPOS_CUT_GS_V66 = 0, /* GS V 66 0: feed to the cutter, then partial cut */
    POS_ESCPOS_CUT_GS_V1 = 1,  /* ESC d feed, GS V 1: partial cut (older firmware) */
    POS_ESCPOS_CUT_ESC_I = 2,  /* ESC d feed, ESC i: partial cut (legacy) */
    POS_ESCPOS_CUT_NONE = 3,   /* ESC d feed only: tear-off bar, no cutter */
} pos_escpos_cut_t;

typedef struct pos_escpos_model {
    const char *name;     /* configuration name, e.g. "tm-t20" */
    pos_escpos_cut_t cut; /* how the paper is cut */
    uint8_t feed_lines;   /* lines fed before a cut that does not feed itself */
    bool has_qr;          /* understands GS ( k (QR code) */
} pos_escpos_model_t;

/*
 * Returns the model named "name" from the built-in table ("generic",
 * "tm-t20", "tm-t88", "legacy", "esc-i", "no-cut"), or NULL when unknown.
 * NULL or "" gives "generic".
 */
const pos_escpos_model_t *pos_escpos_model_find(const char *name);

/* ESC @: resets the printer's modes (not its buffer). */
int pos_escpos_init(pos_buf_t *b);

/* ESC t n: selects the character table matching cp. Returns -EINVAL for an unknown cp. */
int pos_escpos_codepage(pos_buf_t *b, pos_codepage_t cp);

/* ESC a n: justification of the following lines. */
int pos_escpos_align(pos_buf_t *b, pos_charset_align_t align);

/* ESC E n: emphasised (bold) on or off. */
int pos_escpos_bold(pos_buf_t *b, bool on);

/* GS ! n: character size, normal or doubled in width and/or height. */
int pos_escpos_size(pos_buf_t *b, bool double_width, bool double_height);

/*
 * Appends len bytes of UTF-8 text transcoded to cp (unmappable, invalid and
 * control characters become '?', so text can never inject a command).
 */
int pos_escpos_text(pos_buf_t *b, pos_codepage_t cp, const char *utf8, size_t len);

/* LF: prints the line buffer and feeds one line. */
int pos_escpos_lf(pos_buf_t *b);

/* ESC d n: prints and feeds n lines (0..255). */
int pos_escpos_feed(pos_buf_t *b, uint8_t lines);

/* Cuts the paper the way model m can (NULL means "generic"). */
int pos_escpos_cut(pos_buf_t *b, const pos_escpos_model_t *m);

/* Largest QR payload accepted, bytes (model 2, level M, byte mode, version 40). */
#define POS_ESCPOS_QR_MAX 2331

/*
 * Appends the GS ( k sequence printing a QR code of data[0..len): select
 * model 2, module size (1..16 dots), error correction level M, store the
 * data, print. Returns 0, -EINVAL (size out of range, len 0 or above
 * POS_ESCPOS_QR_MAX) or the buffer error.
 */
int pos_escpos_qr(pos_buf_t *b, const uint8_t *data, size_t len, uint8_t module_size);

/* DLE EOT n: asks for real-time status n (1..4). Returns -EINVAL for other n. */
int pos_escpos_status_query(pos_buf_t *b, uint8_t n);

/* Printer state assembled from DLE EOT replies. */
typedef struct pos_printer_status {
    uint8_t have;              /* bit (1 << n) set once status n has been parsed */
    bool online;               /* n=1 bit 3 clear */
    bool drawer_pin3_high;     /* n=1 bit 2: drawer kick-out connector pin 3 */
    bool waiting_recovery;     /* n=1 bit 5: waiting for online recovery */
    bool feed_button;          /* n=1 bit 6: paper feed button pressed */
    bool cover_open;           /* n=2 bit 2 */
    bool feeding_by_button;    /* n=2 bit 3 */
    bool paper_end_stop;       /* n=2 bit 5: printing stopped for lack of paper */
    bool error;                /* n=2 bit 6, or any n=3 error bit */
    bool mechanical_error;     /* n=3 bit 2: recoverable (mechanical) error */
    bool autocutter_error;     /* n=3 bit 3 */
    bool unrecoverable_error;  /* n=3 bit 5 */
    bool auto_recoverable_err; /* n=3 bit 6: e.g. head overheated */
    bool paper_near_end;       /* n=4 bits 2-3: roll near-end sensor */
    bool paper_end;            /* n=4 bits 5-6: roll end sensor, or n=2 bit 5 */
} pos_printer_status_t;

/* Clears a status (nothing known, not online). */
void pos_escpos_status_clear(pos_printer_status_t *st);

/* True when byte has the fixed bits of every DLE EOT n reply (bits 0 and 7
 * at 0, bits 1 and 4 at 1), so it may be a status reply; whose, the byte
 * does not say. */
bool pos_escpos_status_is_reply(uint8_t byte);

/*
 * Folds the reply "byte" to DLE EOT n (1..4) into *st. The fixed bits are
 * checked first (bits 0 and 7 must be 0, bits 1 and 4 must be 1); a byte
 * that breaks them is not a status reply and is rejected without touching
 * *st. Returns 0, -EBADMSG (wrong fixed bits) or -EINVAL (n out of range).
 */
int pos_escpos_status_parse(uint8_t n, uint8_t byte, pos_printer_status_t *st);

/*
 * Summarises a status as the cloud contract's printer device state, by
 * precedence: nothing parsed "offline"; "cover_open"; "paper_out"; "error";
 * "offline" (status 1 says off-line for another reason); "paper_low";
 * "ready". The cause wins over plain "offline" because an open cover or an
 * empty roll also takes the printer off-line.
 */
const char *pos_escpos_status_state(const pos_printer_status_t *st);

#endif /* HAL_ESCPOS_H */
