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

#include "agent/payment/payment_sm.h"
#include "hal/device.h"
#include "hal/receipt.h"

typedef struct pos_agent pos_agent_t;
typedef struct pos_payment pos_payment_t;

struct pos_payment {
    pos_agent_t *agent;
    pos_payment_sm_t sm;
    pos_hal_device_t display;
    pos_hal_device_t printer;
    pos_hal_device_t pinpad;
    uv_timer_t deadline_timer;
    unsigned open_handles; /* while closing */
    void (*closed_cb)(pos_payment_t *p);

    char pinpad_tx[POS_MSG_ID_MAX + 1];  /* the payment the pinpad works on */
    char display_tx[POS_MSG_ID_MAX + 1]; /* a payment waiting for its amount on the glass */
    char print_tx[POS_MSG_ID_MAX + 1];   /* the receipt being printed */
    uint32_t print_job;
    uint32_t next_job;
    pos_receipt_doc_t doc; /* scratch for laying out a receipt */
    char unrecorded_tx[POS_MSG_ID_MAX + 1]; /* its journal record failed: never charge it */
    uint64_t handled;      /* payment-channel messages handled */
    uint64_t rejected;     /* dropped as malformed */
    uint64_t unverified;   /* refused: unsigned, bad signature or stale */
};

/* Creates the devices from the agent's [hal] settings (no I/O yet).
 * Returns 0, or a negative errno with err set. */
int pos_payment_init(pos_payment_t *p, pos_agent_t *a, char *err, size_t errlen);

/* Opens, claims and enables the devices. */
void pos_payment_start(pos_payment_t *p);

/*
 * Settles what the journal holds from before a restart: a payment a crash
 * interrupted is reported (never charged again), finished ones are
 * remembered for duplicate requests. Call once, after pos_payment_start().
 */
void pos_payment_restore(pos_payment_t *p);

/* A message on payment:{terminalId}. */
void pos_payment_on_message(pos_payment_t *p, const char *payload, size_t len);

/* Shows two lines on the customer display unless a payment owns it.
 * Returns 0, -EBUSY during a payment, or the device's error. */
int pos_payment_show(pos_payment_t *p, const char *line1, const char *line2);

/* True while a payment is live. */
bool pos_payment_active(const pos_payment_t *p);

/* Closes the devices and the timer; "done" when all are closed. */
void pos_payment_close(pos_payment_t *p, void (*done)(pos_payment_t *p));

#endif /* AGENT_PAYMENT_PAYMENT_H */
