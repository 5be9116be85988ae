#include "agent/payment/payment_sm.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "platform/mem.h"

/* Shown instead of a card number the pinpad failed to mask. */
#define PAY_PAN_PLACEHOLDER "******"

static const char *const state_names[POS_PAY_STATE_COUNT] = {
    "IDLE",     "STARTING",   "PROCESSING", "APPROVED",  "PRINTING", "DONE",
    "DECLINED", "CANCELLING", "CANCELLED",  "TIMED_OUT", "FAILED",   "UNKNOWN",
};

const char *pos_payment_state_name(pos_payment_state_t state)
{
    if ((unsigned)state >= POS_PAY_STATE_COUNT) {
        return "?";
    }
    return state_names[state];
}

static bool is_live(pos_payment_state_t s)
{
    return s == POS_PAY_STARTING || s == POS_PAY_PROCESSING || s == POS_PAY_CANCELLING ||
           s == POS_PAY_PRINTING;
}

bool pos_payment_state_final(pos_payment_state_t state)
{
    switch (state) {
    case POS_PAY_DONE:
    case POS_PAY_DECLINED:
    case POS_PAY_CANCELLED:
    case POS_PAY_TIMED_OUT:
    case POS_PAY_FAILED:
    case POS_PAY_UNKNOWN:
        return true;
    default:
        return false;
    }
}

/* Copies a C string known to fit (checked by the caller) into a fixed array. */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    (void)size; /* read by the assert only, so unused with NDEBUG */
    assert(n < size);
    memcpy(dst, src, n + 1);
}

/* Printable ASCII of at most max bytes; spaces only where allowed. */
static bool ascii_ok(const char *s, size_t max, bool space)
{
    size_t n;

    if (s == NULL) {
        return false;
    }
    n = strnlen(s, max + 1);
    if (n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < (space ? 0x20 : 0x21) || s[i] > 0x7E) {
            return false;
        }
    }
    return true;
}

/* ---- actions ------------------------------------------------------------ */

static pos_payment_action_t *push(pos_payment_actions_t *out, pos_payment_action_kind_t kind,
                                  const char *tx)
{
    pos_payment_action_t *a;

    /* The bound is a property of this file's transitions, not of input. */
    assert(out->count < POS_PAY_ACTIONS_MAX);
    a = &out->a[out->count++];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    if (tx != NULL) {
        copy_str(a->transaction_id, sizeof(a->transaction_id), tx);
    }
    return a;
}

static void act_record(pos_payment_actions_t *out, const pos_payment_record_t *rec)
{
    push(out, POS_PAY_ACT_RECORD, rec->transaction_id)->u.record = *rec;
}

static void act_counter(pos_payment_actions_t *out, const char *name)
{
    push(out, POS_PAY_ACT_INCR_COUNTER, NULL)->u.counter = name;
}

static void act_status(pos_payment_actions_t *out, bool busy)
{
    push(out, POS_PAY_ACT_STATUS_CHANGED, NULL)->u.busy = busy;
}

static void act_text(pos_payment_actions_t *out, const char *tx, const char *line)
{
    pos_payment_action_t *a = push(out, POS_PAY_ACT_DISPLAY_TEXT, tx);

    a->u.text.line_count = 1;
    copy_str(a->u.text.lines[0], sizeof(a->u.text.lines[0]), line);
}

/* Publishes "type" about "rec"; reason is used by the types that carry one. */
static void act_publish(pos_payment_actions_t *out, pos_msg_out_type_t type,
                        const pos_payment_record_t *rec, const char *reason)
{
    pos_payment_action_t *a = push(out, POS_PAY_ACT_PUBLISH, rec->transaction_id);
    pos_msg_out_t *m = &a->u.publish.msg;

    a->u.publish.transaction_channel = type == POS_MSG_OUT_TRANSACTION_COMPLETED;
    m->type = type;
    copy_str(m->transaction_id, sizeof(m->transaction_id), rec->transaction_id);
    m->amount_minor = rec->amount_minor;
    m->currency = rec->currency;
    copy_str(m->auth_code, sizeof(m->auth_code), rec->auth_code);
    copy_str(m->masked_pan, sizeof(m->masked_pan), rec->masked_pan);
    copy_str(m->card_brand, sizeof(m->card_brand), rec->card_brand);
    if (reason != NULL) {
        copy_str(m->reason, sizeof(m->reason), reason);
    }
    m->receipt_printed = rec->receipt_printed;
}

/* PAYMENT_REJECTED for a transaction the SM did not take on. */
static void act_reject(pos_payment_actions_t *out, const char *tx, const char *reason)
{
    pos_payment_record_t rec;

    memset(&rec, 0, sizeof(rec));
    copy_str(rec.transaction_id, sizeof(rec.transaction_id), tx);
    act_publish(out, POS_MSG_OUT_PAYMENT_REJECTED, &rec, reason);
    act_counter(out, "payments_rejected");
}

