#include "agent/payment/payment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal/display.h"
#include "hal/pinpad.h"
#include "hal/printer.h"
#include "hal/registry.h"
#include "platform/clock.h"
#include "platform/log.h"
#include "platform/mem.h"
#include "platform/uverr.h"

#define ACTIVE_TX_TTL_S  1800u   /* active_transactions:{storeId} */

static void payment_run(pos_payment_t *p, const pos_payment_event_t *ev);

/* ---- actions -------------------------------------------------------------- */

static void payment_active_set(pos_payment_t *p, bool add, const char *tx)
{
    const pos_payment_port_t *port = &p->opt.port;
    char key[128];

    /* Through the outbox: an SREM lost with the link would leave the
     * finished payment in the set until the key expires (30 min). */
    snprintf(key, sizeof(key), "active_transactions:%s", p->opt.store_id);
    if (port->set_member(port->ctx, key, add, tx, ACTIVE_TX_TTL_S) != 0) {
        POS_WARN("payment", "%s active_transactions not queued", add ? "SADD" : "SREM");
    }
}

/* Adds n to the till's counter:terminal:<id>:<name>. Returns the port's answer. */
static int payment_counter(pos_payment_t *p, const char *name, long long n)
{
    const pos_payment_port_t *port = &p->opt.port;
    char key[160];

    snprintf(key, sizeof(key), "counter:terminal:%s:%s", p->opt.terminal_id, name);
    return port->incrby(port->ctx, key, n, 86400);
}

static const char *const reject_names[POS_PAY_REJ_COUNT] = {
    "busy", "invalid", "duplicate", "unsigned", "bad_signature", "stale", "unavailable", "other"};

pos_payment_reject_t pos_payment_reject_index(const char *reason)
{
    for (int i = 0; i < POS_PAY_REJ_OTHER; i++) {
        if (strcmp(reason, reject_names[i]) == 0) {
            return (pos_payment_reject_t)i;
        }
    }
    return POS_PAY_REJ_OTHER;
}

/* Counts an outcome message on its way (the fleet metrics). */
static void payment_count(pos_payment_t *p, const pos_msg_out_t *m)
{
    if ((unsigned)m->type < POS_MSG_OUT_COUNT) {
        p->published[m->type]++;
    }
    if (m->type == POS_MSG_OUT_PAYMENT_REJECTED) {
        p->rejections[pos_payment_reject_index(m->reason)]++;
    }
}

static void payment_publish(pos_payment_t *p, const pos_payment_action_t *act)
{
    const pos_payment_port_t *port = &p->opt.port;
    char json[1024], channel[96];
    int n = pos_msg_encode(&act->u.publish.msg, p->opt.terminal_id, p->opt.store_id,
                           pos_clock_wall_ms(), json, sizeof(json));

    if (n < 0) {
        POS_ERR("payment", "cannot encode %s: %s", pos_msg_out_type_name(act->u.publish.msg.type),
                strerror(-n));
        return;
    }
    if (act->u.publish.transaction_channel) {
        snprintf(channel, sizeof(channel), "transaction:%s", p->opt.store_id);
    } else {
        snprintf(channel, sizeof(channel), "payment:%s", p->opt.terminal_id);
    }
    POS_INFO("payment", "%s %s", pos_msg_out_type_name(act->u.publish.msg.type),
             act->u.publish.msg.transaction_id);
    uint64_t id = 0;
    if (port->publish(port->ctx, channel, json, (size_t)n, act->u.publish.held, &id) != 0) {
        POS_ERR("payment", "%s %s not queued", pos_msg_out_type_name(act->u.publish.msg.type),
                act->u.publish.msg.transaction_id);
        return;
    }
    payment_count(p, &act->u.publish.msg);
    if (act->u.publish.held) {
        p->held_id = id;
        snprintf(p->held_tx, sizeof(p->held_tx), "%s", act->transaction_id);
    }
}

/* Posts a device result on the device's own event queue, so that a
 * synchronous failure reaches the state machine after the current list of
 * actions, in order, like any other device event. */
static void payment_post(pos_hal_device_t *dev, const pos_hal_event_t *ev)
{
    pos_hal_emit(dev, ev);
}

static void payment_display_amount(pos_payment_t *p, const pos_payment_action_t *act)
{
    char amount[40], line2[64];
    int rc;

    pos_amount_format(act->u.amount.amount_minor, act->u.amount.currency.digits, amount,
                      sizeof(amount));
    snprintf(line2, sizeof(line2), "%s %s", act->u.amount.currency.alpha, amount);
    snprintf(p->display_tx, sizeof(p->display_tx), "%s", act->transaction_id);
    rc = pos_display_show(&p->display, "Total", line2);
    if (rc != 0) {
        pos_hal_event_t ev = {.type = POS_HAL_EV_OUTPUT_COMPLETE, .error = rc};
        payment_post(&p->display, &ev);
    }
}

static void payment_pinpad_start(pos_payment_t *p, const pos_payment_action_t *act)
{
    pos_pinpad_request_t req;
    int rc;

    memset(&req, 0, sizeof(req));
    snprintf(req.transaction_id, sizeof(req.transaction_id), "%s", act->transaction_id);
    req.amount_minor = act->u.amount.amount_minor;
    snprintf(req.currency, sizeof(req.currency), "%s", act->u.amount.currency.alpha);
    req.currency_numeric = act->u.amount.currency.numeric;
    req.digits = act->u.amount.currency.digits;
    req.timeout_ms = p->opt.pinpad_timeout_s * 1000u;
    snprintf(p->pinpad_tx, sizeof(p->pinpad_tx), "%s", act->transaction_id);
    if (p->stopping) {
        /* Its record landed while the agent stops: the devices close in a
         * moment, a card taken now could be charged with nobody told. */
        POS_WARN("payment", "%s: pinpad not asked: the agent is stopping", act->transaction_id);
        (void)pos_pinpad_new_run(&p->pinpad);
        rc = -ENODEV;
    } else {
        rc = pos_pinpad_start(&p->pinpad, &req);
    }
    p->pinpad_run = p->pinpad.run; /* only this run's result is this payment's */
    if (rc != 0) {
        pos_hal_event_t ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = POS_HAL_EV_PINPAD_RESULT;
        ev.pinpad.outcome = POS_PINPAD_ERROR;
        snprintf(ev.pinpad.reason, sizeof(ev.pinpad.reason), "%s",
                 rc == -ENODEV || rc == -EPERM ? "offline" : "device_error");
        POS_WARN("payment", "pinpad did not start: %s", strerror(-rc));
        payment_post(&p->pinpad, &ev);
    }
}

