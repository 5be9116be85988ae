#ifndef AGENT_MSG_MESSAGES_H
#define AGENT_MSG_MESSAGES_H

/*
 * Channel messages between the cloud and the agent (see CONTRACT.md).
 *
 * Decoding (cloud -> agent) is pure: bytes in, a fixed-size tagged union
 * out, no allocation that outlives the call, no I/O. Every string in the
 * result is NUL-terminated, valid UTF-8 and checked against its length
 * limit and character set, so callers can use it without re-checking.
 *
 * Encoding (agent -> cloud) writes one unformatted JSON object into a
 * caller buffer, fields in the contract's order: "type", "origin",
 * "terminalId", "storeId", the type's own fields, then "ts". Amounts are
 * written as raw number tokens with exactly the currency's decimals
 * (12.30 stays 12.30, never 12.3 or 12.300000000000001).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/msg/amount.h"

#define POS_MSG_ID_MAX            64   /* transactionId, storeId, ... bytes */
#define POS_MSG_LINES_MAX         50   /* receipt lines in a PAYMENT_REQUESTED */
#define POS_MSG_LINE_NAME_MAX     40   /* UTF-8 bytes of a line's name */
#define POS_MSG_LINE_QTY_MAX      9999 /* qty of a receipt line */
#define POS_MSG_DISPLAY_LINES_MAX 2    /* lines of a DISPLAY_MESSAGE */
#define POS_MSG_DISPLAY_LINE_MAX  80   /* UTF-8 bytes of a display line */
#define POS_MSG_ALERT_MAX         200  /* UTF-8 bytes of a SYSTEM_ALERT message */
#define POS_MSG_PATTERN_MAX       256  /* bytes of a CACHE_INVALIDATE pattern */
#define POS_MSG_SIG_MAX           512  /* bytes of a "sig" (printable ASCII) */
#define POS_MSG_AMOUNT_TEXT_MAX   32   /* bytes of an amount as sent */
#define POS_MSG_AUTH_MAX          16   /* authCode bytes */
#define POS_MSG_PAN_MAX           19   /* maskedPan bytes */
#define POS_MSG_BRAND_MAX         32   /* cardBrand bytes */
#define POS_MSG_REASON_MAX        32   /* reason bytes */

/* Default largest message accepted by pos_msg_decode(), bytes. */
#define POS_MSG_DEFAULT_MAX_LEN 65536

/* The channel a message arrived on: each accepts its own types only. */
#define POS_MSG_MAX_BYTES (64u * 1024u) /* larger channel messages are dropped */

typedef enum pos_msg_channel {
    POS_MSG_CH_PAYMENT = 0, /* payment:{terminalId} */
    POS_MSG_CH_INVENTORY,   /* inventory:{storeId} */
    POS_MSG_CH_SYSTEM,      /* system:alerts */
    POS_MSG_CH_COUNT
} pos_msg_channel_t;

/* Cloud -> agent message types. */
typedef enum pos_msg_type {
    POS_MSG_NONE = 0,
    POS_MSG_PAYMENT_REQUESTED,
    POS_MSG_PAYMENT_CANCELLED,
    POS_MSG_RECEIPT_REPRINT,
    POS_MSG_DISPLAY_MESSAGE,
    POS_MSG_INVENTORY_UPDATED,
    POS_MSG_LOW_STOCK_ALERT,
    POS_MSG_SYSTEM_ALERT,
    POS_MSG_CACHE_INVALIDATE
} pos_msg_type_t;

/* One receipt line. "amount" is the unit price: the contract's example
 * (2 x 5.00 + 1 x 2.34 = 12.34) only adds up that way. May be zero. */
typedef struct pos_msg_line {
    char name[POS_MSG_LINE_NAME_MAX + 1];
    uint16_t qty;        /* 1..POS_MSG_LINE_QTY_MAX */
    int64_t unit_minor;  /* unit price in minor units, 0..max_amount_minor */
} pos_msg_line_t;

typedef struct pos_msg_payment {
    char transaction_id[POS_MSG_ID_MAX + 1];
    int64_t amount_minor;     /* > 0, <= max_amount_minor */
    pos_currency_t currency;  /* alpha, numeric and minor digits */
    char amount_text[POS_MSG_AMOUNT_TEXT_MAX + 1]; /* as sent, for a signature check */
    size_t line_count;
    pos_msg_line_t lines[POS_MSG_LINES_MAX];
    bool has_ts;
    int64_t ts_ms;            /* "ts" if present: epoch ms, integer >= 0 */
    char sig[POS_MSG_SIG_MAX + 1]; /* "sig" if present, else "" */
} pos_msg_payment_t;

/* PAYMENT_CANCELLED and RECEIPT_REPRINT. */
typedef struct pos_msg_tx {
    char transaction_id[POS_MSG_ID_MAX + 1];
} pos_msg_tx_t;

