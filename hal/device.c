#include "hal/device.h"

#include <errno.h>
#include <string.h>

#include "platform/log.h"
#include "platform/mem.h"

static void hal_ev_timer_cb(uv_timer_t *t)
{
    pos_hal_device_t *dev = t->data;

    /* Deliver what is queued now; events queued by the callbacks wait for
     * the next turn, so a driver cannot starve the loop. */
    unsigned n = dev->evq_len;
    while (n-- > 0 && dev->evq_len > 0) {
        pos_hal_event_t ev = dev->evq[dev->evq_head];
        dev->evq_head = (dev->evq_head + 1) % POS_HAL_EVQ_MAX;
        dev->evq_len--;
        if (dev->cb != NULL && dev->state != POS_HAL_CLOSED) {
            dev->cb(dev, &ev);
        }
        memset(&ev, 0, sizeof(ev)); /* may have held a masked PAN */
    }
    if (dev->evq_len > 0) {
        uv_timer_start(&dev->ev_timer, hal_ev_timer_cb, 0, 0);
    }
}

int pos_hal_device_init(pos_hal_device_t *dev, uv_loop_t *loop, const char *kind,
                        const void *api, pos_hal_event_cb cb, void *user)
{
    int rc;

    pos_mem_zero(dev, sizeof(*dev));
    dev->loop = loop;
    dev->kind = kind;
    dev->api = api;
    dev->cb = cb;
    dev->user = user;
    dev->state = POS_HAL_CLOSED;
    dev->status = POS_DEV_OFFLINE;
    rc = uv_timer_init(loop, &dev->ev_timer);
    if (rc != 0) {
        return rc;
    }
    dev->ev_timer.data = dev;
    dev->ev_timer_open = true;
    return 0;
}

int pos_hal_emit(pos_hal_device_t *dev, const pos_hal_event_t *ev)
{
    if (dev->evq_len >= POS_HAL_EVQ_MAX) {
        POS_ERR("hal", "%s: event queue full, event dropped", dev->kind);
        return -ENOBUFS;
    }
    pos_hal_event_t *q = &dev->evq[(dev->evq_head + dev->evq_len) % POS_HAL_EVQ_MAX];
    *q = *ev;
    if (q->type == POS_HAL_EV_PINPAD_RESULT) {
        q->job_id = dev->run; /* the driver ends the run it was given */
    }
    dev->evq_len++;
    if (dev->ev_timer_open && !uv_is_active((uv_handle_t *)&dev->ev_timer)) {
        uv_timer_start(&dev->ev_timer, hal_ev_timer_cb, 0, 0);
    }
    return 0;
}

void pos_hal_set_status(pos_hal_device_t *dev, pos_dev_state_t status)
{
    pos_hal_event_t ev;

    if (status == dev->status) {
        return;
    }
    dev->status = status;
    memset(&ev, 0, sizeof(ev));
    ev.type = POS_HAL_EV_STATUS;
    ev.status = status;
    pos_hal_emit(dev, &ev);
}

void pos_hal_output_complete(pos_hal_device_t *dev, uint32_t job_id, int result)
{
    pos_hal_event_t ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = POS_HAL_EV_OUTPUT_COMPLETE;
    ev.job_id = job_id;
    ev.error = result;
    if (dev->state == POS_HAL_BUSY) {
        dev->state = POS_HAL_IDLE;
    }
    pos_hal_emit(dev, &ev);
}

int pos_hal_open(pos_hal_device_t *dev)
{
    int rc;

    if (dev->state != POS_HAL_CLOSED) {
        return -EBUSY;
    }
    if (pos_hal_lc(dev)->open == NULL) {
        return -ENOSYS;
    }
    rc = pos_hal_lc(dev)->open(dev);
    /* Even a failed open may have set up handles: close must run. */
    dev->driver_open = true;
    if (rc == 0) {
        dev->state = POS_HAL_IDLE;
    }
    return rc;
}

/* Sets *flag through the driver's optional step, unless already set. */
static int hal_switch_on(pos_hal_device_t *dev, bool *flag, int (*step)(pos_hal_device_t *dev))
{
    int rc = 0;

    if (*flag) {
        return 0;
    }
    if (step != NULL) {
        rc = step(dev);
    }
    if (rc == 0) {
        *flag = true;
    }
    return rc;
}

/* Clears *flag through the driver's optional step; cleared even if it fails. */
static int hal_switch_off(pos_hal_device_t *dev, bool *flag, int (*step)(pos_hal_device_t *dev))
{
    int rc = 0;

    if (!*flag) {
        return 0;
    }
    if (step != NULL) {
        rc = step(dev);
    }
    *flag = false;
    return rc;
}

int pos_hal_claim(pos_hal_device_t *dev)
{
    if (dev->state == POS_HAL_CLOSED) {
        return -EPERM;
    }
    return hal_switch_on(dev, &dev->claimed, pos_hal_lc(dev)->claim);
}

int pos_hal_enable(pos_hal_device_t *dev)
{
    if (!dev->claimed) {
        return -EPERM;
    }
    return hal_switch_on(dev, &dev->enabled, pos_hal_lc(dev)->enable);
}

int pos_hal_disable(pos_hal_device_t *dev)
{
    return hal_switch_off(dev, &dev->enabled, pos_hal_lc(dev)->disable);
}

int pos_hal_release(pos_hal_device_t *dev)
{
    if (dev->enabled) {
        return -EBUSY;
    }
    return hal_switch_off(dev, &dev->claimed, pos_hal_lc(dev)->release);
}

int pos_hal_start(pos_hal_device_t *dev)
{
    int rc = pos_hal_open(dev);

    if (rc == 0) {
        rc = pos_hal_claim(dev);
    }
    if (rc == 0) {
        rc = pos_hal_enable(dev);
    }
    return rc;
}

bool pos_hal_usable(const pos_hal_device_t *dev)
{
    return dev->enabled && dev->state != POS_HAL_CLOSED;
}

static void hal_finish_close(pos_hal_device_t *dev)
{
    if (dev->driver_open || dev->ev_timer_open) {
        return;
    }
    if (dev->closed_cb != NULL) {
        dev->closed_cb(dev);
    }
}

static void hal_ev_timer_closed(uv_handle_t *h)
{
    pos_hal_device_t *dev = h->data;
    dev->ev_timer_open = false;
    hal_finish_close(dev);
}

void pos_hal_driver_closed(pos_hal_device_t *dev)
{
    dev->driver_open = false;
    hal_finish_close(dev);
}

void pos_hal_close(pos_hal_device_t *dev, void (*done)(pos_hal_device_t *dev))
{
    pos_hal_disable(dev);
    pos_hal_release(dev);
    dev->closed_cb = done;
    dev->state = POS_HAL_CLOSED;
    dev->evq_len = 0;
    memset(dev->evq, 0, sizeof(dev->evq));
    if (dev->ev_timer_open && !uv_is_closing((uv_handle_t *)&dev->ev_timer)) {
        uv_close((uv_handle_t *)&dev->ev_timer, hal_ev_timer_closed);
    }
    if (dev->driver_data != NULL && pos_hal_lc(dev)->close != NULL) {
        /* Also when open never ran: the driver frees what create made. */
        dev->driver_open = true;
        pos_hal_lc(dev)->close(dev); /* calls pos_hal_driver_closed() */
    } else {
        dev->driver_open = false;
        hal_finish_close(dev);
    }
}