/* ---- history ------------------------------------------------------------ */

static void history_add(pos_payment_sm_t *sm, const pos_payment_record_t *rec)
{
    /* A ring: the oldest id is forgotten once POS_PAY_HISTORY are kept. */
    sm->history[sm->history_next] = *rec;
    sm->history_next = (sm->history_next + 1) % POS_PAY_HISTORY;
    if (sm->history_count < POS_PAY_HISTORY) {
        sm->history_count++;
    }
}

static const pos_payment_record_t *history_find(const pos_payment_sm_t *sm, const char *tx)
{
    for (size_t i = 0; i < sm->history_count; i++) {
        if (strcmp(sm->history[i].transaction_id, tx) == 0) {
            return &sm->history[i];
        }
    }
    return NULL;
}

static bool is_current(const pos_payment_sm_t *sm, const char *tx)
{
    return is_live(sm->state) && strcmp(sm->cur.transaction_id, tx) == 0;
}

/* ---- transitions -------------------------------------------------------- */

/*
 * The answer to a repeated request (or to a cancel that comes too late):
 * the transaction's current or final state. STARTING and CANCELLING say
 * nothing: PAYMENT_PROCESSING or the outcome follows on its own.
 */
static void answer_state(pos_payment_actions_t *out, const pos_payment_record_t *rec,
                         pos_payment_state_t state)
{
    switch (state) {
    case POS_PAY_PROCESSING:
        act_publish(out, POS_MSG_OUT_PAYMENT_PROCESSING, rec, NULL);
        break;
    case POS_PAY_APPROVED:
    case POS_PAY_PRINTING:
    case POS_PAY_DONE:
        act_publish(out, POS_MSG_OUT_PAYMENT_APPROVED, rec, NULL);
        break;
    case POS_PAY_DECLINED:
    case POS_PAY_TIMED_OUT:
    case POS_PAY_FAILED:
    case POS_PAY_UNKNOWN:
        act_publish(out, POS_MSG_OUT_PAYMENT_DECLINED, rec, rec->reason);
        break;
    case POS_PAY_CANCELLED:
        act_publish(out, POS_MSG_OUT_PAYMENT_CANCELLED, rec, NULL);
        break;
    default:
        break;
    }
}

static void set_deadline(pos_payment_sm_t *sm, uint64_t now_ms, uint32_t delay_ms)
{
    sm->deadline_ms = now_ms + delay_ms;
    if (sm->deadline_ms == 0) {
        sm->deadline_ms = 1; /* 0 means "none" */
    }
}

/* The live payment reached a final state: record it and go idle. */
static void settle(pos_payment_sm_t *sm, pos_payment_state_t final, pos_payment_actions_t *out)
{
    sm->cur.state = final;
    act_status(out, false);
    act_record(out, &sm->cur);
    history_add(sm, &sm->cur);
    sm->state = POS_PAY_IDLE;
    sm->deadline_ms = 0;
    sm->timing_out = false;
}

static const char *declined_counter(pos_payment_state_t s)
{
    switch (s) {
    case POS_PAY_TIMED_OUT:
        return "payments_timed_out";
    case POS_PAY_FAILED:
        return "payments_failed";
    case POS_PAY_UNKNOWN:
        return "payments_unknown";
    default:
        return "payments_declined";
    }
}

/* Any outcome reported as PAYMENT_DECLINED: declined, timed out, failed, unknown. */
static void finish_declined(pos_payment_sm_t *sm, pos_payment_state_t final, const char *reason,
                            pos_payment_actions_t *out)
{
    copy_str(sm->cur.reason, sizeof(sm->cur.reason), reason);
    /* SREM first: both go through the outbox in order, so a cloud that
     * sees the outcome sees the set already updated. */
    push(out, POS_PAY_ACT_SREM_ACTIVE, sm->cur.transaction_id);
    act_publish(out, POS_MSG_OUT_PAYMENT_DECLINED, &sm->cur, reason);
    act_text(out, sm->cur.transaction_id, final == POS_PAY_DECLINED ? "Declined" : "Not completed");
    act_counter(out, declined_counter(final));
    settle(sm, final, out);
}

