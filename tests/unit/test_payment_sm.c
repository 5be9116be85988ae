/*
 * Unit tests for agent/payment_sm. Scenarios are tables of steps: an event
 * in a tiny text form, the actions expected (rendered compactly, in order)
 * and the live state afterwards. Every PUBLISH action is also run through
 * the real encoder, so the machine can never ask for a message the
 * contract would not accept.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/payment/payment_sm.h"

#define T0 1764412800000ULL

typedef struct step {
    const char *ev;   /* see send_event() */
    const char *want; /* rendered actions, space separated */
    pos_payment_state_t state;
} step_t;

static pos_payment_sm_t *sm;
static pos_payment_actions_t acts;
static uint64_t now;
static pos_msg_payment_t req;
static char rendered[2048];

static int setup(void **state)
{
    (void)state;
    sm = malloc(sizeof(*sm));
    assert_non_null(sm);
    pos_payment_sm_init(sm, NULL);
    now = T0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(sm);
    return 0;
}

static void make_req(const char *tx, int64_t minor, const char *currency)
{
    memset(&req, 0, sizeof(req));
    snprintf(req.transaction_id, sizeof(req.transaction_id), "%s", tx);
    req.amount_minor = minor;
    assert_int_equal(pos_amount_currency(currency, &req.currency), 0);
    req.line_count = 1;
    strcpy(req.lines[0].name, "Espresso");
    req.lines[0].qty = 1;
    req.lines[0].unit_minor = minor;
}

static const char *const pinpad_words[] = {"approved", "declined", "cancelled",
                                           "error",    "timeout",  "unknown"};
static const char *const print_words[] = {"ok", "paper_out", "cover_open", "offline", "error"};

static int word_index(const char *const *words, size_t n, const char *w)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(words[i], w) == 0) {
            return (int)i;
        }
    }
    fail_msg("unknown word %s", w);
    return -1;
}

static void render(const pos_payment_actions_t *a)
{
    size_t len = 0;

    rendered[0] = '\0';
    for (size_t i = 0; i < a->count; i++) {
        const pos_payment_action_t *x = &a->a[i];
        char one[256];
        switch (x->kind) {
        case POS_PAY_ACT_RECORD:
            snprintf(one, sizeof(one), "RECORD(%s)", pos_payment_state_name(x->u.record.state));
            break;
        case POS_PAY_ACT_SADD_ACTIVE:
            snprintf(one, sizeof(one), "SADD");
            break;
        case POS_PAY_ACT_SREM_ACTIVE:
            snprintf(one, sizeof(one), "SREM");
            break;
        case POS_PAY_ACT_DISPLAY_AMOUNT:
            snprintf(one, sizeof(one), "DISPLAY(%lld)", (long long)x->u.amount.amount_minor);
            break;
        case POS_PAY_ACT_DISPLAY_TEXT:
            snprintf(one, sizeof(one), "TEXT(%s)", x->u.text.lines[0]);
            break;
        case POS_PAY_ACT_PINPAD_START:
            snprintf(one, sizeof(one), "PINPAD(%lld/%u)", (long long)x->u.amount.amount_minor,
                     (unsigned)x->u.amount.currency.numeric);
            break;
        case POS_PAY_ACT_PINPAD_ABORT:
            snprintf(one, sizeof(one), "ABORT");
            break;
        case POS_PAY_ACT_PRINT_RECEIPT:
            snprintf(one, sizeof(one), "%s", x->u.receipt.copy ? "PRINT_COPY" : "PRINT");
            break;
        case POS_PAY_ACT_PUBLISH: {
            const pos_msg_out_t *m = &x->u.publish.msg;
            bool has_reason = m->type == POS_MSG_OUT_PAYMENT_DECLINED ||
                              m->type == POS_MSG_OUT_PAYMENT_REJECTED ||
                              m->type == POS_MSG_OUT_RECEIPT_FAILED;
            snprintf(one, sizeof(one), "%s%s%s%s%s%s@%s", x->u.publish.held ? "held:" : "",
                     x->u.publish.transaction_channel ? "tx:" : "", pos_msg_out_type_name(m->type),
                     has_reason ? ":" : "", has_reason ? m->reason : "",
                     m->type == POS_MSG_OUT_TRANSACTION_COMPLETED
                         ? (m->receipt_printed ? ":printed" : ":failed")
                         : "",
                     m->transaction_id);
            /* Whatever the machine publishes must be encodable as the contract says. */
            char json[1024];
            int n = pos_msg_encode(m, "T-0001", "S-042", now, json, sizeof(json));
            if (n <= 0) {
                fail_msg("publish of %s does not encode: %d", one, n);
            }
            assert_int_equal(x->u.publish.transaction_channel,
                             m->type == POS_MSG_OUT_TRANSACTION_COMPLETED);
            break;
        }
        case POS_PAY_ACT_INCR_COUNTER:
            snprintf(one, sizeof(one), "INCR(%s)", x->u.counter);
            break;
        case POS_PAY_ACT_STATUS_CHANGED:
            snprintf(one, sizeof(one), "%s", x->u.busy ? "BUSY" : "IDLE");
            break;
        case POS_PAY_ACT_RELEASE_HELD:
            snprintf(one, sizeof(one), "RELEASE@%s", x->transaction_id);
            break;
        case POS_PAY_ACT_DISCARD_HELD:
            snprintf(one, sizeof(one), "DISCARD@%s", x->transaction_id);
            break;
        default:
            fail_msg("action kind %d", (int)x->kind);
        }
        len += (size_t)snprintf(rendered + len, sizeof(rendered) - len, "%s%s", i ? " " : "", one);
    }
}