static void payment_print(pos_payment_t *p, const pos_payment_action_t *act)
{
    pos_receipt_item_t items[POS_MSG_LINES_MAX];
    pos_receipt_input_t in;
    const pos_payment_record_t *rec = &act->u.receipt.payment;
    int rc;

    memset(&in, 0, sizeof(in));
    for (size_t i = 0; i < act->u.receipt.line_count && i < POS_MSG_LINES_MAX; i++) {
        const pos_msg_line_t *l = &act->u.receipt.lines[i];
        items[i].name = l->name;
        items[i].qty = l->qty;
        /* The contract's line amount is a unit price (2 x 5.00 + 2.34 = 12.34);
         * qty <= 9999 and the price <= max_amount cannot overflow. */
        items[i].amount_minor = (int64_t)l->qty * l->unit_minor;
    }
    in.store_id = p->opt.store_id;
    in.terminal_id = p->opt.terminal_id;
    in.transaction_id = act->transaction_id;
    in.items = act->u.receipt.lines ? items : NULL;
    in.n_items = act->u.receipt.lines ? act->u.receipt.line_count : 0;
    in.total_minor = rec->amount_minor;
    in.currency = rec->currency.alpha;
    in.minor_digits = rec->currency.digits;
    in.masked_pan = rec->masked_pan;
    in.card_brand = rec->card_brand;
    in.auth_code = rec->auth_code;
    in.time_s = (int64_t)(pos_clock_wall_ms() / 1000u);
    in.width = p->opt.hal.paper_width;

    snprintf(p->print_tx, sizeof(p->print_tx), "%s", act->transaction_id);
    p->print_job = ++p->next_job;
    rc = pos_receipt_layout(&in, &p->doc);
    if (rc == 0) {
        rc = pos_printer_print(&p->printer, &p->doc, p->print_job);
    } else {
        POS_ERR("payment", "receipt layout failed: %s", strerror(-rc));
    }
    if (rc != 0) {
        pos_hal_event_t ev = {.type = POS_HAL_EV_OUTPUT_COMPLETE, .job_id = p->print_job,
                              .error = rc};
        payment_post(&p->printer, &ev);
    }
}

/* An event that arrived while payment_run() was running (a record made
 * durable at once, without a writer): run after it, in order. */
typedef struct pos_payment_later {
    struct pos_payment_later *next;
    pos_payment_event_kind_t kind;
    char tx[POS_MSG_ID_MAX + 1];
} payment_later_t;

/* A RECORD's outcome comes back as an event for the state machine. */
typedef struct payment_recording {
    pos_payment_t *p;
    char tx[POS_MSG_ID_MAX + 1];
    int kind;      /* POS_PAY_REC_*, or -1: not timed */
    uint64_t mark; /* port.commits() when it was queued */
} payment_recording_t;

/* Which record it is for the commit count: the request's, an outcome's. */
static int payment_record_kind(pos_payment_state_t state)
{
    switch (state) {
    case POS_PAY_STARTING:
        return POS_PAY_REC_REQUEST;
    case POS_PAY_APPROVED:
    case POS_PAY_DECLINED:
    case POS_PAY_TIMED_OUT:
    case POS_PAY_FAILED:
        return POS_PAY_REC_OUTCOME;
    default:
        return -1; /* the receipt's end, a cancel, a restored payment */
    }
}

