#ifndef AGENT_PAYMENT_PAYMENT_SM_H
#define AGENT_PAYMENT_PAYMENT_SM_H

/*
 * The payment state machine (pure). It owns no device, socket or clock:
 * the caller feeds it events with the current time and performs the
 * actions it returns, in order. See docs/payment-flow.md for the diagram
 * and the answers to duplicates, cancels and reprints.
 *
 * One payment runs at a time ("live": STARTING, PROCESSING, CANCELLING,
 * PRINTING). Finished payments go into a bounded history of recent
 * transaction ids with their final state, so that a repeated request never
 * touches the card again.
 *
 * Crash safety: a RECORD action carries the transaction's state to
 * persist; it must be durable before the caller performs the next action.
 * At start-up the caller hands each transaction's last record to
 * pos_payment_sm_restore(), which settles the ones a crash interrupted
 * without ever charging them again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/msg/amount.h"
#include "agent/msg/messages.h"
#include "hal/device.h"

#define POS_PAY_HISTORY     256 /* finished transaction ids remembered */
#define POS_PAY_ABANDONED   4   /* refused payments whose record is still on its way */
#define POS_PAY_ACTIONS_MAX 16  /* actions one event can produce */

/* Default timeouts, milliseconds. */
#define POS_PAY_PINPAD_TIMEOUT_MS  120000 /* card presentation, PIN, authorisation */
#define POS_PAY_DISPLAY_TIMEOUT_MS 5000   /* display to confirm the amount */
#define POS_PAY_ABORT_TIMEOUT_MS   10000  /* pinpad to confirm an abort */
#define POS_PAY_PRINT_TIMEOUT_MS   30000  /* printer to report a receipt */

typedef enum pos_payment_state {
    POS_PAY_IDLE = 0,   /* no live payment */
    POS_PAY_STARTING,   /* recorded, SADD done, display asked for the amount */
    POS_PAY_PROCESSING, /* pinpad asked, PAYMENT_PROCESSING sent */
    POS_PAY_APPROVED,   /* approved, receipt not yet asked (crash records only) */
    POS_PAY_PRINTING,   /* approved, receipt being printed */
    POS_PAY_DONE,       /* approved and receipt attempted: final */
    POS_PAY_DECLINED,   /* pinpad declined: final */
    POS_PAY_CANCELLING, /* cancel asked, waiting for the pinpad to confirm the abort */
    POS_PAY_CANCELLED,  /* final */
    POS_PAY_TIMED_OUT,  /* no pinpad outcome in time, or the pinpad timed out: final */
    POS_PAY_FAILED,     /* pinpad failure: final */
    POS_PAY_UNKNOWN,    /* outcome unknown (lost pinpad, crash): final, never retried */
    POS_PAY_STATE_COUNT
} pos_payment_state_t;

/* pos_pinpad_outcome_t (what the pinpad reported) comes from the HAL. */

typedef enum pos_print_outcome {
    POS_PRINT_OK = 0,
    POS_PRINT_PAPER_OUT,
    POS_PRINT_COVER_OPEN,
    POS_PRINT_OFFLINE,
    POS_PRINT_ERROR
} pos_print_outcome_t;

typedef enum pos_payment_event_kind {
    POS_PAY_EV_REQUEST = 0,   /* PAYMENT_REQUESTED: request */
    POS_PAY_EV_REJECT,        /* a request refused before the SM (invalid, bad signature...) */
    POS_PAY_EV_CANCEL,        /* PAYMENT_CANCELLED: transaction_id */
    POS_PAY_EV_REPRINT,       /* RECEIPT_REPRINT: transaction_id */
    POS_PAY_EV_PINPAD_RESULT, /* transaction_id, pinpad, auth_code, masked_pan, card_brand,
                                 reason */
    POS_PAY_EV_PRINT_RESULT,  /* transaction_id, print */
    POS_PAY_EV_DISPLAY_DONE,  /* transaction_id, display_ok */
    POS_PAY_EV_DEADLINE,      /* the timer armed from next_deadline_ms fired */
    POS_PAY_EV_RECORDED,      /* transaction_id: its RECORD is durable */
    POS_PAY_EV_RECORD_FAILED  /* transaction_id: its RECORD could not be made durable */
} pos_payment_event_kind_t;

/*
 * One event. A flat struct: only the fields its kind lists are read, and
 * strings are only read during pos_payment_sm_handle(). Device results
 * carry the transaction id the device was started for, so a late result of
 * an earlier payment cannot be taken for the current one's.
 */
