#ifndef AGENT_PAYMENT_PAYMENT_H
#define AGENT_PAYMENT_PAYMENT_H

/*
 * The payment flow on the till: messages on payment:{terminalId} go
 * through the pure state machine (payment_sm.c); this module performs its
 * actions on the HAL devices and the Redis link, and turns device events
 * back into state machine events. It also owns the three devices.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agent/msg/messages.h"
#include "agent/msg/sign.h"
#include "agent/msg/status.h"
#include "agent/payment/journal.h"
#include "agent/payment/payment_sm.h"
#include "hal/device.h"
#include "hal/receipt.h"
#include "hal/registry.h"

typedef struct pos_payment pos_payment_t;

/* PAYMENT_REJECTED reasons as counted (CONTRACT.md's, and "other"). */
typedef enum pos_payment_reject {
    POS_PAY_REJ_BUSY = 0,
    POS_PAY_REJ_INVALID,
    POS_PAY_REJ_DUPLICATE,
    POS_PAY_REJ_UNSIGNED,
    POS_PAY_REJ_BAD_SIGNATURE,
    POS_PAY_REJ_STALE,
    POS_PAY_REJ_UNAVAILABLE,
    POS_PAY_REJ_OTHER,
    POS_PAY_REJ_COUNT
} pos_payment_reject_t;

/* The reject reason's index; POS_PAY_REJ_OTHER for any other text. */
pos_payment_reject_t pos_payment_reject_index(const char *reason);

/*
 * What the payment flow asks of the rest of the agent, as functions of
 * ctx. The first three queue work in the durable outbox (in order with
 * each other) and return 0 or a negative errno.
 */
typedef struct pos_payment_port {
    void *ctx;
    /* Everything queued between batch(ctx, true) and batch(ctx, false) is
     * one durable commit (the actions of one event). */
    void (*batch)(void *ctx, bool begin);
    /* PUBLISH json on channel: a payment outcome, never dropped for room.
     * held: not sent before release(ctx, *id, ...). *id: the outbox id. */
    int (*publish)(void *ctx, const char *channel, const char *json, size_t len, bool held,
                   uint64_t *id);
    /* Lets the held entry id go out, or never (discard). */
    void (*release)(void *ctx, uint64_t id, bool discard);
    /* PUBLISH json on channel now, not through the outbox: for refusals
     * that touched nothing (a request over the channel's budget). */
    int (*publish_now)(void *ctx, const char *channel, const char *json, size_t len);
    /* SADD key member + EXPIRE key ttl_s (add), or SREM key member. */
    int (*set_member)(void *ctx, const char *key, bool add, const char *member, unsigned ttl_s);
    /* INCRBY key n + EXPIRE key ttl_s NX. */
    int (*incrby)(void *ctx, const char *key, long long n, unsigned ttl_s);
    /* A device reported a new state. */
    void (*device_status)(void *ctx, pos_dev_slot_t which, pos_dev_state_t state);
    /* A payment started (busy) or ended. */
    void (*busy)(void *ctx, bool busy);
    /* A journal record was made durable (0) or not (a negative errno):
     * the terminal's "no journal, no payment" health. May be NULL. */
    void (*journal)(void *ctx, int status);
    /* The store's durable commits so far (the writer's count). May be NULL. */
    uint64_t (*commits)(void *ctx);
} pos_payment_port_t;

/* Journal records timed for the durable commits they wait for. */
enum { POS_PAY_REC_REQUEST, POS_PAY_REC_OUTCOME, POS_PAY_REC_KINDS };

/* What the payment flow is given at init; strings and pointers must
 * outlive it. */
typedef struct pos_payment_options {
    uv_loop_t *loop;
    const char *terminal_id;
    const char *store_id;
    uint32_t max_amount;          /* major units of any currency */
    uint32_t pinpad_timeout_s;    /* the customer's time at the pinpad */
    pos_journal_t *journal;       /* NULL: no store (nothing survives a restart) */
    const pos_sign_keys_t *keys;  /* NULL or empty: cloud messages are not signed */
    uint32_t signature_window_s;  /* |now - ts| allowed for a signed message */
    const char *display;          /* driver specs ([hal] display, printer, pinpad) */
    const char *printer;
    const char *pinpad;
    pos_hal_options_t hal;
    pos_payment_port_t port;
} pos_payment_options_t;

struct pos_payment {
    pos_payment_options_t opt;
    pos_payment_sm_t sm;
    pos_hal_device_t display;
    pos_hal_device_t printer;
    pos_hal_device_t pinpad;
    uv_timer_t deadline_timer;
    unsigned open_handles; /* while closing */
    void (*closed_cb)(pos_payment_t *p);

