/*
 * Simulated card pinpad: approves or declines by rule after a delay,
 * charges are counted in pinpad.charges (pinpad.charged names them,
 * pinpad.asked every request taken), faults come from pinpad.fault.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hal/buf.h"
#include "hal/pinpad.h"
#include "hal/receipt.h"
#include "hal/sim/sim.h"
#include "hal/sim/sim_watch.h"
#include "hal/telium.h"

typedef struct sim_pinpad {
    pos_sim_dev_t sim; /* first */
    char fault[32];
    char decline_ending[16];
    char card[24]; /* the test card the customer "presents" */
    uint32_t delay_ms;
    bool running;
    bool offline;
    unsigned charges;
    pos_pinpad_request_t req;
} sim_pinpad_t;

static void sim_pinpad_fault(pos_sim_watch_t *w)
{
    sim_pinpad_t *p = w->dev->driver_data;

    pos_sim_read_word(p->sim.dir, "pinpad.fault", p->fault, sizeof(p->fault));
    p->offline = strcmp(p->fault, "offline") == 0;
    pos_hal_set_status(w->dev,
                       p->offline ? POS_DEV_OFFLINE : (p->running ? POS_DEV_BUSY : POS_DEV_READY));
}

static void sim_pinpad_load_charges(sim_pinpad_t *p)
{
    int fd = pos_sim_open_read(p->sim.dir, "pinpad.charges");
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    unsigned n = 0;

    if (f != NULL) {
        if (fscanf(f, "%u", &n) != 1) {
            n = 0;
        }
        fclose(f);
    } else if (fd >= 0) {
        close(fd);
    }
    p->charges = n;
}

static int sim_pinpad_open(pos_hal_device_t *dev)
{
    int rc = pos_sim_dev_open(dev, sim_pinpad_fault);

    if (rc == 0) {
        sim_pinpad_load_charges(dev->driver_data);
    }
    return rc;
}

static void sim_pinpad_finish(pos_hal_device_t *dev, pos_hal_event_t *ev)
{
    sim_pinpad_t *p = dev->driver_data;

    p->running = false;
    dev->state = POS_HAL_IDLE;
    pos_hal_set_status(dev, p->offline ? POS_DEV_OFFLINE : POS_DEV_READY);
    pos_hal_emit(dev, ev);
    memset(&p->req, 0, sizeof(p->req));
}

static const char *sim_brand(char first)
{
    switch (first) {
    case '4':
        return "VISA";
    case '5':
        return "MASTERCARD";
    case '3':
        return "AMEX";
    default:
        return "CARD";
    }
}

