#ifndef HAL_TELIUM_H
#define HAL_TELIUM_H

/*
 * Ingenico Telium "Caisse" (Concert) protocol E+, pure codecs: framing,
 * LRC, an incremental frame decoder, the payment request encoder and the
 * reply parser. See docs/telium-protocol.md for the subset implemented.
 *
 *   frame = STX payload ETX LRC,  LRC = XOR of payload bytes and ETX
 *
 * Card data: the reply parser masks any card number immediately
 * (pos_pan_mask) and wipes the report field in the caller's buffer, so a
 * full PAN never outlives the call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POS_TELIUM_STX 0x02
#define POS_TELIUM_ETX 0x03
#define POS_TELIUM_EOT 0x04
#define POS_TELIUM_ENQ 0x05
#define POS_TELIUM_ACK 0x06
#define POS_TELIUM_NAK 0x15

#define POS_TELIUM_REQUEST_LEN    34 /* E+ request payload, bytes */
#define POS_TELIUM_REPLY_LEN      25 /* reply payload without report, bytes */
#define POS_TELIUM_REPLY_FULL_LEN 80 /* reply payload with the 55-byte report */
#define POS_TELIUM_REPORT_LEN     55
#define POS_TELIUM_PRIVATE_LEN    10
#define POS_TELIUM_PRIVATE_OFF    16 /* where the private field is in a request payload */
#define POS_TELIUM_MAX_PAYLOAD    96 /* larger payloads are rejected as oversize */
#define POS_TELIUM_FRAME_OVERHEAD 3  /* STX, ETX, LRC */

#define POS_TELIUM_MAX_RETRIES        3    /* NAKed frame resent at most this often */
#define POS_TELIUM_ACK_TIMEOUT_MS     3000 /* wait for ACK/NAK or the next byte */
#define POS_TELIUM_CUSTOMER_TIMEOUT_S 120  /* wait for the reply while the customer pays */

/* Returns the LRC of len bytes: their XOR (pass payload plus ETX). */
uint8_t pos_telium_lrc(const uint8_t *data, size_t len);

/*
 * Frames payload[0..len) as STX payload ETX LRC into out (cap bytes). The
 * payload must not contain STX, ETX or other bytes below 0x20 (it is
 * ASCII text). Stores the frame length in *out_len. Returns 0, -EINVAL
 * (bad payload or len above POS_TELIUM_MAX_PAYLOAD) or -ENOSPC.
 */
int pos_telium_frame(const uint8_t *payload, size_t len, uint8_t *out, size_t cap, size_t *out_len);

typedef struct pos_telium_request {
    unsigned pos_number;       /* cash register number, 0..99 */
    uint32_t amount_minor;     /* minor units, 1..99999999 */
    bool want_report;          /* '1': ask for the 55-byte report (card number) */
    char payment_mode;         /* '1' card (also 'C' cheque, ...) */
    char transaction_type;     /* '0' debit, '1' credit, '2' cancel, '4' pre-auth */
    unsigned currency_numeric; /* ISO 4217 numeric, 1..999 (978 = EUR) */
    char private_data[POS_TELIUM_PRIVATE_LEN + 1]; /* printable ASCII, space-padded */
    bool reply_immediately;                        /* false: "A010" (reply at end), true: "A011" */
    bool force_authorisation;                      /* false: "B010", true: "B011" */
} pos_telium_request_t;

/* Fills *req with defaults: pos 1, card, debit, EUR, report wanted, A010, B010. */
void pos_telium_request_defaults(pos_telium_request_t *req);

/*
 * Encodes the 34-byte E+ payment request payload into out (34 bytes, not
 * NUL-terminated). Returns 0 or -EINVAL (a field out of range).
 */
int pos_telium_encode_request(const pos_telium_request_t *req, uint8_t out[POS_TELIUM_REQUEST_LEN]);

/* Parses a 34-byte request payload (for the terminal emulator). Returns 0 or -EBADMSG. */
int pos_telium_parse_request(const uint8_t *payload, size_t len, pos_telium_request_t *req);