static void finish_cancelled(pos_payment_sm_t *sm, pos_payment_actions_t *out)
{
    if (sm->state == POS_PAY_STARTING) {
        /* The pinpad was never asked: PAYMENT_PROCESSING is never sent. */
        push(out, POS_PAY_ACT_DISCARD_HELD, sm->cur.transaction_id);
    }
    push(out, POS_PAY_ACT_SREM_ACTIVE, sm->cur.transaction_id);
    act_publish(out, POS_MSG_OUT_PAYMENT_CANCELLED, &sm->cur, NULL);
    act_text(out, sm->cur.transaction_id, "Cancelled");
    act_counter(out, "payments_cancelled");
    settle(sm, POS_PAY_CANCELLED, out);
}

static void start_pinpad(pos_payment_sm_t *sm, uint64_t now_ms, pos_payment_actions_t *out)
{
    pos_payment_action_t *a = push(out, POS_PAY_ACT_PINPAD_START, sm->cur.transaction_id);

    a->u.amount.amount_minor = sm->cur.amount_minor;
    a->u.amount.currency = sm->cur.currency;
    a->u.amount.lines = sm->req.lines;
    a->u.amount.line_count = sm->req.line_count;
    /* PAYMENT_PROCESSING was queued with the record; it goes out now. */
    push(out, POS_PAY_ACT_RELEASE_HELD, sm->cur.transaction_id);
    sm->state = POS_PAY_PROCESSING;
    sm->cur.state = POS_PAY_PROCESSING;
    set_deadline(sm, now_ms, sm->cfg.pinpad_timeout_ms);
}

static void print_receipt(pos_payment_actions_t *out, const pos_payment_record_t *rec,
                          const pos_msg_payment_t *req, bool copy)
{
    pos_payment_action_t *a = push(out, POS_PAY_ACT_PRINT_RECEIPT, rec->transaction_id);

    a->u.receipt.payment = *rec;
    a->u.receipt.copy = copy;
    if (req != NULL && strcmp(req->transaction_id, rec->transaction_id) == 0) {
        a->u.receipt.lines = req->lines;
        a->u.receipt.line_count = req->line_count;
    }
}

static void approve(pos_payment_sm_t *sm, const pos_payment_event_t *ev, uint64_t now_ms,
                    pos_payment_actions_t *out)
{
    pos_payment_record_t *c = &sm->cur;

    /* Nothing unvetted from the pinpad goes into a message or a record. */
    copy_str(c->auth_code, sizeof(c->auth_code),
             ascii_ok(ev->auth_code, POS_MSG_AUTH_MAX, false) ? ev->auth_code : "");
    copy_str(c->card_brand, sizeof(c->card_brand),
             ascii_ok(ev->card_brand, POS_MSG_BRAND_MAX, true) ? ev->card_brand : "");
    copy_str(c->masked_pan, sizeof(c->masked_pan),
             pos_msg_pan_is_masked(ev->masked_pan) ? ev->masked_pan : PAY_PAN_PLACEHOLDER);
    c->reason[0] = '\0';
    c->state = POS_PAY_APPROVED;
    act_record(out, c);
    act_publish(out, POS_MSG_OUT_PAYMENT_APPROVED, c, NULL);
    act_counter(out, "payments_approved");
    act_text(out, c->transaction_id, "Approved");
    print_receipt(out, c, &sm->req, false);
    sm->state = POS_PAY_PRINTING;
    c->state = POS_PAY_PRINTING;
    set_deadline(sm, now_ms, sm->cfg.print_timeout_ms);
}

static const char *print_reason(pos_print_outcome_t p)
{
    switch (p) {
    case POS_PRINT_PAPER_OUT:
        return "paper_out";
    case POS_PRINT_COVER_OPEN:
        return "cover_open";
    case POS_PRINT_OFFLINE:
        return "offline";
    default:
        return "error";
    }
}

/* The receipt attempt of an approved payment is over: the payment stands either way. */
static void complete(pos_payment_sm_t *sm, bool printed, const char *reason,
                     pos_payment_actions_t *out)
{
    sm->cur.receipt_printed = printed;
    if (printed) {
        act_publish(out, POS_MSG_OUT_RECEIPT_PRINTED, &sm->cur, NULL);
    } else {
        act_publish(out, POS_MSG_OUT_RECEIPT_FAILED, &sm->cur, reason);
    }
    push(out, POS_PAY_ACT_SREM_ACTIVE, sm->cur.transaction_id);
    act_publish(out, POS_MSG_OUT_TRANSACTION_COMPLETED, &sm->cur, NULL);
    act_counter(out, printed ? "receipts_printed" : "receipts_failed");
    settle(sm, POS_PAY_DONE, out);
}