typedef struct pos_payment_event {
    pos_payment_event_kind_t kind;
    const pos_msg_payment_t *request; /* REQUEST: the decoded message */
    const char *transaction_id;       /* every other kind but DEADLINE */
    const char *reason;               /* REJECT: reason to publish; PINPAD_RESULT: why
                                         declined ([a-z0-9_], optional) */
    pos_pinpad_outcome_t pinpad;
    const char *auth_code;  /* PINPAD_RESULT approved: printable ASCII, <= 16 */
    const char *masked_pan; /* PINPAD_RESULT approved: replaced by "******" unless masked */
    const char *card_brand; /* PINPAD_RESULT approved: printable ASCII, <= 32 */
    pos_print_outcome_t print;
    bool display_ok;
} pos_payment_event_t;

/* What RECORD asks the caller to persist, and what restore takes back. */
typedef struct pos_payment_record {
    char transaction_id[POS_MSG_ID_MAX + 1];
    pos_payment_state_t state;
    int64_t amount_minor; /* 0 for a cancel of a transaction never requested */
    pos_currency_t currency;
    char auth_code[POS_MSG_AUTH_MAX + 1];
    char masked_pan[POS_MSG_PAN_MAX + 1];
    char card_brand[POS_MSG_BRAND_MAX + 1];
    char reason[POS_MSG_REASON_MAX + 1]; /* decline reason of a declined-like state */
    bool receipt_printed;                /* DONE: the receipt left the printer */
} pos_payment_record_t;

typedef enum pos_payment_action_kind {
    POS_PAY_ACT_RECORD = 0,     /* persist u.record before the next action */
    POS_PAY_ACT_SADD_ACTIVE,    /* SADD active_transactions:{storeId} tx, EXPIRE 1800 */
    POS_PAY_ACT_SREM_ACTIVE,    /* SREM active_transactions:{storeId} tx */
    POS_PAY_ACT_DISPLAY_AMOUNT, /* show u.amount (and its lines) */
    POS_PAY_ACT_DISPLAY_TEXT,   /* show u.text */
    POS_PAY_ACT_PINPAD_START,   /* take a card for u.amount (currency.numeric for the pinpad) */
    POS_PAY_ACT_PINPAD_ABORT,   /* abort the pinpad session of transaction_id */
    POS_PAY_ACT_PRINT_RECEIPT,  /* print u.receipt */
    POS_PAY_ACT_PUBLISH,        /* encode u.publish.msg and publish it */
    POS_PAY_ACT_INCR_COUNTER,   /* INCRBY counter:terminal:{terminalId}:{u.counter} 1 */
    POS_PAY_ACT_STATUS_CHANGED, /* the terminal became busy or idle: u.busy */
    POS_PAY_ACT_RELEASE_HELD,   /* send the held PUBLISH of transaction_id now */
    POS_PAY_ACT_DISCARD_HELD    /* never send the held PUBLISH of transaction_id */
} pos_payment_action_kind_t;

typedef struct pos_payment_action {
    pos_payment_action_kind_t kind;
    char transaction_id[POS_MSG_ID_MAX + 1]; /* "" for STATUS_CHANGED and counters */
    union {
        pos_payment_record_t record; /* RECORD */
        struct {
            int64_t amount_minor;
            pos_currency_t currency;
            const pos_msg_line_t *lines; /* owned by the SM, valid until the next call */
            size_t line_count;
        } amount; /* DISPLAY_AMOUNT, PINPAD_START */
        struct {
            size_t line_count;
            char lines[POS_MSG_DISPLAY_LINES_MAX][POS_MSG_DISPLAY_LINE_MAX + 1];
        } text; /* DISPLAY_TEXT */
        struct {
            pos_payment_record_t payment; /* amount, auth code, masked PAN, brand */
            const pos_msg_line_t *lines;  /* owned by the SM, valid until the next call;
                                             NULL for an older transaction's copy */
            size_t line_count;
            bool copy; /* a reprint: print "COPY" */
        } receipt; /* PRINT_RECEIPT */
        struct {
            bool transaction_channel; /* transaction:{storeId}, else payment:{terminalId} */
            bool held; /* queued now (with the RECORD before it: one commit), sent only at
                          RELEASE_HELD, never after DISCARD_HELD */
            pos_msg_out_t msg;
        } publish; /* PUBLISH */
        const char *counter; /* INCR_COUNTER: a static name, e.g. "payments_approved" */
        bool busy;           /* STATUS_CHANGED */
    } u;
} pos_payment_action_t;

