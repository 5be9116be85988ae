#ifndef HAL_PINPAD_H
#define HAL_PINPAD_H

/*
 * Card pinpad. One payment at a time: start, then exactly one
 * PINPAD_RESULT event (approved, declined, cancelled, error, timeout, unknown),
 * its job_id the start's run (a result queued before a later start still
 * names its own run when it is delivered). The
 * driver masks the card number at its boundary (first 6 / last 4 at most)
 * and wipes the buffer that held it. An outcome unknown after a timeout is
 * reported as POS_PINPAD_UNKNOWN and never retried automatically.
 */

#include <errno.h>
#include <stdint.h>

#include "hal/device.h"

typedef struct pos_pinpad_request {
    char transaction_id[65];
    int64_t amount_minor;      /* > 0 */
    char currency[4];          /* ISO 4217 alpha, e.g. "EUR" */
    uint16_t currency_numeric; /* ISO 4217 numeric, e.g. 978 */
    unsigned digits;           /* minor digits of the currency */
    uint32_t timeout_ms;       /* customer timeout */
} pos_pinpad_request_t;

struct pos_pinpad_api {
    pos_hal_lifecycle_api_t lc;
    /* Starts a payment. Returns 0, -EBUSY while one runs, or an error. */
    int (*start)(pos_hal_device_t *dev, const pos_pinpad_request_t *req);
    /* Asks to abort the running payment; the result still arrives (CANCELLED,
     * or APPROVED/DECLINED if the card was already processed). */
    int (*abort)(pos_hal_device_t *dev);
};

/* Begins a new run: every result emitted from now on carries its id in
 * job_id, until the next one begins. Returns the id (never 0). */
static inline uint32_t pos_pinpad_new_run(pos_hal_device_t *dev)
{
    if (++dev->run == 0) {
        dev->run = 1;
    }
    return dev->run;
}

/* Starts a payment in a new run (pos_pinpad_new_run), whatever it returns. */
static inline int pos_pinpad_start(pos_hal_device_t *dev, const pos_pinpad_request_t *req)
{
    const struct pos_pinpad_api *api = (const struct pos_pinpad_api *)dev->api;
    (void)pos_pinpad_new_run(dev);
    if (!pos_hal_usable(dev)) {
        return -EPERM;
    }
    if (api->start == NULL) {
        return -ENOSYS;
    }
    return api->start(dev, req);
}

static inline int pos_pinpad_abort(pos_hal_device_t *dev)
{
    const struct pos_pinpad_api *api = (const struct pos_pinpad_api *)dev->api;
    if (!pos_hal_usable(dev)) {
        return -EPERM;
    }
    if (api->abort == NULL) {
        return -ENOSYS;
    }
    return api->abort(dev);
}

#endif /* HAL_PINPAD_H */