static int on_request(pos_payment_sm_t *sm, const pos_msg_payment_t *req, uint64_t now_ms,
                      pos_payment_actions_t *out)
{
    const pos_payment_record_t *seen = NULL;
    pos_payment_state_t state = POS_PAY_IDLE;
    pos_currency_t cur;

    if (req == NULL || !pos_msg_id_valid(req->transaction_id) || req->amount_minor <= 0 ||
        pos_amount_currency(req->currency.alpha, &cur) != 0 ||
        cur.digits != req->currency.digits || req->line_count > POS_MSG_LINES_MAX) {
        return -EINVAL;
    }
    if (is_current(sm, req->transaction_id)) {
        seen = &sm->cur;
        state = sm->state;
    } else if ((seen = history_find(sm, req->transaction_id)) != NULL) {
        state = seen->state;
    }
    if (seen != NULL) {
        /* Same id, other money: refuse rather than guess which one is meant. A
         * cancel-before-request record (amount 0) has no money to compare. */
        if (seen->amount_minor != 0 && (seen->amount_minor != req->amount_minor ||
                                        strcmp(seen->currency.alpha, cur.alpha) != 0)) {
            act_reject(out, req->transaction_id, "duplicate");
            return 0;
        }
        answer_state(out, seen, state);
        return 0;
    }
    if (sm->state != POS_PAY_IDLE) {
        act_reject(out, req->transaction_id, "busy");
        return 0;
    }

    sm->req = *req;
    memset(&sm->cur, 0, sizeof(sm->cur));
    copy_str(sm->cur.transaction_id, sizeof(sm->cur.transaction_id), req->transaction_id);
    sm->cur.amount_minor = req->amount_minor;
    sm->cur.currency = cur;
    sm->cur.state = POS_PAY_STARTING;
    sm->state = POS_PAY_STARTING;
    sm->recorded = false;
    sm->displayed = false;
    sm->timing_out = false;

    /* One durable commit before PAYMENT_PROCESSING: the record, SADD and
     * the message itself, held until the pinpad has been asked. */
    act_record(out, &sm->cur);
    push(out, POS_PAY_ACT_SADD_ACTIVE, sm->cur.transaction_id);
    act_publish(out, POS_MSG_OUT_PAYMENT_PROCESSING, &sm->cur, NULL);
    out->a[out->count - 1].u.publish.held = true;
    act_status(out, true);
    {
        pos_payment_action_t *a = push(out, POS_PAY_ACT_DISPLAY_AMOUNT, sm->cur.transaction_id);
        a->u.amount.amount_minor = sm->cur.amount_minor;
        a->u.amount.currency = cur;
        a->u.amount.lines = sm->req.lines;
        a->u.amount.line_count = sm->req.line_count;
    }
    set_deadline(sm, now_ms, sm->cfg.display_timeout_ms);
    return 0;
}

static void on_cancel(pos_payment_sm_t *sm, const char *tx, uint64_t now_ms,
                      pos_payment_actions_t *out)
{
    const pos_payment_record_t *seen;

    if (is_current(sm, tx)) {
        switch (sm->state) {
        case POS_PAY_STARTING:
            /* The pinpad was never asked: nothing to abort. */
            finish_cancelled(sm, out);
            break;
        case POS_PAY_PROCESSING:
            push(out, POS_PAY_ACT_PINPAD_ABORT, tx);
            sm->state = POS_PAY_CANCELLING;
            sm->cur.state = POS_PAY_CANCELLING;
            set_deadline(sm, now_ms, sm->cfg.abort_timeout_ms);
            break;
        case POS_PAY_PRINTING:
            /* Approved: too late to cancel; say so with the state. */
            answer_state(out, &sm->cur, sm->state);
            break;
        default:
            break; /* CANCELLING: the outcome follows */
        }
        return;
    }
    seen = history_find(sm, tx);
    if (seen != NULL) {
        answer_state(out, seen, seen->state);
        return;
    }
    /* Never seen: remember it as cancelled, so that a request arriving after
     * its cancel (reordered or retried) never charges the card. */
    {
        pos_payment_record_t rec;
        memset(&rec, 0, sizeof(rec));
        copy_str(rec.transaction_id, sizeof(rec.transaction_id), tx);
        rec.state = POS_PAY_CANCELLED;
        act_record(out, &rec);
        act_publish(out, POS_MSG_OUT_PAYMENT_CANCELLED, &rec, NULL);
        history_add(sm, &rec);
    }
}

static void receipt_failed(pos_payment_actions_t *out, const char *tx, const char *reason)
{
    pos_payment_record_t rec;

    memset(&rec, 0, sizeof(rec));
    copy_str(rec.transaction_id, sizeof(rec.transaction_id), tx);
    act_publish(out, POS_MSG_OUT_RECEIPT_FAILED, &rec, reason);
}