/*
 * Event forms:
 *   req TX MINOR [CUR]       cancel TX       reprint TX      reject TX [REASON]
 *   pin TX OUTCOME [ARG]     (ARG: masked PAN when approved, reason when declined)
 *   print TX OUTCOME         disp TX ok|fail tick MS (advance and fire the deadline)
 *   rec TX                   recfail TX      (its RECORD durable, or not)
 */
static int send_event(const char *text)
{
    char verb[16] = "", tx[80] = "", a1[40] = "", a2[40] = "";
    pos_payment_event_t ev;

    memset(&ev, 0, sizeof(ev));
    sscanf(text, "%15s %79s %39s %39s", verb, tx, a1, a2);
    ev.transaction_id = tx;
    if (strcmp(verb, "req") == 0) {
        make_req(tx, strtoll(a1, NULL, 10), a2[0] ? a2 : "EUR");
        ev.kind = POS_PAY_EV_REQUEST;
        ev.request = &req;
    } else if (strcmp(verb, "cancel") == 0) {
        ev.kind = POS_PAY_EV_CANCEL;
    } else if (strcmp(verb, "reprint") == 0) {
        ev.kind = POS_PAY_EV_REPRINT;
    } else if (strcmp(verb, "reject") == 0) {
        ev.kind = POS_PAY_EV_REJECT;
        ev.reason = a1[0] ? a1 : NULL;
    } else if (strcmp(verb, "pin") == 0) {
        ev.kind = POS_PAY_EV_PINPAD_RESULT;
        ev.pinpad = (pos_pinpad_outcome_t)word_index(pinpad_words, 6, a1);
        ev.auth_code = "A1B2C3";
        ev.card_brand = "VISA";
        ev.masked_pan = "411111******1111";
        if (a2[0] != '\0') {
            ev.masked_pan = a2;
            ev.reason = a2;
        }
    } else if (strcmp(verb, "print") == 0) {
        ev.kind = POS_PAY_EV_PRINT_RESULT;
        ev.print = (pos_print_outcome_t)word_index(print_words, 5, a1);
    } else if (strcmp(verb, "disp") == 0) {
        ev.kind = POS_PAY_EV_DISPLAY_DONE;
        ev.display_ok = strcmp(a1, "ok") == 0;
    } else if (strcmp(verb, "rec") == 0) {
        ev.kind = POS_PAY_EV_RECORDED;
    } else if (strcmp(verb, "recfail") == 0) {
        ev.kind = POS_PAY_EV_RECORD_FAILED;
    } else if (strcmp(verb, "tick") == 0) {
        ev.kind = POS_PAY_EV_DEADLINE;
        ev.transaction_id = NULL;
        now += strtoull(tx, NULL, 10);
    } else {
        fail_msg("bad step %s", text);
    }
    return pos_payment_sm_handle(sm, &ev, now, &acts);
}

static void run(const step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = send_event(steps[i].ev);
        render(&acts);
        if (rc != 0 || strcmp(rendered, steps[i].want) != 0 ||
            pos_payment_sm_state(sm) != steps[i].state) {
            print_error("step %zu \"%s\": rc %d, state %s\n  got:  %s\n  want: %s (%s)\n", i,
                        steps[i].ev, rc, pos_payment_state_name(pos_payment_sm_state(sm)),
                        rendered, steps[i].want, pos_payment_state_name(steps[i].state));
        }
        assert_int_equal(rc, 0);
        assert_string_equal(rendered, steps[i].want);
        assert_int_equal(pos_payment_sm_state(sm), steps[i].state);
        assert_true(acts.next_deadline_ms == pos_payment_sm_deadline(sm));
    }
}

#define RUN(steps) run(steps, sizeof(steps) / sizeof(steps[0]))

/* Common prefixes. */
/* The request queues its record, SADD and PAYMENT_PROCESSING (held) in one
 * commit; the pinpad is asked once the record is durable and the amount shown. */
#define S_REQ                                                                                      \
    {"req tx-1 1234", "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-1 BUSY DISPLAY(1234)",     \
     POS_PAY_STARTING},                                                                            \
    {"rec tx-1", "", POS_PAY_STARTING}
/* A request that starts (its record on its way), and its refusal when
 * the record does not become durable in time. */
#define S_STARTING(tx)                                                                             \
    {                                                                                              \
        "req " tx " 1234",                                                                         \
            "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@" tx " BUSY DISPLAY(1234)",             \
            POS_PAY_STARTING                                                                       \
    }
#define S_UNAVAILABLE(tx)                                                                          \
    "DISCARD@" tx " SREM PAYMENT_REJECTED:unavailable@" tx " INCR(payments_rejected) "             \
    "TEXT(Not completed) IDLE"
#define S_DISP                                                                                     \
    {"disp tx-1 ok", "PINPAD(1234/978) RELEASE@tx-1", POS_PAY_PROCESSING}
#define S_APPROVE                                                                                  \
    {"pin tx-1 approved",                                                                          \
     "RECORD(APPROVED) PAYMENT_APPROVED@tx-1 INCR(payments_approved) TEXT(Approved) PRINT",        \
     POS_PAY_PRINTING}
#define S_PRINTED                                                                                  \
    {"print tx-1 ok",                                                                              \
     "RECEIPT_PRINTED@tx-1 SREM tx:TRANSACTION_COMPLETED:printed@tx-1 INCR(receipts_printed) "     \
     "IDLE RECORD(DONE)",                                                                          \
     POS_PAY_IDLE}
#define S_DECLINED(why, counter, text)                                                             \
    "SREM PAYMENT_DECLINED:" why "@tx-1 TEXT(" text ") INCR(" counter ") IDLE RECORD("

/* ---- the main paths ----------------------------------------------------- */