typedef enum pos_telium_event {
    POS_TELIUM_EV_NONE = 0, /* byte consumed, nothing complete yet */
    POS_TELIUM_EV_ENQ,      /* peer asks to send */
    POS_TELIUM_EV_ACK,      /* peer accepted our frame / our ENQ */
    POS_TELIUM_EV_NAK,      /* peer rejected our frame */
    POS_TELIUM_EV_EOT,      /* peer ends the session */
    POS_TELIUM_EV_FRAME,    /* a frame with a good LRC: payload available */
    POS_TELIUM_EV_BAD_LRC,  /* frame ended with a wrong LRC: answer NAK */
    POS_TELIUM_EV_OVERSIZE, /* frame longer than the maximum ended: answer NAK */
    POS_TELIUM_EV_GARBAGE,  /* a byte outside any frame that means nothing */
} pos_telium_event_t;

typedef struct pos_telium_decoder {
    uint8_t state;
    uint8_t lrc;      /* running XOR of the payload */
    size_t len;       /* payload bytes held */
    uint32_t garbage; /* bytes dropped outside frames, and aborted frames */
    uint8_t payload[POS_TELIUM_MAX_PAYLOAD];
} pos_telium_decoder_t;

/* Initialises (or resets and wipes) a decoder. */
void pos_telium_decoder_init(pos_telium_decoder_t *d);

/*
 * Feeds one byte and returns what it completed. After POS_TELIUM_EV_FRAME
 * the payload is available from pos_telium_decoder_payload() until the
 * next byte is fed. STX inside a frame restarts the frame; ENQ, ACK, NAK
 * or EOT inside a frame abort it and are reported themselves.
 */
pos_telium_event_t pos_telium_decoder_feed(pos_telium_decoder_t *d, uint8_t byte);

/*
 * Returns the payload of the last complete frame and its length in *len
 * (0 when none). The buffer is writable so that the reply parser can wipe
 * card data in place.
 */
uint8_t *pos_telium_decoder_payload(pos_telium_decoder_t *d, size_t *len);

/* Returns a short name of an event ("frame", "bad_lrc", ...). */
const char *pos_telium_event_name(pos_telium_event_t ev);

#define POS_PAN_MASKED_MAX 20 /* 19 characters and the NUL */

/*
 * Masks a card number: pan[0..len) must be 12..19 ASCII digits; writes the
 * first 6 and the last 4 digits with 'X' in between, NUL-terminated, into
 * out (cap >= len + 1). Returns 0, or -EINVAL (non-digit, bad length) or
 * -ENOSPC, in which case out is "" if cap allows.
 */
int pos_pan_mask(const char *pan, size_t len, char *out, size_t cap);

typedef struct pos_telium_reply {
    unsigned pos_number;       /* echoed cash register number */
    char status;               /* '0' accepted, '7' refused, '9' not handled, ... */
    bool approved;             /* status == '0' */
    uint32_t amount_minor;     /* echoed / actual amount, minor units */
    char payment_mode;         /* echoed payment mode */
    unsigned currency_numeric; /* ISO 4217 numeric */
    char private_data[POS_TELIUM_PRIVATE_LEN + 1]; /* printable ASCII, as sent back */
    bool has_report;                               /* the payload carried the 55-byte report */
    char masked_pan[POS_PAN_MASKED_MAX];           /* first 6 / last 4, or "" when none */
} pos_telium_reply_t;

/*
 * Parses a reply payload (25 or 80 bytes). The report field, which may
 * hold the card number, is read for a leading run of digits (the PAN),
 * which is masked into masked_pan; then the whole report field of the
 * caller's buffer is wiped, whatever the outcome. A payload of any other
 * length is wiped entirely (its layout is unknown, so it may hold card
 * data). Returns 0 or -EBADMSG (wrong length or a malformed field).
 */
int pos_telium_parse_reply(uint8_t *payload, size_t len, pos_telium_reply_t *out);

/* What the terminal emulator answers: fields of a reply to encode. */
typedef struct pos_telium_reply_spec {
    unsigned pos_number;
    char status;
    uint32_t amount_minor;
    char payment_mode;
    unsigned currency_numeric;
    const char *private_data; /* up to 10 printable ASCII, space-padded; NULL = spaces */
    const char *pan;          /* report content start (test card digits); NULL = no report */
} pos_telium_reply_spec_t;

/*
 * Encodes a reply payload (80 bytes with a report when spec->pan is set,
 * else 25) into out (cap bytes). Stores the length in *out_len. Returns 0,
 * -EINVAL or -ENOSPC.
 */
int pos_telium_encode_reply(const pos_telium_reply_spec_t *spec, uint8_t *out, size_t cap,
                            size_t *out_len);

#endif /* HAL_TELIUM_H */