static void on_reprint(pos_payment_sm_t *sm, const char *tx, uint64_t now_ms,
                       pos_payment_actions_t *out)
{
    const pos_payment_record_t *seen;

    if (is_current(sm, tx)) {
        if (sm->state != POS_PAY_PRINTING) {
            receipt_failed(out, tx, "not_approved");
        }
        return; /* PRINTING: the receipt in flight answers */
    }
    if (strcmp(sm->reprint_tx, tx) == 0) {
        return; /* the same copy is already printing */
    }
    seen = history_find(sm, tx);
    if (seen == NULL) {
        receipt_failed(out, tx, "not_found");
        return;
    }
    if (seen->state != POS_PAY_DONE) {
        receipt_failed(out, tx, "not_approved");
        return;
    }
    /* The printer serves one receipt at a time, and a live payment's first. */
    if (sm->state != POS_PAY_IDLE || sm->reprint_tx[0] != '\0') {
        receipt_failed(out, tx, "busy");
        return;
    }
    print_receipt(out, seen, &sm->req, true);
    copy_str(sm->reprint_tx, sizeof(sm->reprint_tx), tx);
    sm->reprint_deadline_ms = now_ms + sm->cfg.print_timeout_ms;
    if (sm->reprint_deadline_ms == 0) {
        sm->reprint_deadline_ms = 1;
    }
}

static const char *decline_reason(const pos_payment_event_t *ev)
{
    return pos_msg_reason_valid(ev->reason) ? ev->reason : "declined";
}

static void on_pinpad(pos_payment_sm_t *sm, const pos_payment_event_t *ev, uint64_t now_ms,
                      pos_payment_actions_t *out)
{
    if (!is_current(sm, ev->transaction_id) ||
        (sm->state != POS_PAY_PROCESSING && sm->state != POS_PAY_CANCELLING)) {
        /* A result for a payment already settled (timed out, say). An approval
         * here needs reconciliation: count it where monitoring can see it. */
        act_counter(out, ev->pinpad == POS_PINPAD_APPROVED ? "payments_late_approved"
                                                           : "pinpad_stale_results");
        return;
    }
    if (ev->pinpad == POS_PINPAD_APPROVED) {
        /* Even while cancelling: the card was charged, the payment stands. */
        approve(sm, ev, now_ms, out);
        return;
    }
    if (ev->pinpad == POS_PINPAD_UNKNOWN) {
        finish_declined(sm, POS_PAY_UNKNOWN, "unknown", out);
        return;
    }
    if (sm->state == POS_PAY_CANCELLING) {
        /* Declined, aborted, failed or timed out: in every case not charged. */
        if (sm->timing_out) {
            finish_declined(sm, POS_PAY_TIMED_OUT, "timeout", out);
        } else {
            finish_cancelled(sm, out);
        }
        return;
    }
    switch (ev->pinpad) {
    case POS_PINPAD_DECLINED:
        finish_declined(sm, POS_PAY_DECLINED, decline_reason(ev), out);
        break;
    case POS_PINPAD_CANCELLED:
        /* The customer pressed cancel on the pinpad: a decline, not a cloud cancel. */
        finish_declined(sm, POS_PAY_DECLINED, "customer_cancelled", out);
        break;
    case POS_PINPAD_TIMEOUT:
        finish_declined(sm, POS_PAY_TIMED_OUT, "timeout", out);
        break;
    default:
        finish_declined(sm, POS_PAY_FAILED, "device_error", out);
        break;
    }
}

static void on_print(pos_payment_sm_t *sm, const pos_payment_event_t *ev,
                     pos_payment_actions_t *out)
{
    bool ok = ev->print == POS_PRINT_OK;

    if (sm->state == POS_PAY_PRINTING && strcmp(sm->cur.transaction_id, ev->transaction_id) == 0) {
        complete(sm, ok, print_reason(ev->print), out);
        return;
    }
    if (sm->reprint_tx[0] != '\0' && strcmp(sm->reprint_tx, ev->transaction_id) == 0) {
        if (ok) {
            pos_payment_record_t rec;
            memset(&rec, 0, sizeof(rec));
            copy_str(rec.transaction_id, sizeof(rec.transaction_id), sm->reprint_tx);
            act_publish(out, POS_MSG_OUT_RECEIPT_PRINTED, &rec, NULL);
        } else {
            receipt_failed(out, sm->reprint_tx, print_reason(ev->print));
        }
        sm->reprint_tx[0] = '\0';
        sm->reprint_deadline_ms = 0;
        return;
    }
    act_counter(out, "print_stale_results");
}

static void on_display(pos_payment_sm_t *sm, const pos_payment_event_t *ev, uint64_t now_ms,
                       pos_payment_actions_t *out)
{
    if (sm->state != POS_PAY_STARTING || strcmp(sm->cur.transaction_id, ev->transaction_id) != 0) {
        return; /* "Approved" and the like need no follow-up */
    }
    if (!ev->display_ok) {
        /* The pinpad shows the amount too: a broken display must not block
         * the payment; the status module reports the display's state. */
        act_counter(out, "display_errors");
    }
    sm->displayed = true;
    if (sm->recorded) {
        start_pinpad(sm, now_ms, out);
    }
}

