/* Helpers shared by the real drivers. */
#include <errno.h>
#include <stdint.h>

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