static void sim_pinpad_decide(uv_timer_t *t)
{
    pos_sim_watch_t *w = t->data;
    pos_hal_device_t *dev = w->dev;
    sim_pinpad_t *p = dev->driver_data;
    pos_hal_event_t ev;
    char amount[32], pan[24];
    size_t alen, elen;

    if (strcmp(p->fault, "timeout") == 0) {
        return; /* the customer walked away: only an abort ends this */
    }
    memset(&ev, 0, sizeof(ev));
    ev.type = POS_HAL_EV_PINPAD_RESULT;
    ev.pinpad.amount_minor = p->req.amount_minor;
    if (strcmp(p->fault, "error") == 0) {
        ev.pinpad.outcome = POS_PINPAD_ERROR;
        snprintf(ev.pinpad.reason, sizeof(ev.pinpad.reason), "device_error");
        sim_pinpad_finish(dev, &ev);
        return;
    }
    pos_receipt_format_amount(p->req.amount_minor, p->req.digits, amount, sizeof(amount));
    alen = strlen(amount);
    elen = strlen(p->decline_ending);
    if (strcmp(p->fault, "decline") == 0 ||
        (elen > 0 && alen >= elen && strcmp(amount + alen - elen, p->decline_ending) == 0)) {
        ev.pinpad.outcome = POS_PINPAD_DECLINED;
        snprintf(ev.pinpad.reason, sizeof(ev.pinpad.reason), "declined");
        sim_pinpad_finish(dev, &ev);
        return;
    }

    /* Approved: the card is charged; count it where tests can see it. */
    p->charges++;
    {
        char n[16];
        int len = snprintf(n, sizeof(n), "%u\n", p->charges);
        pos_sim_write_file(p->sim.dir, "pinpad.charges", n, (size_t)len, 0);
    }
    /* And which transaction, one line each: a charge made twice shows. */
    {
        char line[sizeof(p->req.transaction_id) + 1];
        int len = snprintf(line, sizeof(line), "%s\n", p->req.transaction_id);
        pos_sim_write_file(p->sim.dir, "pinpad.charged", line, (size_t)len, 1);
    }
    ev.pinpad.outcome = POS_PINPAD_APPROVED;
    uint32_t h = 2166136261u;
    for (const char *s = p->req.transaction_id; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    snprintf(ev.pinpad.auth_code, sizeof(ev.pinpad.auth_code), "%06" PRIX32, h & 0xFFFFFFu);
    /* The card number is masked at the driver boundary and the copy wiped. */
    snprintf(pan, sizeof(pan), "%s", p->card);
    if (pos_pan_mask(pan, strlen(pan), ev.pinpad.masked_pan, sizeof(ev.pinpad.masked_pan)) != 0) {
        ev.pinpad.masked_pan[0] = '\0';
    }
    snprintf(ev.pinpad.card_brand, sizeof(ev.pinpad.card_brand), "%s", sim_brand(pan[0]));
    pos_buf_wipe_mem(pan, sizeof(pan));
    sim_pinpad_finish(dev, &ev);
}

static int sim_pinpad_start(pos_hal_device_t *dev, const pos_pinpad_request_t *req)
{
    sim_pinpad_t *p = dev->driver_data;

    if (p->running) {
        return -EBUSY;
    }
    if (p->offline) {
        return -ENODEV;
    }
    p->req = *req;
    p->running = true;
    /* Every request taken, one line each: a test can tell that the pinpad
     * was asked at all, charged or not. */
    {
        char line[sizeof(p->req.transaction_id) + 1];
        int len = snprintf(line, sizeof(line), "%s\n", p->req.transaction_id);
        pos_sim_write_file(p->sim.dir, "pinpad.asked", line, (size_t)len, 1);
    }
    dev->state = POS_HAL_BUSY;
    pos_hal_set_status(dev, POS_DEV_BUSY);
    uv_timer_start(&p->sim.watch.timer, sim_pinpad_decide, p->delay_ms, 0);
    return 0;
}

static int sim_pinpad_abort(pos_hal_device_t *dev)
{
    sim_pinpad_t *p = dev->driver_data;
    pos_hal_event_t ev;

    if (!p->running) {
        return -EALREADY;
    }
    uv_timer_stop(&p->sim.watch.timer);
    memset(&ev, 0, sizeof(ev));
    ev.type = POS_HAL_EV_PINPAD_RESULT;
    ev.pinpad.outcome = POS_PINPAD_CANCELLED;
    ev.pinpad.amount_minor = p->req.amount_minor;
    snprintf(ev.pinpad.reason, sizeof(ev.pinpad.reason), "aborted");
    sim_pinpad_finish(dev, &ev);
    return 0;
}

static const struct pos_pinpad_api sim_pinpad_api = {
    .lc = {.driver = "sim", .open = sim_pinpad_open, .close = pos_sim_dev_close},
    .start = sim_pinpad_start,
    .abort = sim_pinpad_abort,
};

int pos_sim_pinpad_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    sim_pinpad_t *p;

    (void)args;
    p = pos_sim_dev_create(dev, sizeof(*p), &sim_pinpad_api, o);
    if (p == NULL) {
        return -ENOMEM;
    }
    snprintf(p->decline_ending, sizeof(p->decline_ending), "%s",
             o->sim_decline_ending ? o->sim_decline_ending : "");
    snprintf(p->card, sizeof(p->card), "%s",
             o->sim_card_number ? o->sim_card_number : "4111111111111111");
    p->delay_ms = o->sim_pinpad_delay_ms;
    return 0;
}

unsigned pos_sim_pinpad_charges(const pos_hal_device_t *dev)
{
    const sim_pinpad_t *p = dev->driver_data;
    return p != NULL ? p->charges : 0;
}