/* The slot of an abandoned payment whose record is tx's, or NULL. */
static pos_payment_record_t *abandoned_find(pos_payment_sm_t *sm, const char *tx)
{
    for (size_t i = 0; i < POS_PAY_ABANDONED; i++) {
        if (strcmp(sm->abandoned[i].transaction_id, tx) == 0) { /* tx: valid, non-empty */
            return &sm->abandoned[i];
        }
    }
    return NULL;
}

/* Keeps cur's record as abandoned: a free slot, else the oldest one's
 * (its record, if it ever lands, is then left STARTING). */
static void abandoned_keep(pos_payment_sm_t *sm, pos_payment_actions_t *out)
{
    size_t i = 0;
    while (i < POS_PAY_ABANDONED && sm->abandoned[i].transaction_id[0] != '\0') {
        i++;
    }
    if (i == POS_PAY_ABANDONED) {
        act_counter(out, "payments_abandoned_dropped");
        memmove(&sm->abandoned[0], &sm->abandoned[1],
                sizeof(sm->abandoned[0]) * (POS_PAY_ABANDONED - 1));
        i = POS_PAY_ABANDONED - 1;
    }
    sm->abandoned[i] = sm->cur;
}

/* The record of the payment being started is durable: the pinpad may be
 * asked (once the display has shown the amount). */
static void on_recorded(pos_payment_sm_t *sm, const char *tx, uint64_t now_ms,
                        pos_payment_actions_t *out)
{
    pos_payment_record_t *ab = abandoned_find(sm, tx);

    if (ab != NULL) {
        /* Refused (unavailable) before this landed: the card was never
         * asked. Final now, so that neither a restart (DECLINED
         * "interrupted", after the REJECTED) nor a retry of the id takes
         * it for a payment cut short; a retry is answered from it. */
        pos_payment_record_t r = *ab;
        r.state = POS_PAY_FAILED;
        copy_str(r.reason, sizeof(r.reason), "unavailable");
        act_record(out, &r);
        history_add(sm, &r);
        memset(ab, 0, sizeof(*ab));
        return;
    }
    if (sm->state != POS_PAY_STARTING || strcmp(sm->cur.transaction_id, tx) != 0) {
        return; /* later records gate nothing */
    }
    sm->recorded = true;
    if (sm->displayed) {
        start_pinpad(sm, now_ms, out);
    }
}

/*
 * Without a durable record a crash could charge the card again: the
 * payment is refused before the pinpad is asked (PAYMENT_PROCESSING was
 * never sent, so this is its one first answer), and not remembered.
 */
static void abandon_unrecorded(pos_payment_sm_t *sm, pos_payment_actions_t *out)
{
    push(out, POS_PAY_ACT_DISCARD_HELD, sm->cur.transaction_id);
    push(out, POS_PAY_ACT_SREM_ACTIVE, sm->cur.transaction_id);
    act_reject(out, sm->cur.transaction_id, "unavailable");
    act_text(out, sm->cur.transaction_id, "Not completed");
    act_status(out, false);
    sm->state = POS_PAY_IDLE;
    sm->deadline_ms = 0;
}

static void on_record_failed(pos_payment_sm_t *sm, const char *tx, pos_payment_actions_t *out)
{
    pos_payment_record_t *ab = abandoned_find(sm, tx);
    if (ab != NULL) {
        memset(ab, 0, sizeof(*ab)); /* nothing landed */
    }
    if (sm->state == POS_PAY_STARTING && strcmp(sm->cur.transaction_id, tx) == 0) {
        abandon_unrecorded(sm, out);
    }
}

