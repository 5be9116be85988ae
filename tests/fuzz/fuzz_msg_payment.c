/*
 * Fuzz target: the payment:{terminalId} channel's message decoder
 * (agent/msg/messages.c) and what follows it (agent/payment/payment_sm.c): the bytes
 * are decoded as a message on the payment channel; a decoded payment
 * request (or a rejectable one) then drives a state machine through a path
 * chosen by the input's own bytes, and every message the machine asks to
 * publish must encode. Crashes, sanitizer reports and abort() are the
 * findings. (The other channels: fuzz_msg_inventory, fuzz_msg_system,
 * fuzz_msg_tracking.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/msg/messages.h"
#include "agent/payment/payment_sm.h"
#include "tests/support/fuzz.h"

static void check_actions(const pos_payment_actions_t *acts)
{
    char json[1024];

    if (acts->count > POS_PAY_ACTIONS_MAX) {
        abort();
    }
    for (size_t i = 0; i < acts->count; i++) {
        if (acts->a[i].kind != POS_PAY_ACT_PUBLISH) {
            continue;
        }
        if (pos_msg_encode(&acts->a[i].u.publish.msg, "T-0001", "S-042", 1, json,
                           sizeof(json)) <= 0) {
            abort();
        }
    }
}

static void drive(pos_payment_sm_t *sm, const pos_msg_t *msg, const uint8_t *data, size_t size)
{
    static const char *const pans[] = {"411111******1111", "4111111111111111", "", NULL};
    pos_payment_actions_t acts;
    pos_payment_event_t ev;
    uint64_t now = 1764412800000ULL;
    const char *tx = msg->u.payment.transaction_id;

    memset(&ev, 0, sizeof(ev));
    ev.kind = POS_PAY_EV_REQUEST;
    ev.request = &msg->u.payment;
    if (pos_payment_sm_handle(sm, &ev, now, &acts) != 0) {
        abort(); /* the decoder accepted it, so the machine must too */
    }
    check_actions(&acts);

    /* The last bytes of the input pick the events that follow. */
    for (size_t i = 0; i < 8 && i < size; i++) {
        uint8_t b = data[size - 1 - i];
        memset(&ev, 0, sizeof(ev));
        ev.transaction_id = tx;
        switch (b % 7) {
        case 0:
            ev.kind = POS_PAY_EV_DISPLAY_DONE;
            ev.display_ok = b & 0x10;
            break;
        case 1:
            ev.kind = POS_PAY_EV_PINPAD_RESULT;
            ev.pinpad = (pos_pinpad_outcome_t)((b >> 3) % 6);
            ev.masked_pan = pans[(b >> 5) % 4];
            ev.auth_code = "A1B2C3";
            ev.card_brand = "VISA";
            ev.reason = (b & 0x80) ? "insufficient_funds" : "Not A Reason";
            break;
        case 2:
            ev.kind = POS_PAY_EV_PRINT_RESULT;
            ev.print = (pos_print_outcome_t)((b >> 3) % 5);
            break;
        case 3:
            ev.kind = POS_PAY_EV_CANCEL;
            break;
        case 4:
            ev.kind = POS_PAY_EV_REPRINT;
            break;
        case 5:
            ev.kind = POS_PAY_EV_DEADLINE;
            now += (uint64_t)(b >> 3) * 10000;
            break;
        default:
            ev.kind = POS_PAY_EV_REQUEST;
            ev.request = &msg->u.payment;
            break;
        }
        if (pos_payment_sm_handle(sm, &ev, now, &acts) != 0) {
            abort();
        }
        check_actions(&acts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pos_payment_sm_t *sm;
    static const pos_msg_limits_t limits = {65536, 100000000, "S-042", "T-0001"};
    pos_msg_t *msg;
    char why[96];

    if (sm == NULL) {
        sm = malloc(sizeof(*sm));
        if (sm == NULL) {
            return 0;
        }
    }
    msg = malloc(sizeof(*msg));
    if (msg == NULL) {
        return 0;
    }
    {
        int rc = pos_msg_decode(POS_MSG_CH_PAYMENT, (const char *)data, size, &limits, msg, why,
                                sizeof(why));
        if (rc == 0 && msg->type == POS_MSG_PAYMENT_REQUESTED) {
            pos_payment_sm_init(sm, NULL);
            drive(sm, msg, data, size);
        } else if (rc != 0 && msg->reject_transaction_id[0] != '\0') {
            pos_payment_actions_t acts;
            pos_payment_event_t ev;
            memset(&ev, 0, sizeof(ev));
            ev.kind = POS_PAY_EV_REJECT;
            ev.transaction_id = msg->reject_transaction_id;
            pos_payment_sm_init(sm, NULL);
            if (pos_payment_sm_handle(sm, &ev, 0, &acts) != 0) {
                abort();
            }
            check_actions(&acts);
        }
        /* A reason is always a short printable string. */
        if (rc != 0 && (why[0] == '\0' || strlen(why) >= sizeof(why))) {
            abort();
        }
    }
    free(msg);
    return 0;
}
