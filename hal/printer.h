#ifndef HAL_PRINTER_H
#define HAL_PRINTER_H

/*
 * Receipt printer. A job is a laid-out receipt document; the driver renders
 * it for its device. No job is started while paper is out or the cover is
 * open, and a job that failed part-way is reported, never silently resent.
 */

#include <errno.h>

#include "hal/device.h"
#include "hal/receipt.h"

struct pos_printer_api {
    pos_hal_lifecycle_api_t lc;
    /* Prints doc (copied before return); OUTPUT_COMPLETE(job_id, result)
     * follows: 0, or -ENOSPC paper out, -EIO cover open / device error,
     * -ENODEV offline, -ETIMEDOUT. */
    int (*print)(pos_hal_device_t *dev, const pos_receipt_doc_t *doc, uint32_t job_id);
};

static inline int pos_printer_print(pos_hal_device_t *dev, const pos_receipt_doc_t *doc,
                                    uint32_t job_id)
{
    const struct pos_printer_api *api = (const struct pos_printer_api *)dev->api;
    if (!pos_hal_usable(dev)) {
        return -EPERM;
    }
    if (api->print == NULL) {
        return -ENOSYS;
    }
    return api->print(dev, doc, job_id);
}

#endif /* HAL_PRINTER_H */