static void on_deadline(pos_payment_sm_t *sm, uint64_t now_ms, pos_payment_actions_t *out)
{
    if (sm->reprint_tx[0] != '\0' && now_ms >= sm->reprint_deadline_ms) {
        receipt_failed(out, sm->reprint_tx, "timeout");
        sm->reprint_tx[0] = '\0';
        sm->reprint_deadline_ms = 0;
    }
    if (sm->deadline_ms == 0 || now_ms < sm->deadline_ms) {
        return;
    }
    switch (sm->state) {
    case POS_PAY_STARTING:
        if (!sm->recorded) {
            /* The store did not answer in time; its record may still land. */
            abandoned_keep(sm, out);
            abandon_unrecorded(sm, out);
            break;
        }
        act_counter(out, "display_errors");
        start_pinpad(sm, now_ms, out);
        break;
    case POS_PAY_PROCESSING:
        /* Only the pinpad can say the card was not charged: one that cannot
         * stop a payment it took (Telium E+) may still charge it. Wait for
         * its answer as for a cancel; a refusal then is the timeout. */
        push(out, POS_PAY_ACT_PINPAD_ABORT, sm->cur.transaction_id);
        sm->timing_out = true;
        sm->state = POS_PAY_CANCELLING;
        sm->cur.state = POS_PAY_CANCELLING;
        set_deadline(sm, now_ms, sm->cfg.abort_timeout_ms);
        break;
    case POS_PAY_CANCELLING:
        /* The pinpad ignored the abort: nobody can say whether it charged. */
        finish_declined(sm, POS_PAY_UNKNOWN, "unknown", out);
        break;
    case POS_PAY_PRINTING:
        complete(sm, false, "timeout", out);
        break;
    default:
        sm->deadline_ms = 0;
        break;
    }
}

/* ---- public ------------------------------------------------------------- */

void pos_payment_sm_init(pos_payment_sm_t *sm, const pos_payment_sm_config_t *cfg)
{
    pos_mem_zero(sm, sizeof(*sm));
    if (cfg != NULL) {
        sm->cfg = *cfg;
    }
    if (sm->cfg.pinpad_timeout_ms == 0) {
        sm->cfg.pinpad_timeout_ms = POS_PAY_PINPAD_TIMEOUT_MS;
    }
    if (sm->cfg.display_timeout_ms == 0) {
        sm->cfg.display_timeout_ms = POS_PAY_DISPLAY_TIMEOUT_MS;
    }
    if (sm->cfg.abort_timeout_ms == 0) {
        sm->cfg.abort_timeout_ms = POS_PAY_ABORT_TIMEOUT_MS;
    }
    if (sm->cfg.print_timeout_ms == 0) {
        sm->cfg.print_timeout_ms = POS_PAY_PRINT_TIMEOUT_MS;
    }
    sm->state = POS_PAY_IDLE;
}

uint64_t pos_payment_sm_deadline(const pos_payment_sm_t *sm)
{
    uint64_t d = is_live(sm->state) ? sm->deadline_ms : 0;

    if (sm->reprint_tx[0] != '\0' && (d == 0 || sm->reprint_deadline_ms < d)) {
        d = sm->reprint_deadline_ms;
    }
    return d;
}

