#include "hal/registry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hal/drivers/drivers.h"
#include "hal/sim/sim.h"

/* Every driver the agent knows, by device kind. Real drivers add rows. */
static const pos_hal_driver_t drivers[] = {
    {POS_HAL_DISPLAY, "sim", pos_sim_check, pos_sim_display_create},
    {POS_HAL_PRINTER, "sim", pos_sim_check, pos_sim_printer_create},
    {POS_HAL_PINPAD, "sim", pos_sim_check, pos_sim_pinpad_create},
    {POS_HAL_PRINTER, "escpos", pos_escpos_check_usblp, pos_escpos_create_usblp},
    {POS_HAL_PRINTER, "escpos-serial", pos_escpos_check_serial, pos_escpos_create_serial},
    {POS_HAL_PRINTER, "escpos-tcp", pos_escpos_check_tcp, pos_escpos_create_tcp},
    {POS_HAL_DISPLAY, "epson-display", pos_drv_check_serial, pos_dmd_display_create},
    {POS_HAL_DISPLAY, "cd5220", pos_drv_check_serial, pos_cd5220_display_create},
    {POS_HAL_PINPAD, "telium", pos_drv_check_serial, pos_telium_pinpad_create},
};

const char *pos_hal_kind_name(pos_hal_kind_t kind)
{
    switch (kind) {
    case POS_HAL_DISPLAY:
        return "display";
    case POS_HAL_PRINTER:
        return "printer";
    case POS_HAL_PINPAD:
        return "pinpad";
    }
    return "?";
}

/* Splits "name:args" (or "name") and finds the driver. */
static const pos_hal_driver_t *hal_find(pos_hal_kind_t kind, const char *spec, const char **args,
                                        char *err, size_t errlen)
{
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    char known[256] = "";
    size_t off = 0;

    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
        if (drivers[i].kind != kind) {
            continue;
        }
        if (strlen(drivers[i].name) == nlen && strncmp(drivers[i].name, spec, nlen) == 0) {
            *args = colon ? colon + 1 : "";
            return &drivers[i];
        }
        int n = snprintf(known + off, sizeof(known) - off, "%s%s", off ? ", " : "",
                         drivers[i].name);
        if (n > 0 && (size_t)n < sizeof(known) - off) {
            off += (size_t)n;
        }
    }
    snprintf(err, errlen, "unknown %s driver (known: %s)", pos_hal_kind_name(kind), known);
    return NULL;
}

int pos_hal_spec_validate(pos_hal_kind_t kind, const char *spec, char *err, size_t errlen)
{
    const char *args;
    const pos_hal_driver_t *d = hal_find(kind, spec, &args, err, errlen);

    if (d == NULL) {
        return -EINVAL;
    }
    return d->check != NULL ? d->check(args, err, errlen) : 0;
}

int pos_hal_create(pos_hal_device_t *dev, uv_loop_t *loop, pos_hal_kind_t kind,
                   const char *spec, const pos_hal_options_t *opt, pos_hal_event_cb cb,
                   void *user, char *err, size_t errlen)
{
    const char *args;
    const pos_hal_driver_t *d = hal_find(kind, spec, &args, err, errlen);
    int rc;

    if (d == NULL) {
        return -EINVAL;
    }
    if (d->check != NULL && (rc = d->check(args, err, errlen)) != 0) {
        return rc;
    }
    rc = pos_hal_device_init(dev, loop, pos_hal_kind_name(kind), NULL, cb, user);
    if (rc != 0) {
        snprintf(err, errlen, "cannot initialise: %s", uv_strerror(rc));
        return rc;
    }
    rc = d->create(dev, args, opt);
    if (rc != 0) {
        snprintf(err, errlen, "driver %s: %s", d->name, strerror(-rc));
        /* The event timer is open: closed on the loop's next turn. */
        pos_hal_close(dev, NULL);
    }
    return rc;
}