typedef struct pos_msg_display {
    size_t line_count; /* 1..2 */
    char lines[POS_MSG_DISPLAY_LINES_MAX][POS_MSG_DISPLAY_LINE_MAX + 1];
} pos_msg_display_t;

/* INVENTORY_UPDATED and LOW_STOCK_ALERT: productId and quantity are
 * required, the rest optional (CONTRACT.md "Inventory"); fields the
 * contract does not name are kept in the message body, not here. */
typedef struct pos_msg_inventory {
    /* When absent: the channel's store (limits->store_id), or "" without one. */
    char store_id[POS_MSG_ID_MAX + 1];
    char product_id[POS_MSG_ID_MAX + 1];
    int64_t quantity;            /* may be negative (oversold); |q| <= 2^53 */
    bool has_threshold;          /* lowStockThreshold was given */
    int64_t low_stock_threshold; /* >= 0 when has_threshold, else 0 */
} pos_msg_inventory_t;

typedef enum pos_msg_severity {
    POS_MSG_SEV_INFO = 0,
    POS_MSG_SEV_WARNING,
    POS_MSG_SEV_CRITICAL
} pos_msg_severity_t;

typedef struct pos_msg_alert {
    pos_msg_severity_t severity;
    char message[POS_MSG_ALERT_MAX + 1];
    char store_id[POS_MSG_ID_MAX + 1];    /* "" when absent: all stores */
    char terminal_id[POS_MSG_ID_MAX + 1]; /* "" when absent: all terminals */
} pos_msg_alert_t;

typedef struct pos_msg_invalidate {
    char pattern[POS_MSG_PATTERN_MAX + 1]; /* Redis glob, 1..256 bytes */
} pos_msg_invalidate_t;

/* Who published a message, as its "origin" says (the signature, when keys
 * are set, is what vouches for it). */
typedef enum pos_msg_origin {
    POS_MSG_FROM_CLOUD = 0, /* no "origin", or one the contract does not name */
    POS_MSG_FROM_POS_APP,   /* "origin":"pos-app": a till's POS application, via its agent */
} pos_msg_origin_t;

/* A decoded message. */
typedef struct pos_msg {
    pos_msg_type_t type;
    pos_msg_origin_t origin;
    /* POS_MSG_FROM_POS_APP: the "terminalId" the publishing agent stamped. */
    char origin_terminal[POS_MSG_ID_MAX + 1];
    /*
     * Set when decoding failed on a PAYMENT_REQUESTED whose transactionId
     * itself is valid: the agent answers PAYMENT_REJECTED "invalid" for
     * this id. "" otherwise (and always "" on success).
     */
    char reject_transaction_id[POS_MSG_ID_MAX + 1];
    union {
        pos_msg_payment_t payment;     /* PAYMENT_REQUESTED */
        pos_msg_tx_t tx;               /* PAYMENT_CANCELLED, RECEIPT_REPRINT */
        pos_msg_display_t display;     /* DISPLAY_MESSAGE */
        pos_msg_inventory_t inventory; /* INVENTORY_UPDATED, LOW_STOCK_ALERT */
        pos_msg_alert_t alert;         /* SYSTEM_ALERT */
        pos_msg_invalidate_t invalidate; /* CACHE_INVALIDATE */
    } u;
} pos_msg_t;

/* Decoder limits, and the scope of the channel the message came on. */
typedef struct pos_msg_limits {
    size_t max_len;           /* bytes; 0 means POS_MSG_DEFAULT_MAX_LEN */
    int64_t max_amount_minor; /* largest payment or line amount, minor units (> 0) */
    /* The channel's store and terminal: a message whose top-level
     * "storeId" / "terminalId" names another is refused (-EPERM). NULL:
     * not checked (system:alerts, where those fields say whom an alert is
     * for; inventory:{storeId} for "terminalId", which there names the
     * till whose application published). */
    const char *store_id;
    const char *terminal_id;
} pos_msg_limits_t;

/*
 * Decodes one message of "len" bytes (no NUL needed) that arrived on
 * "channel". Fields the contract does not name are ignored; a field it
 * names must appear at most once. "origin":"pos-app" (CONTRACT.md
 * "Messages from the POS application") is decoded on the inventory
 * channel only, and must carry the publishing till's "terminalId".
 *
 * Returns 0 with *out filled, or:
 *   -EMSGSIZE  longer than limits->max_len (checked before parsing);
 *   -EBADMSG   not UTF-8, a NUL byte or \u0000, not JSON, trailing bytes,
 *              not an object, a duplicated field (out->type is the type
 *              once it is known; see reject_transaction_id: with a
 *              \u0000 elsewhere than in the transactionId, a request is
 *              still named);
 *   -EALREADY  "origin":"terminal": an echo of an agent's own message,
 *              to be dropped silently (out->type is POS_MSG_NONE); also
 *              "origin":"pos-app" on the payment and system channels,
 *              where no POS application publishes (out->origin says so);
 *   -EPERM     the message names another store or terminal than the
 *              channel's (limits->store_id, limits->terminal_id): out->type
 *              is the type, reject_transaction_id set for a request;
 *   -ENOMSG    missing or unknown "type", or a type not carried by this
 *              channel;
 *   -EINVAL    a missing, mistyped or out-of-range field (out->type is the
 *              type; see reject_transaction_id);
 *   -EINVAL    also for bad arguments (NULL json or out, unknown channel).
 * On any error "why" (if whylen > 0) gets a short reason naming at most
 * the type and a field, never a value, so it can be logged without card
 * data.
 */