static void test_approved_and_printed(void **state)
{
    static const step_t steps[] = {S_REQ, S_DISP, S_APPROVE, S_PRINTED};
    (void)state;
    RUN(steps);
    pos_payment_state_t st;
    assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &st), 0);
    assert_int_equal(st, POS_PAY_DONE);
}

static void test_approved_print_fails_payment_stands(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        S_APPROVE,
        {"print tx-1 paper_out",
         "RECEIPT_FAILED:paper_out@tx-1 SREM tx:TRANSACTION_COMPLETED:failed@tx-1 "
         "INCR(receipts_failed) IDLE RECORD(DONE)",
         POS_PAY_IDLE},
        /* Still approved for anyone who asks again. */
        {"req tx-1 1234", "PAYMENT_APPROVED@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_print_outcomes(void **state)
{
    static const char *const reasons[] = {"paper_out", "cover_open", "offline", "error"};
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        char tx[16], ev[64], want[256];
        snprintf(tx, sizeof(tx), "p-%zu", i);
        snprintf(ev, sizeof(ev), "req %s 100", tx);
        assert_int_equal(send_event(ev), 0);
        snprintf(ev, sizeof(ev), "rec %s", tx);
        assert_int_equal(send_event(ev), 0);
        snprintf(ev, sizeof(ev), "disp %s ok", tx);
        assert_int_equal(send_event(ev), 0);
        snprintf(ev, sizeof(ev), "pin %s approved", tx);
        assert_int_equal(send_event(ev), 0);
        snprintf(ev, sizeof(ev), "print %s %s", tx, reasons[i]);
        assert_int_equal(send_event(ev), 0);
        render(&acts);
        snprintf(want, sizeof(want),
                 "RECEIPT_FAILED:%s@%s SREM tx:TRANSACTION_COMPLETED:failed@%s "
                 "INCR(receipts_failed) IDLE RECORD(DONE)",
                 reasons[i], tx, tx);
        assert_string_equal(rendered, want);
    }
}

static void test_print_timeout(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        S_APPROVE,
        {"tick 29999", "", POS_PAY_PRINTING},
        {"tick 1",
         "RECEIPT_FAILED:timeout@tx-1 SREM tx:TRANSACTION_COMPLETED:failed@tx-1 "
         "INCR(receipts_failed) IDLE RECORD(DONE)",
         POS_PAY_IDLE},
        /* The printer's late word changes nothing. */
        {"print tx-1 ok", "INCR(print_stale_results)", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_pinpad_outcomes(void **state)
{
    static const struct {
        const char *ev, *want;
        pos_payment_state_t final;
    } rows[] = {
        {"pin tx-1 declined insufficient_funds",
         S_DECLINED("insufficient_funds", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_DECLINED},
        {"pin tx-1 declined Bad-Reason!", /* not a reason token: generic */
         S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)", POS_PAY_DECLINED},
        {"pin tx-1 declined", S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_DECLINED},
        {"pin tx-1 cancelled",
         S_DECLINED("customer_cancelled", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_DECLINED},
        {"pin tx-1 error", S_DECLINED("device_error", "payments_failed", "Not completed") "FAILED)",
         POS_PAY_FAILED},
        {"pin tx-1 timeout",
         S_DECLINED("timeout", "payments_timed_out", "Not completed") "TIMED_OUT)",
         POS_PAY_TIMED_OUT},
        {"pin tx-1 unknown", S_DECLINED("unknown", "payments_unknown", "Not completed") "UNKNOWN)",
         POS_PAY_UNKNOWN},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        pos_payment_state_t st;
        pos_payment_sm_init(sm, NULL);
        const step_t steps[] = {S_REQ, S_DISP, {rows[i].ev, rows[i].want, POS_PAY_IDLE}};
        RUN(steps);
        assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &st), 0);
        assert_int_equal(st, rows[i].final);
        /* A repeat of the request is answered with the same decline, card untouched. */
        assert_int_equal(send_event("req tx-1 1234"), 0);
        render(&acts);
        assert_int_equal(strncmp(rendered, "PAYMENT_DECLINED:", 17), 0);
        assert_int_equal(acts.count, 1);
        assert_string_equal(acts.a[0].u.publish.msg.reason, sm->cur.reason);
    }
}

/*
 * The pinpad deadline asks the pinpad to stop and waits for its answer, as
 * a cancel does: only the pinpad can say the card was not charged (a
 * Telium terminal cannot be stopped once it took the request, and its
 * customer may pay a moment later). Its refusal is the timeout; an
 * approval stands; no answer is unknown.
 */
static void test_pinpad_deadline(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"tick 119999", "", POS_PAY_PROCESSING},
        {"tick 1", "ABORT", POS_PAY_CANCELLING},
        {"pin tx-1 cancelled",
         S_DECLINED("timeout", "payments_timed_out", "Not completed") "TIMED_OUT)", POS_PAY_IDLE},
        {"pin tx-1 declined", "INCR(pinpad_stale_results)", POS_PAY_IDLE},
        {"req tx-1 1234", "PAYMENT_DECLINED:timeout@tx-1", POS_PAY_IDLE},
        {"tick 1000000", "", POS_PAY_IDLE},
    };
    static const step_t approved[] = {
        S_REQ,
        S_DISP,
        {"tick 120000", "ABORT", POS_PAY_CANCELLING},
        /* The customer paid as the time ran out: the charge stands. */
        S_APPROVE,
        S_PRINTED,
    };
    static const step_t silent[] = {
        S_REQ,
        S_DISP,
        {"tick 120000", "ABORT", POS_PAY_CANCELLING},
        {"tick 9999", "", POS_PAY_CANCELLING},
        {"tick 1", S_DECLINED("unknown", "payments_unknown", "Not completed") "UNKNOWN)",
         POS_PAY_IDLE},
        /* A result after that cannot revive it; an approval is flagged. */
        {"pin tx-1 approved", "INCR(payments_late_approved)", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
    pos_payment_sm_init(sm, NULL);
    RUN(approved);
    pos_payment_sm_init(sm, NULL);
    RUN(silent);
}

static void test_configurable_timeouts(void **state)
{
    pos_payment_sm_config_t cfg = {.pinpad_timeout_ms = 30000, .display_timeout_ms = 1000};
    (void)state;
    pos_payment_sm_init(sm, &cfg);
    assert_int_equal(send_event("req tx-1 1234"), 0);
    assert_true(acts.next_deadline_ms == now + 1000);
    assert_int_equal(send_event("rec tx-1"), 0);
    assert_int_equal(send_event("disp tx-1 ok"), 0);
    assert_true(acts.next_deadline_ms == now + 30000);
    assert_int_equal(send_event("tick 30000"), 0);
    assert_int_equal(acts.a[0].kind, POS_PAY_ACT_PINPAD_ABORT);
    assert_true(acts.next_deadline_ms == now + 10000); /* the pinpad's answer to the abort */

    /* Defaults: 5 s display, 120 s pinpad, 10 s abort, 30 s printer. */
    pos_payment_sm_init(sm, NULL);
    assert_int_equal(send_event("req tx-2 1234"), 0);
    assert_true(acts.next_deadline_ms == now + 5000);
    assert_int_equal(send_event("rec tx-2"), 0);
    assert_int_equal(send_event("disp tx-2 ok"), 0);
    assert_true(acts.next_deadline_ms == now + 120000);
    assert_int_equal(send_event("cancel tx-2"), 0);
    assert_true(acts.next_deadline_ms == now + 10000);
    assert_int_equal(send_event("pin tx-2 approved"), 0);
    assert_true(acts.next_deadline_ms == now + 30000);
}

static void test_display_problems_do_not_block(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        {"disp tx-1 fail", "INCR(display_errors) PINPAD(1234/978) RELEASE@tx-1",
         POS_PAY_PROCESSING},
        {"disp tx-1 ok", "", POS_PAY_PROCESSING}, /* late, ignored */
        {"pin tx-1 declined", S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_IDLE},
        {"req tx-2 500", "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-2 BUSY DISPLAY(500)", POS_PAY_STARTING},
        {"rec tx-2", "", POS_PAY_STARTING},
        {"disp tx-1 ok", "", POS_PAY_STARTING}, /* another payment's display */
        {"tick 4999", "", POS_PAY_STARTING},
        {"tick 1", "INCR(display_errors) PINPAD(500/978) RELEASE@tx-2",
         POS_PAY_PROCESSING},
    };
    (void)state;
    RUN(steps);
}

/* ---- one at a time, idempotency ------------------------------------------ */

static void test_busy(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        {"req tx-2 999", "PAYMENT_REJECTED:busy@tx-2 INCR(payments_rejected)", POS_PAY_STARTING},
        S_DISP,
        {"req tx-2 999", "PAYMENT_REJECTED:busy@tx-2 INCR(payments_rejected)", POS_PAY_PROCESSING},
        S_APPROVE,
        {"req tx-2 999", "PAYMENT_REJECTED:busy@tx-2 INCR(payments_rejected)", POS_PAY_PRINTING},
        S_PRINTED,
        /* A busy rejection is not remembered: the cloud may send it again. */
        {"req tx-2 999", "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-2 BUSY DISPLAY(999)", POS_PAY_STARTING},
    };
    (void)state;
    RUN(steps);
}

static void test_duplicates_in_each_state(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        {"req tx-1 1234", "", POS_PAY_STARTING}, /* PAYMENT_PROCESSING follows by itself */
        S_DISP,
        {"req tx-1 1234", "PAYMENT_PROCESSING@tx-1", POS_PAY_PROCESSING},
        {"req tx-1 9999", "PAYMENT_REJECTED:duplicate@tx-1 INCR(payments_rejected)",
         POS_PAY_PROCESSING},
        {"req tx-1 1234 USD", "PAYMENT_REJECTED:duplicate@tx-1 INCR(payments_rejected)",
         POS_PAY_PROCESSING},
        S_APPROVE,
        {"req tx-1 1234", "PAYMENT_APPROVED@tx-1", POS_PAY_PRINTING},
        S_PRINTED,
        {"req tx-1 1234", "PAYMENT_APPROVED@tx-1", POS_PAY_IDLE},
        {"req tx-1 1", "PAYMENT_REJECTED:duplicate@tx-1 INCR(payments_rejected)", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);

    /* The republished approval carries the original data. */
    assert_int_equal(send_event("req tx-1 1234"), 0);
    const pos_msg_out_t *m = &acts.a[0].u.publish.msg;
    assert_true(m->amount_minor == 1234);
    assert_string_equal(m->currency.alpha, "EUR");
    assert_string_equal(m->auth_code, "A1B2C3");
    assert_string_equal(m->masked_pan, "411111******1111");
    assert_string_equal(m->card_brand, "VISA");
}

static void test_duplicate_while_cancelling(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"cancel tx-1", "ABORT", POS_PAY_CANCELLING},
        {"req tx-1 1234", "", POS_PAY_CANCELLING}, /* the outcome follows */
        {"pin tx-1 cancelled",
         "SREM PAYMENT_CANCELLED@tx-1 TEXT(Cancelled) INCR(payments_cancelled) IDLE "
         "RECORD(CANCELLED)",
         POS_PAY_IDLE},
        {"req tx-1 1234", "PAYMENT_CANCELLED@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

/* ---- cancel in each state -------------------------------------------------- */

#define S_CANCELLED                                                                                \
    "SREM PAYMENT_CANCELLED@tx-1 TEXT(Cancelled) INCR(payments_cancelled) IDLE RECORD(CANCELLED)"

/* ---- the record gate: never the pinpad before the record is durable ------------ */

/* The display may finish first: the pinpad still waits for the record. */
static void test_pinpad_waits_for_record(void **state)
{
    static const step_t steps[] = {
        {"req tx-1 1234", "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-1 BUSY DISPLAY(1234)",
         POS_PAY_STARTING},
        {"disp tx-1 ok", "", POS_PAY_STARTING},
        {"rec tx-2", "", POS_PAY_STARTING}, /* another transaction's record gates nothing */
        {"rec tx-1", "PINPAD(1234/978) RELEASE@tx-1", POS_PAY_PROCESSING},
        {"rec tx-1", "", POS_PAY_PROCESSING}, /* a later record gates nothing either */
    };
    (void)state;
    RUN(steps);
}

/* No durable record: PAYMENT_PROCESSING is never sent, the pinpad never
 * asked, and the refusal is the request's one first answer. */
static void test_record_failed_refuses(void **state)
{
    static const step_t steps[] = {
        S_STARTING("tx-1"),
        {"disp tx-1 ok", "", POS_PAY_STARTING},
        {"recfail tx-1", S_UNAVAILABLE("tx-1"), POS_PAY_IDLE},
        {"rec tx-1", "", POS_PAY_IDLE},
        /* Not remembered: the cloud may ask again once the store works. */
        S_STARTING("tx-1"),
    };
    (void)state;
    RUN(steps);
}

/* The store does not answer within the display's time: refused, not charged. */
static void test_record_late_refuses(void **state)
{
    static const step_t steps[] = {
        S_STARTING("tx-1"),
        {"disp tx-1 ok", "", POS_PAY_STARTING},
        {"tick 5000", S_UNAVAILABLE("tx-1"), POS_PAY_IDLE},
        /* Too late: nothing starts, and the STARTING record that landed is
         * made final at once (a restart would report it "interrupted", a
         * second answer after the REJECTED); a retry is answered from it. */
        {"rec tx-1", "RECORD(FAILED)", POS_PAY_IDLE},
        {"req tx-1 1234", "PAYMENT_DECLINED:unavailable@tx-1", POS_PAY_IDLE},
        {"rec tx-1", "", POS_PAY_IDLE},
        S_STARTING("tx-2"),
    };
    (void)state;
    RUN(steps);
}

/* Two requests refused while their records wait behind a slow disk: each
 * record is made final when it lands (one slot kept only the last). */
static void test_two_records_late(void **state)
{
    static const step_t steps[] = {
        S_STARTING("tx-1"),
        {"disp tx-1 ok", "", POS_PAY_STARTING},
        {"tick 5000", S_UNAVAILABLE("tx-1"), POS_PAY_IDLE},
        S_STARTING("tx-2"),
        {"disp tx-2 ok", "", POS_PAY_STARTING},
        {"tick 10000", S_UNAVAILABLE("tx-2"), POS_PAY_IDLE},
        {"rec tx-1", "RECORD(FAILED)", POS_PAY_IDLE},
        {"rec tx-2", "RECORD(FAILED)", POS_PAY_IDLE},
        {"req tx-1 1234", "PAYMENT_DECLINED:unavailable@tx-1", POS_PAY_IDLE},
        {"req tx-2 1234", "PAYMENT_DECLINED:unavailable@tx-2", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_cancel_starting(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        /* Pinpad never asked: no abort, and PAYMENT_PROCESSING is never sent. */
        {"cancel tx-1", "DISCARD@tx-1 " S_CANCELLED, POS_PAY_IDLE},
        {"disp tx-1 ok", "", POS_PAY_IDLE},
        {"tick 600000", "", POS_PAY_IDLE},
        {"cancel tx-1", "PAYMENT_CANCELLED@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_cancel_processing_each_pinpad_answer(void **state)
{
    static const char *const answers[] = {"cancelled", "declined", "error", "timeout"};
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        char ev[64];
        pos_payment_sm_init(sm, NULL);
        static const step_t head[] = {S_REQ, S_DISP, {"cancel tx-1", "ABORT", POS_PAY_CANCELLING},
                                      {"cancel tx-1", "", POS_PAY_CANCELLING}};
        RUN(head);
        snprintf(ev, sizeof(ev), "pin tx-1 %s", answers[i]);
        const step_t tail[] = {{ev, S_CANCELLED, POS_PAY_IDLE}};
        RUN(tail);
    }
}

static void test_cancel_loses_race_with_approval(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"cancel tx-1", "ABORT", POS_PAY_CANCELLING},
        S_APPROVE, /* charged before the abort landed: the payment stands */
        {"cancel tx-1", "PAYMENT_APPROVED@tx-1", POS_PAY_PRINTING},
        S_PRINTED,
        {"cancel tx-1", "PAYMENT_APPROVED@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_cancel_abort_never_confirmed(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"cancel tx-1", "ABORT", POS_PAY_CANCELLING},
        {"tick 9999", "", POS_PAY_CANCELLING},
        {"tick 1", S_DECLINED("unknown", "payments_unknown", "Not completed") "UNKNOWN)",
         POS_PAY_IDLE},
        {"cancel tx-1", "PAYMENT_DECLINED:unknown@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_cancel_unknown_during_abort(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"cancel tx-1", "ABORT", POS_PAY_CANCELLING},
        {"pin tx-1 unknown", S_DECLINED("unknown", "payments_unknown", "Not completed") "UNKNOWN)",
         POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_cancel_unknown_and_other_transactions(void **state)
{
    static const step_t steps[] = {
        /* Never seen: remembered as cancelled, so a late request cannot charge. */
        {"cancel tx-9", "RECORD(CANCELLED) PAYMENT_CANCELLED@tx-9", POS_PAY_IDLE},
        {"req tx-9 500", "PAYMENT_CANCELLED@tx-9", POS_PAY_IDLE},
        {"req tx-9 700", "PAYMENT_CANCELLED@tx-9", POS_PAY_IDLE},
        S_REQ,
        S_DISP,
        /* Cancels of other ids leave the live payment alone. */
        {"cancel tx-9", "PAYMENT_CANCELLED@tx-9", POS_PAY_PROCESSING},
        {"cancel tx-8", "RECORD(CANCELLED) PAYMENT_CANCELLED@tx-8", POS_PAY_PROCESSING},
        {"pin tx-1 declined", S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_IDLE},
        {"cancel tx-1", "PAYMENT_DECLINED:declined@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

/* ---- reprint ------------------------------------------------------------------ */

static void test_reprint(void **state)
{
    static const step_t steps[] = {
        {"reprint tx-1", "RECEIPT_FAILED:not_found@tx-1", POS_PAY_IDLE},
        S_REQ,
        {"reprint tx-1", "RECEIPT_FAILED:not_approved@tx-1", POS_PAY_STARTING},
        S_DISP,
        {"reprint tx-1", "RECEIPT_FAILED:not_approved@tx-1", POS_PAY_PROCESSING},
        S_APPROVE,
        {"reprint tx-1", "", POS_PAY_PRINTING}, /* its receipt is printing */
        S_PRINTED,
        {"reprint tx-1", "PRINT_COPY", POS_PAY_IDLE},
        {"reprint tx-1", "", POS_PAY_IDLE}, /* that copy is printing */
        {"print tx-1 ok", "RECEIPT_PRINTED@tx-1", POS_PAY_IDLE},
        {"reprint tx-1", "PRINT_COPY", POS_PAY_IDLE},
        {"print tx-1 cover_open", "RECEIPT_FAILED:cover_open@tx-1", POS_PAY_IDLE},
        {"reprint tx-1", "PRINT_COPY", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
    assert_true(acts.next_deadline_ms == now + 30000);
    assert_int_equal(send_event("tick 30000"), 0);
    render(&acts);
    assert_string_equal(rendered, "RECEIPT_FAILED:timeout@tx-1");
    assert_int_equal(send_event("print tx-1 ok"), 0);
    render(&acts);
    assert_string_equal(rendered, "INCR(print_stale_results)");
    /* A payment is live: no copy now. */
    static const step_t busy[] = {
        {"req tx-2 200", "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-2 BUSY DISPLAY(200)", POS_PAY_STARTING},
        {"reprint tx-1", "RECEIPT_FAILED:busy@tx-1", POS_PAY_STARTING},
    };
    RUN(busy);
}

static void test_reprint_not_approved(void **state)
{
    static const step_t steps[] = {
        S_REQ,
        S_DISP,
        {"pin tx-1 declined", S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_IDLE},
        {"reprint tx-1", "RECEIPT_FAILED:not_approved@tx-1", POS_PAY_IDLE},
    };
    (void)state;
    RUN(steps);
}

static void test_receipt_content(void **state)
{
    (void)state;
    assert_int_equal(send_event("req tx-1 1234"), 0);
    assert_int_equal(acts.a[4].kind, POS_PAY_ACT_DISPLAY_AMOUNT);
    assert_int_equal(acts.a[4].u.amount.line_count, 1);
    assert_string_equal(acts.a[4].u.amount.lines[0].name, "Espresso");
    assert_string_equal(acts.a[4].u.amount.currency.alpha, "EUR");
    assert_int_equal(send_event("rec tx-1"), 0);
    assert_int_equal(send_event("disp tx-1 ok"), 0);
    assert_int_equal(send_event("pin tx-1 approved"), 0);
    const pos_payment_action_t *p = &acts.a[4];
    assert_int_equal(p->kind, POS_PAY_ACT_PRINT_RECEIPT);
    assert_false(p->u.receipt.copy);
    assert_true(p->u.receipt.payment.amount_minor == 1234);
    assert_string_equal(p->u.receipt.payment.auth_code, "A1B2C3");
    assert_string_equal(p->u.receipt.payment.masked_pan, "411111******1111");
    assert_int_equal(p->u.receipt.line_count, 1);
    assert_non_null(p->u.receipt.lines);
    assert_int_equal(send_event("print tx-1 ok"), 0);
    assert_int_equal(send_event("reprint tx-1"), 0);
    assert_true(acts.a[0].u.receipt.copy);
    assert_int_equal(acts.a[0].u.receipt.line_count, 1); /* the last payment keeps its lines */
}

/* ---- what the pinpad says is vetted ------------------------------------------- */

static bool mem_contains(const void *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    const char *h = hay;
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(h + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

static void test_pinpad_data_vetted(void **state)
{
    pos_payment_event_t ev;
    (void)state;
    assert_int_equal(send_event("req tx-1 1234"), 0);
    assert_int_equal(send_event("rec tx-1"), 0);
    assert_int_equal(send_event("disp tx-1 ok"), 0);
    memset(&ev, 0, sizeof(ev));
    ev.kind = POS_PAY_EV_PINPAD_RESULT;
    ev.transaction_id = "tx-1";
    ev.pinpad = POS_PINPAD_APPROVED;
    ev.masked_pan = "4111111111111111"; /* a driver bug must not leak the PAN */
    ev.auth_code = "A1 \x01";
    ev.card_brand = NULL;
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, &acts), 0);
    render(&acts); /* encodes the publishes */
    for (size_t i = 0; i < acts.count; i++) {
        if (acts.a[i].kind == POS_PAY_ACT_PUBLISH) {
            assert_string_equal(acts.a[i].u.publish.msg.masked_pan, "******");
            assert_string_equal(acts.a[i].u.publish.msg.auth_code, "");
            assert_string_equal(acts.a[i].u.publish.msg.card_brand, "");
        }
        if (acts.a[i].kind == POS_PAY_ACT_RECORD) {
            assert_string_equal(acts.a[i].u.record.masked_pan, "******");
        }
    }
    assert_false(mem_contains(sm, sizeof(*sm), "4111111111111111"));
}

/* ---- rejects and malformed events --------------------------------------------- */

static void test_reject_event(void **state)
{
    static const step_t steps[] = {
        {"reject tx-1", "PAYMENT_REJECTED:invalid@tx-1 INCR(payments_rejected)", POS_PAY_IDLE},
        {"reject tx-1 bad_signature", "PAYMENT_REJECTED:bad_signature@tx-1 INCR(payments_rejected)",
         POS_PAY_IDLE},
        {"reject tx-1 Stale!", "PAYMENT_REJECTED:invalid@tx-1 INCR(payments_rejected)",
         POS_PAY_IDLE},
        /* A rejection is not remembered: a corrected request goes through. */
        S_REQ,
    };
    (void)state;
    RUN(steps);
}

static void test_malformed_events(void **state)
{
    pos_payment_event_t ev;
    (void)state;

    assert_int_equal(send_event("req tx-1 0"), -EINVAL);
    assert_int_equal(acts.count, 0);
    assert_int_equal(send_event("req tx-1 -5"), -EINVAL);
    assert_int_equal(send_event("cancel bad/id"), -EINVAL);
    assert_int_equal(send_event("pin bad/id approved"), -EINVAL);
    assert_int_equal(pos_payment_sm_state(sm), POS_PAY_IDLE);

    memset(&ev, 0, sizeof(ev));
    ev.kind = POS_PAY_EV_REQUEST;
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, &acts), -EINVAL); /* no request */
    ev.kind = POS_PAY_EV_CANCEL;
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, &acts), -EINVAL); /* no id */
    ev.kind = (pos_payment_event_kind_t)99;
    ev.transaction_id = "tx-1";
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, &acts), -EINVAL);
    assert_int_equal(pos_payment_sm_handle(sm, NULL, now, &acts), -EINVAL);
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, NULL), -EINVAL);

    /* A request whose currency digits disagree with the table. */
    make_req("tx-1", 100, "EUR");
    req.currency.digits = 0;
    ev.kind = POS_PAY_EV_REQUEST;
    ev.request = &req;
    assert_int_equal(pos_payment_sm_handle(sm, &ev, now, &acts), -EINVAL);
    assert_int_equal(acts.count, 0);
    assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &(pos_payment_state_t){0}), -ENOENT);
}

/* ---- history ----------------------------------------------------------------- */

static void test_history_eviction(void **state)
{
    char ev[64];
    pos_payment_state_t st;
    (void)state;

    /* One real declined payment, then POS_PAY_HISTORY - 1 more ids. */
    static const step_t first[] = {
        S_REQ,
        S_DISP,
        {"pin tx-1 declined", S_DECLINED("declined", "payments_declined", "Declined") "DECLINED)",
         POS_PAY_IDLE},
    };
    RUN(first);
    for (int i = 2; i <= POS_PAY_HISTORY; i++) {
        snprintf(ev, sizeof(ev), "cancel old-%d", i);
        assert_int_equal(send_event(ev), 0);
    }
    assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &st), 0);
    assert_int_equal(st, POS_PAY_DECLINED);
    assert_int_equal(send_event("req tx-1 1234"), 0);
    render(&acts);
    assert_string_equal(rendered, "PAYMENT_DECLINED:declined@tx-1");

    /* One more pushes the oldest out. */
    assert_int_equal(send_event("cancel old-257"), 0);
    assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &st), -ENOENT);
    assert_int_equal(pos_payment_sm_lookup(sm, "old-2", &st), 0);
    assert_int_equal(pos_payment_sm_lookup(sm, "old-257", &st), 0);
    assert_int_equal(st, POS_PAY_CANCELLED);
    /* Forgotten: the window of protection is POS_PAY_HISTORY ids. */
    assert_int_equal(send_event("req tx-1 1234"), 0);
    render(&acts);
    assert_string_equal(rendered, "RECORD(STARTING) SADD held:PAYMENT_PROCESSING@tx-1 BUSY DISPLAY(1234)");
    /* old-2 is still protected. */
    assert_int_equal(send_event("req old-2 1"), 0);
    render(&acts);
    assert_string_equal(rendered, "PAYMENT_CANCELLED@old-2");
}

