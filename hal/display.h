#ifndef HAL_DISPLAY_H
#define HAL_DISPLAY_H

/* Customer display: two lines of text (UTF-8; the driver pads, truncates
 * and transcodes for its glass). */

#include <errno.h>

#include "hal/device.h"

struct pos_display_api {
    pos_hal_lifecycle_api_t lc;
    /* Shows two lines; completion arrives as OUTPUT_COMPLETE (job 0). */
    int (*show)(pos_hal_device_t *dev, const char *line1, const char *line2);
};

/* Shows two lines (NULL counts as empty). Returns 0, -EPERM when not
 * enabled, -ENOSYS, or the driver's error. */
static inline int pos_display_show(pos_hal_device_t *dev, const char *line1, const char *line2)
{
    const struct pos_display_api *api = (const struct pos_display_api *)dev->api;
    if (!pos_hal_usable(dev)) {
        return -EPERM;
    }
    if (api->show == NULL) {
        return -ENOSYS;
    }
    return api->show(dev, line1 ? line1 : "", line2 ? line2 : "");
}

#endif /* HAL_DISPLAY_H */
