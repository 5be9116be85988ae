#ifndef HAL_SIM_SIM_WATCH_H
#define HAL_SIM_SIM_WATCH_H

/* Watches one fault file of a simulated device with uv_fs_event (inotify on
 * the directory): no polling, so an idle agent does not wake up. */

#include <stdbool.h>

#include <uv.h>

#include "hal/device.h"

typedef struct pos_sim_watch pos_sim_watch_t;

struct pos_sim_watch {
    uv_fs_event_t ev;
    uv_timer_t timer; /* the driver's own timer, closed with the watch */
    pos_hal_device_t *dev;
    char file[32];
    void (*changed)(pos_sim_watch_t *w);
    void (*closed)(pos_sim_watch_t *w);
    unsigned open_handles;
};

/* Starts watching dir for changes to "file"; changed() runs on each. The
 * watch's timer is initialised for the driver's use. */
int pos_sim_watch_start(pos_sim_watch_t *w, pos_hal_device_t *dev, const char *dir,
                        const char *file, void (*changed)(pos_sim_watch_t *w));

/* Closes the watch and its timer; closed() runs when both are closed. */
void pos_sim_watch_close(pos_sim_watch_t *w, void (*closed)(pos_sim_watch_t *w));

#endif /* HAL_SIM_SIM_WATCH_H */