    char pinpad_tx[POS_MSG_ID_MAX + 1];  /* the payment the pinpad works on */
    uint32_t pinpad_run; /* its run (pos_pinpad_start): results of others are stale */
    char display_tx[POS_MSG_ID_MAX + 1]; /* a payment waiting for its amount on the glass */
    char print_tx[POS_MSG_ID_MAX + 1];   /* the receipt being printed */
    uint32_t print_job;
    uint32_t next_job;
    pos_receipt_doc_t doc; /* scratch for laying out a receipt */
    pos_msg_t msg;         /* scratch for decoding a message (large: a full request) */
    uint64_t held_id;      /* the outbox entry held back (PAYMENT_PROCESSING), 0: none */
    char held_tx[POS_MSG_ID_MAX + 1];
    bool running;          /* inside payment_run(): further events wait in "later" */
    bool stopping;         /* the agent is stopping: no new payment, no pinpad asked */
    struct pos_payment_later *later; /* events that arrived while running, oldest first */
    uint64_t handled;      /* payment-channel messages handled */
    uint64_t rejected;     /* dropped as malformed */
    uint64_t unverified;   /* refused: unsigned, bad signature or stale */
    uint64_t unverified_by[4]; /* the same by pos_sign_verdict_t */
    uint64_t unverified_unanswered; /* of those, naming a payment of this till: not answered */
    uint64_t other_scope;  /* refused: naming another terminal or store */
    uint64_t pos_app_ignored; /* "origin":"pos-app" here: no POS application publishes here */
    uint64_t over_budget;  /* requests refused "busy" over the channel's budget */
    uint64_t dropped;      /* other messages dropped over the budget */
    uint64_t rejected_unreported;           /* over-budget refusals not yet in payments_rejected */
    uint64_t published[POS_MSG_OUT_COUNT];  /* outcome messages queued, by type */
    uint64_t rejections[POS_PAY_REJ_COUNT]; /* PAYMENT_REJECTED queued or sent, by reason */
    /* Durable commits a payment's record waited for, from being queued to
     * being durable, its own included (port.commits): the request's, which
     * PAYMENT_PROCESSING waits for, and the outcome's. Issue 12 allows one
     * each; more means another commit stood in front (docs/latency.md). */
    uint64_t records_timed[POS_PAY_REC_KINDS];
    uint64_t record_commits[POS_PAY_REC_KINDS]; /* summed */
    uint64_t record_commits_max[POS_PAY_REC_KINDS];
    /* Redis's clock minus ours in ms (INT64_MIN: not measured), logged with
     * a stale refusal; NULL: not known. Set by the wiring. */
    const int64_t *clock_offset_ms;
};

/* Creates the devices (no I/O yet) and the deadline timer. Returns 0, or a
 * negative errno with err set (nothing left to close). */
int pos_payment_init(pos_payment_t *p, const pos_payment_options_t *opt, char *err,
                     size_t errlen);

/* Opens, claims and enables the devices. */
void pos_payment_start(pos_payment_t *p);

/*
 * Settles what the journal holds from before a restart: a payment a crash
 * interrupted is reported (never charged again), finished ones are
 * remembered for duplicate requests. Call once, after pos_payment_start().
 */
void pos_payment_restore(pos_payment_t *p);

/* From now on payments are recorded in j, or refused (PAYMENT_REJECTED
 * unavailable) with j NULL: while the journal cannot be trusted. */
void pos_payment_set_journal(pos_payment_t *p, pos_journal_t *j);

/* A message on payment:{terminalId}. */
void pos_payment_on_message(pos_payment_t *p, const char *payload, size_t len);

/*
 * A message on payment:{terminalId} over the channel's budget: a
 * PAYMENT_REQUESTED is answered PAYMENT_REJECTED busy at once, or
 * duplicate when its id is one the state machine or the journal's seen
 * set knows (nothing recorded, no state machine, no card). A
 * PAYMENT_CANCELLED of the payment running now is handled as
 * pos_payment_on_message() would; anything else is dropped. Either way it
 * is counted.
 */
void pos_payment_refuse_busy(pos_payment_t *p, const char *payload, size_t len);

/* Shows two lines on the customer display unless a payment owns it.
 * Returns 0, -EBUSY during a payment, or the device's error. */
int pos_payment_show(pos_payment_t *p, const char *line1, const char *line2);

/*
 * A test receipt (terminal, store, time) on the printer, for a technician
 * checking the till, unless a payment or a receipt is under way. Returns 0
 * once the driver took the job (its outcome shows in the printer's state),
 * -EBUSY, or the device's error (-EPERM: not usable now).
 */
int pos_payment_test_print(pos_payment_t *p);

/*
 * Adds the refusals made over the channel's budget to the till's
 * payments_rejected counter in Redis, in one increment. Each is not a
 * durable commit of its own when made: a flood must not turn into as many
 * commits and Redis commands. Called with the heartbeat and at shutdown.
 */
void pos_payment_flush_counters(pos_payment_t *p);

/* True while a payment is live. */
bool pos_payment_active(const pos_payment_t *p);

/* The agent is stopping: a request for a new id is refused (unavailable)
 * and the pinpad is no longer asked (a payment whose record lands now is
 * declined without the card, never charged); what is known is still
 * answered. */
void pos_payment_stop(pos_payment_t *p);

/* Closes the devices and the timer; "done" when all are closed. */
void pos_payment_close(pos_payment_t *p, void (*done)(pos_payment_t *p));

#endif /* AGENT_PAYMENT_PAYMENT_H */