typedef struct pos_payment_actions {
    size_t count;
    pos_payment_action_t a[POS_PAY_ACTIONS_MAX];
    uint64_t next_deadline_ms; /* arm a timer for this time (epoch ms); 0: none */
} pos_payment_actions_t;

typedef struct pos_payment_sm_config {
    uint32_t pinpad_timeout_ms;  /* 0: POS_PAY_PINPAD_TIMEOUT_MS */
    uint32_t display_timeout_ms; /* 0: POS_PAY_DISPLAY_TIMEOUT_MS */
    uint32_t abort_timeout_ms;   /* 0: POS_PAY_ABORT_TIMEOUT_MS */
    uint32_t print_timeout_ms;   /* 0: POS_PAY_PRINT_TIMEOUT_MS */
} pos_payment_sm_config_t;

/* The machine; about 60 KiB, so embed it in a long-lived struct, not on a stack. */
typedef struct pos_payment_sm {
    pos_payment_sm_config_t cfg;
    pos_payment_state_t state; /* IDLE or a live state */
    pos_payment_record_t cur;  /* the live payment (or the last one when IDLE) */
    /* Requests refused at their display deadline while their STARTING
     * record was still on its way to the disk (transaction_id "" in a free
     * slot): once such a record lands it is replaced by a final one, never
     * left for a restart to report as interrupted. A slow disk can hold
     * several (the next request's record queues behind the first). */
    pos_payment_record_t abandoned[POS_PAY_ABANDONED];
    bool recorded;             /* STARTING: cur's record is durable */
    bool displayed;            /* STARTING: the display showed the amount (or gave up) */
    pos_msg_payment_t req;     /* the request of cur: lines for display and receipt */
    uint64_t deadline_ms;      /* of the live payment; 0: none */
    bool timing_out;           /* CANCELLING because the pinpad deadline passed, not a cancel */
    char reprint_tx[POS_MSG_ID_MAX + 1]; /* a copy receipt in flight, or "" */
    uint64_t reprint_deadline_ms;
    pos_payment_record_t history[POS_PAY_HISTORY]; /* ring of final records */
    size_t history_next;
    size_t history_count;
} pos_payment_sm_t;

/* Initialises an idle machine with an empty history; cfg NULL means defaults. */
void pos_payment_sm_init(pos_payment_sm_t *sm, const pos_payment_sm_config_t *cfg);

/*
 * Handles one event at now_ms (epoch ms) and fills *out (cleared first)
 * with the actions to perform, in order, and the next deadline.
 * Returns 0, or -EINVAL for a malformed event (unknown kind, missing or
 * invalid transaction id, a request with no positive amount), which
 * changes nothing and yields no action.
 */
int pos_payment_sm_handle(pos_payment_sm_t *sm, const pos_payment_event_t *ev, uint64_t now_ms,
                          pos_payment_actions_t *out);

/*
 * Start-up: takes back the last RECORD of one transaction (call once per
 * transaction, before any event). Final states go into the history as
 * they are. A payment interrupted before an outcome becomes UNKNOWN
 * (PAYMENT_DECLINED "unknown", SREM); one interrupted after approval is
 * completed with RECEIPT_FAILED "interrupted" and TRANSACTION_COMPLETED.
 * Returns 0 with the actions in *out, -EEXIST if the id is already known,
 * -EBUSY if a payment is live, -EINVAL for a malformed record.
 */
int pos_payment_sm_restore(pos_payment_sm_t *sm, const pos_payment_record_t *rec,
                           pos_payment_actions_t *out);

/* The live state: POS_PAY_IDLE, STARTING, PROCESSING, CANCELLING or PRINTING. */
pos_payment_state_t pos_payment_sm_state(const pos_payment_sm_t *sm);

/*
 * The state of a transaction id, live or in the history.
 * Returns 0 and sets *state, or -ENOENT if the id is not known (any more).
 */
int pos_payment_sm_lookup(const pos_payment_sm_t *sm, const char *transaction_id,
                          pos_payment_state_t *state);

/* The next deadline (epoch ms) the caller must arm a timer for; 0: none. */
uint64_t pos_payment_sm_deadline(const pos_payment_sm_t *sm);

/* A state's name in upper case ("PROCESSING"), "?" if out of range. */
const char *pos_payment_state_name(pos_payment_state_t state);

/* True for a final state (DONE, DECLINED, CANCELLED, TIMED_OUT, FAILED, UNKNOWN). */
bool pos_payment_state_final(pos_payment_state_t state);

#endif /* AGENT_PAYMENT_PAYMENT_SM_H */
