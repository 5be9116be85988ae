#include "hal/sim/sim_watch.h"

#include <string.h>

#include "platform/log.h"

static void sim_watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    pos_sim_watch_t *w = h->data;

    (void)events;
    if (status != 0) {
        return;
    }
    /* Renames land here too (an atomic rewrite of the fault file). */
    if (filename == NULL || strcmp(filename, w->file) == 0) {
        w->changed(w);
    }
}

int pos_sim_watch_start(pos_sim_watch_t *w, pos_hal_device_t *dev, const char *dir,
                        const char *file, void (*changed)(pos_sim_watch_t *w))
{
    int rc;

    memset(w, 0, sizeof(*w));
    w->dev = dev;
    w->changed = changed;
    strncpy(w->file, file, sizeof(w->file) - 1);
    uv_timer_init(dev->loop, &w->timer);
    w->timer.data = w;
    w->open_handles = 1;
    rc = uv_fs_event_init(dev->loop, &w->ev);
    if (rc == 0) {
        w->ev.data = w;
        w->open_handles++;
        rc = uv_fs_event_start(&w->ev, sim_watch_cb, dir, 0);
    }
    if (rc != 0) {
        POS_WARN("hal", "%s: cannot watch %s for faults: %s", dev->kind, dir, uv_strerror(rc));
    }
    return 0; /* a simulator without its side door still works */
}

static void sim_watch_handle_closed(uv_handle_t *h)
{
    pos_sim_watch_t *w = h->data;
    if (--w->open_handles == 0 && w->closed != NULL) {
        w->closed(w);
    }
}

void pos_sim_watch_close(pos_sim_watch_t *w, void (*closed)(pos_sim_watch_t *w))
{
    w->closed = closed;
    if (w->open_handles == 0) {
        closed(w);
        return;
    }
    uv_close((uv_handle_t *)&w->timer, sim_watch_handle_closed);
    if (w->open_handles > 1) {
        uv_close((uv_handle_t *)&w->ev, sim_watch_handle_closed);
    }
}