int pos_payment_sm_handle(pos_payment_sm_t *sm, const pos_payment_event_t *ev, uint64_t now_ms,
                          pos_payment_actions_t *out)
{
    int rc = 0;

    if (out == NULL) {
        return -EINVAL;
    }
    out->count = 0;
    out->next_deadline_ms = 0;
    if (sm == NULL || ev == NULL) {
        return -EINVAL;
    }
    out->next_deadline_ms = pos_payment_sm_deadline(sm);
    if (ev->kind != POS_PAY_EV_REQUEST && ev->kind != POS_PAY_EV_DEADLINE &&
        !pos_msg_id_valid(ev->transaction_id)) {
        return -EINVAL;
    }
    switch (ev->kind) {
    case POS_PAY_EV_REQUEST:
        rc = on_request(sm, ev->request, now_ms, out);
        break;
    case POS_PAY_EV_REJECT:
        act_reject(out, ev->transaction_id,
                   pos_msg_reason_valid(ev->reason) ? ev->reason : "invalid");
        break;
    case POS_PAY_EV_CANCEL:
        on_cancel(sm, ev->transaction_id, now_ms, out);
        break;
    case POS_PAY_EV_REPRINT:
        on_reprint(sm, ev->transaction_id, now_ms, out);
        break;
    case POS_PAY_EV_PINPAD_RESULT:
        on_pinpad(sm, ev, now_ms, out);
        break;
    case POS_PAY_EV_PRINT_RESULT:
        on_print(sm, ev, out);
        break;
    case POS_PAY_EV_DISPLAY_DONE:
        on_display(sm, ev, now_ms, out);
        break;
    case POS_PAY_EV_DEADLINE:
        on_deadline(sm, now_ms, out);
        break;
    case POS_PAY_EV_RECORDED:
        on_recorded(sm, ev->transaction_id, now_ms, out);
        break;
    case POS_PAY_EV_RECORD_FAILED:
        on_record_failed(sm, ev->transaction_id, out);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    out->next_deadline_ms = pos_payment_sm_deadline(sm);
    return rc;
}

static bool record_valid(const pos_payment_record_t *rec)
{
    pos_currency_t c;

    if (memchr(rec->transaction_id, '\0', sizeof(rec->transaction_id)) == NULL ||
        !pos_msg_id_valid(rec->transaction_id) || (unsigned)rec->state >= POS_PAY_STATE_COUNT ||
        rec->state == POS_PAY_IDLE || rec->amount_minor < 0 ||
        memchr(rec->auth_code, '\0', sizeof(rec->auth_code)) == NULL ||
        memchr(rec->masked_pan, '\0', sizeof(rec->masked_pan)) == NULL ||
        memchr(rec->card_brand, '\0', sizeof(rec->card_brand)) == NULL ||
        memchr(rec->reason, '\0', sizeof(rec->reason)) == NULL) {
        return false;
    }
    /* A record that can be published must hold what the messages need. */
    if (rec->amount_minor > 0 && (memchr(rec->currency.alpha, '\0', 4) == NULL ||
                                  pos_amount_currency(rec->currency.alpha, &c) != 0)) {
        return false;
    }
    if (rec->amount_minor == 0 && rec->state != POS_PAY_CANCELLED) {
        return false;
    }
    return true;
}

int pos_payment_sm_restore(pos_payment_sm_t *sm, const pos_payment_record_t *rec,
                           pos_payment_actions_t *out)
{
    pos_payment_record_t r;

    if (out == NULL) {
        return -EINVAL;
    }
    out->count = 0;
    out->next_deadline_ms = 0;
    if (sm == NULL || rec == NULL || !record_valid(rec)) {
        return -EINVAL;
    }
    /* A finished one only joins the history (no action): also beside a
     * live payment, so that a cancel or a request for it is answered from
     * its record, never taken for a new id. One that needs actions waits. */
    if (sm->state != POS_PAY_IDLE && !pos_payment_state_final(rec->state)) {
        return -EBUSY;
    }
    if (history_find(sm, rec->transaction_id) != NULL) {
        return -EEXIST;
    }
    r = *rec;
    /* A journal is input too: nothing unvetted may reach a message. */
    if (r.amount_minor > 0 && !pos_msg_pan_is_masked(r.masked_pan)) {
        copy_str(r.masked_pan, sizeof(r.masked_pan), PAY_PAN_PLACEHOLDER);
    }
    if (!ascii_ok(r.auth_code, POS_MSG_AUTH_MAX, false)) {
        r.auth_code[0] = '\0';
    }
    if (!ascii_ok(r.card_brand, POS_MSG_BRAND_MAX, true)) {
        r.card_brand[0] = '\0';
    }
    if (r.state == POS_PAY_APPROVED || r.state == POS_PAY_PRINTING) {
        /* Approved before the crash: the payment stands, the receipt is lost.
         * PAYMENT_APPROVED again, since the first may not have left. */
        r.receipt_printed = false;
        act_publish(out, POS_MSG_OUT_PAYMENT_APPROVED, &r, NULL);
        act_publish(out, POS_MSG_OUT_RECEIPT_FAILED, &r, "interrupted");
        push(out, POS_PAY_ACT_SREM_ACTIVE, r.transaction_id);
        act_publish(out, POS_MSG_OUT_TRANSACTION_COMPLETED, &r, NULL);
        act_counter(out, "receipts_failed");
        r.state = POS_PAY_DONE;
        act_record(out, &r);
    } else if (!pos_payment_state_final(r.state)) {
        /* Started, outcome never seen: the card may or may not have been
         * charged. Never retried; reported as declined "interrupted" and
         * counted in payments_interrupted, the reconciliation list. */
        copy_str(r.reason, sizeof(r.reason), "interrupted");
        push(out, POS_PAY_ACT_SREM_ACTIVE, r.transaction_id);
        act_publish(out, POS_MSG_OUT_PAYMENT_DECLINED, &r, "interrupted");
        act_counter(out, "payments_interrupted");
        r.state = POS_PAY_UNKNOWN;
        act_record(out, &r);
    } else if (r.state != POS_PAY_DONE && r.state != POS_PAY_CANCELLED &&
               !pos_msg_reason_valid(r.reason)) {
        copy_str(r.reason, sizeof(r.reason), "declined");
    }
    history_add(sm, &r);
    return 0;
}

pos_payment_state_t pos_payment_sm_state(const pos_payment_sm_t *sm)
{
    return sm->state;
}

int pos_payment_sm_lookup(const pos_payment_sm_t *sm, const char *transaction_id,
                          pos_payment_state_t *state)
{
    const pos_payment_record_t *rec;

    if (sm == NULL || transaction_id == NULL || state == NULL) {
        return -EINVAL;
    }
    if (is_current(sm, transaction_id)) {
        *state = sm->state;
        return 0;
    }
    rec = history_find(sm, transaction_id);
    if (rec == NULL) {
        return -ENOENT;
    }
    *state = rec->state;
    return 0;
}