int pos_msg_decode(pos_msg_channel_t channel, const char *json, size_t len,
                   const pos_msg_limits_t *limits, pos_msg_t *out, char *why, size_t whylen);

/* The contract's name of a type ("PAYMENT_REQUESTED"), "" for POS_MSG_NONE or unknown. */
const char *pos_msg_type_name(pos_msg_type_t type);

/*
 * True when "s" is an identifier as the contract uses them (transactionId,
 * storeId, productId, terminalId): 1..64 bytes of [A-Za-z0-9._:-].
 */
bool pos_msg_id_valid(const char *s);

/* True when "s" is a reason code as the contract uses them: 1..32 bytes of [a-z0-9_]. */
bool pos_msg_reason_valid(const char *s);

/*
 * True when "pan" is a masked card number safe to publish: only digits
 * and '*' (or 'X'), shaped as at most 6 leading digits, at least 6 mask
 * characters, at most 4 trailing digits, 19 bytes at most. So
 * "411111******1111" and "************1111" pass, "4111111111111111"
 * and "4111******111111" do not.
 */
bool pos_msg_pan_is_masked(const char *pan);

/* Agent -> cloud message types. */
typedef enum pos_msg_out_type {
    POS_MSG_OUT_PAYMENT_PROCESSING = 0,
    POS_MSG_OUT_PAYMENT_APPROVED,
    POS_MSG_OUT_PAYMENT_DECLINED,
    POS_MSG_OUT_PAYMENT_CANCELLED,
    POS_MSG_OUT_PAYMENT_REJECTED,
    POS_MSG_OUT_RECEIPT_PRINTED,
    POS_MSG_OUT_RECEIPT_FAILED,
    POS_MSG_OUT_TRANSACTION_COMPLETED, /* goes to transaction:{storeId} */
    POS_MSG_OUT_COUNT
} pos_msg_out_type_t;

/*
 * An outgoing message, self-contained (arrays, not pointers) so that it
 * can be queued. Which fields are written depends on the type:
 *   PAYMENT_PROCESSING, PAYMENT_CANCELLED, RECEIPT_PRINTED: transactionId
 *   PAYMENT_APPROVED: transactionId, amount, currency, authCode, maskedPan, cardBrand
 *   PAYMENT_DECLINED, PAYMENT_REJECTED, RECEIPT_FAILED: transactionId, reason
 *   TRANSACTION_COMPLETED: transactionId, amount, currency, authCode, receipt
 */
typedef struct pos_msg_out {
    pos_msg_out_type_t type;
    char transaction_id[POS_MSG_ID_MAX + 1];
    int64_t amount_minor;
    pos_currency_t currency;
    char auth_code[POS_MSG_AUTH_MAX + 1];   /* printable ASCII, may be "" */
    char masked_pan[POS_MSG_PAN_MAX + 1];   /* must pass pos_msg_pan_is_masked() */
    char card_brand[POS_MSG_BRAND_MAX + 1]; /* printable ASCII, may be "" */
    char reason[POS_MSG_REASON_MAX + 1];    /* [a-z0-9_], 1..32 bytes */
    bool receipt_printed;                   /* TRANSACTION_COMPLETED "receipt" */
} pos_msg_out_t;

/* The contract's name of an outgoing type ("PAYMENT_APPROVED"), "" if out of range. */
const char *pos_msg_out_type_name(pos_msg_out_type_t type);

/*
 * Encodes "m" as one line of JSON into buf (len bytes, NUL-terminated),
 * with "origin":"terminal", terminal_id, store_id and ts_ms (Unix epoch
 * milliseconds). The ids must pass pos_msg_id_valid().
 *
 * Returns the JSON length in bytes (without the NUL); -EINVAL for an
 * invalid field (bad id, non-positive amount, a maskedPan that is not
 * masked, an empty or malformed reason, ...), in which case nothing
 * usable is written; -ENOSPC if buf is too small (1 KiB always suffices);
 * -ENOMEM if cJSON could not allocate.
 */
int pos_msg_encode(const pos_msg_out_t *m, const char *terminal_id, const char *store_id,
                   uint64_t ts_ms, char *buf, size_t len);

#endif /* AGENT_MSG_MESSAGES_H */