static void payment_event_tx(pos_payment_t *p, pos_payment_event_kind_t kind, const char *tx)
{
    pos_payment_event_t ev;

    if (p->running) {
        payment_later_t *l = calloc(1, sizeof(*l)), **pp = &p->later;
        if (l == NULL) {
            POS_ERR("payment", "out of memory: an event for %s is lost", tx);
            return;
        }
        l->kind = kind;
        snprintf(l->tx, sizeof(l->tx), "%s", tx);
        while (*pp != NULL) {
            pp = &(*pp)->next;
        }
        *pp = l;
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.transaction_id = tx;
    payment_run(p, &ev);
}

static void payment_recorded(void *ctx, int status)
{
    payment_recording_t *r = ctx;
    bool timed = status == 0 && r->kind >= 0 && r->p->opt.port.commits != NULL;
    uint64_t now = timed ? r->p->opt.port.commits(r->p->opt.port.ctx) : 0;

    if (status != 0) {
        POS_ERR("payment", "journal: cannot record %s: %s", r->tx, strerror(-status));
    } else if (timed && now >= r->mark) {
        /* (A writer started afresh meanwhile, its count from 0: not timed.) */
        pos_payment_t *p = r->p;
        uint64_t n = now - r->mark;
        p->records_timed[r->kind]++;
        p->record_commits[r->kind] += n;
        if (n > p->record_commits_max[r->kind]) {
            p->record_commits_max[r->kind] = n;
        }
    }
    if (r->p->opt.port.journal != NULL) {
        r->p->opt.port.journal(r->p->opt.port.ctx, status);
    }
    payment_event_tx(r->p, status == 0 ? POS_PAY_EV_RECORDED : POS_PAY_EV_RECORD_FAILED, r->tx);
    free(r);
}

/*
 * Queues the record; the state machine hears when it is durable (it asks
 * the pinpad only then). Without a journal nothing can be recorded: the
 * payment is refused ("no journal, no payment").
 */
static void payment_record(pos_payment_t *p, const pos_payment_record_t *rec)
{
    payment_recording_t *r = malloc(sizeof(*r));
    int rc = -ENOMEM;

    if (r != NULL && p->opt.journal != NULL) {
        r->p = p;
        snprintf(r->tx, sizeof(r->tx), "%s", rec->transaction_id);
        r->kind = payment_record_kind(rec->state);
        r->mark = p->opt.port.commits != NULL ? p->opt.port.commits(p->opt.port.ctx) : 0;
        rc = pos_journal_put_async(p->opt.journal, rec, payment_recorded, r);
        if (rc == 0) {
            return;
        }
    }
    free(r);
    if (p->opt.journal == NULL) {
        rc = -ENODEV;
        POS_WARN("payment", "no journal: %s cannot be recorded", rec->transaction_id);
    } else {
        POS_ERR("payment", "journal: cannot record %s: %s", rec->transaction_id, strerror(-rc));
    }
    payment_event_tx(p, POS_PAY_EV_RECORD_FAILED, rec->transaction_id);
}

static void payment_held(pos_payment_t *p, const char *tx, bool discard)
{
    if (p->held_id == 0 || strcmp(p->held_tx, tx) != 0) {
        return;
    }
    p->opt.port.release(p->opt.port.ctx, p->held_id, discard);
    p->held_id = 0;
    p->held_tx[0] = '\0';
}

static void payment_deadline_cb(uv_timer_t *t)
{
    pos_payment_t *p = t->data;
    pos_payment_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = POS_PAY_EV_DEADLINE;
    payment_run(p, &ev);
}

static void payment_perform_one(pos_payment_t *p, const pos_payment_action_t *act)
{
    switch (act->kind) {
    case POS_PAY_ACT_RECORD:
        payment_record(p, &act->u.record);
        break;
    case POS_PAY_ACT_SADD_ACTIVE:
        payment_active_set(p, true, act->transaction_id);
        break;
    case POS_PAY_ACT_SREM_ACTIVE:
        payment_active_set(p, false, act->transaction_id);
        break;
    case POS_PAY_ACT_DISPLAY_AMOUNT:
        payment_display_amount(p, act);
        break;
    case POS_PAY_ACT_DISPLAY_TEXT:
        if (pos_display_show(&p->display, act->u.text.lines[0],
                             act->u.text.line_count > 1 ? act->u.text.lines[1] : "") != 0) {
            POS_WARN("payment", "display unavailable");
        }
        break;
    case POS_PAY_ACT_PINPAD_START:
        payment_pinpad_start(p, act);
        break;
    case POS_PAY_ACT_PINPAD_ABORT:
        if (pos_pinpad_abort(&p->pinpad) != 0) {
            POS_DEBUG("payment", "pinpad abort: nothing to abort");
        }
        break;
    case POS_PAY_ACT_PRINT_RECEIPT:
        payment_print(p, act);
        break;
    case POS_PAY_ACT_PUBLISH:
        payment_publish(p, act);
        break;
    case POS_PAY_ACT_INCR_COUNTER:
        (void)payment_counter(p, act->u.counter, 1);
        break;
    case POS_PAY_ACT_STATUS_CHANGED:
        p->opt.port.busy(p->opt.port.ctx, act->u.busy);
        break;
    case POS_PAY_ACT_RELEASE_HELD:
        payment_held(p, act->transaction_id, false);
        break;
    case POS_PAY_ACT_DISCARD_HELD:
        payment_held(p, act->transaction_id, true);
        break;
    }
}

/*
 * Actions that queue store writes: they go first, in their order, so that
 * the writer starts on their commit while the devices and the status are
 * served (the rest keep their order too: a held message is released only
 * after the pinpad was asked). A status going back to idle waits for what
 * the payment queued (agent_status_changed()), so it goes with them.
 */
static bool payment_action_writes(const pos_payment_action_t *act)
{
    switch (act->kind) {
    case POS_PAY_ACT_RECORD:
    case POS_PAY_ACT_SADD_ACTIVE:
    case POS_PAY_ACT_SREM_ACTIVE:
    case POS_PAY_ACT_PUBLISH:
    case POS_PAY_ACT_INCR_COUNTER:
        return true;
    case POS_PAY_ACT_STATUS_CHANGED:
        return !act->u.busy;
    default:
        return false;
    }
}

static void payment_perform(pos_payment_t *p, const pos_payment_actions_t *out)
{
    bool writes = false;

    for (size_t i = 0; i < out->count; i++) {
        writes |= payment_action_writes(&out->a[i]);
    }
    for (int pass = writes ? 0 : 1; pass < 2; pass++) {
        if (pass == 1 && writes) {
            /* What pass 0 queued goes to the writer now. */
            p->opt.port.batch(p->opt.port.ctx, false);
            p->opt.port.batch(p->opt.port.ctx, true);
        }
        for (size_t i = 0; i < out->count; i++) {
            if (payment_action_writes(&out->a[i]) == (pass == 0)) {
                payment_perform_one(p, &out->a[i]);
            }
        }
    }
    uv_timer_stop(&p->deadline_timer);
    uv_timer_stop(&p->deadline_timer);
    if (out->next_deadline_ms != 0) {
        uint64_t now = pos_clock_wall_ms();
        uv_timer_start(&p->deadline_timer, payment_deadline_cb,
                       out->next_deadline_ms > now ? out->next_deadline_ms - now : 0, 0);
    }
}

/* One event through the state machine. */
static void payment_run_one(pos_payment_t *p, const pos_payment_event_t *ev)
{
    pos_payment_actions_t out;
    int rc = pos_payment_sm_handle(&p->sm, ev, pos_clock_wall_ms(), &out);

    if (rc != 0) {
        POS_WARN("payment", "event refused by the state machine: %s", strerror(-rc));
        return;
    }
    payment_perform(p, &out);
    memset(&out, 0, sizeof(out)); /* held a masked PAN and auth code */
}

/*
 * Performs a list of actions (one commit for what they queue), then the
 * events that came back meanwhile, each as its own list. Events never run
 * inside another's actions.
 */
static void payment_act(pos_payment_t *p, const pos_payment_actions_t *out,
                        const pos_payment_event_t *ev)
{
    bool outer = !p->running;

    p->running = true;
    p->opt.port.batch(p->opt.port.ctx, true);
    if (out != NULL) {
        payment_perform(p, out);
    } else {
        payment_run_one(p, ev);
    }
    p->opt.port.batch(p->opt.port.ctx, false);
    if (!outer) {
        return;
    }
    while (p->later != NULL) {
        payment_later_t *l = p->later;
        pos_payment_event_t lev;
        p->later = l->next;
        memset(&lev, 0, sizeof(lev));
        lev.kind = l->kind;
        lev.transaction_id = l->tx;
        p->opt.port.batch(p->opt.port.ctx, true);
        payment_run_one(p, &lev);
        p->opt.port.batch(p->opt.port.ctx, false);
        free(l);
    }
    p->running = false;
}

static void payment_run(pos_payment_t *p, const pos_payment_event_t *ev)
{
    payment_act(p, NULL, ev);
}

/* ---- device events ------------------------------------------------------------ */

static pos_print_outcome_t payment_print_outcome(const pos_hal_device_t *printer, int error)
{
    if (error == 0) {
        return POS_PRINT_OK;
    }
    if (error == -ENOSPC || printer->status == POS_DEV_PAPER_OUT) {
        return POS_PRINT_PAPER_OUT;
    }
    if (printer->status == POS_DEV_COVER_OPEN) {
        return POS_PRINT_COVER_OPEN;
    }
    if (error == -ENODEV || error == -EPERM || printer->status == POS_DEV_OFFLINE) {
        return POS_PRINT_OFFLINE;
    }
    return POS_PRINT_ERROR;
}

static void payment_device_event(pos_hal_device_t *dev, const pos_hal_event_t *hev)
{
    pos_payment_t *p = dev->user;
    pos_payment_event_t ev;
    pos_dev_slot_t which = dev == &p->display ? POS_DEV_DISPLAY
                           : dev == &p->printer ? POS_DEV_PRINTER
                                                : POS_DEV_PINPAD;

    memset(&ev, 0, sizeof(ev));
    switch (hev->type) {
    case POS_HAL_EV_STATUS:
        POS_INFO("hal", "%s: %s", dev->kind, pos_dev_state_name(hev->status));
        p->opt.port.device_status(p->opt.port.ctx, which, hev->status);
        return;
    case POS_HAL_EV_ERROR:
        POS_WARN("hal", "%s: %s", dev->kind, strerror(-hev->error));
        return;
    case POS_HAL_EV_OUTPUT_COMPLETE:
        if (dev == &p->display) {
            if (p->display_tx[0] == '\0') {
                return;
            }
            ev.kind = POS_PAY_EV_DISPLAY_DONE;
            ev.transaction_id = p->display_tx;
            ev.display_ok = hev->error == 0;
            payment_run(p, &ev);
            p->display_tx[0] = '\0';
        } else if (dev == &p->printer) {
            if (hev->job_id != p->print_job || p->print_tx[0] == '\0') {
                return;
            }
            ev.kind = POS_PAY_EV_PRINT_RESULT;
            ev.transaction_id = p->print_tx;
            ev.print = payment_print_outcome(dev, hev->error);
            if (hev->error != 0) {
                /* Every failed receipt says why, whatever the driver told. */
                POS_WARN("payment", "receipt for %s not printed: %s (printer %s)", p->print_tx,
                         strerror(-hev->error), pos_dev_state_name(dev->status));
            }
            payment_run(p, &ev);
            p->print_tx[0] = '\0';
        }
        return;
    case POS_HAL_EV_PINPAD_RESULT:
        if (p->pinpad_tx[0] == '\0' || hev->job_id != p->pinpad_run) {
            /* A payment given up on (abort timed out) whose result came
             * after the next one failed to start, or was delivered after
             * the next one started: never the next one's. An approval here
             * is a charge the cloud does not know of, counted for
             * reconciliation as the state machine counts one for a settled
             * payment. */
            bool approved = hev->pinpad.outcome == POS_PINPAD_APPROVED;
            POS_WARN("payment", "pinpad result (%s) of an earlier payment, ignored%s",
                     approved ? "approved" : "not approved",
                     approved ? ": counted in payments_late_approved" : "");
            (void)payment_counter(p, approved ? "payments_late_approved" : "pinpad_stale_results",
                                  1);
            return;
        }
        ev.kind = POS_PAY_EV_PINPAD_RESULT;
        ev.transaction_id = p->pinpad_tx;
        ev.pinpad = hev->pinpad.outcome;
        ev.auth_code = hev->pinpad.auth_code;
        ev.masked_pan = hev->pinpad.masked_pan;
        ev.card_brand = hev->pinpad.card_brand;
        ev.reason = hev->pinpad.reason[0] ? hev->pinpad.reason : NULL;
        payment_run(p, &ev);
        p->pinpad_tx[0] = '\0';
        return;
    }
}

/* ---- messages ------------------------------------------------------------------- */

/* A transaction id the state machine's history has forgotten (it keeps 256)
 * but the journal still holds: put its record back first, so that the
 * request is answered from it and never charges the card again. */
static void payment_recall(pos_payment_t *p, const char *tx)
{
    pos_payment_record_t rec;
    pos_payment_actions_t out;
    pos_payment_state_t st;

    if (p->opt.journal == NULL || pos_payment_sm_lookup(&p->sm, tx, &st) == 0 ||
        pos_journal_get(p->opt.journal, tx, &rec) != 0) {
        return;
    }
    if (pos_payment_sm_restore(&p->sm, &rec, &out) == 0) {
        POS_INFO("payment", "%s recalled from the journal", tx);
        payment_act(p, &out, NULL);
    }
    memset(&rec, 0, sizeof(rec));
    memset(&out, 0, sizeof(out));
}

static void payment_reject(pos_payment_t *p, const char *tx, const char *reason)
{
    pos_payment_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = POS_PAY_EV_REJECT;
    ev.transaction_id = tx;
    ev.reason = reason;
    payment_run(p, &ev);
}

/*
 * A request for an id the state machine knows as cancelled but the seen
 * set does not: its cancel came first (the id was never requested, so the
 * cancel took no room in the set). The machine answers PAYMENT_CANCELLED;
 * the id joins the set now, as every requested id does, so that a replay
 * is never charged once the cancel's record has gone.
 */
static void payment_remember_request(pos_payment_t *p, const char *tx, pos_payment_state_t st)
{
    pos_journal_t *j = p->opt.journal;

    if (st != POS_PAY_CANCELLED || j == NULL || pos_journal_seen_has(j, tx)) {
        return;
    }
    if (!pos_journal_seen_room(j, pos_clock_wall_ms())) {
        /* Cancelled all the same; only its record keeps a replay off the card. */
        POS_ERR("payment", "the seen-id set is full of ids inside the window: %s not remembered",
                tx);
        return;
    }
    int rc = pos_journal_seen_add(j, tx);
    if (rc != 0) {
        POS_ERR("payment", "journal: cannot remember %s: %s", tx, strerror(-rc));
    }
}

/*
 * Before a request reaches the state machine: an id it does not know but
 * the journal does is brought back (answered from its record), or, when
 * the record is gone but the id was seen within the window, refused as a
 * duplicate; a new id the seen set has no room for, or one coming while the
 * agent stops, is refused. Returns true when the state machine should take
 * the request.
 */
static bool payment_known(pos_payment_t *p, const char *tx)
{
    pos_payment_state_t st;
    pos_journal_t *j = p->opt.journal;

    if (pos_payment_sm_lookup(&p->sm, tx, &st) == 0) {
        payment_remember_request(p, tx, st);
        return true; /* the state machine answers from what it remembers */
    }
    if (j == NULL) {
        /* No journal, no payment: refused before anything is queued, so
         * the request gets this one answer (nothing held can leak out
         * without an outbox to hold it in). */
        POS_WARN("payment", "no journal: %s refused (unavailable)", tx);
        payment_reject(p, tx, "unavailable");
        return false;
    }
    payment_recall(p, tx);
    if (pos_payment_sm_lookup(&p->sm, tx, &st) == 0) {
        payment_remember_request(p, tx, st);
        return true;
    }
    int seen = pos_journal_seen_at(j, tx, NULL);
    if (seen == 0) {
        POS_WARN("payment", "%s was requested before (within the window): never charged again",
                 tx);
        payment_reject(p, tx, "duplicate");
        return false;
    }
    if (seen != -ENOENT) {
        /* Whether it was charged before cannot be told: not charged now. */
        POS_ERR("payment", "journal: cannot look %s up (%s): refused (unavailable)", tx,
                strerror(-seen));
        payment_reject(p, tx, "unavailable");
        return false;
    }
    if (!pos_journal_seen_room(j, pos_clock_wall_ms())) {
        POS_ERR("payment", "the seen-id set is full of ids inside the window: %s refused", tx);
        payment_reject(p, tx, "unavailable");
        return false;
    }
    if (p->stopping) {
        /* A new id: the devices close in a moment. */
        POS_WARN("payment", "%s refused (unavailable): the agent is stopping", tx);
        payment_reject(p, tx, "unavailable");
        return false;
    }
    return true;
}

/*
 * Before a cancel reaches the state machine: an id it has forgotten but the
 * journal holds is put back first (a finished payment is answered with its
 * state, never recorded anew as cancelled). An id whose record is gone but
 * which the seen set holds was a payment that finished here, its outcome
 * no longer known: the cancel is answered as a repeated request would be,
 * PAYMENT_REJECTED "duplicate" (PAYMENT_CANCELLED says a cancel was carried
 * out), and nothing is recorded. Returns true when the machine should take it.
 */
static bool payment_cancel_known(pos_payment_t *p, const char *tx)
{
    pos_payment_state_t st;
    pos_journal_t *j = p->opt.journal;

    payment_recall(p, tx);
    if (pos_payment_sm_lookup(&p->sm, tx, &st) == 0 || j == NULL || !pos_journal_seen_has(j, tx)) {
        return true;
    }
    POS_WARN("payment", "cancel of %s: its payment finished and its record is gone: nothing undone",
             tx);
    payment_reject(p, tx, "duplicate");
    return false;
}

/* Whether tx was requested here before: the state machine knows it, or
 * the journal's seen set does (reads only). */
static bool payment_seen(pos_payment_t *p, const char *tx)
{
    pos_payment_state_t st;

    return pos_payment_sm_lookup(&p->sm, tx, &st) == 0 ||
           (p->opt.journal != NULL && pos_journal_seen_has(p->opt.journal, tx));
}

/* The transaction a payment-channel message names, for an answer; NULL
 * when it names none that can be used (DISPLAY_MESSAGE, malformed). */
static const char *payment_named_tx(const pos_msg_t *msg, int rc)
{
    if (rc != 0) {
        return msg->reject_transaction_id[0] != '\0' ? msg->reject_transaction_id : NULL;
    }
    switch (msg->type) {
    case POS_MSG_PAYMENT_REQUESTED:
        return msg->u.payment.transaction_id;
    case POS_MSG_PAYMENT_CANCELLED:
    case POS_MSG_RECEIPT_REPRINT:
        return msg->u.tx.transaction_id;
    default:
        return NULL;
    }
}

/*
 * A refused (unverified) message naming a payment this till has, live or
 * finished: it had its first answer, and a signed refusal now would say
 * it was refused without the card, to a cloud that may then ask again
 * under a new id. Counted; true when it must not be answered.
 */
static bool payment_unanswerable(pos_payment_t *p, const char *tx)
{
    if (!payment_seen(p, tx)) {
        return false;
    }
    p->unverified_unanswered++;
    return true;
}

/*
 * With a key set, a message from the cloud is only acted on once its
 * signature and ts check out (docs/signing.md). Returns true when it may
 * go on; otherwise it has been answered (PAYMENT_REJECTED with the
 * reason) or, naming no transaction, logged and dropped.
 */
static bool payment_verified(pos_payment_t *p, const pos_msg_t *msg, int rc, const char *payload,
                             size_t len)
{
    const pos_sign_keys_t *keys = p->opt.keys;
    pos_payment_event_t ev;

    if (keys == NULL || keys->count == 0) {
        return true;
    }
    const char *tx = payment_named_tx(msg, rc);
    if (rc != 0 && tx == NULL) {
        return true; /* dropped as malformed anyway, with the decoder's reason */
    }
    pos_sign_verdict_t v = pos_sign_verify(keys, payload, len, pos_clock_wall_ms(),
                                           (uint64_t)p->opt.signature_window_s * 1000u);
    if (v == POS_SIGN_OK) {
        return true;
    }
    p->unverified++;
    p->unverified_by[v]++;
    const char *type = pos_msg_type_name(msg->type);
    /* The reason only: never the signature, the key or the message. */
    if (v == POS_SIGN_STALE && p->clock_offset_ms != NULL && *p->clock_offset_ms != INT64_MIN) {
        /* Whose clock is off: the offset against Redis says. */
        POS_WARN("msg",
                 "payment:%s: %s stale, refused%s (this till's clock: %" PRId64
                 " ms against Redis's)",
                 p->opt.terminal_id, type[0] != '\0' ? type : "message",
                 tx != NULL ? "" : " (no transactionId to answer)", -*p->clock_offset_ms);
    } else {
        POS_WARN("msg", "payment:%s: %s %s, refused%s", p->opt.terminal_id,
                 type[0] != '\0' ? type : "message", pos_sign_verdict_reason(v),
                 tx != NULL ? "" : " (no transactionId to answer)");
    }
    if (tx != NULL && payment_unanswerable(p, tx)) {
        /* Whoever sent this learns nothing. */
        POS_WARN("msg", "payment:%s: not answered: %s names a payment of this till",
                 p->opt.terminal_id, tx);
        return false;
    }
    if (tx != NULL) {
        memset(&ev, 0, sizeof(ev));
        ev.kind = POS_PAY_EV_REJECT;
        ev.transaction_id = tx;
        ev.reason = pos_sign_verdict_reason(v);
        payment_run(p, &ev);
    }
    return false;
}

void pos_payment_on_message(pos_payment_t *p, const char *payload, size_t len)
{
    pos_msg_t *msg = &p->msg;
    pos_msg_limits_t lim;
    pos_payment_event_t ev;
    char why[128];
    int rc;

    memset(&lim, 0, sizeof(lim));
    lim.max_len = POS_MSG_MAX_BYTES;
    /* The limit is in major units of any currency: decode with the widest
     * (3 minor digits), then check against the request's own currency. */
    lim.max_amount_minor = (int64_t)p->opt.max_amount * 1000;
    /* The channel is this terminal's: a message naming another is refused. */
    lim.store_id = p->opt.store_id;
    lim.terminal_id = p->opt.terminal_id;
    rc = pos_msg_decode(POS_MSG_CH_PAYMENT, payload, len, &lim, msg, why, sizeof(why));
    if (rc == 0 && msg->type == POS_MSG_PAYMENT_REQUESTED) {
        int64_t max = p->opt.max_amount;
        for (unsigned i = 0; i < msg->u.payment.currency.digits; i++) {
            max *= 10;
        }
        if (msg->u.payment.amount_minor > max) {
            snprintf(why, sizeof(why), "PAYMENT_REQUESTED: amount over [payment] max_amount");
            snprintf(msg->reject_transaction_id, sizeof(msg->reject_transaction_id), "%s",
                     msg->u.payment.transaction_id);
            rc = -EINVAL;
        }
    }
    memset(&ev, 0, sizeof(ev));
    if (rc == -EALREADY) {
        if (msg->origin == POS_MSG_FROM_POS_APP) {
            p->pos_app_ignored++;
        }
        POS_DEBUG("msg", "payment:%s: %s message ignored", p->opt.terminal_id,
                  msg->origin == POS_MSG_FROM_POS_APP ? "a POS application's"
                                                      : "terminal-originated");
        return;
    }
    if (!payment_verified(p, msg, rc, payload, len)) {
        memset(msg, 0, sizeof(*msg));
        return;
    }
    if (rc != 0) {
        p->rejected++;
        if (rc == -EPERM) {
            p->other_scope++;
        }
        POS_WARN("msg", "payment:%s: %s, %s", p->opt.terminal_id, why,
                 rc == -EPERM ? "refused" : "dropped");
        if (msg->type == POS_MSG_PAYMENT_REQUESTED && msg->reject_transaction_id[0] != '\0') {
            /* A request we can name but not honour is answered, not ignored;
             * a repeated id as the contract answers repeats, never "invalid"
             * (a refusal of what may have been charged). */
            ev.kind = POS_PAY_EV_REJECT;
            ev.transaction_id = msg->reject_transaction_id;
            ev.reason = payment_seen(p, msg->reject_transaction_id) ? "duplicate" : "invalid";
            payment_run(p, &ev);
        }
        return;
    }
    p->handled++;
    POS_INFO("msg", "payment:%s: %s", p->opt.terminal_id, pos_msg_type_name(msg->type));
    switch (msg->type) {
    case POS_MSG_PAYMENT_REQUESTED:
        if (payment_known(p, msg->u.payment.transaction_id)) {
            ev.kind = POS_PAY_EV_REQUEST;
            ev.request = &msg->u.payment;
            payment_run(p, &ev);
        }
        break;
    case POS_MSG_PAYMENT_CANCELLED:
        if (payment_cancel_known(p, msg->u.tx.transaction_id)) {
            ev.kind = POS_PAY_EV_CANCEL;
            ev.transaction_id = msg->u.tx.transaction_id;
            payment_run(p, &ev);
        }
        break;
    case POS_MSG_RECEIPT_REPRINT:
        /* A finished payment the history (256) has forgotten: its record. */
        payment_recall(p, msg->u.tx.transaction_id);
        ev.kind = POS_PAY_EV_REPRINT;
        ev.transaction_id = msg->u.tx.transaction_id;
        payment_run(p, &ev);
        break;
    case POS_MSG_DISPLAY_MESSAGE:
        rc = pos_payment_show(p, msg->u.display.lines[0],
                              msg->u.display.line_count > 1 ? msg->u.display.lines[1] : "");
        if (rc == -EBUSY) {
            POS_INFO("msg", "display message not shown: a payment owns the display");
        }
        break;
    default:
        break;
    }
    memset(msg, 0, sizeof(*msg));
}

void pos_payment_refuse_busy(pos_payment_t *p, const char *payload, size_t len)
{
    pos_msg_t *msg = &p->msg;
    pos_msg_limits_t lim;
    pos_msg_out_t out;
    char why[128], json[512], channel[96];
    int rc;

    memset(&lim, 0, sizeof(lim));
    lim.max_len = POS_MSG_MAX_BYTES;
    lim.max_amount_minor = (int64_t)p->opt.max_amount * 1000;
    rc = pos_msg_decode(POS_MSG_CH_PAYMENT, payload, len, &lim, msg, why, sizeof(why));
    if (rc == 0 && msg->type == POS_MSG_PAYMENT_CANCELLED && pos_payment_active(p) &&
        strcmp(msg->u.tx.transaction_id, p->sm.cur.transaction_id) == 0) {
        /* A cancel of the payment running now is carried out whatever the
         * traffic around it: dropped, the customer at the pinpad is charged
         * for what the cloud cancelled. It goes the whole way (scope,
         * signature, state machine); one can only stop this one payment. */
        memset(msg, 0, sizeof(*msg));
        pos_payment_on_message(p, payload, len);
        return;
    }
    const char *tx = rc == 0 && msg->type == POS_MSG_PAYMENT_REQUESTED
                         ? msg->u.payment.transaction_id
                         : (rc != 0 && rc != -EALREADY && msg->type == POS_MSG_PAYMENT_REQUESTED &&
                                    msg->reject_transaction_id[0] != '\0'
                                ? msg->reject_transaction_id
                                : NULL);
    if (tx == NULL) {
        p->dropped++;
        memset(msg, 0, sizeof(*msg));
        return;
    }
    /* Signed like every cloud message (contract.md "Signed messages"): the
     * till signs its answer, so a forged request gets the verdict, never a
     * "busy" that says the id is the cloud's. One HMAC, no log line. */
    const char *reason = NULL;
    bool verified = false;
    if (p->opt.keys != NULL && p->opt.keys->count > 0) {
        pos_sign_verdict_t v = pos_sign_verify(p->opt.keys, payload, len, pos_clock_wall_ms(),
                                               (uint64_t)p->opt.signature_window_s * 1000u);
        if (v != POS_SIGN_OK) {
            p->unverified++;
            p->unverified_by[v]++;
            reason = pos_sign_verdict_reason(v);
            if (payment_unanswerable(p, tx)) {
                memset(msg, 0, sizeof(*msg)); /* no log line here, as above */
                return;
            }
        }
    }
    memset(&out, 0, sizeof(out));
    out.type = POS_MSG_OUT_PAYMENT_REJECTED;
    snprintf(out.transaction_id, sizeof(out.transaction_id), "%s", tx);
    if (reason == NULL) {
        /* A repeated id is never "busy" (come back later): the contract
         * answers it with its state or "duplicate", and this path has no
         * time for the state. Either way the card is never touched here. */
        reason = payment_seen(p, tx) ? "duplicate" : "busy";
        verified = true;
    }
    snprintf(out.reason, sizeof(out.reason), "%s", reason);
    memset(msg, 0, sizeof(*msg));
    int n = pos_msg_encode(&out, p->opt.terminal_id, p->opt.store_id, pos_clock_wall_ms(), json,
                           sizeof(json));
    snprintf(channel, sizeof(channel), "payment:%s", p->opt.terminal_id);
    if (n < 0 || p->opt.port.publish_now(p->opt.port.ctx, channel, json, (size_t)n) != 0) {
        p->dropped++;
        return;
    }
    payment_count(p, &out);
    p->over_budget += verified; /* a refused signature is counted with the others */
    p->rejected_unreported++;
}

void pos_payment_flush_counters(pos_payment_t *p)
{
    if (p->rejected_unreported == 0 || p->opt.port.incrby == NULL) {
        return;
    }
    if (payment_counter(p, "payments_rejected", (long long)p->rejected_unreported) == 0) {
        p->rejected_unreported = 0;
    }
}

int pos_payment_show(pos_payment_t *p, const char *line1, const char *line2)
{
    if (pos_payment_active(p)) {
        return -EBUSY;
    }
    return pos_display_show(&p->display, line1, line2);
}

/* One line of the test receipt. */
static void payment_test_line(pos_receipt_doc_t *doc, pos_charset_align_t align, bool bold,
                              const char *text)
{
    pos_receipt_line_t *l = &doc->lines[doc->n_lines++];

    snprintf(l->text, sizeof(l->text), "%.*s", (int)doc->width, text);
    l->align = align;
    l->bold = bold;
}

int pos_payment_test_print(pos_payment_t *p)
{
    pos_receipt_doc_t *doc = &p->doc;
    char line[POS_RECEIPT_TEXT_MAX], when[32];
    unsigned width = p->opt.hal.paper_width;

    if (pos_payment_active(p) || p->print_tx[0] != '\0') {
        return -EBUSY;
    }
    memset(doc, 0, sizeof(*doc));
    doc->width = width >= 20 && width <= 48 ? width : 32;
    payment_test_line(doc, POS_ALIGN_CENTER, true, "posagent test print");
    snprintf(line, sizeof(line), "terminal %s", p->opt.terminal_id);
    payment_test_line(doc, POS_ALIGN_LEFT, false, line);
    snprintf(line, sizeof(line), "store %s", p->opt.store_id);
    payment_test_line(doc, POS_ALIGN_LEFT, false, line);
    if (pos_receipt_format_time((int64_t)(pos_clock_wall_ms() / 1000u), when, sizeof(when)) == 0) {
        payment_test_line(doc, POS_ALIGN_LEFT, false, when);
    }
    payment_test_line(doc, POS_ALIGN_CENTER, false, "no payment");
    /* A job id of its own, print_tx empty: its completion is not taken for
     * a receipt's. */
    return pos_printer_print(&p->printer, doc, ++p->next_job);
}

void pos_payment_set_journal(pos_payment_t *p, pos_journal_t *j)
{
    p->opt.journal = j;
}

bool pos_payment_active(const pos_payment_t *p)
{
    return pos_payment_sm_state(&p->sm) != POS_PAY_IDLE;
}

static int payment_restore_one(void *ctx, const pos_payment_record_t *rec)
{
    pos_payment_t *p = ctx;
    pos_payment_actions_t out;
    int rc = pos_payment_sm_restore(&p->sm, rec, &out);

    if (rc == 0) {
        if (!pos_payment_state_final(rec->state)) {
            POS_WARN("payment", "%s was interrupted in %s: settled without the card",
                     rec->transaction_id, pos_payment_state_name(rec->state));
        }
        payment_act(p, &out, NULL);
    } else if (rc != -EEXIST) {
        POS_WARN("payment", "journal record of %s not restored: %s", rec->transaction_id,
                 strerror(-rc));
    }
    memset(&out, 0, sizeof(out));
    return 0;
}

void pos_payment_restore(pos_payment_t *p)
{
    if (p->opt.journal == NULL) {
        return;
    }
    int rc = pos_journal_list(p->opt.journal, payment_restore_one, p);
    if (rc < 0) {
        POS_ERR("payment", "cannot read the journal: %s", strerror(-rc));
    }
}

/* ---- setup and teardown ----------------------------------------------------------- */

int pos_payment_init(pos_payment_t *p, const pos_payment_options_t *opt, char *err,
                     size_t errlen)
{
    pos_payment_sm_config_t smc;
    int rc;

    pos_mem_zero(p, sizeof(*p));
    p->opt = *opt;
    p->opt.hal.reopen_base_ms = p->opt.hal.reopen_base_ms ? p->opt.hal.reopen_base_ms : 500;
    p->opt.hal.reopen_cap_ms = p->opt.hal.reopen_cap_ms ? p->opt.hal.reopen_cap_ms : 10000;
    memset(&smc, 0, sizeof(smc));
    smc.pinpad_timeout_ms = opt->pinpad_timeout_s * 1000u;
    pos_payment_sm_init(&p->sm, &smc);

    rc = pos_hal_create(&p->display, opt->loop, POS_HAL_DISPLAY, opt->display, &p->opt.hal,
                        payment_device_event, p, err, errlen);
    if (rc != 0) {
        return rc;
    }
    rc = pos_hal_create(&p->printer, opt->loop, POS_HAL_PRINTER, opt->printer, &p->opt.hal,
                        payment_device_event, p, err, errlen);
    if (rc != 0) {
        goto fail_printer;
    }
    rc = pos_hal_create(&p->pinpad, opt->loop, POS_HAL_PINPAD, opt->pinpad, &p->opt.hal,
                        payment_device_event, p, err, errlen);
    if (rc != 0) {
        goto fail_pinpad;
    }
    rc = uv_timer_init(opt->loop, &p->deadline_timer);
    if (rc != 0) {
        snprintf(err, errlen, "timer: %s", uv_strerror(rc));
        rc = pos_uv_errno(rc);
        goto fail_timer;
    }
    p->deadline_timer.data = p;
    return 0;

    /* Devices close on the loop's next turn; p stays the caller's till then. */
fail_timer:
    pos_hal_close(&p->pinpad, NULL);
fail_pinpad:
    pos_hal_close(&p->printer, NULL);
fail_printer:
    pos_hal_close(&p->display, NULL);
    return rc;
}

void pos_payment_start(pos_payment_t *p)
{
    pos_hal_device_t *devs[] = {&p->display, &p->printer, &p->pinpad};

    for (size_t i = 0; i < 3; i++) {
        int rc = pos_hal_start(devs[i]);
        if (rc != 0) {
            POS_ERR("hal", "%s: cannot start: %s", devs[i]->kind, strerror(-rc));
            pos_hal_set_status(devs[i], POS_DEV_ERROR);
        }
    }
}

static void payment_part_closed(pos_payment_t *p)
{
    if (--p->open_handles == 0 && p->closed_cb != NULL) {
        p->closed_cb(p);
    }
}

static void payment_dev_closed(pos_hal_device_t *dev)
{
    payment_part_closed(dev->user);
}

static void payment_timer_closed(uv_handle_t *h)
{
    payment_part_closed(h->data);
}

void pos_payment_stop(pos_payment_t *p)
{
    p->stopping = true;
}

void pos_payment_close(pos_payment_t *p, void (*done)(pos_payment_t *p))
{
    p->stopping = true;
    p->closed_cb = done;
    p->open_handles = 4;
    uv_close((uv_handle_t *)&p->deadline_timer, payment_timer_closed);
    pos_hal_close(&p->display, payment_dev_closed);
    pos_hal_close(&p->printer, payment_dev_closed);
    pos_hal_close(&p->pinpad, payment_dev_closed);
    memset(&p->doc, 0, sizeof(p->doc));
}
