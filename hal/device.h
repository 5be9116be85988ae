#ifndef HAL_DEVICE_H
#define HAL_DEVICE_H

/*
 * The common device model of the HAL, after UnifiedPOS: every device goes
 * open -> claim -> enable -> use -> disable -> release -> close, has a
 * lifecycle state (closed, idle, busy, error) and a reported status (the
 * contract's ready, busy, offline, error, paper_low, paper_out, cover_open),
 * and delivers its events in order on the libuv loop, never from inside the
 * call that caused them.
 *
 * A driver is a const ops table (struct pos_display_api, pos_printer_api,
 * pos_pinpad_api) whose first member is the lifecycle table, plus its own
 * data behind dev->driver_data. Callers use the pos_hal_* / pos_display_* /
 * pos_printer_* / pos_pinpad_* wrappers, which check the lifecycle state
 * and return -ENOSYS for an operation a driver does not have.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Reported device status, as in the status JSON of CONTRACT.md. */
typedef enum pos_dev_state {
    POS_DEV_READY = 0,
    POS_DEV_BUSY,
    POS_DEV_OFFLINE,
    POS_DEV_ERROR,
    POS_DEV_PAPER_LOW,  /* printer only */
    POS_DEV_PAPER_OUT,  /* printer only */
    POS_DEV_COVER_OPEN, /* printer only */
} pos_dev_state_t;

/* Lifecycle state. */
typedef enum pos_hal_state {
    POS_HAL_CLOSED = 0,
    POS_HAL_IDLE,
    POS_HAL_BUSY,
    POS_HAL_ERROR,
} pos_hal_state_t;

typedef enum pos_hal_event_type {
    POS_HAL_EV_STATUS = 0,      /* status changed (only on change) */
    POS_HAL_EV_ERROR,           /* an operation failed asynchronously */
    POS_HAL_EV_OUTPUT_COMPLETE, /* a print or display job finished (error = result) */
    POS_HAL_EV_PINPAD_RESULT,   /* the pinpad finished a payment */
} pos_hal_event_type_t;

typedef enum pos_pinpad_outcome {
    POS_PINPAD_APPROVED = 0,
    POS_PINPAD_DECLINED,  /* by the issuer or the card */
    POS_PINPAD_CANCELLED, /* aborted: on request, or by the customer on the pinpad */
    POS_PINPAD_ERROR,     /* device failure; the card was not charged */
    POS_PINPAD_TIMEOUT,   /* the pinpad gave up waiting for the card; not charged */
    POS_PINPAD_UNKNOWN    /* the pinpad cannot tell whether the card was charged */
} pos_pinpad_outcome_t;

typedef struct pos_pinpad_result {
    pos_pinpad_outcome_t outcome;
    int64_t amount_minor;
    char auth_code[16];
    char masked_pan[24]; /* at most the first 6 and last 4 digits */
    char card_brand[16];
    char reason[32];     /* for declines and errors: "declined", "offline", ... */
} pos_pinpad_result_t;

typedef struct pos_hal_event {
    pos_hal_event_type_t type;
    pos_dev_state_t status; /* POS_HAL_EV_STATUS */
    int error;              /* ERROR: negative errno; OUTPUT_COMPLETE: 0 or negative errno */
    uint32_t job_id;        /* OUTPUT_COMPLETE; PINPAD_RESULT: the run it ends (dev->run) */
    pos_pinpad_result_t pinpad; /* PINPAD_RESULT */
} pos_hal_event_t;

typedef struct pos_hal_device pos_hal_device_t;

typedef void (*pos_hal_event_cb)(pos_hal_device_t *dev, const pos_hal_event_t *ev);

typedef struct pos_hal_lifecycle_api {
    const char *driver; /* "sim", "escpos", ... */
    /* Starts using the device; returns 0 even when the hardware is absent
     * (the driver then reports POS_DEV_OFFLINE and keeps trying). */
    int (*open)(pos_hal_device_t *dev);
    int (*claim)(pos_hal_device_t *dev);
    int (*enable)(pos_hal_device_t *dev);
    int (*disable)(pos_hal_device_t *dev);
    int (*release)(pos_hal_device_t *dev);
    /* Stops all I/O, closes the driver's handles and frees its data, then
     * calls pos_hal_driver_closed(dev) (possibly later, from a close
     * callback). Called whether or not open ran or succeeded. */
    void (*close)(pos_hal_device_t *dev);
} pos_hal_lifecycle_api_t;

#define POS_HAL_EVQ_MAX 32

struct pos_hal_device {
    const char *kind;  /* "display", "printer", "pinpad" */
    const void *api;   /* the driver's ops table; starts with pos_hal_lifecycle_api_t */
    void *driver_data; /* the driver's own */
    void *user;        /* the owner's */
    uv_loop_t *loop;

    pos_hal_state_t state;
    /* The pinpad's current payment (pos_pinpad_start): a result emitted is
     * stamped with it, so that one from an earlier payment, delivered after
     * the next began, is never taken for the next one's. */
    uint32_t run;
    bool claimed;
    bool enabled;
    pos_dev_state_t status;
    pos_hal_event_cb cb;

    /* In-order event delivery on the loop. */
    pos_hal_event_t evq[POS_HAL_EVQ_MAX];
    unsigned evq_head;
    unsigned evq_len;
    uv_timer_t ev_timer;
    bool ev_timer_open;
    bool driver_open;
    void (*closed_cb)(pos_hal_device_t *dev);
};

/* The lifecycle table of a device's driver. */
static inline const pos_hal_lifecycle_api_t *pos_hal_lc(const pos_hal_device_t *dev)
{
    return (const pos_hal_lifecycle_api_t *)dev->api;
}

/*
 * Prepares a device for a driver's ops table (no I/O). The driver's own
 * init sets dev->driver_data. Returns 0 or a negative errno.
 */
int pos_hal_device_init(pos_hal_device_t *dev, uv_loop_t *loop, const char *kind,
                        const void *api, pos_hal_event_cb cb, void *user);

/* Lifecycle; each returns 0, -EBUSY / -EPERM for a call out of order, or the
 * driver's error. */
int pos_hal_open(pos_hal_device_t *dev);
int pos_hal_claim(pos_hal_device_t *dev);
int pos_hal_enable(pos_hal_device_t *dev);
int pos_hal_disable(pos_hal_device_t *dev);
int pos_hal_release(pos_hal_device_t *dev);

/* open + claim + enable in one step. */
int pos_hal_start(pos_hal_device_t *dev);

/*
 * Disables, releases and closes the device (whatever its state); pending
 * events are dropped; "done" runs once every handle is closed.
 */
void pos_hal_close(pos_hal_device_t *dev, void (*done)(pos_hal_device_t *dev));

/* True when enabled (operations allowed). */
bool pos_hal_usable(const pos_hal_device_t *dev);

/* ---- for drivers ---- */

/* Queues an event for in-order delivery on the loop. Returns 0, -ENOBUFS. */
int pos_hal_emit(pos_hal_device_t *dev, const pos_hal_event_t *ev);

/* Records a new status and queues a STATUS event, only when it changed. */
void pos_hal_set_status(pos_hal_device_t *dev, pos_dev_state_t status);

/* Queues OUTPUT_COMPLETE for job_id with result (0 or negative errno). */
void pos_hal_output_complete(pos_hal_device_t *dev, uint32_t job_id, int result);

/* Called by a driver's close once its handles are closed. */
void pos_hal_driver_closed(pos_hal_device_t *dev);

#endif /* HAL_DEVICE_H */
