/* Helpers shared by the real drivers. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/charset.h"
#include "hal/drivers/drivers.h"
#include "platform/stream.h"

#define DRV_REOPEN_BASE_MS 500u
#define DRV_REOPEN_CAP_MS  10000u

int pos_drv_check_serial(const char *args, char *err, size_t errlen)
{
    pos_stream_spec_t sp;

    return pos_stream_spec_parse_kind(POS_STREAM_SERIAL, args, &sp, err, errlen);
}

void pos_drv_backoff(const pos_hal_options_t *o, uint32_t *base_ms, uint32_t *cap_ms)
{
    *base_ms = (o != NULL && o->reopen_base_ms > 0) ? o->reopen_base_ms : DRV_REOPEN_BASE_MS;
    *cap_ms = (o != NULL && o->reopen_cap_ms > 0) ? o->reopen_cap_ms : DRV_REOPEN_CAP_MS;
    if (*cap_ms < *base_ms) {
        *cap_ms = *base_ms;
    }
}

int pos_drv_codepage(const pos_hal_options_t *o)
{
    int cp = pos_charset_parse(
        o != NULL && o->codepage != NULL && o->codepage[0] != '\0' ? o->codepage : "cp858");
    return cp < 0 ? -EINVAL : cp;
}

int pos_drv_port_init(pos_drv_port_t *port, void *owner, pos_hal_device_t *dev,
                      pos_stream_kind_t kind, const char *args, const pos_hal_options_t *o)
{
    if (pos_stream_spec_parse_kind(kind, args, &port->spec, NULL, 0) != 0) {
        return -EINVAL;
    }
    pos_drv_backoff(o, &port->reopen_base_ms, &port->reopen_cap_ms);
    port->dev = dev;
    port->owner = owner;
    return 0;
}

int pos_drv_port_open(pos_drv_port_t *port, const pos_stream_callbacks_t *cb, bool with_timer)
{
    pos_hal_device_t *dev = port->dev;
    int rc;

    if (with_timer) {
        rc = uv_timer_init(dev->loop, &port->timer);
        if (rc != 0) {
            return pos_uv_errno(rc);
        }
        port->timer.data = port->owner;
        port->timer_inited = true;
    }
    rc = pos_stream_init(dev->loop, &port->stream, &port->spec, cb, port->reopen_base_ms,
                         port->reopen_cap_ms);
    if (rc != 0) {
        return rc;
    }
    port->stream.data = port->owner;
    port->stream_inited = true;
    pos_hal_set_status(dev, POS_DEV_OFFLINE);
    return pos_stream_start(&port->stream);
}

/* One close callback came back; the last one frees the owner. */
static void port_part_closed(pos_drv_port_t *port)
{
    pos_hal_device_t *dev = port->dev;

    if (--port->closing > 0) {
        return;
    }
    port->release(port->owner); /* the port goes with it */
    dev->driver_data = NULL;
    pos_hal_driver_closed(dev);
}

static void port_timer_closed(uv_handle_t *h)
{
    port_part_closed((pos_drv_port_t *)((char *)h - offsetof(pos_drv_port_t, timer)));
}

static void port_stream_closed(pos_stream_t *s)
{
    port_part_closed((pos_drv_port_t *)((char *)s - offsetof(pos_drv_port_t, stream)));
}

void pos_drv_port_close(pos_drv_port_t *port, void (*release)(void *owner))
{
    port->closed = true;
    port->release = release;
    port->closing = 1; /* held until both closes are issued */
    if (port->timer_inited) {
        port->closing++;
        uv_close((uv_handle_t *)&port->timer, port_timer_closed);
    }
    if (port->stream_inited) {
        port->closing++;
        pos_stream_close(&port->stream, port_stream_closed);
    }
    port_part_closed(port);
}
