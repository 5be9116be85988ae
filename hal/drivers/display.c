/*
 * 2 x 20 customer display on a serial line, Epson DM-D or CD5220 command
 * set (hal/display_proto.h). The framebuffer sends only the lines that
 * changed. The last requested lines are kept: after the display comes back
 * (re-open) the framebuffer is invalidated and they are sent again in full.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal/buf.h"
#include "hal/charset.h"
#include "hal/display.h"
#include "hal/display_proto.h"
#include "hal/drivers/drivers.h"
#include "platform/log.h"
#include "platform/stream.h"

/* Write deadline of one update, ms (at most ~90 bytes: 100 ms at 9600 baud). */
#define DSP_WRITE_DEADLINE_MS 2000u
/* Longest stored line, bytes of UTF-8 (20 columns of up to 4 bytes). */
#define DSP_LINE_MAX (POS_DISPLAY_COLS * 4 + 1)

typedef struct drv_display {
    pos_drv_port_t port;
    pos_display_fb_t fb;
    char line[POS_DISPLAY_ROWS][DSP_LINE_MAX]; /* what should be on the glass */
    bool up;
    int show_tag;   /* its address tags a write answering show() */
    int resend_tag; /* ... and one re-sending the lines after a re-open */
} drv_display_t;

static void dsp_keep(char *dst, const char *src)
{
    /* Anything past 20 columns is cut by the framebuffer anyway; cut on a
     * character boundary so the stored copy stays valid UTF-8. */
    size_t n = pos_charset_prefix(src, strlen(src), POS_DISPLAY_COLS);
    if (n >= DSP_LINE_MAX) {
        n = DSP_LINE_MAX - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Sends what differs between the glass and the wanted lines. Returns 0
 * and *wrote, or a negative errno (the glass is then unknown). */
static int dsp_flush(drv_display_t *d, void *tag, bool *wrote)
{
    uint8_t storage[128];
    pos_buf_t b;
    int rc;

    *wrote = false;
    pos_buf_init_fixed(&b, storage, sizeof(storage));
    rc = pos_display_fb_update(&d->fb, d->line[0], d->line[1], &b);
    if (rc == 0 && b.len > 0) {
        rc = pos_stream_write(&d->port.stream, b.data, b.len, DSP_WRITE_DEADLINE_MS, tag);
        if (rc == 0) {
            *wrote = true;
        }
    }
    if (rc != 0) {
        pos_display_fb_invalidate(&d->fb);
    }
    return rc;
}

static void dsp_on_open(pos_stream_t *s)
{
    drv_display_t *d = s->data;
    bool wrote;

    d->up = true;
    /* Whatever the display shows now (power-on text, stale lines) is unknown. */
    pos_display_fb_invalidate(&d->fb);
    if (dsp_flush(d, &d->resend_tag, &wrote) != 0) {
        return;
    }
    pos_hal_set_status(d->port.dev, POS_DEV_READY);
}

static void dsp_on_down(pos_stream_t *s, int err)
{
    drv_display_t *d = s->data;

    POS_WARN("hal", "display: link down: %s", strerror(-err));
    d->up = false;
    pos_display_fb_invalidate(&d->fb);
    pos_hal_set_status(d->port.dev, POS_DEV_OFFLINE);
}

static void dsp_on_write_done(pos_stream_t *s, void *ctx, int status)
{
    drv_display_t *d = s->data;

    if (d->port.closed) {
        return;
    }
    if (status != 0) {
        pos_display_fb_invalidate(&d->fb);
    }
    if (ctx == &d->show_tag) {
        pos_hal_output_complete(d->port.dev, 0,
                                status == -ETIMEDOUT ? -ETIMEDOUT
                                : status != 0        ? -ENODEV
                                                     : 0);
    }
}

static const pos_stream_callbacks_t dsp_stream_cb = {
    .on_open = dsp_on_open,
    .on_down = dsp_on_down,
    .on_write_done = dsp_on_write_done,
};

static int dsp_open(pos_hal_device_t *dev)
{
    drv_display_t *d = dev->driver_data;

    return pos_drv_port_open(&d->port, &dsp_stream_cb, false);
}

static int dsp_show(pos_hal_device_t *dev, const char *line1, const char *line2)
{
    drv_display_t *d = dev->driver_data;
    bool wrote;
    int rc;

    dsp_keep(d->line[0], line1);
    dsp_keep(d->line[1], line2);
    if (!d->up) {
        return -ENODEV; /* kept: shown once the display is back */
    }
    rc = dsp_flush(d, &d->show_tag, &wrote);
    if (rc == -ENOTCONN) {
        rc = -ENODEV;
    }
    if (rc == 0 && !wrote) {
        pos_hal_output_complete(dev, 0, 0); /* nothing changed on the glass */
    }
    return rc;
}

static void dsp_close(pos_hal_device_t *dev)
{
    drv_display_t *d = dev->driver_data;

    pos_drv_port_close(&d->port, free);
}

static const struct pos_display_api dmd_display_api = {
    .lc = {.driver = "epson-display", .open = dsp_open, .close = dsp_close},
    .show = dsp_show,
};

static const struct pos_display_api cd5220_display_api = {
    .lc = {.driver = "cd5220", .open = dsp_open, .close = dsp_close},
    .show = dsp_show,
};

static int dsp_create(pos_hal_device_t *dev, pos_display_cmdset_t set, const char *args,
                      const pos_hal_options_t *o)
{
    drv_display_t *d;
    int cp = pos_drv_codepage(o);

    if (cp < 0) {
        return -EINVAL;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -ENOMEM;
    }
    if (pos_drv_port_init(&d->port, d, dev, POS_STREAM_SERIAL, args, o) != 0 ||
        pos_display_fb_init(&d->fb, set, (pos_codepage_t)cp) != 0) {
        free(d);
        return -EINVAL;
    }
    dev->api = set == POS_DISPLAY_CD5220 ? (const void *)&cd5220_display_api
                                         : (const void *)&dmd_display_api;
    dev->driver_data = d;
    return 0;
}

int pos_dmd_display_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o)
{
    return dsp_create(dev, POS_DISPLAY_EPSON_DMD, args, o);
}

int pos_cd5220_display_create(pos_hal_device_t *dev, const char *args,
                              const pos_hal_options_t *o)
{
    return dsp_create(dev, POS_DISPLAY_CD5220, args, o);
}