/* ---- restore after a restart -------------------------------------------------- */

static pos_payment_record_t rec_of(const char *tx, pos_payment_state_t st)
{
    pos_payment_record_t r;
    memset(&r, 0, sizeof(r));
    strcpy(r.transaction_id, tx);
    r.state = st;
    r.amount_minor = 1234;
    assert_int_equal(pos_amount_currency("EUR", &r.currency), 0);
    strcpy(r.auth_code, "A1B2C3");
    strcpy(r.masked_pan, "411111******1111");
    strcpy(r.card_brand, "VISA");
    if (st == POS_PAY_DECLINED) {
        strcpy(r.reason, "insufficient_funds");
    }
    return r;
}

static void test_restore(void **state)
{
    pos_payment_record_t r;
    (void)state;

    r = rec_of("done-1", POS_PAY_DONE);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    assert_int_equal(acts.count, 0);
    r = rec_of("dec-1", POS_PAY_DECLINED);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    assert_int_equal(acts.count, 0);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EEXIST);

    /* Crashed mid-payment: never retried, reported interrupted and counted
     * for reconciliation. */
    r = rec_of("mid-1", POS_PAY_PROCESSING);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    render(&acts);
    assert_string_equal(rendered, "SREM PAYMENT_DECLINED:interrupted@mid-1 "
                                  "INCR(payments_interrupted) RECORD(UNKNOWN)");
    r = rec_of("mid-2", POS_PAY_STARTING);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    assert_int_equal(acts.a[acts.count - 1].u.record.state, POS_PAY_UNKNOWN);

    /* Crashed after approval: the payment stands, the receipt is lost. */
    r = rec_of("appr-1", POS_PAY_APPROVED);
    strcpy(r.masked_pan, "4111111111111111"); /* a tampered journal cannot leak it */
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    render(&acts);
    assert_string_equal(rendered,
                        "PAYMENT_APPROVED@appr-1 RECEIPT_FAILED:interrupted@appr-1 SREM "
                        "tx:TRANSACTION_COMPLETED:failed@appr-1 INCR(receipts_failed) "
                        "RECORD(DONE)");
    assert_string_equal(acts.a[0].u.publish.msg.masked_pan, "******");

    /* Everything restored answers as history. */
    static const step_t steps[] = {
        {"req done-1 1234", "PAYMENT_APPROVED@done-1", POS_PAY_IDLE},
        {"req dec-1 1234", "PAYMENT_DECLINED:insufficient_funds@dec-1", POS_PAY_IDLE},
        {"req mid-1 1234", "PAYMENT_DECLINED:interrupted@mid-1", POS_PAY_IDLE},
        {"req mid-2 1234", "PAYMENT_DECLINED:interrupted@mid-2", POS_PAY_IDLE},
        {"req appr-1 1234", "PAYMENT_APPROVED@appr-1", POS_PAY_IDLE},
        {"reprint done-1", "PRINT_COPY", POS_PAY_IDLE},
    };
    RUN(steps);
    /* A copy from the journal has the payment data but no item lines. */
    assert_null(acts.a[0].u.receipt.lines);
    assert_string_equal(acts.a[0].u.receipt.payment.auth_code, "A1B2C3");
    assert_int_equal(send_event("print done-1 ok"), 0);
    render(&acts);
    assert_string_equal(rendered, "RECEIPT_PRINTED@done-1");

    /* Malformed records and a live payment. */
    r = rec_of("x", POS_PAY_IDLE);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EINVAL);
    r = rec_of("bad id", POS_PAY_DONE);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EINVAL);
    r = rec_of("x", POS_PAY_DONE);
    r.amount_minor = 0;
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EINVAL);
    r = rec_of("x", POS_PAY_DONE);
    strcpy(r.currency.alpha, "ZZZ");
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EINVAL);
    r = rec_of("x", POS_PAY_STATE_COUNT);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EINVAL);
    assert_int_equal(send_event("req live-1 100"), 0);
    r = rec_of("y", POS_PAY_PROCESSING);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), -EBUSY); /* it has actions */
    /* A finished one is history at once, beside the live payment: a cancel
     * for it is not taken as the cancel of a payment never seen (which is
     * recorded, over its record, and answered PAYMENT_CANCELLED). */
    r = rec_of("y", POS_PAY_DONE);
    assert_int_equal(pos_payment_sm_restore(sm, &r, &acts), 0);
    assert_int_equal(acts.count, 0);
    pos_payment_state_t st;
    assert_int_equal(pos_payment_sm_lookup(sm, "y", &st), 0);
    assert_int_equal(st, POS_PAY_DONE);
    assert_int_equal(send_event("cancel y"), 0);
    render(&acts);
    assert_null(strstr(rendered, "RECORD"));
    assert_null(strstr(rendered, "PAYMENT_CANCELLED"));
    assert_int_equal(pos_payment_sm_lookup(sm, "live-1", &st), 0);
    assert_int_not_equal(st, POS_PAY_IDLE);
}

