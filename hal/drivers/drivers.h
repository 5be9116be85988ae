#ifndef HAL_DRIVERS_DRIVERS_H
#define HAL_DRIVERS_DRIVERS_H

/*
 * Real device drivers over platform/stream.h byte streams. Each driver
 * string "name:args" hands "args" (a device path with options, or a TCP
 * address) to the pure check function, which the registry also runs when
 * the configuration is validated, and to the constructor.
 *
 *   printer  escpos:/dev/usb/lp0                     USB printer class (usblp)
 *            escpos-serial:/dev/ttyUSB0?baud=19200   serial line
 *            escpos-tcp:192.0.2.7:9100               raw TCP (port 9100 if none)
 *   display  epson-display:/dev/ttyS1?baud=9600      Epson DM-D command set
 *            cd5220:/dev/ttyS1?baud=9600             CD5220 command set
 *   pinpad   telium:/dev/ttyACM0?baud=9600           Ingenico Telium, protocol E+
 *
 * See docs/drivers.md.
 */

#include <stddef.h>

#include "hal/device.h"
#include "hal/registry.h"

/* Checks "args" of escpos (usblp), escpos-serial and escpos-tcp. Return 0 or
 * -EINVAL with a reason in err. */
int pos_escpos_check_usblp(const char *args, char *err, size_t errlen);
int pos_escpos_check_serial(const char *args, char *err, size_t errlen);
int pos_escpos_check_tcp(const char *args, char *err, size_t errlen);

/* Binds the ESC/POS printer driver to dev. Return 0, -EINVAL or -ENOMEM. */
int pos_escpos_create_usblp(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_escpos_create_serial(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_escpos_create_tcp(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);

/* Checks "args" of a serial display or pinpad ("/dev/ttyS1?baud=9600").
 * Returns 0 or -EINVAL with a reason in err. */
int pos_drv_check_serial(const char *args, char *err, size_t errlen);

/* Binds the Epson DM-D / CD5220 customer display driver to dev. Return 0,
 * -EINVAL or -ENOMEM. */
int pos_dmd_display_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);
int pos_cd5220_display_create(pos_hal_device_t *dev, const char *args,
                              const pos_hal_options_t *o);

/* Binds the Telium E+ pinpad driver to dev. Returns 0, -EINVAL or -ENOMEM. */
int pos_telium_pinpad_create(pos_hal_device_t *dev, const char *args, const pos_hal_options_t *o);

/* Re-open backoff from the options, with defaults (ms) when unset. */
void pos_drv_backoff(const pos_hal_options_t *o, uint32_t *base_ms, uint32_t *cap_ms);

#endif /* HAL_DRIVERS_DRIVERS_H */
