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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hal/device.h"
#include "hal/registry.h"
#include "platform/stream.h"

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

/* The code page named in the options ("cp858" when unset): a pos_codepage_t, or -EINVAL. */
int pos_drv_codepage(const pos_hal_options_t *o);

/*
 * What every real driver holds to reach its device: the byte stream with
 * its spec and re-open backoff, optionally a timer, and the close that
 * waits for both. Embedded in the driver's own state (the owner), which
 * the stream's and the timer's data point at.
 */
typedef struct pos_drv_port {
    pos_hal_device_t *dev;
    void *owner; /* the driver's state: stream.data, timer.data, release's argument */
    pos_stream_t stream;
    uv_timer_t timer;
    pos_stream_spec_t spec;
    uint32_t reopen_base_ms, reopen_cap_ms;
    bool stream_inited, timer_inited;
    bool closed;      /* pos_drv_port_close() called */
    unsigned closing; /* handles whose close callback is pending */
    void (*release)(void *owner);
} pos_drv_port_t;

/*
 * Sets up port for owner on dev (no I/O): args parsed as a stream spec of
 * kind, the re-open backoff from o. Returns 0 or -EINVAL.
 */
int pos_drv_port_init(pos_drv_port_t *port, void *owner, pos_hal_device_t *dev,
                      pos_stream_kind_t kind, const char *args, const pos_hal_options_t *o);

/*
 * Opens the port: the timer when with_timer, then the stream with cb; the
 * device shows offline until the stream opens. Returns 0 or a negative
 * errno (what was initialised is closed by pos_drv_port_close()).
 */
int pos_drv_port_open(pos_drv_port_t *port, const pos_stream_callbacks_t *cb, bool with_timer);

/*
 * Closes the timer and the stream. Once both are closed, release(owner)
 * frees the driver's state (and the port in it), and the device is told
 * (pos_hal_driver_closed()); at once when neither was open.
 */
void pos_drv_port_close(pos_drv_port_t *port, void (*release)(void *owner));

#endif /* HAL_DRIVERS_DRIVERS_H */
