#ifndef HAL_REGISTRY_H
#define HAL_REGISTRY_H

/*
 * Driver selection: a driver string from the configuration ("sim",
 * "escpos:/dev/usb/lp0", "telium:/dev/ttyACM0?baud=9600", ...) names a
 * driver for a device kind and its arguments. Validation is pure, so the
 * configuration can refuse a bad string before anything is opened.
 */

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hal/device.h"

typedef enum pos_hal_kind {
    POS_HAL_DISPLAY = 0,
    POS_HAL_PRINTER,
    POS_HAL_PINPAD,
} pos_hal_kind_t;

/* Settings shared by the drivers (from the [hal] section). */
typedef struct pos_hal_options {
    const char *sim_dir;            /* simulated devices' files */
    uint32_t sim_pinpad_delay_ms;   /* time the simulated customer takes */
    uint32_t sim_printer_delay_ms;  /* time a simulated receipt takes to print, 0 allowed */
    const char *sim_decline_ending; /* amounts whose text ends so are declined */
    const char *sim_card_number;    /* the test card the simulated pinpad reads */
    uint32_t reopen_base_ms;        /* device re-open backoff */
    uint32_t reopen_cap_ms;
    unsigned paper_width;           /* receipt columns */
    const char *printer_model;      /* ESC/POS model name */
    const char *codepage;           /* printer/display code page */
} pos_hal_options_t;

/* Driver constructor: binds the ops table and its data to dev. */
typedef int (*pos_hal_driver_create_fn)(pos_hal_device_t *dev, const char *args,
                                        const pos_hal_options_t *opt);
/* Pure validation of a driver's argument string. */
typedef int (*pos_hal_driver_check_fn)(const char *args, char *err, size_t errlen);

typedef struct pos_hal_driver {
    pos_hal_kind_t kind;
    const char *name; /* before the ':' in the driver string */
    pos_hal_driver_check_fn check;
    pos_hal_driver_create_fn create;
} pos_hal_driver_t;

/* Name of a kind: "display", "printer", "pinpad". */
const char *pos_hal_kind_name(pos_hal_kind_t kind);

/*
 * Checks a driver string for a kind. Returns 0, or -EINVAL with a reason
 * listing the drivers that kind accepts.
 */
int pos_hal_spec_validate(pos_hal_kind_t kind, const char *spec, char *err, size_t errlen);

/*
 * Creates the device: pos_hal_device_init() plus the driver's constructor.
 * Returns 0 or a negative errno (err says why).
 */
int pos_hal_create(pos_hal_device_t *dev, uv_loop_t *loop, pos_hal_kind_t kind,
                   const char *spec, const pos_hal_options_t *opt, pos_hal_event_cb cb,
                   void *user, char *err, size_t errlen);

#endif /* HAL_REGISTRY_H */