static void test_names_and_lookup(void **state)
{
    pos_payment_state_t st;
    (void)state;
    assert_string_equal(pos_payment_state_name(POS_PAY_TIMED_OUT), "TIMED_OUT");
    assert_string_equal(pos_payment_state_name(POS_PAY_STATE_COUNT), "?");
    assert_int_equal(pos_payment_sm_lookup(sm, "nope", &st), -ENOENT);
    assert_int_equal(send_event("req tx-1 1"), 0);
    assert_int_equal(pos_payment_sm_lookup(sm, "tx-1", &st), 0);
    assert_int_equal(st, POS_PAY_STARTING);
    assert_int_equal(pos_payment_sm_lookup(sm, NULL, &st), -EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_approved_and_printed),
        T(test_approved_print_fails_payment_stands),
        T(test_print_outcomes),
        T(test_print_timeout),
        T(test_pinpad_outcomes),
        T(test_pinpad_deadline),
        T(test_configurable_timeouts),
        T(test_display_problems_do_not_block),
        T(test_busy),
        T(test_duplicates_in_each_state),
        T(test_duplicate_while_cancelling),
        T(test_pinpad_waits_for_record),
        T(test_record_failed_refuses),
        T(test_record_late_refuses),
        T(test_two_records_late),
        T(test_cancel_starting),
        T(test_cancel_processing_each_pinpad_answer),
        T(test_cancel_loses_race_with_approval),
        T(test_cancel_abort_never_confirmed),
        T(test_cancel_unknown_during_abort),
        T(test_cancel_unknown_and_other_transactions),
        T(test_reprint),
        T(test_reprint_not_approved),
        T(test_receipt_content),
        T(test_pinpad_data_vetted),
        T(test_reject_event),
        T(test_malformed_events),
        T(test_history_eviction),
        T(test_restore),
        T(test_names_and_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
